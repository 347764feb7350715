"""The pooled dispatcher: pykka actors that share a few worker threads.

pykka gives every actor an OS thread; reactor's actors are `PooledActor`s instead: a
message put in the mailbox schedules the actor on a `Dispatcher`, whose workers run it
for up to `throughput` messages per turn (Akka's dispatcher model). Each actor keeps its
own mailbox and pykka's ActorRef / tell / ask / proxy / future semantics. This module
overrides pykka's private actor-loop hooks, so pykka's version is pinned in pyproject.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs
import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry, messages
from pykka._envelope import Envelope as PykkaEnvelope

log = logging.getLogger(__name__)
_urns = itertools.count(1)
T = TypeVar("T")
_local = threading.local()


def current_dispatcher() -> Dispatcher | None:
    """The dispatcher whose worker runs the calling thread, or None."""
    return _local.__dict__.get("dispatcher")


_PYKKA_MESSAGES = frozenset(
    {messages._ActorStop, messages.ProxyCall, messages.ProxyGetAttr, messages.ProxySetAttr}
)


def tell(ref: ActorRef[Any], message: Any) -> None:
    """`ref.tell(message)` between reactor's own actors, without the liveness check: for
    targets that outlive the sender's need (the journal, a waiting aggregate, the router)."""
    ref.actor_inbox.put(PykkaEnvelope(message))


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


