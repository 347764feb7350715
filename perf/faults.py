"""Throughput under faults: the bank workload with 4 projections while 1% of projection
events fail once (and are retried), next to the same run with no failures.

    python -m perf faults [--quick]
"""

from __future__ import annotations

import collections
import logging
import random
import tempfile
import time
from pathlib import Path

from perf.report import row
from perf.runtime import Account, Deposited, registry, workload
from reactor import Envelope, Projection, RetryPolicy, Runtime, on
from reactor.actors.messages import Reply

FAILING: set[int] = set()  # positions whose first handling raises


class Book(Projection):
    retry = RetryPolicy(max_attempts=5, first_delay=0.005, max_delay=0.05)

    def __init__(self) -> None:
        self.count = 0
        self.failed: set[int] = set()

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        if env.position in FAILING and env.position not in self.failed:
            self.failed.add(env.position)
            raise ConnectionError("a transient failure")
        self.count += 1

    def total(self) -> int:
        return self.count


def run(url: str, commands: list[object], failing: float) -> float:
    FAILING.clear()
    FAILING.update(p for p in range(1, len(commands) + 1) if random.random() < failing)
    books = [type(f"Book{i}", (Book,), {}) for i in range(4)]
    with Runtime(url, registry=registry) as rt:
        rt.register(Account, *books)
        inflight: collections.deque[Reply] = collections.deque()
        start = time.perf_counter()
        for c in commands:
            if len(inflight) >= 256:
                inflight.popleft().get(60)
            inflight.append(rt.submit(c))
        last = max(f.get(60).position for f in inflight)
        deposits = sum(1 for c in commands if type(c).__name__ == "Deposit")
        for book in books:  # every projection has applied every event, retries included
            assert rt.query(book, after=last, timeout=120).total() == deposits
        return len(commands) / (time.perf_counter() - start)


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    logging.getLogger("reactor").setLevel(logging.ERROR)  # the retries' warnings are expected
    commands = workload(200, 5) if quick else workload(1000, 20)
    with tempfile.TemporaryDirectory() as tmp:
        clean = run(f"sqlite:///{Path(tmp) / 'clean.db'}", commands, 0.0)
        faulty = run(f"sqlite:///{Path(tmp) / 'faulty.db'}", commands, 0.01)
    row("1% of projection events fail once", faulty, clean, "no failures", "cmd/s")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
