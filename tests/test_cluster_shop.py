"""The shop demo on a two-node cluster: its saga runs on one node and sends commands to
aggregates on both; orders placed on either node all complete, each step stored once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demos.shop.inventory import AddStock, Inventory
from demos.shop.orders import Order
from demos.shop.payments import Payment
from demos.shop.shipping import Shipment
from demos.shop.views import OrderBoard
from tests.cluster_support import needs_servers, node, settled
from tests.pg import fresh_schema, url
from tests.test_sagas import QuickCheckout, events_of, finished, order

pytestmark = needs_servers


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
