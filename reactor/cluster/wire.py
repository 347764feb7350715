"""How a command travels between nodes, and its answer back: JSON bytes (orjson).

A request carries the command's class (by qualified name: the receiving node finds it
among its registered aggregates' commands), its fields (encoded as aggregate state is,
by the class's type hints), its command id, correlation id, principal and audit flag.
An answer is a `CommandResult` (its events encoded as the journal stores them), an error
(its class by qualified name, its message, the fields of the reactor errors that have
some), or "moved" (this node does not own the shard: ask again).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

from reactor.actors.messages import Handle
from reactor.errors import (
    ConcurrencyError,
    DuplicateEventId,
    EncodeError,
    FencedError,
    ReactorError,
)
from reactor.events import Cause, CommandResult, Envelope
from reactor.registry import qualified_name
from reactor.security.policy import Principal
from reactor.store.event_store import EventStore

_STRUCTURED: dict[type[BaseException], tuple[str, ...]] = {  # rebuilt from their fields
    ConcurrencyError: ("stream_id", "expected", "actual"),
    FencedError: ("lease", "epoch", "actual"),
    DuplicateEventId: ("event_id", "stream_id", "seq"),
}


_FIELDS: dict[type, list[tuple[str, str]]] = {}  # by command class
_HINTS: dict[type, dict[str, Any]] = {}


class RemoteError(ReactorError):
    """A command handled on another node raised an exception whose class this process
    does not know: `type_name` is its qualified name, the message its message."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(f"{type_name}: {message}")


@attrs.frozen(kw_only=True)
class Request:
    """A command as it arrives at the node that owns its shard."""

    command: Any
    command_id: str
    correlation_id: str | None
    principal: Principal | None
    audit: bool
    fresh: bool  # never handled before: no need to look its command id up
    cause: Cause | None  # sent by a consumer acting on an event (lineage)
    trace: dict[str, str]  # the sender's trace context (W3C traceparent...), if traced


def _fields(cls: type) -> list[tuple[str, str]]:
    """(attribute name, init argument name) of a command class (once per class)."""
    found = _FIELDS.get(cls)
    if found is not None:
        return found
    if attrs.has(cls):
        found = [(a.name, a.alias or a.name) for a in attrs.fields(cls) if a.init]
    elif dataclasses.is_dataclass(cls):
        found = [(f.name, f.name) for f in dataclasses.fields(cls) if f.init]
    else:
        raise EncodeError(
            f"{qualified_name(cls)} cannot travel to another node: a command sent in a cluster is "
            "an attrs class (or a dataclass)"
        )
    _FIELDS[cls] = found
    return found


def _hints(cls: type) -> dict[str, Any]:
    """The type hints of a command class (once per class: resolving them is slow)."""
    found = _HINTS.get(cls)
    if found is None:
        try:
            found = typing.get_type_hints(cls)
        except Exception:  # unresolvable annotations: values must then be plain JSON
            found = {}
        _HINTS[cls] = found
    return found


def encode_request(
    store: EventStore, handle: Handle, fresh: bool, trace: Mapping[str, str]
) -> bytes:
    """The bytes of a command handed to the cluster route; `fresh` if it cannot have been
    handled before (a first attempt, under an id the runtime made); `trace`, the context
    it was sent from as text."""
    command = handle.command
    cls = type(command)
    values = {name: getattr(command, name) for name, _ in _fields(cls)}
    data = store.encode_state(values, _hints(cls), f"command {cls.__name__}")
    principal = handle.principal
    return orjson.dumps(
        {
            "type": qualified_name(cls),
            "data": orjson.Fragment(data),
            "id": handle.command_id,
            "corr": handle.correlation_id,
            "principal": None
            if principal is None
            else {"id": principal.id, "roles": sorted(principal.roles)},
            "audit": handle.audit,
            "fresh": fresh,
            "cause": None if handle.cause is None else [handle.cause.event_id, handle.cause.by],
            "trace": trace or None,
        }
    )


