"""The pykka adapter: `PooledActor`, a pykka actor run by a `Dispatcher`, and every use of
pykka's private names (its envelope, its stop message, its actor-loop hooks).

Each actor keeps its own mailbox and pykka's ActorRef / tell / ask / proxy / future
semantics. This module overrides pykka's private actor-loop hooks, so pykka's version is
pinned in pyproject; no other module touches pykka's private names.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry, messages
from pykka._envelope import Envelope as PykkaEnvelope

from reactor.actors.dispatch import Dispatcher

log = logging.getLogger(__name__)
_urns = itertools.count(1)
_PYKKA_MESSAGES = frozenset(
    {messages._ActorStop, messages.ProxyCall, messages.ProxyGetAttr, messages.ProxySetAttr}
)


def tell(ref: ActorRef[Any], message: Any) -> None:
    """`ref.tell(message)` between reactor's own actors, without the liveness check: for
    targets that outlive the sender's need (the journal, a waiting aggregate, the router)."""
    ref.actor_inbox.put(PykkaEnvelope(message))


def post(actor: PooledActor, message: Any) -> None:
    """Put `message` in `actor`'s mailbox (the actor object in hand: no ref, no check)."""
    actor._mailbox.put(PykkaEnvelope(message))


def mailbox_size(ref: ActorRef[Any]) -> int:
    """How many messages wait in the mailbox of a reactor actor."""
    inbox: _Mailbox = ref.actor_inbox  # type: ignore[assignment]
    return len(inbox)


def start(
    actor: PooledActor,
    *,
    supervisor: Any = None,
    static: bool = True,
    registered: bool = True,
) -> ActorRef[Any]:
    """Start `actor`: under `supervisor` (kept as its child if `static`), listed in pykka's
    ActorRegistry if `registered` (not for the many short-lived actors: the registry is a
    list), then scheduled for its first turn (which runs `on_start`)."""
    if supervisor is not None:
        supervisor.adopt(actor, static=static)
    if registered:
        ActorRegistry.register(actor.actor_ref)
    actor._start_actor_loop()
    return actor.actor_ref


def actor_of(ref: ActorRef[Any]) -> Any:
    """The actor object behind a ref (None once it is gone)."""
    return ref._actor_weakref()


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
        return start(cls(dispatcher, *args, **kwargs), registered=False)

    @property
    def waiting(self) -> int:
        """How many messages wait in the mailbox (read from any thread)."""
        return len(self._mailbox)

    def queued(self) -> list[Any]:
        """The messages waiting in the mailbox, oldest first."""
        return [envelope.message for envelope in self._mailbox._queue]

    def take_queued(self, wanted: Callable[[Any], bool], limit: int) -> list[Any]:
        """Take told messages off the head of the mailbox while `wanted(message)` and
        fewer than `limit` are taken (a message someone asks, awaiting a reply, stops it)."""
        taken: list[Any] = []
        inbox = self._mailbox._queue
        while inbox and len(taken) < limit:
            envelope = inbox[0]
            if envelope.reply_to is not None or not wanted(envelope.message):
                break
            taken.append(envelope.message)
            inbox.popleft()
        return taken

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

    def on_left_unhandled(self, messages: list[Any]) -> None:
        """Hook, on this actor's worker as it stops: the told messages still in its mailbox,
        which it will never handle (answer whoever waits on them). The default does nothing."""

    def _actor_loop_teardown(self) -> None:
        self.on_left_unhandled(self.queued())
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
