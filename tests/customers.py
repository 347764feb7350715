"""A small domain with personal data for the governance tests: customers (an email and an
address, personal data of the customer), their orders (not personal), a directory
projection, and a ledger projection that can be made to fail (dead letters). Its own
registry, so that the default one stays free of personal classes."""

from __future__ import annotations

from typing import Any

import attrs

from reactor import (
    Aggregate,
    Envelope,
    Projection,
    Registry,
    Rejected,
    RetryPolicy,
    applies,
    command,
    event,
    handles,
    on,
    upcaster,
)

registry = Registry()
KEY = bytes(range(1, 33))  # a master key for the tests


@event("cust.Registered", version=2, registry=registry)
@attrs.frozen
class Registered:
    customer_id: str
    email: str = attrs.field(metadata={"pii": "customer_id"})
    plan: str = "basic"


@upcaster("cust.Registered", from_version=1, registry=registry)
def _plan(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "plan": "legacy"}


@event("cust.Moved", registry=registry)
@attrs.frozen
class Moved:
    customer_id: str
    address: str | None = attrs.field(default=None, metadata={"pii": "customer_id"})


@event("cust.Echoed", registry=registry)
@attrs.frozen
class Echoed:
    """The email as the aggregate holds it when asked (what a live actor still knows)."""

    customer_id: str
    email: str | None = attrs.field(metadata={"pii": "customer_id"})


@event("cust.Ordered", registry=registry)
@attrs.frozen
class Ordered:
    customer_id: str
    amount: int


@command(registry=registry)
@attrs.frozen
class Register:
    customer_id: str
    email: str
    plan: str = "basic"


@command(registry=registry)
@attrs.frozen
class Move:
    customer_id: str
    address: str | None


@command(registry=registry)
@attrs.frozen
class Echo:
    customer_id: str


@command(registry=registry)
@attrs.frozen
class Order:
    customer_id: str
    amount: int


class Customer(Aggregate, key="customer_id"):
    def __init__(self) -> None:
        self.email: str | None = None
        self.address: str | None = None
        self.orders = 0

    @handles(Register)
    def register(self, cmd: Register) -> Registered:
        if self.email is not None:
            raise Rejected("already registered")
        return Registered(cmd.customer_id, cmd.email, cmd.plan)

    @handles(Move)
    def move(self, cmd: Move) -> Moved:
        return Moved(cmd.customer_id, cmd.address)

    @handles(Echo)
    def echo(self, cmd: Echo) -> Echoed:
        return Echoed(cmd.customer_id, self.email)

    @handles(Order)
    def order(self, cmd: Order) -> Ordered:
        if cmd.amount < 0:
            raise ValueError("a bug: negative amounts are not handled")
        if cmd.amount == 0:
            raise Rejected("an order needs an amount")
        return Ordered(cmd.customer_id, cmd.amount)

    @applies(Registered)
    def _registered(self, e: Registered) -> None:
        self.email = e.email

    @applies(Moved)
    def _moved(self, e: Moved) -> None:
        self.address = e.address

    @applies(Ordered)
    def _ordered(self, e: Ordered) -> None:
        self.orders += 1


class Directory(Projection):
    """Every customer's email and address, as the events tell them."""

    def __init__(self) -> None:
        self.emails: dict[str, str] = {}
        self.addresses: dict[str, str | None] = {}

    @on(Registered)
    def _registered(self, e: Registered, env: Envelope) -> None:
        self.emails[e.customer_id] = e.email

    @on(Moved)
    def _moved(self, e: Moved, env: Envelope) -> None:
        self.addresses[e.customer_id] = e.address

    def everything(self) -> tuple[dict[str, str], dict[str, str | None]]:
        return dict(self.emails), dict(self.addresses)


class Ledger(Projection):
    """Books orders; fails on the amounts in `poison` (dead letters for the tests)."""

    retry = RetryPolicy(max_attempts=2, first_delay=0.001, max_delay=0.002, jitter=0.0)
    poison: set[int] = set()

    def __init__(self) -> None:
        self.booked: list[int] = []

    @on(Ordered)
    def _ordered(self, e: Ordered, env: Envelope) -> None:
        if e.amount in Ledger.poison:
            raise ValueError(f"cannot book {e.amount}")
        self.booked.append(e.amount)

    def total(self) -> int:
        return sum(self.booked)
