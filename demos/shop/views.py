"""Read models of the shop: the order status board, stock levels and revenue."""

from __future__ import annotations

from typing import ClassVar

from reactor import Envelope, Projection, on

from .inventory import StockAdded, StockReleased, StockReserved
from .orders import OrderCancelled, OrderConfirmed, OrderPlaced
from .payments import PaymentAuthorized


class OrderBoard(Projection):
    def __init__(self) -> None:
        self.orders: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    @on(OrderPlaced)
    def _placed(self, e: OrderPlaced, env: Envelope) -> None:
        self.orders[e.order_id] = "placed"

    @on(OrderConfirmed)
    def _confirmed(self, e: OrderConfirmed, env: Envelope) -> None:
        self.orders[e.order_id] = "confirmed"

    @on(OrderCancelled)
    def _cancelled(self, e: OrderCancelled, env: Envelope) -> None:
        self.orders[e.order_id] = "cancelled"
        self.reasons[e.order_id] = e.reason

    def status(self) -> dict[str, str]:
        return dict(self.orders)

    def cancellations(self) -> dict[str, str]:
        return dict(self.reasons)


class StockLevels(Projection):
    def __init__(self) -> None:
        self.available: dict[str, int] = {}
        self.lowest: dict[str, int] = {}

    def _move(self, sku: str, qty: int) -> None:
        self.available[sku] = self.available.get(sku, 0) + qty
        self.lowest[sku] = min(self.lowest.get(sku, 0), self.available[sku])

    @on(StockAdded)
    def _added(self, e: StockAdded, env: Envelope) -> None:
        self._move(e.sku, e.qty)

    @on(StockReserved)
    def _reserved(self, e: StockReserved, env: Envelope) -> None:
        self._move(e.sku, -e.qty)

    @on(StockReleased)
    def _released(self, e: StockReleased, env: Envelope) -> None:
        self._move(e.sku, e.qty)

    def levels(self) -> dict[str, int]:
        return dict(self.available)

    def never_below_zero(self) -> bool:
        return all(v >= 0 for v in self.lowest.values())


class Revenue(Projection):
    """Books authorized payments (durable: it resumes from its checkpoint). It knows no
    exchange rate for "XXX": such an order is its poison until a fix is deployed
    (`rates` gains the currency)."""

    durable = True
    rates: ClassVar[dict[str, int]] = {"EUR": 100, "USD": 92}  # cents of EUR per 100
    total_eur_cents: int
    orders: int

    def __init__(self) -> None:
        self.total_eur_cents = 0
        self.orders = 0

    @on(PaymentAuthorized)
    def _authorized(self, e: PaymentAuthorized, env: Envelope) -> None:
        rate = Revenue.rates.get(e.currency)
        if rate is None:
            raise ValueError(f"no exchange rate for {e.currency!r} (order {e.order_id})")
        self.total_eur_cents += e.amount * rate // 100
        self.orders += 1

    def total(self) -> tuple[int, int]:
        return self.total_eur_cents, self.orders
