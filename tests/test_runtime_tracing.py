"""Traces of a running runtime (an SDK provider with an in-memory exporter): a command's
span with its outcome, its commit as a child, each consumer's handling of its events as a
child through the event metadata, and a saga's command as a child of the event that
caused it; without a provider no span is made and no metadata is added."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reactor import Aggregate, Envelope, Rejected, Runtime, Saga, command, event, handles, on
from tests.bank import Account, Balances, Deposit, Explode
from tests.helpers import wait_for
from tests.test_bus_support import Ask, answerer, asker, needs_nats, services
from tests.tracing_support import exporter, provider

__all__ = ["exporter", "provider", "services"]  # the fixtures


@event("ttrace.OrderPlaced")
@attrs.frozen
class OrderPlaced:
    order_id: str


@event("ttrace.StockReserved")
@attrs.frozen
class StockReserved:
    order_id: str


@command
@attrs.frozen
class PlaceOrder:
    order_id: str


@command
@attrs.frozen
class ReserveStock:
    order_id: str


class Order(Aggregate, key="order_id"):
    @handles(PlaceOrder)
    def place(self, cmd: PlaceOrder) -> OrderPlaced:
        return OrderPlaced(cmd.order_id)


class Stock(Aggregate, key="order_id"):
    @handles(ReserveStock)
    def reserve(self, cmd: ReserveStock) -> StockReserved:
        return StockReserved(cmd.order_id)


class Reserving(Saga, key="order_id"):
    @on(OrderPlaced, start=True)
    def placed(self, e: OrderPlaced, ctx: Any) -> None:
        ctx.send(ReserveStock(e.order_id))
        ctx.done()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def test_a_saga_command_is_a_child_of_the_event_that_caused_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """request -> command PlaceOrder -> (commit) and consume OrderPlaced by the saga ->
    command ReserveStock -> consume StockReserved: one trace, each the child of its cause."""
    seen: list[Envelope] = []
    with Runtime("memory://", tracer_provider=provider) as rt:
        rt.register(Order, Stock, Reserving)
        rt.subscribe(lambda e, env: seen.append(env), types=[StockReserved], name="audit")
        with provider.get_tracer("app").start_as_current_span("request") as request:
            placed = rt.send(PlaceOrder("o1"))
        assert wait_for(lambda: len(seen) == 1)
        assert "traceparent" in placed.events[0].metadata
    spans = by_name(exporter)
    (place,) = spans["command PlaceOrder"]
    (reserve,) = spans["command ReserveStock"]
    (saga,) = spans["consume ttrace.OrderPlaced"]
    (audit,) = spans["consume ttrace.StockReserved"]
    assert parent_of(place) == request.get_span_context().span_id
    assert parent_of(saga) == place.context.span_id
    assert parent_of(reserve) == saga.context.span_id
    assert parent_of(audit) == reserve.context.span_id
    commits = {parent_of(c) for c in spans["journal commit"]}
    assert {place.context.span_id, reserve.context.span_id} <= commits
    trace_ids = {s.context.trace_id for s in (place, reserve, saga, audit)}
    assert trace_ids == {request.get_span_context().trace_id}
    assert place.attributes is not None
    assert place.attributes["reactor.aggregate"] == "Order"
    assert place.attributes["reactor.command"] == "PlaceOrder"
    assert place.attributes["reactor.stream"] == "Order-o1"
    assert place.attributes["reactor.outcome"] == "ok"
    assert saga.attributes is not None and saga.attributes["reactor.consumer"] == "Reserving"


def test_command_outcomes_on_their_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A rejected command is not an error; a failing handler is, with the exception."""
    with Runtime("memory://", tracer_provider=provider).register(Account) as rt:
        with pytest.raises(Rejected):
            rt.send(Deposit("a1", 0))
        with pytest.raises(ZeroDivisionError):
            rt.send(Explode("a1"))
    spans = by_name(exporter)
    (rejected,) = spans["command Deposit"]
    (failed,) = spans["command Explode"]
    assert rejected.attributes is not None and rejected.attributes["reactor.outcome"] == "rejected"
    assert rejected.status.status_code is StatusCode.UNSET
    assert failed.attributes is not None and failed.attributes["reactor.outcome"] == "failed"
    assert failed.status.status_code is StatusCode.ERROR
    assert "journal commit" not in spans  # nothing was stored


