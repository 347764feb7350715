"""The shop as four services, each its own process, journal and runtime, talking only
through integration events on the bus (NATS JetStream). No saga sees the whole order: each
service reacts to what the others publish (choreography), and the correlation id of the
order's request travels through all of them.

    storefront --OrderRequested--> orders --OrderPlaced--> inventory, payments, shipping
    inventory  --StockReserved/StockUnavailable/StockReleased--> orders, payments
    payments   --PaymentAuthorized/PaymentDeclined/PaymentVoided--> orders, shipping
    shipping   --ShipmentBooked--> orders
    orders     --OrderConfirmed/OrderCancelled--> inventory, shipping, storefront

Events of two services may arrive in either order (each exporter is its own stream), so a
saga that needs two of them starts on either. Run one service:

    python -m demos.shop.services orders|inventory|payments|shipping \
        --store sqlite:///orders.db --bus nats://127.0.0.1:4222/shop [--deadline 1.0]
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any, ClassVar

import attrs

from reactor import Runtime, Saga, event, on

from .catalog import CATALOG
from .checkout import PaymentTimedOut
from .inventory import (
    AddStock,
    Inventory,
    ReleaseStock,
    ReserveStock,
    StockReserved,
    StockUnavailable,
)
from .orders import (
    CancelOrder,
    ConfirmOrder,
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    PlaceOrder,
)
from .payments import (
    ChargeCard,
    Payment,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)
from .shipping import Shipment, ShipmentBooked, ShipOrder


@event("shop.OrderRequested", kind="integration")
@attrs.frozen
class OrderRequested:
    """A customer asked the storefront for an order (the orders service places it)."""

    order_id: str
    customer: str
    sku: str
    qty: int
    amount: int
    card: str
    currency: str = "EUR"


class OrderFlow(Saga, key="order_id"):
    """Orders: places a requested order, cancels it when a step fails, confirms it once
    shipped."""

    @on(OrderRequested, start=True)
    def requested(self, e: OrderRequested, ctx: Any) -> None:
        ctx.send(PlaceOrder(**attrs.asdict(e)))

    @on(StockUnavailable)
    def unavailable(self, e: StockUnavailable, ctx: Any) -> None:
        ctx.send(CancelOrder(e.order_id, f"out of stock ({e.available} left, {e.qty} wanted)"))

    @on(PaymentDeclined)
    def declined(self, e: PaymentDeclined, ctx: Any) -> None:
        ctx.send(CancelOrder(e.order_id, "card declined"))

    @on(PaymentVoided)
    def voided(self, e: PaymentVoided, ctx: Any) -> None:
        ctx.send(CancelOrder(e.order_id, "the payment gateway did not answer"))

    @on(ShipmentBooked)
    def shipped(self, e: ShipmentBooked, ctx: Any) -> None:
        ctx.send(ConfirmOrder(e.order_id))

    @on(OrderConfirmed)
    def confirmed(self, e: OrderConfirmed, ctx: Any) -> None:
        ctx.done()

    @on(OrderCancelled)
    def cancelled(self, e: OrderCancelled, ctx: Any) -> None:
        ctx.done()


class Reserving(Saga, key="order_id"):
    """Inventory: reserves stock for a placed order, releases it if the order is cancelled."""

    sku: str

    @on(OrderPlaced, start=True)
    def placed(self, e: OrderPlaced, ctx: Any) -> None:
        self.sku = e.sku
        ctx.send(ReserveStock(e.sku, e.order_id, e.qty))

    @on(OrderCancelled)
    def cancelled(self, e: OrderCancelled, ctx: Any) -> None:
        ctx.send(ReleaseStock(self.sku, e.order_id))
        ctx.done()

    @on(OrderConfirmed)
    def confirmed(self, e: OrderConfirmed, ctx: Any) -> None:
        ctx.done()


class Charging(Saga, key="order_id"):
    """Payments: charges the card once the order is placed and its stock reserved (in
    either order), voids the payment if the gateway does not answer in time."""

    payment_timeout: ClassVar[float] = 2.0
    amount: int | None
    card: str
    currency: str
    reserved: bool
    deadline: str | None

    def __init__(self) -> None:
        self.amount, self.card, self.currency = None, "", ""
        self.reserved, self.deadline = False, None

    @on(OrderPlaced, start=True)
    def placed(self, e: OrderPlaced, ctx: Any) -> None:
        self.amount, self.card, self.currency = e.amount, e.card, e.currency
        self._charge(e.order_id, ctx)

    @on(StockReserved, start=True)
    def stock_reserved(self, e: StockReserved, ctx: Any) -> None:
        self.reserved = True
        self._charge(e.order_id, ctx)

    def _charge(self, order_id: str, ctx: Any) -> None:
        if self.reserved and self.amount is not None and self.deadline is None:
            ctx.send(ChargeCard(order_id, self.amount, self.card, self.currency))
            self.deadline = ctx.schedule(self.payment_timeout, PaymentTimedOut(order_id))

    @on(StockUnavailable)
    def unavailable(self, e: StockUnavailable, ctx: Any) -> None:
        ctx.done()

    @on(PaymentAuthorized)
    def authorized(self, e: PaymentAuthorized, ctx: Any) -> None:
        ctx.done()

    @on(PaymentDeclined)
    def declined(self, e: PaymentDeclined, ctx: Any) -> None:
        ctx.done()

    @on(PaymentTimedOut)
    def timed_out(self, e: PaymentTimedOut, ctx: Any) -> None:
        ctx.send(VoidPayment(e.order_id))
        ctx.done()


class Dispatching(Saga, key="order_id"):
    """Shipping: books a shipment once the order is placed and paid (in either order)."""

    customer: str | None
    paid: bool

    def __init__(self) -> None:
        self.customer, self.paid = None, False

    @on(OrderPlaced, start=True)
    def placed(self, e: OrderPlaced, ctx: Any) -> None:
        self.customer = e.customer
        self._ship(e.order_id, ctx)

    @on(PaymentAuthorized, start=True)
    def payment_authorized(self, e: PaymentAuthorized, ctx: Any) -> None:
        self.paid = True
        self._ship(e.order_id, ctx)

    def _ship(self, order_id: str, ctx: Any) -> None:
        if self.paid and self.customer is not None:
            ctx.send(ShipOrder(order_id, self.customer))
            ctx.done()

    @on(OrderCancelled)
    def cancelled(self, e: OrderCancelled, ctx: Any) -> None:
        ctx.done()


# what each service registers, and the integration events it takes from the others
SERVICES: dict[str, tuple[tuple[type, ...], tuple[type, ...]]] = {
    "orders": (
        (Order, OrderFlow),
        (OrderRequested, StockUnavailable, PaymentDeclined, PaymentVoided, ShipmentBooked),
    ),
    "inventory": ((Inventory, Reserving), (OrderPlaced, OrderCancelled, OrderConfirmed)),
    "payments": ((Payment, Charging), (OrderPlaced, StockReserved, StockUnavailable)),
    "shipping": ((Shipment, Dispatching), (OrderPlaced, PaymentAuthorized, OrderCancelled)),
}


def service(name: str, store: str, bus: str) -> Runtime:
    """The runtime of one service of the shop (not started)."""
    classes, imports = SERVICES[name]
    rt = Runtime(store, service=name, bus=bus, imports=imports)
    return rt.register(*classes)


def serve(name: str, store: str, bus: str, deadline: float) -> None:
    """Run one service until SIGTERM; print "ready" once it runs."""
    Charging.payment_timeout = deadline
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with service(name, store, bus) as rt:
        if name == "inventory" and not any(True for _ in rt.read_all(limit=1)):
            for sku, (_, qty) in CATALOG.items():
                rt.send(AddStock(sku, qty))
        print("ready", flush=True)
        stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="run one service of the shop")
    parser.add_argument("name", choices=sorted(SERVICES))
    parser.add_argument("--store", required=True, help="its journal, e.g. sqlite:///orders.db")
    parser.add_argument("--bus", required=True, help="e.g. nats://127.0.0.1:4222/shop")
    parser.add_argument("--deadline", type=float, default=1.0, help="payment timeout, seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format=f"{args.name}: %(message)s")
    serve(args.name, args.store, args.bus, args.deadline)


if __name__ == "__main__":
    main()
