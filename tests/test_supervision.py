"""Supervision in the running runtime: a failing journal or projection is restarted and
the runtime keeps serving; a failure that keeps coming stops the runtime cleanly, with
the reason."""

from __future__ import annotations

import threading

import pytest

from reactor import ReactorError, RetryPolicy, Runtime, RuntimeStopped
from tests.bank import Account, Balances, Deposit
from tests.faulty import FaultyStorage
from tests.helpers import wait_for


class Snapshotting(Account, name="Snap"):
    snapshot_every = 1


def test_a_failing_journal_is_restarted_and_nothing_is_lost() -> None:
    with Runtime("faulty://") as rt:
        rt.register(Snapshotting, Balances)
        store = FaultyStorage.last
        assert store is not None
        store.fail("save_snapshot")  # the journal's next snapshot write raises
        rt.send(Deposit("a1", 5))
        assert wait_for(lambda: rt.health().failures["root"] == 1)
        results = [rt.send(Deposit("a1", n)) for n in (1, 2, 3)]  # it serves on
        assert [r.version for r in results] == [2, 3, 4]
        assert rt.query(Balances, after=results[-1].position).balance("a1") == 11


def test_a_projection_that_fails_to_start_is_restarted() -> None:
    with Runtime("faulty://") as rt:
        rt.register(Account)
        FaultyStorage.last.fail("load_checkpoint", times=2)  # type: ignore[union-attr]

        class Durable(Balances):
            durable = True

        rt.register(Durable)
        rt.send(Deposit("a1", 5))
        assert rt.query(Durable, after=1).balance("a1") == 5
        assert rt.health().failures["projections"] == 2


def test_a_projection_failing_the_same_way_again_and_again_is_stopped_alone() -> None:
    """A projection that can never load its checkpoint is not restarted in a loop: after
    three identical failures it is stopped, health says why, its queries raise, and the
    rest of the runtime serves on."""

    class Stuck(Balances):
        durable = True

    with Runtime("faulty://").register(Account, Balances) as rt:
        FaultyStorage.last.fail_when("load_checkpoint", lambda: True)  # type: ignore[union-attr]
        rt.register(Stuck)
        assert wait_for(lambda: "Stuck" in rt.health().stopped)
        assert (
            "3 times in a row with StorageError('injected failure in load_checkpoint')"
            in (rt.health().stopped["Stuck"])
        )
        with pytest.raises(ReactorError, match="projection Stuck was stopped: it failed 3 times"):
            rt.query(Stuck)
        position = rt.send(Deposit("a1", 5)).position
        assert rt.query(Balances, after=position).balance("a1") == 5
        assert rt.health().state == "running"


def test_failures_beyond_the_intensity_stop_the_runtime_with_the_reason() -> None:
    """A projection that keeps failing exhausts its supervisor, which escalates; the
    root's intensity is exceeded too: the runtime stops, saying why."""

    class Doomed(Balances):
        durable = True

    quick = RetryPolicy(first_delay=0.001, max_delay=0.002, jitter=0.0)
    rt = Runtime("faulty://").register(Account)
    rt.start()
    rt._parts.tree.projections.retire_after = None  # restarts only (identical or not)
    for sup in (rt._parts.tree.root, rt._parts.tree.projections):
        sup.max_restarts, sup.backoff = 1, quick
    FaultyStorage.last.fail_when("load_checkpoint", lambda: True)  # type: ignore[union-attr]
    rt.register(Doomed)
    assert wait_for(lambda: rt._state == "stopped", timeout=20)
    assert rt.failure is not None and "SupervisorActor(root, rest-for-one)" in rt.failure
    assert "injected failure in load_checkpoint" in rt.failure
    with pytest.raises(RuntimeStopped):
        rt.send(Deposit("a1", 1))
    rt.stop()  # idempotent after giving up
    assert wait_for(lambda: all(t.name != "reactor-give-up" for t in threading.enumerate()))
