"""What the actors report as they work, without knowing who listens: `Instruments` (the
runtime's `reactor.metrics.Metrics`) and `Spans` (its `reactor.tracing.Tracing`), passed
down explicitly; `NO_METRICS` and `NO_TRACING` for actors built outside a runtime;
`spanned`, a consumer's handling of each event in a span.

The actors layer sits below metrics and traces, so it names them by what it calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import MappingProxyType
from typing import Any, Protocol

from reactor.events import Envelope


class Instruments(Protocol):
    """The recording calls of `reactor.metrics.Metrics` the actors make (cheap, any thread)."""

    def record_answer(
        self, type_name: str, error: BaseException | None, seconds: float, abandoned: bool = False
    ) -> None: ...

    def record_commit(self, appends: int, events: int, seconds: float) -> None: ...

    def record_retry(self, handler: str) -> None: ...

    def record_dead_letter(self, handler: str) -> None: ...

    def record_restart(self, supervisor: str) -> None: ...

    def record_snapshot(self, aggregate: str) -> None: ...


class NoMetrics:
    """Instruments that record nothing (an actor started by a test, outside a runtime)."""

    def record_answer(
        self, type_name: str, error: BaseException | None, seconds: float, abandoned: bool = False
    ) -> None:
        pass

    def record_commit(self, appends: int, events: int, seconds: float) -> None:
        pass

    def record_retry(self, handler: str) -> None:
        pass

    def record_dead_letter(self, handler: str) -> None:
        pass

    def record_restart(self, supervisor: str) -> None:
        pass

    def record_snapshot(self, aggregate: str) -> None:
        pass


NO_METRICS = NoMetrics()
_NULL = nullcontext()
_EMPTY: MappingProxyType[str, str] = MappingProxyType({})


class Spans(Protocol):
    """The calls of `reactor.tracing.Tracing` the actors make; `enabled` False: skip them.
    Contexts and spans are OpenTelemetry's, opaque here."""

    enabled: bool

    def capture(self) -> Any: ...

    def start_command(
        self, *, aggregate: str, command: str, stream_id: str, command_id: str, parent: Any
    ) -> Any: ...

    def activate(self, span: Any) -> AbstractContextManager[Any]: ...

    def carrier(self, span: Any = None) -> Any: ...

    def end_command(self, span: Any, error: BaseException | None = None) -> None: ...

    def commit(
        self, *, appends: int, events: int, parents: Sequence[Any] = ()
    ) -> AbstractContextManager[Any]: ...

    def consume(self, consumer: str, envelope: Envelope) -> AbstractContextManager[Any]: ...


class NoTracing:
    """Tracing switched off: the methods of `reactor.tracing.Tracing`, each returning at
    once (a shared null context manager, None, an empty mapping), so the runtime calls them
    unconditionally (or checks `enabled` once to skip a group of calls)."""

    enabled = False

    def capture(self) -> Any:
        return None

    def start_command(
        self, *, aggregate: str, command: str, stream_id: str, command_id: str, parent: Any
    ) -> Any:
        return None

    def activate(self, span: Any) -> AbstractContextManager[Any]:
        return _NULL

    def carrier(self, span: Any = None) -> Any:
        return _EMPTY

    def carrier_of(self, context: Any) -> Any:
        return _EMPTY

    def context_of(self, carrier: Any) -> Any:
        return None

    def end_command(self, span: Any, error: BaseException | None = None) -> None:
        return None

    def commit(
        self, *, appends: int, events: int, parents: Sequence[Any] = ()
    ) -> AbstractContextManager[Any]:
        return _NULL

    def consume(self, consumer: str, envelope: Envelope) -> AbstractContextManager[Any]:
        return _NULL


NO_TRACING = NoTracing()


Run = Callable[[Envelope], None]


def spanned(tracing: Spans, consumer: str, run: Run) -> Run:
    """`run(envelope)` inside the span of `consumer` handling that event (current while it
    runs: what it sends is its child); `run` itself when tracing is off (no cost)."""
    if not tracing.enabled:
        return run

    def run_spanned(envelope: Envelope) -> None:
        with tracing.consume(consumer, envelope):
            run(envelope)

    return run_spanned
