"""Supervisors: each strategy restarts the right siblings, in place (nothing queued is
lost), after a backoff; exceeding the restart intensity escalates, and the root gives up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from reactor.actors.dispatch import Dispatcher
from reactor.actors.pooled import PooledActor, actor_of, start
from reactor.actors.scheduler import Scheduler
from reactor.actors.supervisor import Strategy, SupervisorActor
from reactor.faults import RetryPolicy
from tests.helpers import wait_for

QUICK = RetryPolicy(first_delay=0.001, max_delay=0.002, jitter=0.0)


class Worker(PooledActor):
    def __init__(self, dispatcher: Dispatcher, name: str) -> None:
        super().__init__(dispatcher)
        self.name = name
        self.starts = 0
        self.seen: list[Any] = []

    def __str__(self) -> str:
        return f"Worker({self.name})"

    def on_start(self) -> None:
        self.starts += 1

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError(f"{self.name} broke")
        self.seen.append(message)
        return None

    def report(self) -> tuple[int, list[Any]]:
        return self.starts, list(self.seen)


@pytest.fixture
def world() -> Iterator[tuple[Dispatcher, Scheduler, list[str]]]:
    pool, timers, given_up = Dispatcher(2, 10, "sup-test"), Scheduler(), []
    yield pool, timers, given_up
    pykka.ActorRegistry.stop_all()
    timers.stop()
    pool.shutdown()


def tree(
    world: tuple[Dispatcher, Scheduler, list[str]], strategy: Strategy, **kw: Any
) -> tuple[SupervisorActor, list[Any]]:
    pool, timers, given_up = world
    sup_ref = SupervisorActor.start(
        pool, "test", timers, strategy=strategy, backoff=QUICK, give_up=given_up.append, **kw
    )
    sup = actor_of(sup_ref)
    workers = []
    for name in "abc":
        worker = Worker(pool, name)
        start(worker, supervisor=sup, registered=False)
        workers.append(worker)
    return sup, workers


def starts(workers: list[Worker]) -> list[int]:
    return [w.actor_ref.proxy().report().get(timeout=5)[0] for w in workers]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, [1, 2, 1]),
        (Strategy.ONE_FOR_ALL, [2, 2, 2]),
        (Strategy.REST_FOR_ONE, [1, 2, 2]),
    ],
)
def test_strategies_restart_the_right_children(
    world: Any, strategy: Strategy, restarted: list[int]
) -> None:
    sup, workers = tree(world, strategy)
    b = workers[1]
    b.actor_ref.tell("before")
    b.actor_ref.tell("boom")
    b.actor_ref.tell("after")  # queued while suspended: handled after the restart
    assert wait_for(lambda: sup.failures == 1)
    assert wait_for(lambda: starts(workers) == restarted)
    assert b.actor_ref.proxy().report().get(timeout=5)[1] == ["before", "after"]
    assert world[2] == []


def test_exceeding_the_intensity_escalates_to_the_root(world: Any) -> None:
    sup, workers = tree(world, Strategy.ONE_FOR_ONE, max_restarts=2, within=60.0)
    for n in range(3):
        workers[0].actor_ref.tell("boom")
        assert wait_for(lambda n=n: sup.failures == n + 1)
        if n < 2:
            assert wait_for(lambda n=n: starts(workers[:1]) == [n + 2])
    assert wait_for(lambda: world[2])
    assert "3 failures within 60s (at most 2 restarts allowed)" in world[2][0]
    assert "Worker(a)" in world[2][0] and "a broke" in world[2][0]


def test_a_child_supervisor_that_gives_up_is_restarted_by_its_parent(world: Any) -> None:
    pool, timers, given_up = world
    root = actor_of(
        SupervisorActor.start(pool, "root", timers, backoff=QUICK, give_up=given_up.append)
    )
    child_sup = SupervisorActor(pool, "child", timers, max_restarts=1, within=60.0, backoff=QUICK)
    start(child_sup, supervisor=root, registered=False)
    workers = []
    for name in "xy":
        worker = Worker(pool, name)
        start(worker, supervisor=child_sup, registered=False)
        workers.append(worker)
    workers[0].actor_ref.tell("boom")
    assert wait_for(lambda: starts(workers) == [2, 1])
    workers[0].actor_ref.tell("boom")  # the child supervisor's second: it escalates
    assert wait_for(lambda: root.failures == 1)
    assert wait_for(lambda: starts(workers) == [3, 2])  # the parent restarted all of it
    assert given_up == []


def test_without_a_supervisor_a_failure_stops_the_actor_like_pykka(world: Any) -> None:
    worker = Worker(world[0], "lone")
    start(worker, registered=False)
    worker.actor_ref.tell("boom")
    assert worker.actor_stopped.wait(5)


def test_a_suspended_actor_can_still_be_stopped(world: Any) -> None:
    pool, timers, _ = world
    slow = RetryPolicy(first_delay=60.0, max_delay=60.0, jitter=0.0)
    sup = actor_of(SupervisorActor.start(pool, "slow", timers, backoff=slow))
    worker = Worker(pool, "w")
    start(worker, supervisor=sup, registered=False)
    worker.actor_ref.tell("boom")
    assert wait_for(lambda: sup.failures == 1)  # suspended, its restart a minute away
    assert worker.actor_ref.stop(block=True, timeout=5) is True


def test_a_child_failing_the_same_way_in_a_row_is_retired(world: Any) -> None:
    """With retire_after=3: two different failures are restarted; three identical ones in a
    row stop the child for good (its siblings and the supervisor go on, nothing escalates)."""
    sup, workers = tree(world, Strategy.ONE_FOR_ONE, retire_after=3, within=60.0)
    a = workers[0]
    a.name = "first"
    a.actor_ref.tell("boom")
    assert wait_for(lambda: starts(workers[:1]) == [2])
    a.name = "second"  # another error: the streak starts over
    for n in range(3):
        a.actor_ref.tell("boom")
        assert wait_for(lambda n=n: sup.failures == n + 2)
    assert wait_for(lambda: a.actor_stopped.is_set())
    assert sup.retired == {
        "Worker(second)": "failed 3 times in a row with ValueError('second broke'); not restarted"
    }
    assert starts(workers[1:]) == [1, 1] and world[2] == []