class _Stopped:
    """A slim stand-in for pykka's `actor_stopped` Event (no Condition, no lock)."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._event is None:
            self._event = threading.Event()
            if self._set:
                self._event.set()
        return self._event.wait(timeout)


class _Mailbox:
    """The actor inbox: a deque whose `put` schedules its actor."""

    __slots__ = ("_actor", "_queue")

    def __init__(self, actor: PooledActor) -> None:
        self._actor = actor
        self._queue: collections.deque[PykkaEnvelope[Any]] = collections.deque()

    def put(self, envelope: PykkaEnvelope[Any], /) -> None:
        self._queue.append(envelope)
        self._actor._wake()

    def get(self) -> PykkaEnvelope[Any]:
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue)


@attrs.frozen
class Restart:
    """From a supervisor, ahead of everything queued: rebuild and resume."""


_WHILE_SUSPENDED = frozenset({Restart, messages._ActorStop})
_SPECIAL = _PYKKA_MESSAGES | {Restart}  # not for `on_receive` (one set lookup per message)


def _while_suspended(envelope: PykkaEnvelope[Any]) -> bool:
    """Whether a failed actor, waiting for its supervisor, takes this message now."""
    return type(envelope.message) in _WHILE_SUSPENDED


@attrs.frozen
class ChildFailed:
    """From a failed child (or a child supervisor that gave up) to its supervisor."""

    child: Any
    error: BaseException


class PooledActor(pykka.Actor):
    """A pykka actor run by a `Dispatcher` instead of a thread of its own.

    Start it with `start(dispatcher, ...)` (registered in pykka's ActorRegistry) or
    `spawn(dispatcher, ...)` (not registered: for the many short-lived actors, since the
    registry is a list). `on_start` runs on a worker before the first message.

    With a `supervisor`, a failure (an exception out of `on_start` or out of handling a
    told message) is logged with the actor, the message and the traceback, `on_failed`
    runs, and the actor waits, suspended, until its supervisor restarts it in place
    (`on_restart`); without one it stops, as pykka's actors do.
    """

    dispatcher: Dispatcher
    supervisor: Any = None  # a SupervisorActor
    runs_here: ClassVar[bool] = False  # may a caller waiting on it run its turns (`run_here`)?

    def __init__(self, dispatcher: Dispatcher, *_args: Any, **_kwargs: Any) -> None:
        # pykka.Actor.__init__ is replaced, slimmer: a counter urn, no Event, no uuid.
        self.dispatcher = dispatcher
        self.actor_urn = f"urn:reactor:{next(_urns)}"
        self._mailbox = _Mailbox(self)
        self.actor_inbox = self._mailbox
        self.actor_stopped = _Stopped()  # type: ignore[assignment]
        self._actor_ref = ActorRef(self)
        self._scheduled = threading.Lock()  # held from being queued to the end of its turn
        self._began = False
        self._suspended = False
        self._current: Any = None  # the message being handled, for failure reports

    @classmethod
    def spawn(cls, dispatcher: Dispatcher, *args: Any, **kwargs: Any) -> ActorRef[Any]:
        """Start an actor without registering it in pykka's ActorRegistry."""
        actor = cls(dispatcher, *args, **kwargs)
        actor._start_actor_loop()
        return actor.actor_ref

    @staticmethod
    def _create_actor_inbox() -> Any:  # pragma: no cover - __init__ builds the mailbox
        raise NotImplementedError

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self.dispatcher._started()
        self._scheduled.acquire()
        self.dispatcher._submit(self)  # the first turn runs on_start

    def _wake(self) -> None:
        if self._scheduled.acquire(False):  # not queued or running yet: queue it
            self.dispatcher._submit(self)

    def _turn(self) -> None:
        """Run on a worker: on_start first, then up to `throughput` messages."""
        stopped: _Stopped = self.actor_stopped  # type: ignore[assignment]
        if not self._began:
            self._began = True
            self._actor_loop_setup()
        inbox = self._mailbox._queue
        handle = self._handle_envelope
        for _ in range(self.dispatcher.throughput):
            if stopped._set or not inbox:
                break
            if self._suspended and not _while_suspended(inbox[0]):
                break  # a failed actor waits for its supervisor's Restart (or a stop)
            handle(inbox.popleft())
        if stopped._set:
            self._actor_loop_teardown()
            self.dispatcher._stopped()
            return
        # Released first, then the inbox looked at: a message put meanwhile is seen here or
        # by its sender's `_wake`, and exactly one of them queues the actor again.
        self._scheduled.release()
        if (
            inbox
            and (not self._suspended or _while_suspended(inbox[0]))
            and self._scheduled.acquire(False)
        ):
            self.dispatcher._submit(self)

    def _handle_receive(self, message: Any) -> Any:
        """pykka's own messages (stop, proxy calls) as pykka handles them, and Restart."""
        if type(message) is Restart:
            return self._restart()
        return super()._handle_receive(message)

    def _handle_envelope(self, envelope: PykkaEnvelope[Any]) -> None:
        """One message, with the semantics of pykka's own actor loop."""
        message = self._current = envelope.message
        try:
            if type(message) in _SPECIAL:
                response = self._handle_receive(message)
            else:  # the common case, one call less
                response = self.on_receive(message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            log.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            ActorRegistry.stop_all()

    def _handle_failure(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        supervisor = self.supervisor
        if supervisor is None or supervisor.actor_stopped.is_set():
            super()._handle_failure(exc_type, exc, tb)  # pykka: log, unregister, stop
            return
        log.error("%s failed handling %r", self, self._current, exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]
        self._suspended = True
        error = exc if exc is not None else RuntimeError("unknown failure")
        try:
            self.on_failed(error)
        except Exception:
            log.exception("%s: on_failed raised", self)
        tell(supervisor.actor_ref, ChildFailed(self, error))

    def on_failed(self, error: BaseException) -> None:
        """Hook, on this actor's worker, right after a supervised failure: answer whoever
        waits on the failed message. The default does nothing."""

    def on_restart(self) -> None:
        """Hook, on this actor's worker, when its supervisor restarts it: rebuild state
        (the mailbox is kept). The default runs `on_start` again."""
        self.on_start()

    def _order_restart(self) -> None:
        """Called by a supervisor: restart ahead of whatever is queued."""
        self._mailbox._queue.appendleft(PykkaEnvelope(Restart()))
        self._wake()

    def _restart(self) -> None:
        self._suspended = False
        self._current = Restart()
        try:
            self.on_restart()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _actor_loop_teardown(self) -> None:
        # pykka's teardown, plus messages that arrive while it runs (no thread waits here).
        while not self._mailbox.empty():
            envelope = self._mailbox.get()
            if envelope.reply_to is None:
                continue
            if isinstance(envelope.message, messages._ActorStop):
                envelope.reply_to.set(None)
            else:
                envelope.reply_to.set_exception(
                    exc_info=(
                        ActorDeadError,
                        ActorDeadError(f"{self.actor_ref} stopped before handling the message"),
                        None,
                    )
                )
