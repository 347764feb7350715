"""Passivation: more aggregates than `max_live` keep working with a bounded number of
live actors and threads; idle actors stop after `idle_timeout`; a passivated aggregate
comes back with its state."""

from __future__ import annotations

import threading

from reactor import Runtime
from tests.bank import Account, Balances, Deposit, Withdraw
from tests.helpers import wait_for


def test_max_live_bounds_actors_and_threads() -> None:
    before = threading.active_count()
    with Runtime("memory://", max_live=20, workers=2) as rt:
        rt.register(Account, Balances)
        threads = threading.active_count()
        futures = [rt.submit(Deposit(f"acc-{i}", i + 1)) for i in range(500)]
        assert [f.get(30).version for f in futures] == [1] * 500
        assert wait_for(
            lambda: rt.health().live_aggregates <= 20
        )  # trimmed as they finish their commands
        assert rt.health().aggregates_started == 500 and rt.health().passivated >= 478
        assert threading.active_count() == threads  # no thread per actor
        again = [rt.submit(Withdraw(f"acc-{i}", i + 1)) for i in range(500)]  # rehydrated
        assert [f.get(30).version for f in again] == [2] * 500
        last = rt.store.last_position()
        assert rt.query(Balances, after=last).snapshot()[0] == {f"acc-{i}": 0 for i in range(500)}
    assert threading.active_count() == before


def test_idle_actors_stop_after_the_timeout() -> None:
    with Runtime("memory://", idle_timeout=0.1) as rt:
        rt.register(Account)
        for i in range(5):
            rt.send(Deposit(f"a{i}", 10))
        assert wait_for(lambda: rt.health().live_aggregates == 0)
        assert rt.health().passivated == 5
        assert rt.send(Withdraw("a3", 10)).version == 2  # came back with its balance
