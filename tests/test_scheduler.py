"""The scheduler: timers fire in due order, stop drops the rest."""

from __future__ import annotations

import threading

import pykka

from reactor.actors.scheduler import Scheduler
from tests.helpers import wait_for


def test_timers_fire_in_due_order() -> None:
    timers = Scheduler()
    fired: list[str] = []
    try:
        for delay, name in [(0.03, "c"), (0.01, "a"), (0.02, "b")]:
            timers.schedule(delay, lambda name=name: fired.append(name))
        assert wait_for(lambda: len(fired) == 3)
        assert fired == ["a", "b", "c"] and len(timers) == 0
    finally:
        timers.stop()


def test_tell_reaches_an_actor_and_stop_drops_pending_timers() -> None:
    class Box(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[str] = []

        def on_receive(self, message: str) -> None:
            self.got.append(message)

    timers = Scheduler()
    ref = Box.start()
    try:
        timers.tell(0.01, ref, "hello")
        assert wait_for(lambda: ref.proxy().got.get(timeout=5) == ["hello"])
        never = threading.Event()
        timers.schedule(60, never.set)
        timers.stop()
        assert len(timers) == 0 and not never.is_set()
        ref.stop()
        timers2 = Scheduler()
        timers2.tell(0.0, ref, "to a stopped actor")  # dropped quietly
        assert wait_for(lambda: len(timers2) == 0)
        timers2.stop()
    finally:
        if ref.is_alive():
            ref.stop()
        timers.stop()
