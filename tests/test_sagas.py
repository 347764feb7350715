"""Sagas on the shop domain: the success path, each compensation, deadlines (firing,
cancelled by success, falling due while stopped), restarts between any two steps,
concurrent orders over shared stock, and exactly-once effects under redelivery."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from demos.shop.checkout import Checkout
from demos.shop.inventory import AddStock, Inventory
from demos.shop.orders import Order, OrderConfirmed, PlaceOrder
from demos.shop.payments import Payment
from demos.shop.shipping import Shipment
from demos.shop.views import OrderBoard, StockLevels
from reactor import Runtime, on
from reactor.store import Checkpoint, open_storage
from tests.helpers import wait_for


class QuickCheckout(Checkout, name="Checkout"):
    payment_timeout: ClassVar[float] = 0.3


def shop(url: str = "memory://", saga: type = QuickCheckout) -> Runtime:
    rt = Runtime(url)
    rt.register(Order, Inventory, Payment, Shipment, saga, OrderBoard, StockLevels)
    return rt.start()


def finished(rt: Runtime, *orders: str, timeout: float = 10.0) -> dict[str, str]:
    """Wait until every order is confirmed or cancelled; their statuses."""

    def done() -> bool:
        status = rt.query(OrderBoard).status()
        return all(status.get(o) in ("confirmed", "cancelled") for o in orders)

    assert wait_for(done, timeout), rt.query(OrderBoard).status()
    status: dict[str, str] = rt.query(OrderBoard).status()
    return {o: status[o] for o in orders}


def order(n: int, card: str = "visa", qty: int = 1, sku: str = "sku-1") -> PlaceOrder:
    return PlaceOrder(f"o{n}", "ann", sku, qty, 1000, card)


def events_of(rt: Runtime, stream: str) -> list[str]:
    return [type(e.event).__name__ for e in rt.read_stream(stream)]


def test_the_success_path() -> None:
    rt = shop()
    try:
        rt.send(AddStock("sku-1", 5))
        rt.send(order(1))
        assert finished(rt, "o1") == {"o1": "confirmed"}
        assert events_of(rt, "Payment-o1") == ["PaymentRequested", "PaymentAuthorized"]
        assert events_of(rt, "Shipment-o1") == ["ShipmentBooked"]
        assert wait_for(lambda: rt.query(StockLevels).levels() == {"sku-1": 4})
    finally:
        rt.stop()


def test_out_of_stock_cancels_the_order() -> None:
    rt = shop()
    try:
        rt.send(AddStock("sku-1", 1))
        rt.send(order(1, qty=3))
        assert finished(rt, "o1") == {"o1": "cancelled"}
        assert "out of stock (1 left, 3 wanted)" in rt.query(OrderBoard).cancellations()["o1"]
        assert events_of(rt, "Payment-o1") == []  # never charged
    finally:
        rt.stop()


def test_a_declined_card_releases_the_stock() -> None:
    rt = shop()
    try:
        rt.send(AddStock("sku-1", 2))
        rt.send(order(1, card="declined"))
        assert finished(rt, "o1") == {"o1": "cancelled"}
        # The saga sends ReleaseStock and CancelOrder together: either may land first.
        released = ["StockAdded", "StockReserved", "StockReleased"]
        assert wait_for(lambda: events_of(rt, "Inventory-sku-1") == released)
        assert wait_for(lambda: rt.query(StockLevels).levels() == {"sku-1": 2})
    finally:
        rt.stop()


def test_a_silent_gateway_trips_the_deadline() -> None:
    rt = shop()
    try:
        rt.send(AddStock("sku-1", 2))
        rt.send(order(1, card="silent"))
        assert finished(rt, "o1") == {"o1": "cancelled"}
        assert rt.query(OrderBoard).cancellations()["o1"] == "the payment gateway did not answer"
        voided = ["PaymentRequested", "PaymentVoided"]  # sent with CancelOrder: may land later
        assert wait_for(lambda: events_of(rt, "Payment-o1") == voided)
        assert wait_for(lambda: events_of(rt, "Inventory-sku-1")[-1] == "StockReleased")
    finally:
        rt.stop()


class LingeringCheckout(QuickCheckout, name="Checkout"):
    """Keeps its instance after confirmation, so only ctx.cancel can stop the deadline."""

    @on(OrderConfirmed)
    def confirmed(self, e: OrderConfirmed, ctx: Any) -> None:
        self.steps.append("confirmed")


def test_success_cancels_the_deadline() -> None:
    rt = shop(saga=LingeringCheckout)
    try:
        rt.send(AddStock("sku-1", 2))
        rt.send(order(1))
        assert finished(rt, "o1") == {"o1": "confirmed"}
        due = time.time() + LingeringCheckout.payment_timeout
        assert wait_for(lambda: time.time() > due + 0.2)  # past when it would have fired
        last = rt.store.last_position()
        rt.query(OrderBoard, after=last).status()
        # A deadline that fired would have compensated: released the stock, voided.
        assert events_of(rt, "Inventory-sku-1") == ["StockAdded", "StockReserved"]
        assert events_of(rt, "Payment-o1") == ["PaymentRequested", "PaymentAuthorized"]
    finally:
        rt.stop()


def test_a_deadline_that_fell_due_while_stopped_fires_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    rt = shop(url)
    rt.send(AddStock("sku-1", 2))
    rt.send(order(1, card="silent"))
    assert wait_for(lambda: events_of(rt, "Payment-o1") == ["PaymentRequested"])
    stopped_at = time.time()
    rt.stop()
    assert wait_for(lambda: time.time() > stopped_at + QuickCheckout.payment_timeout + 0.1)
    rt = shop(url)
    try:
        assert finished(rt, "o1") == {"o1": "cancelled"}
        voided = ["PaymentRequested", "PaymentVoided"]  # sent with CancelOrder: may land later
        assert wait_for(lambda: events_of(rt, "Payment-o1") == voided)
    finally:
        rt.stop()


def test_concurrent_sagas_over_shared_stock_never_oversell() -> None:
    rt = shop()
    try:
        rt.send(AddStock("sku-1", 10))
        futures = [rt.submit(order(n)) for n in range(30)]
        for f in futures:
            f.get(10)
        status = finished(rt, *(f"o{n}" for n in range(30)), timeout=30)
        assert list(status.values()).count("confirmed") == 10
        assert wait_for(lambda: rt.query(StockLevels).levels() == {"sku-1": 0})
        assert rt.query(StockLevels).never_below_zero()
    finally:
        rt.stop()


def test_redelivering_everything_applies_no_command_twice(tmp_path: Path) -> None:
    """The saga's checkpoint is thrown away: every event is redelivered and every handler
    runs again, but the derived command ids make each command a no-op the second time."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    rt = shop(url)
    rt.send(AddStock("sku-1", 3))
    for n, card in enumerate(["visa", "declined", "visa"]):
        rt.send(order(n, card=card))
    finished(rt, "o0", "o1", "o2")
    rt.stop()  # drains: every command the saga sent is handled
    storage = open_storage(url)
    before = storage.last_position()
    storage.save_checkpoint(Checkpoint(name="saga:Checkout", position=0, state=None))
    storage.close()
    rt = shop(url)
    try:
        last = rt.send(AddStock("sku-2", 1)).position
        rt.query(OrderBoard, after=last).status()
        assert wait_for(lambda: rt.store.last_position() == before + 1)  # only AddStock
    finally:
        rt.stop()


