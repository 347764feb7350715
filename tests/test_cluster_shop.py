"""The shop demo on a two-node cluster: its saga runs on one node and sends commands to
aggregates on both; orders placed on either node all complete, each step stored once, and
each order's lineage holds the saga's commands, wherever they were handled; a command
handled on another node continues its sender's trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demos.shop.inventory import AddStock, Inventory
from demos.shop.orders import Order
from demos.shop.payments import Payment
from demos.shop.shipping import Shipment
from demos.shop.views import OrderBoard
from tests.bank import Account, Deposit, Open
from tests.cluster_support import key_on, needs_servers, node, settled
from tests.pg import fresh_schema, url
from tests.test_sagas import QuickCheckout, events_of, finished, order
from tests.tracing_support import exporter, provider

pytestmark = needs_servers
__all__ = ["exporter", "provider"]  # the fixtures


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


def test_orders_placed_on_either_node_complete(journal: str) -> None:
    with node(journal, "a") as a, node(journal, "b") as b:
        settled(a, {"a", "b"})
        for rt in (a, b):
            rt.register(Order, Inventory, Payment, Shipment, QuickCheckout, OrderBoard)
        a.send(AddStock("sku-1", 20))
        orders = [f"o{n}" for n in range(8)]
        for n in range(8):
            (a if n % 2 else b).send(order(n))
        assert finished(a, *orders, timeout=30) == dict.fromkeys(orders, "confirmed")
        for o in orders:
            assert events_of(a, f"Payment-{o}") == ["PaymentRequested", "PaymentAuthorized"]
            assert events_of(b, f"Shipment-{o}") == ["ShipmentBooked"]
        placed = {
            e.metadata["cluster"]["node"] for o in orders for e in a.read_stream(f"Order-{o}")
        }
        assert placed == {"a", "b"}
        for o in orders:  # a saga command handled on the other node keeps its cause
            tree = a.trace(a.read_stream(f"Order-{o}")[0].event_id)
            sent = {
                c.name
                for saga in tree.walk()
                if saga.kind == "saga"
                for c in saga.children
                if c.kind == "command" and c.children  # with its events under it
            }
            assert {"ReserveStock", "ChargeCard", "ShipOrder"} <= sent, (o, sent)


def test_a_command_handled_on_another_node_continues_the_senders_trace(
    journal: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    traced = {"tracer_provider": provider}
    with node(journal, "a", **traced) as a, node(journal, "b", **traced) as b:
        shards = settled(a, {"a", "b"})
        for rt in (a, b):
            rt.register(Account)
        key = next(key_on(shards, "b"))
        b.send(Open(key))
        with provider.get_tracer("test").start_as_current_span("request") as request:
            a.send(Deposit(key, 5))
        deposited = a.read_stream(f"Account-{key}")[-1]
    assert deposited.metadata is not None and deposited.metadata["cluster"]["node"] == "b"
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "command Deposit"]
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
    assert span.context.trace_id == request.get_span_context().trace_id
