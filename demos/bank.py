"""Demo: a bank on reactor, with its journal in a SQLite file.

Accounts are aggregates (one actor each), balances a projection. It opens accounts,
deposits, withdraws, is refused an overdraft, reads balances after its own writes, then
stops, starts again and shows the state rebuilt from the journal. Run it twice: the
second run continues where the first stood.

    python demos/bank.py [--store sqlite:///bank-demo.db]
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

import attrs

from reactor import (
    Aggregate,
    Envelope,
    Projection,
    Rejected,
    Runtime,
    applies,
    command,
    event,
    handles,
    on,
)


@event("bank.AccountOpened")
@attrs.frozen
class AccountOpened:
    account_id: str
    owner: str


@event("bank.Deposited")
@attrs.frozen
class Deposited:
    account_id: str
    amount: Decimal


@event("bank.Withdrawn")
@attrs.frozen
class Withdrawn:
    account_id: str
    amount: Decimal


@command
@attrs.frozen
class OpenAccount:
    account_id: str
    owner: str


@command
@attrs.frozen
class Deposit:
    account_id: str
    amount: Decimal


@command
@attrs.frozen
class Withdraw:
    account_id: str
    amount: Decimal


class BankAccount(Aggregate, key="account_id"):
    owner: str | None
    balance: Decimal
    snapshot_every = 50

    def __init__(self) -> None:
        self.owner = None
        self.balance = Decimal(0)

    @handles(OpenAccount)
    def open(self, cmd: OpenAccount) -> AccountOpened:
        if self.owner is not None:
            raise Rejected(f"account {cmd.account_id} is already open")
        return AccountOpened(cmd.account_id, cmd.owner)

    @handles(Deposit)
    def deposit(self, cmd: Deposit) -> Deposited:
        if self.owner is None:
            raise Rejected(f"account {cmd.account_id} is not open")
        if cmd.amount <= 0:
            raise Rejected("amount must be positive")
        return Deposited(cmd.account_id, cmd.amount)

    @handles(Withdraw)
    def withdraw(self, cmd: Withdraw) -> Withdrawn:
        if cmd.amount > self.balance:
            raise Rejected(f"insufficient funds: balance {self.balance}, asked {cmd.amount}")
        return Withdrawn(cmd.account_id, cmd.amount)

    @applies(AccountOpened)
    def _opened(self, e: AccountOpened) -> None:
        self.owner = e.owner

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount


class Balances(Projection):
    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.totals: dict[str, Decimal] = {}

    @on(AccountOpened)
    def _opened(self, e: AccountOpened, env: Envelope) -> None:
        self.owners[e.account_id] = e.owner
        self.totals.setdefault(e.account_id, Decimal(0))

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.totals[e.account_id] += e.amount

    @on(Withdrawn)
    def _withdrawn(self, e: Withdrawn, env: Envelope) -> None:
        self.totals[e.account_id] -= e.amount

    def table(self) -> list[tuple[str, str, Decimal]]:
        return [(a, self.owners[a], self.totals[a]) for a in sorted(self.owners)]


def show(title: str, rows: list[tuple[str, str, Decimal]]) -> None:
    print(f"\n{title}")
    for account, owner, balance in rows:
        print(f"  {account:<6} {owner:<6} {balance:>10}")


def run(url: str) -> None:
    print(f"journal: {url}")
    with Runtime(url) as rt:
        rt.register(BankAccount, Balances)
        for account, owner in [("ann", "Ann"), ("bob", "Bob"), ("cy", "Cy")]:
            try:
                rt.send(OpenAccount(account, owner))
                print(f"opened {account} for {owner}")
            except Rejected as e:
                print(f"(again) {e}")
        rt.send(Deposit("ann", Decimal("100.00")))
        rt.send(Deposit("bob", Decimal("50.00")))
        result = rt.send(Withdraw("ann", Decimal("30.00")))
        print(
            f"ann withdrew 30.00: stream {result.stream_id} at version {result.version}, "
            f"position {result.position}"
        )
        try:
            rt.send(Withdraw("bob", Decimal("500.00")))
        except Rejected as e:
            print(f"bob's overdraft refused: {e}")

        start = time.perf_counter()
        futures = [
            rt.submit(Deposit(a, Decimal("1.00"))) for a in ("ann", "bob", "cy") for _ in range(300)
        ]
        last = max(f.get(30).position for f in futures)
        took = time.perf_counter() - start
        print(f"900 deposits pipelined in {took:.2f}s ({900 / took:,.0f} commands/s, durable)")
        show(f"balances (read after position {last}):", rt.query(Balances, after=last).table())

    print("\nstopped; starting again on the same journal...")
    with Runtime(url) as rt:
        rt.register(BankAccount, Balances)
        total = rt.store.last_position()
        show(
            f"balances rebuilt from {total} stored events:", rt.query(Balances, after=total).table()
        )
        ann = rt.read_stream("BankAccount-ann")
        print(f"\nBankAccount-ann holds {len(ann)} events; the last: {ann[-1].event}")
        try:
            rt.send(Withdraw("cy", Decimal("1000000")))
        except Rejected as e:
            print(f"cy's aggregate came back with its state: {e}")
    print(f"\nlook inside: reactor journal streams --store {url}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///bank-demo.db")
    run(parser.parse_args(argv).store)


if __name__ == "__main__":
    main()
