"""The Checkout saga: order placed -> stock reserved -> card charged (with a deadline) ->
shipment booked -> order confirmed; compensation (release stock, void, cancel) when a
step fails or the payment gateway never answers."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from reactor import Saga, event, on

from .inventory import ReleaseStock, ReserveStock, StockReserved, StockUnavailable
from .orders import CancelOrder, ConfirmOrder, OrderCancelled, OrderConfirmed, OrderPlaced
from .payments import ChargeCard, PaymentAuthorized, PaymentDeclined, VoidPayment
from .shipping import ShipmentBooked, ShipOrder


@event("shop.PaymentTimedOut", kind="system")
@attrs.frozen
class PaymentTimedOut:
    """The checkout's deadline: handed back to the saga, never stored."""

    order_id: str


class Checkout(Saga, key="order_id"):
    payment_timeout: ClassVar[float] = 2.0
    sku: str
    qty: int
    amount: int
    card: str
    currency: str
    customer: str
    deadline: str | None
    steps: list[str]

    def __init__(self) -> None:
        self.deadline = None
        self.steps = []

    @on(OrderPlaced, start=True)
    def placed(self, e: OrderPlaced, ctx: Any) -> None:
        self.sku, self.qty, self.amount, self.card = e.sku, e.qty, e.amount, e.card
        self.currency, self.customer = e.currency, e.customer
        self.steps.append("placed")
        ctx.send(ReserveStock(e.sku, e.order_id, e.qty))

    @on(StockReserved)
    def reserved(self, e: StockReserved, ctx: Any) -> None:
        self.steps.append("reserved")
        ctx.send(ChargeCard(e.order_id, self.amount, self.card, self.currency))
        self.deadline = ctx.schedule(self.payment_timeout, PaymentTimedOut(e.order_id))

    @on(StockUnavailable)
    def unavailable(self, e: StockUnavailable, ctx: Any) -> None:
        self.steps.append("out of stock")
        ctx.send(CancelOrder(e.order_id, f"out of stock ({e.available} left, {e.qty} wanted)"))

    @on(PaymentAuthorized)
    def paid(self, e: PaymentAuthorized, ctx: Any) -> None:
        self.steps.append("paid")
        if self.deadline:
            ctx.cancel(self.deadline)
        ctx.send(ShipOrder(e.order_id, self.customer))

    @on(PaymentDeclined)
    def declined(self, e: PaymentDeclined, ctx: Any) -> None:
        self.steps.append("declined")
        if self.deadline:
            ctx.cancel(self.deadline)
        ctx.send(ReleaseStock(self.sku, e.order_id))
        ctx.send(CancelOrder(e.order_id, "card declined"))

    @on(PaymentTimedOut)
    def timed_out(self, e: PaymentTimedOut, ctx: Any) -> None:
        self.steps.append("payment timed out")
        ctx.send(VoidPayment(e.order_id))
        ctx.send(ReleaseStock(self.sku, e.order_id))
        ctx.send(CancelOrder(e.order_id, "the payment gateway did not answer"))

    @on(ShipmentBooked)
    def shipped(self, e: ShipmentBooked, ctx: Any) -> None:
        self.steps.append("shipped")
        ctx.send(ConfirmOrder(e.order_id))

    @on(OrderConfirmed)
    def confirmed(self, e: OrderConfirmed, ctx: Any) -> None:
        ctx.done()

    @on(OrderCancelled)
    def cancelled(self, e: OrderCancelled, ctx: Any) -> None:
        ctx.done()
