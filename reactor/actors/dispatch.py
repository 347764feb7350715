"""The pooled dispatcher: a few worker threads that run the actors that have mail.

pykka gives every actor an OS thread; reactor's actors (`reactor.actors.pooled`) are
scheduled on a `Dispatcher` instead, whose workers run each for up to `throughput` messages
per turn (Akka's dispatcher model). `run_here` lets a caller about to wait run the turns
its request leads to itself.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from reactor.actors.pooled import PooledActor

log = logging.getLogger(__name__)
T = TypeVar("T")
_local = threading.local()


def current_dispatcher() -> Dispatcher | None:
    """The dispatcher whose worker runs the calling thread, or None."""
    return _local.__dict__.get("dispatcher")


class Dispatcher:
    """A pool of `workers` threads running the actors that have mail.

    An actor is never run by two workers at once; a turn handles at most `throughput`
    messages, then the actor goes to the back of the run queue if it has more.
    `shutdown()` stops the workers; actors still alive then are not run again.
    """

    def __init__(
        self,
        workers: int = 2,
        throughput: int = 100,
        name: str = "reactor",
        *,
        may_block: bool = False,
    ) -> None:
        if workers < 1 or throughput < 1:
            raise ValueError(f"workers and throughput must be >= 1, got {workers}, {throughput}")
        self.name = name
        self.throughput = throughput
        self.may_block = may_block  # may its actors block on another actor's answer?
        self._run_queue: queue.SimpleQueue[PooledActor | None] = queue.SimpleQueue()
        self._live = 0
        self._live_lock = threading.Lock()
        self._idle = threading.Condition(self._live_lock)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def __repr__(self) -> str:
        return f"Dispatcher({self.name!r}, workers={len(self._threads)}, live={self._live})"

    @property
    def live(self) -> int:
        """How many actors started on this dispatcher have not stopped yet."""
        return self._live

    def wait_until_live_at_most(self, count: int, timeout: float) -> bool:
        """Block until at most `count` actors are alive; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._live <= count, timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the worker threads (after the turns they are running) and join them."""
        for _ in self._threads:
            self._run_queue.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    def _submit(self, actor: PooledActor) -> None:
        here: collections.deque[PooledActor] | None = _local.__dict__.get("here")
        if here is not None and actor.runs_here:
            here.append(actor)  # a waiting caller runs it: no worker to wake
        else:
            self._run_queue.put(actor)

    def _started(self) -> None:
        with self._live_lock:
            self._live += 1

    def _stopped(self) -> None:
        with self._idle:
            self._live -= 1
            self._idle.notify_all()

    def _work(self) -> None:
        _local.dispatcher = self
        get = self._run_queue.get
        while (actor := get()) is not None:
            try:
                actor._turn()
            except BaseException:  # a bug in a turn itself: keep the worker alive
                log.exception("dispatcher %s: a turn of %s failed", self.name, actor)


def run_here(start: Callable[[], T], done: Callable[[], bool]) -> T:
    """Call `start()`, then run on the calling thread the turns it leads to, until `done()`.

    For a caller about to block on an answer: instead of waking a pool worker per step and
    sleeping (each hand-off between threads costs tens of microseconds), it runs the turns
    of the actors it schedules itself (those with `runs_here`: aggregates, the journal,
    the router), one after another, as a worker would. A turn may handle other senders'
    messages too, as a worker's would. Other actors (projections, sagas, subscribers: user
    code that may be slow), and turns still queued at `done()`, go to their dispatcher's
    run queue as usual.
    """
    saved = _local.__dict__.get("here"), _local.__dict__.get("dispatcher")
    here: collections.deque[PooledActor] = collections.deque()
    _local.here = here
    try:
        result = start()
        while here and not done():
            actor = here.popleft()
            _local.dispatcher = actor.dispatcher
            try:
                actor._turn()
            except Exception:  # a bug in a turn itself, as a worker reports it
                log.exception("a turn of %s run by a waiting caller failed", actor)
        return result
    finally:
        _local.here, _local.dispatcher = saved
        for actor in here:
            actor.dispatcher._run_queue.put(actor)
