"""A small bank domain for the runtime tests: accounts, deposits, withdrawals."""

from __future__ import annotations

from typing import Any

import attrs

from reactor import Aggregate, Envelope, Projection, Rejected, applies, command, event, handles, on


@event("tbank.Opened")
@attrs.frozen
class Opened:
    account_id: str
    owner: str


@event("tbank.Deposited")
@attrs.frozen
class Deposited:
    account_id: str
    amount: int


@event("tbank.Withdrawn")
@attrs.frozen
class Withdrawn:
    account_id: str
    amount: int


@event("tbank.Audited")
@attrs.frozen
class Audited:
    note: str


@command
@attrs.frozen
class Open:
    account_id: str
    owner: str = "someone"


@command
@attrs.frozen
class Deposit:
    account_id: str
    amount: int


@command
@attrs.frozen
class Withdraw:
    account_id: str
    amount: int


@command
@attrs.frozen
class Touch:
    """A command that decides nothing."""

    account_id: str


@command
@attrs.frozen
class Explode:
    account_id: str


class Account(Aggregate, key="account_id"):
    balance: int
    owner: str | None

    def __init__(self) -> None:
        self.balance = 0
        self.owner = None
        self.history: list[int] = []

    @handles(Open)
    def open(self, cmd: Open) -> Any:
        if self.owner is not None:
            raise Rejected(f"account {cmd.account_id} is already open")
        return Opened(cmd.account_id, cmd.owner)

    @handles(Deposit)
    def deposit(self, cmd: Deposit) -> Any:
        if cmd.amount <= 0:
            raise Rejected("amount must be positive")
        return Deposited(cmd.account_id, cmd.amount)

    @handles(Withdraw)
    def withdraw(self, cmd: Withdraw) -> Any:
        if cmd.amount > self.balance:
            raise Rejected(f"insufficient funds: balance {self.balance}, asked {cmd.amount}")
        return [Withdrawn(cmd.account_id, cmd.amount)]

    @handles(Touch)
    def touch(self, cmd: Touch) -> None:
        return None

    @handles(Explode)
    def explode(self, cmd: Explode) -> Any:
        raise ZeroDivisionError("a bug in the handler")

    @applies(Opened)
    def _opened(self, e: Opened) -> None:
        self.owner = e.owner

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount
        self.history.append(e.amount)

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount
        self.history.append(-e.amount)


class Balances(Projection):
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.positions: list[int] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.totals[e.account_id] = self.totals.get(e.account_id, 0) + e.amount
        self.positions.append(env.position)

    @on(Withdrawn)
    def _withdrawn(self, e: Withdrawn, env: Envelope) -> None:
        self.totals[e.account_id] = self.totals.get(e.account_id, 0) - e.amount
        self.positions.append(env.position)

    def balance(self, account_id: str) -> int:
        return self.totals.get(account_id, 0)

    def snapshot(self) -> tuple[dict[str, int], list[int]]:
        return dict(self.totals), list(self.positions)


class DurableBalances(Balances):
    durable = True
    checkpoint_every = 3
    totals: dict[str, int]
    positions: list[int]
    applied: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    @on(Deposited)
    def _counted(self, e: Deposited, env: Envelope) -> None:
        self._deposited(e, env)
        self.applied += 1

    def count(self) -> int:
        return self.applied
