"""Tracing: spans for a command, a commit and a consumer, parented through the trace
context stored in event metadata (a saga's command is a child of the event that caused it);
with no provider, nothing is imported and every call is a no-op."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reactor.errors import Rejected
from reactor.events import Envelope
from reactor.tracing import NO_TRACING, NoTracing, Tracing, configure
from tests.tracing_support import exporter, provider

__all__ = ["exporter", "provider"]  # the fixtures


@pytest.fixture
def tracing(provider: TracerProvider) -> Tracing:
    traced = configure(provider)
    assert isinstance(traced, Tracing)
    return traced


def envelope(metadata: dict[str, str], position: int = 1) -> Envelope:
    return Envelope(
        event_id=f"e{position}",
        stream_id="Order-1",
        seq=position,
        position=position,
        type="shop.OrderPlaced",
        version=1,
        event=None,
        timestamp=datetime.now(UTC),
        correlation_id="corr-1",
        causation_id="cmd-1",
        metadata=metadata,
    )


def spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def command(tracing: Tracing, name: str, parent: Any) -> Any:
    return tracing.start_command(
        aggregate="Order", command=name, stream_id="Order-1", command_id=name, parent=parent
    )


def test_a_saga_command_is_a_child_of_the_event_that_caused_it(
    tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """request -> command -> (event metadata) -> consume -> the saga's command: one trace,
    each span the child of the one before."""
    with provider.get_tracer("app").start_as_current_span("request"):
        parent = tracing.capture()
    span = command(tracing, "PlaceOrder", parent)
    metadata = dict(tracing.carrier(span))
    tracing.end_command(span)
    assert set(metadata) >= {"traceparent"}
    with tracing.consume("Checkout", envelope(metadata)):
        sent_from = tracing.capture()  # the saga's ctx.send happens here
    tracing.end_command(command(tracing, "ReserveStock", sent_from))
    found = spans(exporter)
    chain = ["request", "command PlaceOrder", "consume shop.OrderPlaced", "command ReserveStock"]
    assert len({found[n].context.trace_id for n in chain}) == 1
    for parent_name, child_name in itertools.pairwise(chain):
        assert found[child_name].parent is not None
        assert found[child_name].parent.span_id == found[parent_name].context.span_id
    consumed = found["consume shop.OrderPlaced"]
    assert consumed.kind is trace.SpanKind.CONSUMER
    assert consumed.attributes is not None and consumed.attributes["reactor.consumer"] == "Checkout"
    assert consumed.attributes["reactor.position"] == 1


def test_command_spans_carry_their_outcome(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """ok: no error; rejected: an event with the reason, not an error; failed: the
    exception recorded and the span marked as an error."""
    for name, error in (("A", None), ("B", Rejected("no stock")), ("C", ValueError("bug"))):
        tracing.end_command(command(tracing, name, None), error)
    found = spans(exporter)
    ok, rejected, failed = found["command A"], found["command B"], found["command C"]
    assert ok.attributes is not None and ok.attributes["reactor.outcome"] == "ok"
    assert ok.attributes["reactor.stream"] == "Order-1" and ok.parent is None
    assert ok.status.status_code is StatusCode.UNSET
    assert rejected.attributes is not None and rejected.attributes["reactor.outcome"] == "rejected"
    assert rejected.status.status_code is StatusCode.UNSET
    assert [e.name for e in rejected.events] == ["rejected"]
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_a_handler_span_inside_activate_is_a_child_of_the_command(
    tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """What the handler does while its command's span is active nests under it."""
    span = command(tracing, "PlaceOrder", None)
    with tracing.activate(span), provider.get_tracer("app").start_as_current_span("charge card"):
        pass
    tracing.end_command(span)
    found = spans(exporter)
    inner = found["charge card"].parent
    assert inner is not None and inner.span_id == found["command PlaceOrder"].context.span_id


def test_a_commit_is_a_child_of_its_first_command_and_links_the_others(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """Group commit: one span, parented by the first command, linked to the rest; a
    commit of checkpoints only has none."""
    first, second = command(tracing, "A", None), command(tracing, "B", None)
    with tracing.commit(appends=2, events=3, parents=[None, first, second]):
        pass
    with tracing.commit(appends=1, events=0, parents=[None]):
        pass
    for span in (first, second):
        tracing.end_command(span)
    commits = [s for s in exporter.get_finished_spans() if s.name == "journal commit"]
    assert len(commits) == 1
    commit = commits[0]
    assert commit.parent is not None and commit.parent.span_id == first.get_span_context().span_id
    assert [link.context.span_id for link in commit.links] == [second.get_span_context().span_id]
    assert commit.attributes == {"reactor.appends": 2, "reactor.events": 3}


def test_a_consumer_failure_is_recorded_on_its_span(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """An event without trace context starts a trace of its own; a raise marks it."""
    with pytest.raises(ValueError), tracing.consume("Balances", envelope({})):
        raise ValueError("projection bug")
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and span.status.status_code is StatusCode.ERROR


def test_carrier_without_a_span_takes_the_current_context(
    tracing: Tracing, provider: TracerProvider
) -> None:
    """`carrier()` outside a command (rt.publish) stores the caller's active span."""
    assert tracing.carrier() == {}
    with provider.get_tracer("app").start_as_current_span("request") as span:
        carried = tracing.carrier()
    assert format(span.get_span_context().span_id, "016x") in carried["traceparent"]


def test_disabled_tracing_does_nothing() -> None:
    """Every method of NO_TRACING returns at once, usable as the enabled ones are."""
    t = NO_TRACING
    assert not t.enabled and t.capture() is None
    span = t.start_command(aggregate="A", command="C", stream_id="A-1", command_id="c", parent=None)
    assert span is None and t.carrier(span) == {} and t.end_command(span, ValueError()) is None
    with t.activate(span), t.commit(appends=1, events=1), t.consume("P", envelope({})):
        pass


def test_without_a_provider_configure_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global provider unset (the API's proxy) or OpenTelemetry absent: NO_TRACING."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert configure() is NO_TRACING
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    assert configure() is NO_TRACING


def test_a_global_provider_the_application_set_is_used(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """configure() with no argument picks up the provider the application configured."""
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    traced = configure()
    assert isinstance(traced, Tracing)
    traced.end_command(command(traced, "A", None))
    assert [s.name for s in exporter.get_finished_spans()] == ["command A"]


def test_nothing_of_opentelemetry_is_imported_unless_the_application_did() -> None:
    """In a fresh interpreter, importing reactor and configuring tracing imports no
    OpenTelemetry module; with the package hidden, it still works."""
    code = (
        "import sys\n"
        "hide = len(sys.argv) > 1\n"
        "if hide:\n"
        "    sys.modules['opentelemetry'] = None\n"
        "import reactor, reactor.tracing, reactor.metrics\n"
        "assert reactor.tracing.configure() is reactor.tracing.NO_TRACING\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry') and sys.modules[m]))"
    )
    for argv in ([], ["hide"]):
        out = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]"


def test_the_disabled_class_has_every_method_of_the_enabled_one() -> None:
    """The runtime calls either without checking which it holds."""
    public = {n for n in vars(Tracing) if not n.startswith("_")}
    assert public <= {n for n in dir(NoTracing) if not n.startswith("_")}
