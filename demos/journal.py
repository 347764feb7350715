"""Demo: a versioned event journal in a SQLite file.

Release 1 of a bank app stored `bank.Deposited` without a currency. Release 2 added the
field (version 2) and an upcaster, so old events read back as version 2. Run it twice:
the journal keeps growing, and expected versions keep the streams consistent.

    python demos/journal.py [--store sqlite:///journal-demo.db]
"""

from __future__ import annotations

import argparse
from decimal import Decimal

import attrs

from reactor import ConcurrencyError, Registry, event, open_store, upcaster
from reactor.cli import main as reactor_command

# -- release 1, as it was shipped: kept in its own registry to play the old code ------------
release_1 = Registry()


@event("bank.Deposited", version=1, registry=release_1)
@attrs.frozen
class DepositedV1:
    account_id: str
    amount: Decimal


# -- release 2, the code as it is now -------------------------------------------------------
@event("bank.AccountOpened", version=1)
@attrs.frozen
class AccountOpened:
    account_id: str
    owner: str


@event("bank.Deposited", version=2)
@attrs.frozen
class Deposited:
    account_id: str
    amount: Decimal
    currency: str = "EUR"


release_1.add_event(AccountOpened, "bank.AccountOpened")  # unchanged since release 1


@upcaster("bank.Deposited", from_version=1)
def _add_currency(data: dict) -> dict:
    return {**data, "currency": "EUR"}


def run(url: str) -> None:
    # Release 1 writes an account's first deposits.
    old = open_store(url, registry=release_1)
    stream = "BankAccount-ann"
    if old.stream_version(stream) == 0:
        opened = AccountOpened("ann", "Ann")
        old.append(
            stream,
            [opened, DepositedV1("ann", Decimal(100)), DepositedV1("ann", Decimal("25.5"))],
            0,
        )
        print(f"release 1 wrote 3 events to {stream} (Deposited at version 1)")
    old.close()

    # Release 2 reads them back upcast, and writes new ones at version 2.
    store = open_store(url)
    try:
        version = store.stream_version(stream)
        store.append(stream, [Deposited("ann", Decimal("40.00"), "USD")], version)
        print(f"release 2 appended a Deposited at version 2 (expected stream version {version})")
        try:
            store.append(stream, [Deposited("ann", Decimal("1.00"))], version)
        except ConcurrencyError as e:
            print(f"a stale writer is refused: {e}")

        print(f"\n{stream}, as release 2 reads it:")
        balance: dict[str, Decimal] = {}
        for env in store.read_stream(stream):
            print(f"  seq {env.seq:>2}  v{env.version}  {env.event}")
            if isinstance(env.event, Deposited):
                balance[env.event.currency] = (
                    balance.get(env.event.currency, Decimal(0)) + env.event.amount
                )
        print(f"  balance: {', '.join(f'{v} {k}' for k, v in sorted(balance.items()))}")
    finally:
        store.close()

    print(f"\n$ reactor journal show {stream} --store {url}")
    reactor_command(["journal", "show", stream, "--store", url])
    print(f"\n$ reactor journal info --store {url}")
    reactor_command(["journal", "info", "--store", url])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///journal-demo.db")
    run(parser.parse_args().store)