def test_a_published_event_carries_the_callers_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """rt.publish inside the application's span: its consumers' spans are children."""
    with Runtime("memory://", tracer_provider=provider).register(Balances) as rt:
        from tests.bank import Deposited

        with provider.get_tracer("app").start_as_current_span("import") as outer:
            position = rt.publish(Deposited("a1", 5), stream="Account-a1").position
        assert rt.query(Balances, after=position).balance("a1") == 5
    (consumed,) = by_name(exporter)["consume tbank.Deposited"]
    assert parent_of(consumed) == outer.get_span_context().span_id


def test_without_a_provider_no_span_and_no_metadata(exporter: InMemorySpanExporter) -> None:
    """No provider given or set globally: events carry no trace context."""
    with Runtime("memory://").register(Account) as rt:
        result = rt.send(Deposit("a1", 1))
    assert "traceparent" not in result.events[0].metadata
    assert exporter.get_finished_spans() == ()


def test_the_trace_context_crosses_the_bus_in_headers() -> None:
    """An exported event's traceparent and tracestate travel as W3C headers and land in
    the imported event's metadata; an untraced event gets none."""
    from reactor.bus.wire import Incoming, headers
    from reactor.store.base import StoredEvent

    traced = b'{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
    stored = StoredEvent("e1", "S-1", 1, 1, "t.Asked", 1, b"{}", 0.0, traced, None, None)
    found = headers("orders", stored)
    assert found["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert Incoming.of(found, b"{}").metadata()["traceparent"] == found["traceparent"]
    untraced = headers("orders", stored._replace(metadata=None))
    assert "traceparent" not in untraced
    assert "traceparent" not in Incoming.of(untraced, b"{}").metadata()


@needs_nats
def test_an_importing_service_continues_the_exporters_trace(
    tmp_path: Path,
    services: Callable[[str], str],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    """Over NATS: B's handling of A's integration event is a child of A's command, and
    A's handling of B's answer a child of B's command (one trace, both ways)."""
    a, b = services("asker"), services("answerer")
    with (
        asker(f"sqlite:///{tmp_path}/a.db", a, tracer_provider=provider) as rt_a,
        answerer(f"sqlite:///{tmp_path}/b.db", b, tracer_provider=provider),
    ):
        rt_a.send(Ask(1))
        assert wait_for(lambda: "command Answer" in by_name(exporter), 30)
    spans = by_name(exporter)
    (ask,) = spans["command Ask"]
    consumed = spans["consume bustest.Asked"]
    assert consumed and {parent_of(s) for s in consumed} == {ask.context.span_id}
    (answer,) = spans["command Answer"]
    assert answer.context.trace_id == ask.context.trace_id


def test_a_trace_sampled_out_records_nothing_and_stays_out(exporter: InMemorySpanExporter) -> None:
    """A sampler that keeps no trace: no span anywhere, yet the events carry the (unsampled)
    trace context, and the saga's command stays in the same trace."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[Envelope] = []
    try:
        with Runtime("memory://", tracer_provider=provider) as rt:
            rt.register(Order, Stock, Reserving)
            rt.subscribe(lambda e, env: seen.append(env), types=[StockReserved], name="audit")
            placed = rt.send(PlaceOrder("o1"))
            assert wait_for(lambda: len(seen) == 1)
    finally:
        provider.shutdown()
    assert exporter.get_finished_spans() == ()
    first, last = (env.metadata["traceparent"].split("-") for env in (placed.events[0], seen[0]))
    assert int(first[3], 16) & 1 == 0 and int(last[3], 16) & 1 == 0  # flags: not sampled
    assert first[1] == last[1]  # one trace id
