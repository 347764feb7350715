"""How a stored integration event travels on NATS: the payload is its stored JSON data, the
headers carry its identity and lineage; `Incoming` reads them back on the other side.

Headers: `Nats-Msg-Id` (the event id: JetStream drops a republish), `Reactor-Type`,
`Reactor-Version`, `Reactor-Service` (the source service), `Reactor-Stream` and
`Reactor-Seq` (its stream and place there), `Reactor-Position`, `Reactor-Correlation-Id`
and `Reactor-Causation-Id` (percent-encoded where a value holds `%` or a control
character); `traceparent` and `tracestate` (W3C trace context) when its metadata holds
them, so that the importer's consumers continue the exporter's trace.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

import attrs

from reactor.codec import loads
from reactor.errors import ReactorError
from reactor.store.base import StoredEvent

MSG_ID = "Nats-Msg-Id"
TYPE = "Reactor-Type"
VERSION = "Reactor-Version"
SERVICE = "Reactor-Service"
STREAM = "Reactor-Stream"
SEQ = "Reactor-Seq"
POSITION = "Reactor-Position"
CORRELATION = "Reactor-Correlation-Id"
CAUSATION = "Reactor-Causation-Id"
TRACE_CONTEXT = ("traceparent", "tracestate")  # W3C names, in metadata as in headers
_SAFE = string.punctuation.replace("%", "")  # kept as is in a header value
_PLAIN = re.compile(r"[!-$&-~]*")  # printable ASCII but space and %: needs no quoting
UNDELIVERABLE = "reactor.bus.Undeliverable"  # the type of a message the inbox cannot take
KEPT = 65_536  # characters of an undeliverable payload kept


@attrs.frozen(kw_only=True)
class Undeliverable:
    """A message the inbox could not take in, as it came: the event of its dead letter
    (registered as `reactor.bus.Undeliverable`, kind "system", by a runtime with a bus)."""

    subject: str
    stream: str  # the JetStream stream it was pulled from
    sequence: int  # its sequence there
    headers: dict[str, str]
    data: str  # the payload as text (the first KEPT characters)
    error: str


class WireError(ReactorError, ValueError):
    """A message that is not a reactor integration event (a header missing or malformed)."""


def headers(service: str, stored: StoredEvent) -> dict[str, str]:
    """The headers of a stored event exported by `service`."""
    out = {
        MSG_ID: stored.event_id,
        TYPE: stored.type,
        VERSION: str(stored.version),
        SERVICE: service,
        STREAM: _quoted(stored.stream_id),
        SEQ: str(stored.seq),
        POSITION: str(stored.position),
    }
    if stored.correlation_id is not None:
        out[CORRELATION] = _quoted(stored.correlation_id)
    if stored.causation_id is not None:
        out[CAUSATION] = _quoted(stored.causation_id)
    if stored.metadata is not None and b"traceparent" in stored.metadata:  # (traced only)
        meta = loads(stored.metadata)
        out.update({k: meta[k] for k in TRACE_CONTEXT if isinstance(meta.get(k), str)})
    return out


def _quoted(value: str) -> str:
    """A header value: percent-encoded if it holds `%`, a space, a control or a non-ASCII
    character (most ids hold none: checked first, several times faster than quoting)."""
    if _PLAIN.fullmatch(value):
        return value
    return quote(value, safe=_SAFE)


@attrs.frozen(kw_only=True)
class Incoming:
    """An integration event as it arrived: what its headers say, and its stored data."""

    event_id: str
    type: str
    version: int
    service: str
    stream_id: str
    seq: int
    position: int
    correlation_id: str | None
    causation_id: str | None
    data: bytes
    trace: dict[str, str] = attrs.field(factory=dict)  # traceparent, tracestate

    @classmethod
    def of(cls, found: Mapping[str, str] | None, data: bytes) -> Incoming:
        """Read a message's headers; `WireError` naming what is missing or malformed."""
        found = found or {}
        missing = [h for h in (MSG_ID, TYPE, VERSION, SERVICE, STREAM) if not found.get(h)]
        if missing:
            raise WireError(f"header(s) {', '.join(missing)} missing")
        return cls(
            event_id=found[MSG_ID],
            type=found[TYPE],
            version=_number(found, VERSION, 1),
            service=found[SERVICE],
            stream_id=unquote(found[STREAM]),
            seq=_number(found, SEQ, 0),
            position=_number(found, POSITION, 0),
            correlation_id=_text(found, CORRELATION),
            causation_id=_text(found, CAUSATION),
            data=data,
            trace={k: found[k] for k in TRACE_CONTEXT if k in found},
        )

    def metadata(self) -> dict[str, Any]:
        """What the local journal keeps of where the event came from (and the trace it
        belongs to, if the exporter traced it)."""
        source = {"source": self.service, "source_stream": self.stream_id, "source_seq": self.seq}
        return {**source, **self.trace}


def _number(found: Mapping[str, str], name: str, least: int) -> int:
    value = found.get(name, str(least))
    if not value.isdigit() or int(value) < least:
        raise WireError(f"header {name} is {value!r}, not an integer >= {least}")
    return int(value)


def _text(found: Mapping[str, str], name: str) -> str | None:
    value = found.get(name)
    return None if value is None else unquote(value)
