"""Rebuilding a durable projection: queries answer throughout (the old state or the new,
never a mix), the swap, a rebuild stopped and resumed, a failing handler, bad arguments,
`reactor projection rebuild`; and the property that a rebuilt state is a full replay's."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reactor.runtime.rebuild as rebuild_module
from reactor import Envelope, Projection, ReactorError, Runtime, on
from reactor.cli import main
from tests.bank import Account, Balances, Deposit, Deposited, DurableBalances, Withdraw, Withdrawn


class Scaled(Projection):
    """A durable projection whose handler has a "bug" (`factor`) that a rebuild fixes."""

    durable = True
    factor: ClassVar[int] = 2
    total: int

    def __init__(self) -> None:
        self.total = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.total += e.amount * self.factor

    def value(self) -> int:
        return self.total


class Picky(Projection):
    durable = True
    total: int

    def __init__(self) -> None:
        self.total = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        if e.amount == 13 and Picky.strict:
            raise ValueError("13 is unlucky")
        self.total += e.amount

    def value(self) -> int:
        return self.total

    strict: ClassVar[bool] = False


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 50 events: many saves and progress calls on a small journal."""
    monkeypatch.setattr(rebuild_module, "BATCH", 50)


def deposits(rt: Runtime, n: int, amount: int = 1) -> int:
    last = 0
    for i in range(n):
        last = rt.send(Deposit(f"a{i % 7}", amount)).position
    return last


