"""Run by test_crash in a subprocess: a runtime under load on a SQLite file, with a
durable projection and a named subscriber, printing each acknowledged command until it
is killed. Usage: python -m tests.crash_app URL ROUND OUTFILE"""

from __future__ import annotations

import collections
import sys

from reactor import Envelope, Projection, Runtime, on
from tests.bank import Account, Deposit, Deposited


class Totals(Projection):
    durable = True
    checkpoint_every = 7
    totals: dict[str, int]
    count: int

    def __init__(self) -> None:
        self.totals = {}
        self.count = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.totals[e.account_id] = self.totals.get(e.account_id, 0) + e.amount
        self.count += 1

    def state(self) -> tuple[dict[str, int], int]:
        return dict(self.totals), self.count


def main(url: str, round_: str, outfile: str) -> None:
    with open(outfile, "a", buffering=1) as out, Runtime(url) as rt:
        rt.register(Account, Totals)
        rt.subscribe(lambda e, env: out.write(f"{env.event_id}\n"), types=[Deposited], name="audit")
        inflight: collections.deque[tuple[str, object]] = collections.deque()
        n = 0
        while True:
            cid = f"r{round_}-{n}"
            inflight.append((cid, rt.submit(Deposit(f"acc-{n % 7}", n % 5 + 1), command_id=cid)))
            n += 1
            if len(inflight) >= 32:
                done_id, future = inflight.popleft()
                result = future.get(30)  # type: ignore[attr-defined]
                print(f"{done_id} {result.position}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