def decode_request(
    store: EventStore, data: bytes, command_class: Callable[[str], type | None]
) -> Request:
    """A request's command and ids; `ReactorError` naming what is wrong."""
    raw = orjson.loads(data)
    cls = command_class(raw["type"])
    if cls is None:
        raise ReactorError(
            f"command {raw['type']} is handled by no aggregate registered on this node: "
            "register the same aggregates on every node"
        )
    values = store.decode_state(orjson.dumps(raw["data"]), _hints(cls))
    command = cls(**{alias: values[name] for name, alias in _fields(cls) if name in values})
    who = raw.get("principal")
    return Request(
        command=command,
        command_id=raw["id"],
        correlation_id=raw.get("corr"),
        principal=None if who is None else Principal(who["id"], who["roles"]),
        audit=bool(raw.get("audit")),
        fresh=bool(raw.get("fresh")),
        cause=None if raw.get("cause") is None else Cause(*raw["cause"]),
        trace=raw.get("trace") or {},
    )


MOVED = orjson.dumps({"moved": True})


def encode_result(store: EventStore, result: CommandResult) -> bytes:
    events = []
    for env in result.events:
        type_name, version, data = store.encode(env.event)
        events.append(
            [
                env.event_id,
                env.seq,
                env.position,
                type_name,
                version,
                orjson.Fragment(data),
                env.timestamp.timestamp(),
                env.correlation_id,
                env.causation_id,
                dict(env.metadata),
            ]
        )
    return orjson.dumps(
        {
            "ok": {
                "stream_id": result.stream_id,
                "version": result.version,
                "position": result.position,
                "events": events,
            }
        }
    )


def encode_error(error: BaseException) -> bytes:
    cls = type(error)
    fields = _STRUCTURED.get(cls, ())
    return orjson.dumps(
        {
            "error": {
                "type": f"{cls.__module__}.{cls.__qualname__}",
                "message": str(error),
                "fields": {f: getattr(error, f, None) for f in fields},
            }
        }
    )


def decode_answer(store: EventStore, data: bytes) -> CommandResult | BaseException | None:
    """The result or the error of an answer; None for "moved" (ask again)."""
    raw = orjson.loads(data)
    if "moved" in raw:
        return None
    if "error" in raw:
        return _error(raw["error"])
    ok = raw["ok"]
    envelopes = []
    for event_id, seq, position, type_name, version, event_data, ts, corr, cause, meta in ok[
        "events"
    ]:
        event, version = store.decode(type_name, version, orjson.dumps(event_data))
        envelopes.append(
            Envelope(
                event_id,
                ok["stream_id"],
                seq,
                position,
                type_name,
                version,
                event,
                datetime.fromtimestamp(ts, UTC),
                corr,
                cause,
                meta,
            )
        )
    return CommandResult(
        stream_id=ok["stream_id"],
        version=ok["version"],
        position=ok["position"],
        events=tuple(envelopes),
    )


def _error(raw: dict[str, Any]) -> BaseException:
    """The error an answer names: of its own class if this process has that class loaded
    (nothing is imported on a peer's word), else a `RemoteError`."""
    type_name, message = raw["type"], raw["message"]
    cls = _loaded_class(type_name)
    if cls is None:
        return RemoteError(type_name, message)
    fields = raw.get("fields") or {}
    if cls in _STRUCTURED and all(fields.get(f) is not None for f in _STRUCTURED[cls]):
        return cls(*(fields[f] for f in _STRUCTURED[cls]))
    error = cls.__new__(cls)
    error.args = (message,)
    return error


def _loaded_class(type_name: str) -> type[BaseException] | None:
    module_name, _, rest = type_name.rpartition(".")
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            found: Any = module
            for part in rest.split("."):
                found = getattr(found, part, None)
            if isinstance(found, type) and issubclass(found, BaseException):
                return found
            return None
        module_name, _, head = module_name.rpartition(".")
        rest = f"{head}.{rest}"
    return None
