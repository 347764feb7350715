"""The order service: an order is placed, then confirmed or cancelled (once)."""

from __future__ import annotations

import attrs

from reactor import Aggregate, Rejected, applies, command, event, handles


@event("shop.OrderPlaced", kind="integration")
@attrs.frozen
class OrderPlaced:
    order_id: str
    customer: str
    sku: str
    qty: int
    amount: int  # cents
    card: str
    currency: str = "EUR"


@event("shop.OrderConfirmed", kind="integration")
@attrs.frozen
class OrderConfirmed:
    order_id: str


@event("shop.OrderCancelled", kind="integration")
@attrs.frozen
class OrderCancelled:
    order_id: str
    reason: str


@command
@attrs.frozen
class PlaceOrder:
    order_id: str
    customer: str
    sku: str
    qty: int
    amount: int
    card: str
    currency: str = "EUR"


@command
@attrs.frozen
class ConfirmOrder:
    order_id: str


@command
@attrs.frozen
class CancelOrder:
    order_id: str
    reason: str


class Order(Aggregate, key="order_id"):
    status: str

    def __init__(self) -> None:
        self.status = "new"

    @handles(PlaceOrder)
    def place(self, c: PlaceOrder) -> OrderPlaced:
        if self.status != "new":
            raise Rejected(f"order {c.order_id} was placed already")
        if c.qty <= 0:
            raise Rejected("quantity must be positive")
        return OrderPlaced(c.order_id, c.customer, c.sku, c.qty, c.amount, c.card, c.currency)

    @handles(ConfirmOrder)
    def confirm(self, c: ConfirmOrder) -> OrderConfirmed | None:
        return OrderConfirmed(c.order_id) if self.status == "placed" else None

    @handles(CancelOrder)
    def cancel(self, c: CancelOrder) -> OrderCancelled | None:
        return OrderCancelled(c.order_id, c.reason) if self.status == "placed" else None

    @applies(OrderPlaced)
    def _placed(self, e: OrderPlaced) -> None:
        self.status = "placed"

    @applies(OrderConfirmed)
    def _confirmed(self, e: OrderConfirmed) -> None:
        self.status = "confirmed"

    @applies(OrderCancelled)
    def _cancelled(self, e: OrderCancelled) -> None:
        self.status = "cancelled"
