"""`Runtime`: what a long-running process embeds to run its aggregates and projections.

The facade of the user API. It opens the journal, starts the machinery (`Parts`), sends
commands through its `CommandRoute`, runs projections, sagas and subscribers
(`Consumers`), reports health and carries out dead-letter orders, and stops all of it
cleanly: after `stop()` no actor and no thread of it is left, and every call raises
`RuntimeStopped`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

from reactor.actors.dispatch import current_dispatcher, run_here
from reactor.actors.messages import Appended, AppendRequest, Handle, NoReply, Reply, Sync
from reactor.actors.pooled import tell
from reactor.domain import Aggregate, Projection, Saga
from reactor.errors import ReactorError, RegistrationError, RuntimeStopped, Timeout
from reactor.events import CommandResult, Envelope, NewEvent, new_id
from reactor.faults import DeadLetter, RetryPolicy
from reactor.registry import Registry, default_registry, qualified_name
from reactor.runtime import dead_letters
from reactor.runtime.commands import CommandRoute, Commands, LocalRoute
from reactor.runtime.consumers import Consumers
from reactor.runtime.health import Health, report
from reactor.runtime.parts import Parts
from reactor.runtime.queries import QueryProxy
from reactor.runtime.settings import MAX_EVENT_BYTES, Settings
from reactor.specs import ConsumerKind
from reactor.store import EventStore, open_store
from reactor.store.base import Append

__all__ = ["Health", "Runtime"]
log = logging.getLogger(__name__)


class Runtime:
    """An embedded reactive runtime on the journal at `url` (`memory://`, `sqlite:///x.db`).

    Options: `registry` (default: the global one), `workers` (pool threads, default 2),
    `throughput` (messages per actor turn), `snapshot_every` (events; a class attribute
    wins), `idle_timeout` (seconds before an idle aggregate stops), `max_live` (aggregate
    actors alive at once), `timeout` (default seconds for blocking calls),
    `subscriber_workers` (threads for subscriber functions), `retry` (the RetryPolicy of
    projections and subscribers that declare none), `backlog` (pushed events a consumer
    may have waiting before it reads the journal itself instead), `max_event_bytes` (the
    largest encoded event). A wrong value is a `ValueError` naming the option.
    Use it as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        registry: Registry | None = None,
        workers: int = 2,
        throughput: int = 100,
        snapshot_every: int | None = None,
        idle_timeout: float | None = None,
        max_live: int | None = None,
        timeout: float = 30.0,
        subscriber_workers: int = 2,
        retry: RetryPolicy | None = None,
        backlog: int = 10_000,
        max_event_bytes: int | None = MAX_EVENT_BYTES,
    ) -> None:
        if not isinstance(url, str):
            raise ValueError(f"Runtime(url) must be a store URL string, got {url!r}")
        self.url = url
        self.registry = registry if registry is not None else default_registry
        self.settings = Settings(
            workers=workers,
            throughput=throughput,
            snapshot_every=snapshot_every,
            idle_timeout=idle_timeout,
            max_live=max_live,
            timeout=timeout,
            subscriber_workers=subscriber_workers,
            retry=retry if retry is not None else RetryPolicy(),
            backlog=backlog,
            max_event_bytes=max_event_bytes,
        )
        self.timeout = timeout
        self._lock = threading.RLock()
        self._state = "new"  # new -> running -> stopping -> stopped
        self.failure: str | None = None  # why the root supervisor gave up, if it did
        self._commands = Commands()
        self._consumers = Consumers(self._saga_send)
        self._parts: Parts | None = None
        self._route: CommandRoute | None = None

    def __repr__(self) -> str:
        return f"Runtime({self.url!r}, {self._state})"

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def store(self) -> EventStore:
        """The journal this runtime runs on (while it runs)."""
        return self._running_parts().store

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> Runtime:
        """Open the journal and start the actors (idempotent). Checks the registry first."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise RuntimeStopped(f"{self!r} was stopped; make a new Runtime")
            store = open_store(self.url, registry=self.registry)
            try:
                store.claim(f"a reactor runtime on {socket.gethostname()} (pid {os.getpid()})")
            except BaseException:
                store.close()
                raise
            self._parts = parts = Parts.start(store, self.settings, self._give_up)
            self._route = LocalRoute(parts.host)
            self._state = "running"
            self._consumers.start(parts)
            if self.settings.idle_timeout is not None:
                self._sweep()
        return self

    def _give_up(self, reason: str) -> None:
        """The root supervisor's restart intensity was exceeded: stop cleanly, say why."""
        log.critical("%r gives up and stops: %s", self, reason)
        self.failure = reason
        threading.Thread(target=self.stop, name="reactor-give-up", daemon=True).start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let what was accepted finish, save checkpoints, stop everything.

        Order: sagas (the commands they send on the way still go through), aggregates (each
        answers what it was sent), the journal (every append committed), the router (every
        event delivered), the other consumers (every delivery handled, checkpoints saved),
        then the journal and the threads. Idempotent.
        """
        timeout = self._timeout(timeout)
        with self._lock:
            if self._state != "running" or self._parts is None:
                self._state = "stopped"
                return
            self._state = "stopping"
            parts = self._parts
        tree = parts.tree
        try:
            for sup in tree.supervisors():
                sup.actor_ref.stop(block=True, timeout=timeout)  # no restarts while stopping
            self._drain(parts, timeout)
            self._consumers.stop([ConsumerKind.SAGA], timeout)
            parts.host.stop_all()
            if not parts.host.wait_stopped(timeout):
                log.warning("%r: aggregates still busy after %.1fs", self, timeout)
            self._drain(parts, timeout)
            self._consumers.stop([ConsumerKind.PROJECTION, ConsumerKind.SUBSCRIBER], timeout)
            _sync(tree.journal, timeout)
            tree.router.stop(block=True, timeout=timeout)
            tree.journal.stop(block=True, timeout=timeout)
        finally:
            parts.shutdown(timeout)
            self._consumers.clear()
            self._state = "stopped"

    @staticmethod
    def _drain(parts: Parts, timeout: float) -> None:
        """Wait until what was sent to the journal is committed and routed."""
        _sync(parts.tree.journal, timeout)
        _sync(parts.tree.router, timeout)

    def _timeout(self, timeout: float | None) -> float:
        """`timeout`, or the Runtime's default for None."""
        return self.settings.timeout if timeout is None else timeout

    def _running(self) -> None:
        if self._state != "running":
            raise RuntimeStopped(
                f"{self!r} is not running: start() it (or use `with Runtime(...)`)"
                if self._state == "new"
                else f"{self!r} is {self._state}: it takes no more work"
            )

    def _running_parts(self) -> Parts:
        self._running()
        assert self._parts is not None
        return self._parts

    def _sweep(self) -> None:
        parts = self._parts
        if self._state != "running" or parts is None or self.settings.idle_timeout is None:
            return
        parts.host.sweep()
        parts.timers.schedule(self.settings.idle_timeout / 2, self._sweep)

    # -- registration -------------------------------------------------------------------------

    def register(self, *classes: type) -> Runtime:
        """Register Aggregate, Projection and Saga classes (before or after `start`).

        Raises `RegistrationError` for anything else, an aggregate without key or handlers,
        a command class two aggregates handle, or two classes under one name.
        """
        with self._lock:
            for cls in classes:
                if isinstance(cls, type) and issubclass(cls, Aggregate):
                    self._commands.register(cls, self.settings.snapshot_every)
                elif isinstance(cls, type) and issubclass(cls, Projection | Saga):
                    self._consumers.register(cls, self.registry)
                else:
                    raise RegistrationError(
                        f"register() takes Aggregate, Projection and Saga subclasses, got {cls!r}"
                    )
        return self

    def _saga_send(self, command: Any, command_id: str, correlation_id: str | None) -> None:
        """A command from a saga: routed even while stopping (sagas drain first)."""
        try:
            spec = self._commands.spec(command)
            stream_id = self._commands.stream_of(spec, command)
        except ReactorError as e:
            log.error("a saga sent %r, which cannot be routed: %s", command, e)
            return
        handle = Handle(command, command_id, correlation_id or command_id, NoReply(command), True)
        if self._route is not None:
            self._route.deliver(spec, stream_id, handle)

    # -- commands -----------------------------------------------------------------------------

    def submit(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Reply:
        """Send a command without waiting: returns a future whose `.get(timeout)` gives the
        `CommandResult` or raises what the command raised (`Rejected`, ...)."""
        reply = Reply()
        self._send(command, command_id, correlation_id, reply)
        return reply

    def send(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Send a command and wait for its `CommandResult`.

        Raises `Rejected` (nothing stored), `ConcurrencyError` (after the retries), the
        handler's own exception, `UnknownCommand`, `InvalidCommand`, `Timeout` or
        `RuntimeStopped`. A `command_id` already handled returns the first result and
        stores nothing. With no `timeout`, the calling thread itself runs the turns its
        command needs of the aggregate, the journal and the router when they are idle (no
        hand-off between threads). With a `timeout`, the work runs on the pool and `send`
        raises `Timeout` when it passes; the command may still complete: send it again with
        the same `command_id` to learn its outcome (nothing is stored twice).
        """
        worker = current_dispatcher()
        if worker is not None and not worker.may_block:
            raise ReactorError(
                f"send() would block a worker of {worker.name!r} (and could deadlock it); "
                "use submit() and do not wait, or send from a subscriber"
            )
        reply = Reply()
        if timeout is None:
            cid, stream_id = run_here(
                lambda: self._send(command, command_id, correlation_id, reply), reply.done
            )
        else:
            cid, stream_id = self._send(command, command_id, correlation_id, reply)
        wait = self._timeout(timeout)
        try:
            result: CommandResult = reply.get(wait)
        except Timeout:
            raise _timed_out(command, cid, stream_id, wait) from None
        return result

    async def send_async(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """`send` for asyncio code: awaits the result without blocking the event loop."""
        reply = Reply(loop=asyncio.get_running_loop())
        cid, stream_id = self._send(command, command_id, correlation_id, reply)
        wait = self._timeout(timeout)
        try:
            result: CommandResult = await asyncio.wait_for(reply.wait(), wait)
        except TimeoutError:
            raise _timed_out(command, cid, stream_id, wait) from None
        return result

    def _send(
        self, command: object, command_id: str | None, correlation_id: str | None, reply: Reply
    ) -> tuple[str, str]:
        """Check `command` and hand it to its route; its command id and stream."""
        self._running()
        spec = self._commands.spec(command)
        stream_id = self._commands.stream_of(spec, command)
        cid = command_id or new_id()
        handle = Handle(command, cid, correlation_id or cid, reply, command_id is not None)
        assert self._route is not None
        self._route.deliver(spec, stream_id, handle)
        return cid, stream_id

    def publish(
        self,
        event: object,
        *,
        stream: str,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Append an event no aggregate produces (an integration event, a fact from outside)
        to `stream`, and wait until it is durable."""
        parts = self._running_parts()
        record = parts.store.record(NewEvent(event, correlation_id=correlation_id))
        reply = Reply()
        request = AppendRequest(Append(stream, [record], expected_version), (event,), reply=reply)
        if timeout is None:
            run_here(lambda: tell(parts.tree.journal, request), reply.done)
        else:
            tell(parts.tree.journal, request)
        done: Appended = reply.get(self._timeout(timeout))
        last = done.envelopes[-1]
        return CommandResult(stream, last.seq, last.position, done.envelopes)

    # -- reading ------------------------------------------------------------------------------

    def query(self, projection: type, *, after: int = 0, timeout: float | None = None) -> Any:
        """A proxy whose method calls run inside the projection's actor, once it has handled
        every event up to global position `after` (read-your-writes)."""
        parts = self._running_parts()
        running = self._consumers.projection(projection)
        if running is None:
            raise RegistrationError(f"{qualified_name(projection)} is not a registered projection")
        return QueryProxy(
            parts.tree.router,
            running.ref,
            running.spec,
            after,
            self._timeout(timeout),
            self._running,
        )

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Envelope]:
        """The envelopes of one stream, in seq order."""
        return list(self.store.read_stream(stream_id, from_seq, to_seq))

    def read_all(
        self, after: int = 0, types: Collection[type | str] | None = None, limit: int | None = None
    ) -> Iterator[Envelope]:
        """Every envelope after global position `after` (of `types`), lazily, in order."""
        return self.store.read_all(after, types, limit)

    def subscribe(
        self,
        fn: Callable[[Any, Envelope], object],
        *,
        types: Collection[type | str] | None = None,
        name: str | None = None,
        from_position: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> str:
        """Call `fn(event, envelope)` for every committed event of `types` (None: all).

        With a `name` the position is checkpointed: the first start begins at the current
        head (or `from_position`), durably so before this returns, and a restart resumes
        after the checkpoint; delivery is at least once (dedupe on `envelope.event_id`).
        `fn` runs on a subscriber thread, where `rt.send` is allowed. A raise is retried by
        `retry` (default: the Runtime's), then dead-lettered under the subscriber's name.
        Returns that name.
        """
        self._running()
        names = None if types is None else frozenset(self.registry.type_names(types))
        return self._consumers.subscribe(fn, names, name, from_position, retry)

    # -- monitoring ---------------------------------------------------------------------------

    def health(self) -> Health:
        """A snapshot of the runtime: state, journal head, each consumer's position (and
        how far behind it is), live aggregates, failures per supervisor, dead letters.
        It waits behind no actor's mailbox."""
        parts = self._parts
        if self._state != "running" or parts is None:
            return Health(state=self._state, failure=self.failure)
        return report(self._state, self.failure, parts, self._consumers)

    # -- dead letters -------------------------------------------------------------------------

    def dead_letters(self, handler: str | None = None) -> list[DeadLetter]:
        """The events handlers gave up on (of one handler: a projection or saga class name,
        or a subscriber name), oldest first; each counts the events parked behind it."""
        parts = self._running_parts()
        _sync(parts.tree.journal, self.settings.timeout)  # letters told to it are saved
        return dead_letters.listed(parts.store, handler)

    def redrive(self, letter_id: str, *, timeout: float | None = None) -> int:
        """Deliver a dead letter's event to its handler again, then the events parked behind
        it, in order; returns how many were delivered. If one fails again it stays (the
        attempt counted) and its error is raised here."""
        return self._order(letter_id, "redrive", timeout)

    def discard(self, letter_id: str, *, timeout: float | None = None) -> int:
        """Drop a dead letter and deliver the events parked behind it, in order."""
        return self._order(letter_id, "discard", timeout)

    def _order(self, letter_id: str, what: str, timeout: float | None) -> int:
        parts = self._running_parts()
        _sync(parts.tree.journal, self.settings.timeout)
        reply = dead_letters.order(parts.store, self._consumers, letter_id, what)
        delivered: int = reply.get(self._timeout(timeout))
        return delivered


def _sync(ref: Any, timeout: float) -> Any:
    """Wait until the actor behind `ref` has handled everything told to it before."""
    reply = Reply()
    ref.tell(Sync(reply))
    return reply.get(timeout)


def _timed_out(command: object, command_id: str, stream_id: str, timeout: float) -> Timeout:
    return Timeout(
        f"{type(command).__name__} (command id {command_id!r}) got no answer within "
        f"{timeout:g}s from the aggregate of stream {stream_id!r}; it may still complete: "
        f"send it again with command_id={command_id!r} to learn its outcome (nothing is "
        "stored twice)"
    )
