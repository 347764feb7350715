"""The pooled dispatcher keeps pykka's actor semantics: tell, ask, proxies and futures,
FIFO mailboxes, one message at a time per actor, the start/stop/failure hooks, and no
thread per actor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.actors.dispatch import Dispatcher, run_here
from reactor.actors.messages import Reply
from reactor.actors.pooled import PooledActor, actor_of, tell
from tests.helpers import wait_for


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(workers=3, throughput=5, name="test-pool")
    yield d
    pykka.ActorRegistry.stop_all()
    d.shutdown()


class Recorder(PooledActor):
    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(dispatcher)
        self.seen: list[Any] = []
        self.events: list[str] = []
        self.running = 0
        self.overlaps = 0

    def on_start(self) -> None:
        self.events.append("start")

    def on_stop(self) -> None:
        self.events.append("stop")

    def on_receive(self, message: Any) -> Any:
        self.running += 1
        if self.running > 1:
            self.overlaps += 1
        if message == "boom":
            self.running -= 1
            raise ValueError("boom")
        self.seen.append(message)
        self.running -= 1
        return ("echo", message)

    def add(self, a: int, b: int) -> int:
        return a + b


def test_ask_tell_and_proxy(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher)
    ref.tell("one")
    assert ref.ask("two", timeout=5) == ("echo", "two")
    proxy = ref.proxy()
    assert proxy.add(2, 3).get(timeout=5) == 5
    assert proxy.seen.get(timeout=5) == ["one", "two"]
    assert proxy.events.get(timeout=5) == ["start"]
    future = ref.ask("three", block=False)
    assert future.get(timeout=5) == ("echo", "three")
    ref.stop()
    assert not ref.is_alive()


def test_exception_from_ask_goes_to_the_caller_and_the_actor_lives(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)
    assert ref.ask("after", timeout=5) == ("echo", "after")
    ref.stop()


def test_exception_from_tell_stops_the_actor_like_pykka(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher)
    ref.tell("boom")
    assert ref.actor_stopped.wait(5)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")
    assert dispatcher.wait_until_live_at_most(0, 5)


@given(st.lists(st.integers(1, 3), max_size=150), st.integers(1, 4), st.integers(1, 4))
def test_messages_arrive_in_sender_order_one_at_a_time(
    senders: list[int], workers: int, throughput: int
) -> None:
    """Whatever the pool size and turn length: per-sender FIFO, nothing lost, no overlap."""
    d = Dispatcher(workers=workers, throughput=throughput, name="order-pool")
    try:
        ref = Recorder.spawn(d)
        plan = {s: [(s, i) for i, who in enumerate(senders) if who == s] for s in (1, 2, 3)}
        threads = [
            threading.Thread(target=lambda msgs=msgs: [ref.tell(m) for m in msgs])
            for msgs in plan.values()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = ref.proxy().seen.get(timeout=5)
        for sender, sent in plan.items():
            assert [m for m in seen if m[0] == sender] == sent
        assert len(seen) == len(senders)
        assert ref.proxy().overlaps.get(timeout=5) == 0
        ref.stop()
    finally:
        d.shutdown()


def test_per_sender_fifo_with_tagged_messages(dispatcher: Dispatcher) -> None:
    ref = Recorder.spawn(dispatcher)

    def send(tag: str) -> None:
        for i in range(300):
            ref.tell((tag, i))

    threads = [threading.Thread(target=send, args=(tag,)) for tag in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = ref.proxy().seen.get(timeout=5)
    for tag in "abc":
        assert [i for t, i in seen if t == tag] == list(range(300))
    ref.stop()


def test_stop_fails_pending_asks_and_calls_on_stop(dispatcher: Dispatcher) -> None:
    class Slow(Recorder):
        def on_receive(self, message: Any) -> Any:
            if message == "block":
                gate.wait(5)
            return super().on_receive(message)

    gate = threading.Event()
    ref = Slow.start(dispatcher)
    actor = actor_of(ref)
    ref.tell("block")
    stop = ref.stop(block=False)
    late = ref.ask("late", block=False)
    gate.set()
    assert stop.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=5)
    assert actor is not None and actor.events == ["start", "stop"]


def test_many_actors_share_the_pool_threads(dispatcher: Dispatcher) -> None:
    before = threading.active_count()
    refs = [Recorder.spawn(dispatcher) for _ in range(10_000)]
    assert threading.active_count() == before
    futures = [ref.ask(n, block=False) for n, ref in enumerate(refs)]
    assert [f.get(timeout=30) for f in futures] == [("echo", n) for n in range(10_000)]
    for ref in refs:
        ref.stop(block=False)
    assert dispatcher.wait_until_live_at_most(0, 30)
    assert pykka.ActorRegistry.get_all() == []  # spawn does not register


class Relay(PooledActor):
    """Records the thread of each turn, then passes the message on (or answers it)."""

    runs_here = True

    def __init__(self, dispatcher: Dispatcher, next_ref: Any = None) -> None:
        super().__init__(dispatcher)
        self.next_ref = next_ref
        self.threads: list[str] = []

    def on_receive(self, message: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if self.next_ref is not None:
            tell(self.next_ref, message)
        else:
            message.set(threading.current_thread().name)


class Elsewhere(Relay):
    runs_here = False


def idle(*refs: Any) -> None:
    """Wait until each actor has started and no worker holds it (a turn of its own)."""
    for ref in refs:
        actor = actor_of(ref)
        assert wait_for(lambda actor=actor: actor._began and not actor._scheduled.locked())


def test_run_here_runs_the_chain_on_the_waiting_thread(dispatcher: Dispatcher) -> None:
    last = Relay.spawn(dispatcher)
    middle = Relay.spawn(dispatcher, last)
    first = Relay.spawn(dispatcher, middle)
    idle(first, middle, last)
    reply = Reply()
    assert run_here(lambda: first.tell(reply), reply.done) is None
    assert reply.done() and reply.get(0) == threading.current_thread().name
    for ref in (first, last):
        assert ref.proxy().threads.get(timeout=5) == [threading.current_thread().name]


def test_run_here_leaves_other_actors_and_leftovers_to_the_workers(
    dispatcher: Dispatcher,
) -> None:
    me = threading.current_thread().name
    other = Elsewhere.spawn(dispatcher)
    first = Relay.spawn(dispatcher, other)
    idle(other, first)
    reply = Reply()
    run_here(lambda: first.tell(reply), reply.done)
    assert reply.get(5) != me  # `other` does not run here, so `first` ran and passed it on
    # done() at once: what the start scheduled is left to the workers
    second = Relay.spawn(dispatcher)
    idle(second)
    late = Reply()
    run_here(lambda: second.tell(late), lambda: True)
    assert late.get(5).startswith("test-pool")


def test_a_broken_turn_run_here_is_logged_and_the_caller_goes_on(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Relay):
        def _turn(self) -> None:
            raise RuntimeError("broken turn")

    ran = Relay.spawn(dispatcher)
    idle(ran)
    ref = Broken(dispatcher)  # never started: its first turn is the one run here
    ref._began = True
    reply = Reply()
    run_here(lambda: (tell(ref.actor_ref, "x"), ran.tell(reply)), reply.done)
    assert reply.get(0) == threading.current_thread().name
    assert "broken turn" in caplog.text


def test_a_restart_ordered_as_a_suspended_turn_ends_is_not_lost(dispatcher: Dispatcher) -> None:
    """The supervisor's Restart comes while the failed actor's turn is ending (its wake
    finds the actor still scheduled): the ending turn must queue the actor again."""
    ref = Recorder.spawn(dispatcher)
    idle(ref)
    actor = actor_of(ref)
    restarted = threading.Event()
    actor.on_restart = restarted.set  # type: ignore[method-assign]
    actor._suspended = True  # as after a supervised failure

    class RestartOnRelease:
        """The actor's scheduling lock, ordering the Restart just before its first release."""

        def __init__(self, lock: Any) -> None:
            self.lock, self.armed = lock, True

        def acquire(self, blocking: bool = True) -> bool:
            return bool(self.lock.acquire(blocking))

        def release(self) -> None:
            if self.armed:
                self.armed = False
                actor._order_restart()
            self.lock.release()

        def locked(self) -> bool:
            return bool(self.lock.locked())

    actor._scheduled = RestartOnRelease(actor._scheduled)
    ref.tell("waits for the restart")  # a turn that takes nothing, and ends
    assert restarted.wait(5)
    assert wait_for(lambda: actor.seen == ["waits for the restart"])
    ref.stop()
