"""Property tests of DESIGN.md's guarantees on the running Runtime:
1. per stream, seq is 1..n with no gap whatever the concurrency;
2. read_all and every subscriber see positions in commit order, nothing missing or twice;
4. snapshot + tail == full replay == the live state before a restart;
5. a durable projection applies each matching event exactly once across restarts;
6. a command re-sent with the same command_id stores nothing and returns the first result.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import Rejected, Runtime
from reactor.testing import AggregateFixture
from tests.bank import Account, Balances, Deposit, Deposited, DurableBalances, Withdraw, Withdrawn

ACCOUNTS = ["a", "b", "c"]
commands = st.tuples(
    st.sampled_from(["deposit", "withdraw"]), st.sampled_from(ACCOUNTS), st.integers(1, 20)
)
RUNS = settings(max_examples=max(20, settings().max_examples // 4), deadline=None)


def make(kind: str, account: str, amount: int) -> Any:
    return Deposit(account, amount) if kind == "deposit" else Withdraw(account, amount)


def run_threads(rt: Runtime, per_thread: list[list[tuple[str, str, int]]]) -> list[list[Any]]:
    """Each thread sends its commands in order; returns each command's result or Rejected."""
    results: list[list[Any]] = [[] for _ in per_thread]

    def client(n: int) -> None:
        for kind, account, amount in per_thread[n]:
            try:
                results[n].append(rt.send(make(kind, account, amount), timeout=30))
            except Rejected as e:
                results[n].append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(per_thread))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


CLIENTS = st.lists(st.lists(commands, max_size=12), min_size=1, max_size=4)


@RUNS
@given(CLIENTS)
def test_concurrent_commands_match_a_model(per_thread: list[list[tuple[str, str, int]]]) -> None:
    """Guarantees 1 and 2, and per-client order: whatever the interleaving, each stream is
    gapless, holds exactly the accepted commands (each client's in its order), balances
    never go negative, and read_all, the projection and a subscriber agree on positions."""
    check_concurrent_commands(per_thread)


def check_concurrent_commands(per_thread: list[list[tuple[str, str, int]]]) -> None:
    seen: list[int] = []
    with Runtime("memory://", workers=3) as rt:
        rt.register(Account, Balances)
        rt.subscribe(lambda e, env: seen.append(env.position))
        results = run_threads(rt, per_thread)
        accepted = [r for rs in results for r in rs if not isinstance(r, Rejected)]
        last = max((r.position for r in accepted), default=0)
        totals, positions = rt.query(Balances, after=last).snapshot()
        everything = list(rt.read_all())
        streams = {a: rt.read_stream(f"Account-{a}") for a in ACCOUNTS}
        rt.query(Balances, after=last)  # the subscriber's deliveries are routed by now
        rt.stop()
    assert [e.position for e in everything] == list(range(1, len(accepted) + 1))
    assert positions == [e.position for e in everything] == seen
    for account, stream in streams.items():
        assert [e.seq for e in stream] == list(range(1, len(stream) + 1))
        balance = 0
        for e in stream:
            balance += e.event.amount if isinstance(e.event, Deposited) else -e.event.amount
            assert balance >= 0
        assert totals.get(account, 0) == balance
    for n, sent in enumerate(per_thread):  # each client's accepted commands, in its order
        mine = [r.events[0].event_id for r in results[n] if not isinstance(r, Rejected)]
        order = [e.event_id for e in everything if e.event_id in set(mine)]
        assert order == mine
        assert len(results[n]) == len(sent)


@RUNS
@given(
    st.lists(st.lists(commands, max_size=8), min_size=2, max_size=4),
    st.integers(1, 4),
)
def test_restarts_replay_exactly(rounds: list[list[tuple[str, str, int]]], every: int) -> None:
    """Guarantees 4 and 5 across restarts of a SQLite journal: live state == snapshot +
    tail == full replay, and the durable projection applied each event exactly once."""
    tmp = Path(tempfile.mkdtemp(prefix="reactor-restart-"))
    url = f"sqlite:///{tmp / 'j.db'}"
    live: dict[str, tuple[int, list[int]]] = {}
    try:
        for batch in rounds:
            with Runtime(url, snapshot_every=every) as rt:
                rt.register(Account, DurableBalances)
                for kind, account, amount in batch:
                    with contextlib.suppress(Rejected):
                        rt.send(make(kind, account, amount))
                last = rt.store.last_position()
                _, positions = rt.query(DurableBalances, after=last).snapshot()
                assert positions == sorted(set(positions))  # never twice
                for account in ACCOUNTS:
                    rt.send(Deposit(account, 1))  # brings the actor up with its current state
                    actor = rt._parts.host._live[f"Account-{account}"]
                    live[account] = (actor.state.balance, list(actor.state.history))
        with Runtime(url) as rt:
            rt.register(Account)
            for account, (balance, history) in live.items():
                stream = rt.read_stream(f"Account-{account}")
                full = AggregateFixture(Account).given(*(e.event for e in stream)).state
                assert (full.balance, full.history) == (balance, history)
                snap = rt.store.storage.load_snapshot(f"Account-{account}")
                if snap is not None:  # snapshot + tail
                    values = rt.store.decode_state(
                        snap.state, Account.__reactor_type__(None).state_hints
                    )
                    rest = AggregateFixture(Account)
                    vars(rest.state).update(values)
                    rest.given(*(e.event for e in stream[snap.seq :]))
                    assert (rest.state.balance, rest.state.history) == (balance, history)
            expected = [e.position for e in rt.read_all(types=[Deposited, Withdrawn])]
        with Runtime(url) as rt:
            rt.register(DurableBalances)
            _, positions = rt.query(
                DurableBalances, after=expected[-1] if expected else 0
            ).snapshot()
        assert positions == expected  # each matching event applied once, across every restart
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@RUNS
@given(st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), commands), max_size=25))
def test_resent_command_ids_store_nothing(sends: list[tuple[str, tuple[str, str, int]]]) -> None:
    """Guarantee 6: the first send of an id decides; every re-send returns that result."""
    first: dict[str, Any] = {}
    with Runtime("memory://") as rt:
        rt.register(Account)
        for command_id, (kind, account, amount) in sends:
            try:
                result: Any = rt.send(make(kind, account, amount), command_id=command_id)
            except Rejected as e:
                result = e
            if command_id in first and not isinstance(first[command_id], Rejected):
                assert result == first[command_id]
            elif not isinstance(result, Rejected):
                first[command_id] = result
            else:
                first.setdefault(command_id, result)
        stored = list(rt.read_all())
    accepted = [r for r in first.values() if not isinstance(r, Rejected)]
    assert len(stored) == len(accepted)
