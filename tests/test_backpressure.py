"""Back-pressure: a consumer that falls more than `backlog` events behind is no longer
pushed events; it reads them from the journal when it catches up, so its mailbox stays
bounded whatever the lag; it still gets every event once, in order; health answers
without waiting behind it."""

from __future__ import annotations

import threading
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Envelope, Projection, Runtime, on
from reactor.actors.consumer import Mode
from reactor.actors.pooled import actor_of, mailbox_size
from tests.bank import Account, Deposit, Deposited
from tests.helpers import wait_for

BACKLOG = 20


def test_a_stalled_subscriber_keeps_a_bounded_mailbox_and_misses_nothing() -> None:
    gate, seen = threading.Event(), []

    def slow(e: Deposited, env: Envelope) -> None:
        if seen:  # the first goes through: then it stalls
            gate.wait(30)
        seen.append(env.position)

    with Runtime("memory://", backlog=BACKLOG) as rt:
        rt.register(Account)
        label = rt.subscribe(slow, types=[Deposited], name="slow")
        ref = rt._consumers.by_label(label).ref  # type: ignore[union-attr]
        consumer = actor_of(ref)
        assert wait_for(lambda: consumer.mode is Mode.LIVE)  # pushed to from now on
        deepest = 0
        try:
            for n in range(300):
                rt.send(Deposit(f"a{n % 7}", 1))
                deepest = max(deepest, mailbox_size(ref))
            began = time.monotonic()
            health = rt.health()  # the stalled consumer does not hold it up
            assert time.monotonic() - began < 1.0
            assert health.head == 300 and health.lag()["slow"] >= 299 - BACKLOG
            assert deepest <= BACKLOG + 2, deepest
        finally:
            gate.set()
        assert wait_for(lambda: len(seen) == 300, timeout=30)
        assert seen == list(range(1, 301))
        assert wait_for(lambda: rt.health().lag()["slow"] == 0)


class Counting(Projection):
    gate = threading.Event()

    def __init__(self) -> None:
        self.positions: list[int] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        Counting.gate.wait(30)
        self.positions.append(env.position)

    def handled(self) -> list[int]:
        return list(self.positions)


@settings(max_examples=8, deadline=None)
@given(
    bursts=st.lists(st.integers(1, 60), min_size=1, max_size=5),
    backlog=st.integers(1, 30),
    stall_first=st.booleans(),
)
def test_a_projection_behind_or_not_sees_every_event_once_in_order(
    bursts: list[int], backlog: int, stall_first: bool
) -> None:
    """Whatever the backlog and however the commands come (bursts of submits), the
    projection handles positions 1..n once each, in order, and a query after the head
    answers once it has them all."""
    Counting.gate.clear() if stall_first else Counting.gate.set()
    with Runtime("memory://", backlog=backlog) as rt:
        rt.register(Account, Counting)
        futures: list[Any] = []
        for i, burst in enumerate(bursts):
            futures += [rt.submit(Deposit(f"a{(i + k) % 5}", 1)) for k in range(burst)]
            if i == 0:
                Counting.gate.set()
        last = max(f.get(30).position for f in futures)
        assert rt.query(Counting, after=last, timeout=30).handled() == list(range(1, last + 1))
    Counting.gate.set()
