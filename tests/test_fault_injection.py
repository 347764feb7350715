"""Fault injection: projection handlers and the storage's commit fail at random points;
clients re-send with the same command id until acknowledged. The run completes and the
read models equal a clean computation from the journal: nothing lost, nothing twice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Envelope, Projection, ReactorError, RetryPolicy, Runtime, on
from tests.bank import Account, Deposit, Deposited
from tests.faulty import FaultyStorage

QUICK = RetryPolicy(max_attempts=10, first_delay=0.0005, max_delay=0.002, jitter=0.5)


class Fragile(Projection):
    """Fails the first `failures[position]` times it sees an event (transient faults)."""

    retry = QUICK
    failures: dict[int, int] = {}

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.applied: list[int] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        if Fragile.failures.get(env.position, 0) > 0:
            Fragile.failures[env.position] -= 1
            raise ConnectionError("injected handler failure")
        self.totals[e.account_id] = self.totals.get(e.account_id, 0) + e.amount
        self.applied.append(env.position)

    def state(self) -> tuple[dict[str, int], list[int]]:
        return dict(self.totals), list(self.applied)


@settings(max_examples=max(20, settings().max_examples // 3), deadline=None)
@given(
    commands=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(1, 9)), min_size=1, max_size=30
    ),
    handler_faults=st.dictionaries(st.integers(1, 30), st.integers(1, 3), max_size=8),
    commit_faults=st.sets(st.integers(0, 40), max_size=6),
)
def test_faults_leave_the_same_read_models_as_a_clean_run(
    commands: list[tuple[str, int]], handler_faults: dict[int, int], commit_faults: set[int]
) -> None:
    Fragile.failures = dict(handler_faults)
    commits = [0]

    def commit_fails() -> bool:
        commits[0] += 1
        return commits[0] - 1 in commit_faults

    with Runtime("faulty://", retry=QUICK) as rt:
        rt.register(Account, Fragile)
        FaultyStorage.last.fail_when("append_batch", commit_fails)  # type: ignore[union-attr]
        last = 0
        for n, (account, amount) in enumerate(commands):
            for _ in range(len(commit_faults) + 2):  # re-send until acknowledged
                try:
                    last = rt.send(Deposit(account, amount), command_id=f"cmd-{n}").position
                    break
                except ReactorError as e:
                    assert "injected failure in append_batch" in str(e)
            else:
                raise AssertionError(f"command {n} was never acknowledged")
        totals, applied = rt.query(Fragile, after=last).state()
        stored = list(rt.read_all())
        assert rt.dead_letters() == []
    expected: dict[str, int] = {}
    for env in stored:
        expected[env.event.account_id] = expected.get(env.event.account_id, 0) + env.event.amount
    assert len(stored) == len(commands)  # one event per command: none lost, none twice
    assert totals == expected
    assert sorted(applied) == [e.position for e in stored]  # each applied exactly once
