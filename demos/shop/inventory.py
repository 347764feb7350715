"""The inventory service: stock per SKU, reserved per order, released on compensation.
One aggregate per SKU serialises every reservation: it cannot oversell."""

from __future__ import annotations

import attrs

from reactor import Aggregate, applies, command, event, handles


@event("shop.StockAdded")
@attrs.frozen
class StockAdded:
    sku: str
    qty: int


@event("shop.StockReserved", kind="integration")
@attrs.frozen
class StockReserved:
    sku: str
    order_id: str
    qty: int


@event("shop.StockUnavailable", kind="integration")
@attrs.frozen
class StockUnavailable:
    sku: str
    order_id: str
    qty: int
    available: int


@event("shop.StockReleased", kind="integration")
@attrs.frozen
class StockReleased:
    sku: str
    order_id: str
    qty: int


@command
@attrs.frozen
class AddStock:
    sku: str
    qty: int


@command
@attrs.frozen
class ReserveStock:
    sku: str
    order_id: str
    qty: int


@command
@attrs.frozen
class ReleaseStock:
    sku: str
    order_id: str


class Inventory(Aggregate, key="sku"):
    available: int
    reserved: dict[str, int]

    def __init__(self) -> None:
        self.available = 0
        self.reserved = {}

    @handles(AddStock)
    def add(self, c: AddStock) -> StockAdded:
        return StockAdded(c.sku, c.qty)

    @handles(ReserveStock)
    def reserve(self, c: ReserveStock) -> StockReserved | StockUnavailable | None:
        if c.order_id in self.reserved:
            return None
        if c.qty > self.available:
            return StockUnavailable(c.sku, c.order_id, c.qty, self.available)
        return StockReserved(c.sku, c.order_id, c.qty)

    @handles(ReleaseStock)
    def release(self, c: ReleaseStock) -> StockReleased | None:
        qty = self.reserved.get(c.order_id)
        return StockReleased(c.sku, c.order_id, qty) if qty else None

    @applies(StockAdded)
    def _added(self, e: StockAdded) -> None:
        self.available += e.qty

    @applies(StockReserved)
    def _reserved(self, e: StockReserved) -> None:
        self.available -= e.qty
        self.reserved[e.order_id] = e.qty

    @applies(StockReleased)
    def _released(self, e: StockReleased) -> None:
        self.available += e.qty
        del self.reserved[e.order_id]