def stored_counts(url: str) -> dict[str, int]:
    """How many events the journal at `url` holds for each stream (exactly-once check);
    read after `stop()`, which drains every command a saga sent."""
    storage = open_storage(url)
    try:
        return dict(collections.Counter(e.stream_id for e in storage.read_all()))
    finally:
        storage.close()


@settings(max_examples=max(10, settings().max_examples // 6), deadline=None)
@given(st.integers(1, 12), st.sampled_from(["visa", "declined", "silent"]))
def test_a_restart_between_any_two_steps_changes_nothing(stop_after: int, card: str) -> None:
    """Stop the runtime once `stop_after` events are stored, start it again: the order
    ends as it would have, and every stream holds what an uninterrupted run stores."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="reactor-saga-"))
    url = f"sqlite:///{tmp / 'shop.db'}"
    rt = shop(url)
    rt.send(AddStock("sku-1", 1))
    rt.send(order(1, card=card))
    wait_for(
        lambda: (
            rt.store.last_position() >= stop_after
            or rt.query(OrderBoard).status().get("o1") in ("confirmed", "cancelled")
        )
    )
    rt.stop()
    rt = shop(url)
    try:
        outcome = finished(rt, "o1")
        expected = {"visa": "confirmed", "declined": "cancelled", "silent": "cancelled"}[card]
        assert outcome == {"o1": expected}
        rt.stop()  # the saga's last commands may still be on their way: let them land
        counts = stored_counts(url)
        assert counts["Order-o1"] == 2  # placed, then confirmed or cancelled: once
        assert counts["Inventory-sku-1"] == (2 if card == "visa" else 3)
        payment = {"visa": 2, "declined": 1, "silent": 2}[card]
        assert counts.get("Payment-o1", 0) == payment
        if card == "visa":
            assert counts["Shipment-o1"] == 1
    finally:
        rt.stop()
