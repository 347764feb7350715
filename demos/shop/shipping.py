"""The shipping service: books a shipment for a paid order."""

from __future__ import annotations

import attrs

from reactor import Aggregate, applies, command, event, handles


@event("shop.ShipmentBooked", kind="integration")
@attrs.frozen
class ShipmentBooked:
    order_id: str
    carrier: str


@command
@attrs.frozen
class ShipOrder:
    order_id: str
    customer: str


class Shipment(Aggregate, key="order_id"):
    booked: bool

    def __init__(self) -> None:
        self.booked = False

    @handles(ShipOrder)
    def ship(self, c: ShipOrder) -> ShipmentBooked | None:
        return None if self.booked else ShipmentBooked(c.order_id, "parcel-express")

    @applies(ShipmentBooked)
    def _booked(self, e: ShipmentBooked) -> None:
        self.booked = True
