"""The payment service: charges a card through a (simulated) gateway. Card "declined" is
refused; card "silent" reaches a gateway that never answers."""

from __future__ import annotations

import attrs

from reactor import Aggregate, applies, command, event, handles


@event("shop.PaymentRequested")
@attrs.frozen
class PaymentRequested:
    order_id: str
    amount: int


@event("shop.PaymentAuthorized", kind="integration")
@attrs.frozen
class PaymentAuthorized:
    order_id: str
    amount: int
    currency: str


@event("shop.PaymentDeclined", kind="integration")
@attrs.frozen
class PaymentDeclined:
    order_id: str
    reason: str


@event("shop.PaymentVoided", kind="integration")
@attrs.frozen
class PaymentVoided:
    order_id: str


@command
@attrs.frozen
class ChargeCard:
    order_id: str
    amount: int
    card: str
    currency: str


@command
@attrs.frozen
class VoidPayment:
    order_id: str


class Payment(Aggregate, key="order_id"):
    status: str

    def __init__(self) -> None:
        self.status = "none"

    @handles(ChargeCard)
    def charge(self, c: ChargeCard) -> object:
        if self.status != "none":
            return None
        if c.card == "declined":
            return PaymentDeclined(c.order_id, "card declined by the issuer")
        if c.card == "silent":  # the gateway takes the request and never answers
            return PaymentRequested(c.order_id, c.amount)
        return [
            PaymentRequested(c.order_id, c.amount),
            PaymentAuthorized(c.order_id, c.amount, c.currency),
        ]

    @handles(VoidPayment)
    def void(self, c: VoidPayment) -> PaymentVoided | None:
        return PaymentVoided(c.order_id) if self.status == "requested" else None

    @applies(PaymentRequested)
    def _requested(self, e: PaymentRequested) -> None:
        self.status = "requested"

    @applies(PaymentAuthorized)
    def _authorized(self, e: PaymentAuthorized) -> None:
        self.status = "authorized"

    @applies(PaymentDeclined)
    def _declined(self, e: PaymentDeclined) -> None:
        self.status = "declined"

    @applies(PaymentVoided)
    def _voided(self, e: PaymentVoided) -> None:
        self.status = "voided"