def test_queries_answer_throughout_and_see_the_swap(
    tmp_path: Path, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a rebuild replays, queries keep answering from the old state; after the swap
    they answer from the new one; no answer is anything else."""
    monkeypatch.setattr(Scaled, "factor", 2)
    with Runtime(f"sqlite:///{tmp_path / 'r.db'}") as rt:
        rt.register(Account, Scaled)
        last = deposits(rt, 600)
        assert rt.query(Scaled, after=last).value() == 1200
        Scaled.factor = 1  # the fix
        answers: list[int] = []
        done = threading.Event()

        def ask() -> None:
            while not done.is_set():
                answers.append(rt.query(Scaled).value())

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            result = rt.rebuild(Scaled)
        finally:
            done.set()
            asker.join()
        assert (result.swapped, result.position, result.events) == (True, last, 600)
        assert rt.query(Scaled).value() == 600
        assert answers and set(answers) <= {1200, 600}
        assert answers == sorted(answers, reverse=True)  # old, then new: never back
        assert rt.store.load_checkpoint("projection:Scaled~rebuild") is None  # deleted
    with Runtime(f"sqlite:///{tmp_path / 'r.db'}") as rt:  # the swapped state was saved
        rt.register(Account, Scaled)
        assert rt.query(Scaled).value() == 600


def test_a_stopped_rebuild_resumes_from_its_shadow(tmp_path: Path, small_batches: None) -> None:
    """`stop` set after two batches: not swapped, the shadow kept at that position; the
    next rebuild applies only the rest, then swaps."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Runtime(url) as rt:
        rt.register(Account, DurableBalances)
        last = deposits(rt, 300)
        stop = threading.Event()
        seen: list[tuple[int, int]] = []

        def progress(done: int, total: int) -> None:
            seen.append((done, total))
            if len(seen) == 2:
                stop.set()

        first = rt.rebuild(DurableBalances, progress=progress, stop=stop)
        assert (first.swapped, first.position, first.events) == (False, 100, 100)
        assert seen == [(50, last), (100, last)]
    with Runtime(url) as rt:  # a new process: the shadow is in the journal
        rt.register(Account, DurableBalances)
        second = rt.rebuild(DurableBalances)
        assert (second.swapped, second.position, second.events) == (True, last, 200)
        assert sum(rt.query(DurableBalances).snapshot()[0].values()) == 300


def test_an_interrupted_rebuild_keeps_its_progress(tmp_path: Path, small_batches: None) -> None:
    """A KeyboardInterrupt (raised here by the progress callback) leaves the shadow where
    the last batch saved it; the next rebuild goes on from there."""
    with Runtime(f"sqlite:///{tmp_path / 'r.db'}") as rt:
        rt.register(Account, DurableBalances)
        deposits(rt, 120)

        def interrupt(done: int, total: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rt.rebuild(DurableBalances, progress=interrupt)
        shadow = rt.store.load_checkpoint("projection:DurableBalances~rebuild")
        assert shadow is not None and shadow.position == 50
        assert rt.rebuild(DurableBalances).events == 70


def test_a_failing_handler_stops_the_rebuild_naming_the_event(
    small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that raises while rebuilding: a ReactorError naming the projection, the
    position and the type; nothing swapped (queries answer as before)."""
    with Runtime("memory://") as rt:
        rt.register(Account, Picky)
        deposits(rt, 60)
        bad = rt.send(Deposit("x", 13)).position
        assert rt.query(Picky, after=bad).value() == 73
        monkeypatch.setattr(Picky, "strict", True)
        with pytest.raises(ReactorError, match=rf"Picky stopped at position {bad} \(tbank"):
            rt.rebuild(Picky)
        assert rt.query(Picky).value() == 73


def test_only_registered_durable_projections_rebuild() -> None:
    """A projection that is not durable, or not registered: a ReactorError saying so."""
    with Runtime("memory://") as rt:
        rt.register(Account, Balances)
        for cls in (Balances, DurableBalances):
            with pytest.raises(ReactorError, match="registered durable projection"):
                rt.rebuild(cls)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    moves=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 9)), max_size=40),
    batch=st.integers(1, 12),
    stop_after=st.integers(1, 4),
)
def test_rebuilt_state_is_the_state_of_a_full_replay(
    moves: list[tuple[str, int]], batch: int, stop_after: int
) -> None:
    """For random deposits and withdrawals, batch sizes and a stop after some batches,
    the rebuilt state (resumed after the stop) equals a fresh instance fed every event."""
    original = rebuild_module.BATCH
    rebuild_module.BATCH = batch
    try:
        with Runtime("memory://") as rt:
            rt.register(Account, DurableBalances)
            for account, amount in moves:
                command = Deposit(account, amount) if amount % 3 else Withdraw(account, 1)
                with contextlib.suppress(ReactorError):  # an overdraft: nothing stored
                    rt.send(command)
            stop, calls = threading.Event(), []

            def progress(done: int, total: int) -> None:
                calls.append(done)
                if len(calls) == stop_after:
                    stop.set()

            rt.rebuild(DurableBalances, progress=progress, stop=stop)
            rt.rebuild(DurableBalances)
            replayed = DurableBalances()
            for env in rt.read_all(types=[Deposited, Withdrawn]):
                handler = replayed._deposited if env.type == "tbank.Deposited" else None
                (handler or replayed._withdrawn)(env.event, env)
            assert rt.query(DurableBalances).snapshot() == replayed.snapshot()
    finally:
        rebuild_module.BATCH = original


@pytest.fixture
def bank_journal(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    with Runtime(url) as rt:
        rt.register(Account, DurableBalances)
        deposits(rt, 40, amount=2)
    yield url


def test_reactor_projection_rebuild(bank_journal: str, capsys: Any) -> None:
    """The command rebuilds the projection named in the app module and says where it got."""
    status = main(
        ["projection", "rebuild", "DurableBalances", "--store", bank_journal, "--app", "tests.bank"]
    )
    assert status == 0
    assert "DurableBalances: rebuilt to position 40 (40 events in" in capsys.readouterr().out
    with Runtime(bank_journal) as rt:
        rt.register(DurableBalances)
        assert sum(rt.query(DurableBalances).snapshot()[0].values()) == 80


@pytest.mark.parametrize(
    ("name", "app", "says"),
    [
        ("DurableBalances", "tests.no_such_module", "cannot import app module"),
        ("Nope", "tests.bank", "tests.bank has no projection named 'Nope' (its projections: "),
    ],
)
def test_reactor_projection_rebuild_bad_input(
    bank_journal: str, capsys: Any, name: str, app: str, says: str
) -> None:
    """A module that does not import, or no such projection: one line, exit status 2."""
    status = main(["projection", "rebuild", name, "--store", bank_journal, "--app", app])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and says in err


def test_a_rebuild_while_commands_go_on_misses_nothing(small_batches: None) -> None:
    """Commands keep storing events while the rebuild runs (its target moves on; the last
    stretch is applied in the consumer's turn): the swapped state, after the writer is
    done, is a full replay's."""
    with Runtime("memory://") as rt:
        rt.register(Account, DurableBalances)
        deposits(rt, 200)
        writer = threading.Thread(target=deposits, args=(rt, 400, 3))
        writer.start()
        try:
            result = rt.rebuild(DurableBalances)
        finally:
            writer.join()
        assert result.swapped
        last = rt.store.last_position()
        replayed = DurableBalances()
        for env in rt.read_all(types=[Deposited]):
            replayed._deposited(env.event, env)
        assert rt.query(DurableBalances, after=last).snapshot() == replayed.snapshot()


def test_reactor_projection_rebuild_interrupted(
    bank_journal: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the command: it says the progress is kept and how to go on, exit 130;
    the same command then finishes the rebuild from the shadow."""
    monkeypatch.setattr(rebuild_module, "BATCH", 10)
    calls = []

    def interrupted(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    real = Runtime.rebuild
    monkeypatch.setattr(
        Runtime, "rebuild", lambda rt, cls, progress=None: real(rt, cls, progress=interrupted)
    )
    args = ["projection", "rebuild", "DurableBalances", "--store", bank_journal]
    assert main([*args, "--app", "tests.bank"]) == 130
    assert "the progress is kept; run the same command to go on" in capsys.readouterr().err
    monkeypatch.setattr(Runtime, "rebuild", real)
    assert main([*args, "--app", "tests.bank"]) == 0
    assert "rebuilt to position 40 (20 events in" in capsys.readouterr().out
