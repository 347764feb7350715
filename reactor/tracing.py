"""OpenTelemetry spans for the command path: a command, the journal's commit, a consumer
handling an event; the trace context travels in event metadata (`traceparent`), so what
an event causes (a saga's command) is a child of the command that stored it.

With no tracer provider configured (or without the `otel` extra) `configure()` gives
`NO_TRACING` (of `reactor.actors.instruments`), whose methods do nothing and import nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from reactor.actors.instruments import NO_TRACING, NoTracing
from reactor.events import Envelope
from reactor.metrics import outcome_of

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider

_NULL = nullcontext()
__all__ = ["NO_TRACING", "NoTracing", "Tracing", "configure"]


class Tracing:
    """Spans on `provider`'s tracer "reactor". Every method is safe from any thread; a span
    made current by `activate` or `consume` is current on the calling thread only, for the
    `with` block."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace

        self._tracer = provider.get_tracer("reactor")
        self._current, self._in_context = context.get_current, trace.set_span_in_context
        self._use_span, self._link = trace.use_span, trace.Link
        self._inject, self._extract = propagate.inject, propagate.extract
        self._error = trace.Status(trace.StatusCode.ERROR)
        self._consumer_kind = trace.SpanKind.CONSUMER
        self._span_in = trace.get_current_span  # (of a context)

    def capture(self) -> Context:
        """The caller's current context (its active span, if any): where a command is sent
        from. Carry it to the actor that handles the command (`start_command(parent=)`)."""
        return self._current()

    def start_command(
        self,
        *,
        aggregate: str,
        command: str,
        stream_id: str,
        command_id: str,
        parent: Context | None,
    ) -> Span:
        """Start the span of handling one command, a child of `parent` (what `capture()`
        returned where it was sent); end it with `end_command`. A trace sampled out stays
        out (as OpenTelemetry's default, parent-based, sampler decides), at no cost: the
        parent's span is given back, and its context travels on."""
        if parent is not None:
            span = self._span_in(parent)
            if _sampled_out(span):
                return span
        return self._tracer.start_span(
            f"command {command}",
            context=parent,
            attributes={
                "reactor.aggregate": aggregate,
                "reactor.command": command,
                "reactor.stream": stream_id,
                "reactor.command_id": command_id,
            },
        )

    def activate(self, span: Span | None) -> AbstractContextManager[Any]:
        """Make `span` current for a `with` block (the handler's own spans become its
        children, and `capture()` inside returns it)."""
        if span is None:
            return _NULL
        # A raise (Rejected too) is left to `end_command`, which knows what it means.
        return self._use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def carrier(self, span: Span | None = None) -> Mapping[str, str]:
        """The context of `span` (default: the caller's current one) as text: W3C
        `traceparent` (and whatever else the configured propagator writes), to store in the
        metadata of the events a command appends, or of an event `publish`ed."""
        out: dict[str, str] = {}
        self._inject(out, context=self._in_context(span) if span is not None else None)
        return out

    def carrier_of(self, context: Context) -> Mapping[str, str]:
        """`carrier` of a context `capture()` returned (a command going to another node)."""
        out: dict[str, str] = {}
        self._inject(out, context=context)
        return out

    def context_of(self, carrier: Mapping[str, str]) -> Context:
        """The context a `carrier` holds (a command come from another node): its parent."""
        return self._extract(carrier)

    def end_command(self, span: Span | None, error: BaseException | None = None) -> None:
        """End a command's span with its outcome (`outcome_of(error)`); a failure or a
        timeout records the exception and marks the span as an error."""
        if span is None:
            return
        outcome = outcome_of(error)
        span.set_attribute("reactor.outcome", outcome)
        if error is not None:
            if outcome == "rejected":
                span.add_event("rejected", {"reason": str(error)})
            else:
                span.record_exception(error)
                span.set_status(self._error)
        span.end()

    def commit(
        self, *, appends: int, events: int, parents: Sequence[Span | None] = ()
    ) -> AbstractContextManager[Any]:
        """The span of one journal commit, current for the `with` block: a child of the first
        command span in `parents` (the commands of the group), linked to the others. None
        of them recorded (checkpoints only, or traces sampled out): no span."""
        spans = [s for s in parents if s is not None and s.is_recording()]
        if not spans:
            return _NULL
        return self._tracer.start_as_current_span(
            "journal commit",
            context=self._in_context(spans[0]),
            links=[self._link(s.get_span_context()) for s in spans[1:]],
            attributes={"reactor.appends": appends, "reactor.events": events},
        )

    def consume(self, consumer: str, envelope: Envelope) -> AbstractContextManager[Span]:
        """The span of `consumer` handling one event, current for the `with` block: a child
        of the span whose context the event's metadata carries (its command's). A raise
        inside is recorded on it and marks it as an error. Of a trace sampled out: no span,
        its context current (what the consumer sends stays out too)."""
        cause = self._extract(envelope.metadata)
        if _sampled_out(caused_by := self._span_in(cause)):
            return self._use_span(caused_by, end_on_exit=False)
        return self._tracer.start_as_current_span(
            f"consume {envelope.type}",
            context=cause,
            kind=self._consumer_kind,
            attributes={
                "reactor.consumer": consumer,
                "reactor.event_type": envelope.type,
                "reactor.stream": envelope.stream_id,
                "reactor.position": envelope.position,
                "reactor.event_id": envelope.event_id,
            },
        )


def _sampled_out(span: Span) -> bool:
    """Whether `span` belongs to a trace the sampler left out (not merely no span)."""
    context = span.get_span_context()
    return context.is_valid and not context.trace_flags.sampled


def configure(provider: TracerProvider | None = None) -> Tracing | NoTracing:
    """The tracing of a runtime: spans on `provider`, or on the global tracer provider if
    the application set one (before the runtime starts, as OpenTelemetry recommends), or
    `NO_TRACING`. Without a provider it imports nothing: if `opentelemetry.trace` was never
    imported, no provider can have been set."""
    if provider is None:
        trace = sys.modules.get("opentelemetry.trace")
        if trace is None:
            return NO_TRACING
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return NO_TRACING
    return Tracing(provider)
