"""A runtime process on a PostgreSQL journal, for the multi-process tests.

python -m tests.pg_node URL writer NAME COUNT        sends COUNT deposits spread over
                                                     three shared accounts, with ids
                                                     NAME-i and dup-i; prints each ack
python -m tests.pg_node URL consumer NAME            runs Tally (durable) and Seen (in
                                                     memory) until stdin closes; prints
                                                     "active"/"standby" as Tally moves
"""

from __future__ import annotations

import sys
import threading

from reactor import Envelope, Projection, Runtime, on
from tests.bank import Account, Deposit, Deposited

ACCOUNTS = ("shared-a", "shared-b", "shared-c")


class Tally(Projection):
    """Durable: one process at a time counts every deposit exactly once."""

    durable = True
    checkpoint_every = 5
    count: int
    total: int

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.count += 1
        self.total += e.amount

    def state(self) -> tuple[int, int]:
        return self.count, self.total


def writer(url: str, name: str, count: int) -> None:
    with Runtime(url, lease_ttl=1.0) as rt:
        rt.register(Account)
        for i in range(count):
            result = rt.send(Deposit(ACCOUNTS[i % 3], 1), command_id=f"{name}-{i}")
            rt.send(Deposit("dup", 1), command_id=f"dup-{i}")  # every writer sends these
            print(f"ack {name}-{i} {result.position}", flush=True)


def consumer(url: str, name: str) -> None:
    with Runtime(url, lease_ttl=1.0) as rt:
        rt.register(Account, Tally)
        last = None
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.wait(0.05):
            now = "standby" if "Tally" in rt.health().standby else "active"
            if now != last:
                print(f"{name} {now}", flush=True)
                last = now


if __name__ == "__main__":
    url, role, name = sys.argv[1:4]
    if role == "writer":
        writer(url, name, int(sys.argv[4]))
    else:
        consumer(url, name)
