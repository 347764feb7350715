"""`Runtime`: what a long-running process embeds to run its aggregates and projections.

It opens the journal, starts the dispatchers and the fixed actors (journal, router),
routes commands to aggregate actors, runs projections and subscribers, and stops all of
it cleanly: after `stop()` no actor and no thread of it is left, and every call raises
`RuntimeStopped`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import attrs
import pykka
from pykka import ActorRef

from reactor.actors.aggregate import AggregateHost
from reactor.actors.consumer import ConsumerActor
from reactor.actors.dispatch import Dispatcher, current_dispatcher, run_here
from reactor.actors.messages import (
    Appended,
    AppendRequest,
    Barrier,
    DeadLetterOrder,
    Handle,
    NoReply,
    Query,
    Reply,
    SaveCheckpoint,
    Sync,
)
from reactor.actors.scheduler import Scheduler
from reactor.actors.specs import AggregateType, ConsumerType
from reactor.actors.tree import build_tree
from reactor.domain import Aggregate, Projection, Saga
from reactor.errors import ReactorError, RegistrationError, RuntimeStopped, UnknownCommand
from reactor.events import CommandResult, Envelope, NewEvent, new_id
from reactor.faults import DeadLetter, RetryPolicy
from reactor.registry import Registry, default_registry, qualified_name
from reactor.store import EventStore, open_store
from reactor.store.base import Append, Checkpoint, dead_letter_by_id

log = logging.getLogger(__name__)


class Runtime:
    """An embedded reactive runtime on the journal at `url` (`memory://`, `sqlite:///x.db`).

    Options: `registry` (default: the global one), `workers` (pool threads, default 2),
    `throughput` (messages per actor turn), `snapshot_every` (events; a class attribute
    wins), `idle_timeout` (seconds before an idle aggregate stops), `max_live` (aggregate
    actors alive at once), `timeout` (default seconds for blocking calls), `retry` (the
    RetryPolicy of projections and subscribers that declare none).
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
    ) -> None:
        self.url = url
        self.registry = registry if registry is not None else default_registry
        self.workers, self.throughput = workers, throughput
        self.snapshot_every, self.idle_timeout, self.max_live = (
            snapshot_every,
            idle_timeout,
            max_live,
        )
        self.timeout = timeout
        self.subscriber_workers = subscriber_workers
        self.retry = retry if retry is not None else RetryPolicy()
        self._lock = threading.RLock()
        self._state = "new"  # new -> running -> stopping -> stopped
        self.failure: str | None = None  # why the root supervisor gave up, if it did
        self._commands: dict[type, AggregateType] = {}
        self._projections: dict[type, ConsumerType] = {}
        self._sagas: dict[type, ConsumerType] = {}
        self._consumers: dict[str, ActorRef[Any]] = {}  # by checkpoint name
        self._query_refs: dict[type, ActorRef[Any]] = {}

    def __repr__(self) -> str:
        return f"Runtime({self.url!r}, {self._state})"

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> Runtime:
        """Open the journal and start the actors (idempotent). Checks the registry first."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise RuntimeStopped(f"{self!r} was stopped; make a new Runtime")
            self.store: EventStore = open_store(self.url, registry=self.registry)
            self._pool = Dispatcher(self.workers, self.throughput, "reactor")
            self._io = Dispatcher(1, self.throughput, "reactor-journal")
            self._blocking = Dispatcher(
                self.subscriber_workers, 1, "reactor-subscribers", may_block=True
            )
            self._timers = Scheduler()
            self._build_tree()
            self._state = "running"
            for spec in (*self._projections.values(), *self._sagas.values()):
                self._start_registered(spec)
            if self.idle_timeout is not None:
                self._sweep()
        return self

    def _build_tree(self) -> None:
        self._tree = build_tree(self._pool, self._io, self.store, self._timers, self._give_up)
        self._router, self._journal = self._tree.router, self._tree.journal
        self._host = AggregateHost(
            self._pool,
            self.store,
            self._journal,
            max_live=self.max_live,
            idle_timeout=self.idle_timeout,
            supervisor=self._tree.aggregates,
        )

    def _give_up(self, reason: str) -> None:
        """The root supervisor's restart intensity was exceeded: stop cleanly, say why."""
        log.critical("%r gives up and stops: %s", self, reason)
        self.failure = reason
        threading.Thread(target=self.stop, name="reactor-give-up", daemon=True).start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let what was accepted finish, save checkpoints, stop everything.

        Order: aggregates (each answers what it was sent), the journal (every append
        committed), the router (every event delivered), consumers (every delivery handled,
        checkpoints saved), then the journal and the threads. Idempotent.
        """
        timeout = self._timeout(timeout)
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopping"
        try:
            for sup in self._tree.supervisors():
                sup.actor_ref.stop(block=True, timeout=timeout)  # no restarts while stopping
            sagas = {n: r for n, r in self._consumers.items() if n.startswith("saga:")}
            if sagas:  # sagas first: the commands they send on the way still go through
                self._sync(self._journal, timeout)
                self._sync(self._router, timeout)
                self._stop_consumers(sagas, timeout)
            self._host.stop_all()
            if not self._host.wait_stopped(timeout):
                log.warning("%r: aggregates still busy after %.1fs", self, timeout)
            self._sync(self._journal, timeout)
            self._sync(self._router, timeout)
            rest = {n: r for n, r in self._consumers.items() if n not in sagas}
            self._stop_consumers(rest, timeout)
            self._sync(self._journal, timeout)
            self._router.stop(block=True, timeout=timeout)
            self._journal.stop(block=True, timeout=timeout)
        finally:
            self._timers.stop()
            for dispatcher in (self._blocking, self._pool, self._io):
                dispatcher.shutdown(timeout)
            self.store.close()
            self._consumers.clear()
            self._query_refs.clear()
            self._state = "stopped"

    def _stop_consumers(self, consumers: dict[str, ActorRef[Any]], timeout: float) -> None:
        for name, ref in consumers.items():
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.warning("%r: %s did not stop within %.1fs", self, name, timeout)

    def _by_label(self) -> dict[str, ActorRef[Any]]:
        """Consumers by label (the projection or saga class name, the subscriber name), as
        dead letters and health reports name them."""
        return {name.partition(":")[2]: ref for name, ref in self._consumers.items()}

    @staticmethod
    def _sync(ref: ActorRef[Any], timeout: float) -> Any:
        reply = Reply()
        ref.tell(Sync(reply))
        return reply.get(timeout)

    def _timeout(self, timeout: float | None) -> float:
        """`timeout`, or the Runtime's default for None."""
        return self.timeout if timeout is None else timeout

    def _running(self) -> None:
        if self._state != "running":
            raise RuntimeStopped(
                f"{self!r} is not running: start() it (or use `with Runtime(...)`)"
                if self._state == "new"
                else f"{self!r} is {self._state}: it takes no more work"
            )

    def _sweep(self) -> None:
        assert self.idle_timeout is not None
        if self._state != "running":
            return
        self._host.sweep()
        self._timers.schedule(self.idle_timeout / 2, self._sweep)

    # -- registration -------------------------------------------------------------------------

    def register(self, *classes: type) -> Runtime:
        """Register Aggregate and Projection classes (before or after `start`).

        Raises `RegistrationError` for anything else, an aggregate without key or handlers,
        or a command class two aggregates handle.
        """
        with self._lock:
            for cls in classes:
                if isinstance(cls, type) and issubclass(cls, Aggregate):
                    self._register_aggregate(cls)
                elif isinstance(cls, type) and issubclass(cls, Saga):
                    if cls not in self._sagas:
                        spec = cls.__reactor_type__(self.registry, self._saga_send)
                        self._register_consumer(self._sagas, spec)
                elif isinstance(cls, type) and issubclass(cls, Projection):
                    if cls not in self._projections:
                        spec = cls.__reactor_type__(self.registry)
                        self._register_consumer(self._projections, spec)
                else:
                    raise RegistrationError(
                        f"register() takes Aggregate, Projection and Saga subclasses, got {cls!r}"
                    )
        return self

    def _register_aggregate(self, cls: type[Aggregate]) -> None:
        spec = cls.__reactor_type__(self.snapshot_every)
        for command_type in spec.handlers:
            other = self._commands.get(command_type)
            if other is not None and other.cls is not cls:
                raise RegistrationError(
                    f"{qualified_name(command_type)} is handled by both "
                    f"{qualified_name(other.cls)} and {qualified_name(cls)}"
                )
        for command_type in spec.handlers:
            self._commands[command_type] = spec

    def _register_consumer(self, table: dict[type, ConsumerType], spec: ConsumerType) -> None:
        table[spec.cls] = spec
        if self._state == "running":
            self._start_registered(spec)

    def _start_registered(self, spec: ConsumerType) -> None:
        """Start a registered projection or saga (checkpointed if durable)."""
        self._start_consumer(self._pool, spec, (spec.factory or spec.cls)(), 0, False)

    def _saga_send(self, command: Any, command_id: str, correlation_id: str | None) -> None:
        """A command from a saga: routed even while stopping (sagas drain first)."""
        spec = self._commands.get(type(command))
        if spec is None:
            log.error("a saga sent %r, which no registered aggregate handles", command)
            return
        self._host.route(
            spec, Handle(command, command_id, correlation_id or command_id, NoReply(command), True)
        )

    def _start_consumer(
        self,
        dispatcher: Dispatcher,
        spec: ConsumerType,
        instance: Any,
        start_at: int,
        checkpoints: bool,
    ) -> ActorRef[Any]:
        tree = self._tree
        sup = tree.subscribers if spec.name.startswith("subscriber:") else tree.projections
        actor = ConsumerActor(
            dispatcher,
            spec,
            instance,
            self.store,
            self._router,
            self._journal,
            self._timers,
            self.retry,
            start_at=start_at,
            checkpoints=checkpoints,
        )
        sup.adopt(actor)
        ref = actor.actor_ref
        pykka.ActorRegistry.register(ref)
        actor._start_actor_loop()
        self._consumers[spec.name] = ref
        if spec.cls in self._projections:
            self._query_refs[spec.cls] = ref
        return ref

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
        return self._route(command, command_id, correlation_id, Reply())

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
        handler's own exception, `UnknownCommand`, `Timeout` or `RuntimeStopped`.
        A `command_id` already handled returns the first result and stores nothing.
        While it waits, the calling thread itself runs the turns its command needs of the
        aggregate, the journal and the router when they are idle (no hand-off between
        threads); `timeout` bounds the wait for work done elsewhere.
        """
        worker = current_dispatcher()
        if worker is not None and not worker.may_block:
            raise ReactorError(
                f"send() would block a worker of {worker.name!r} (and could deadlock it); "
                "use submit() and do not wait, or send from a subscriber"
            )
        reply = Reply()
        run_here(lambda: self._route(command, command_id, correlation_id, reply), reply.done)
        result: CommandResult = reply.get(self._timeout(timeout))
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
        self._route(command, command_id, correlation_id, reply)
        result: CommandResult = await asyncio.wait_for(reply.wait(), self._timeout(timeout))
        return result

    def _route(
        self, command: object, command_id: str | None, correlation_id: str | None, reply: Reply
    ) -> Reply:
        self._running()
        spec = self._commands.get(type(command))
        if spec is None:
            known = ", ".join(sorted(c.__name__ for c in self._commands)) or "none"
            raise UnknownCommand(
                f"no registered aggregate handles {qualified_name(type(command))} "
                f"(commands handled: {known}); register() its aggregate first"
            )
        cid = command_id or new_id()
        self._host.route(
            spec, Handle(command, cid, correlation_id or cid, reply, command_id is not None)
        )
        return reply

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
        self._running()
        record = self.store.record(NewEvent(event, correlation_id=correlation_id))
        reply = Reply()
        request = AppendRequest(Append(stream, [record], expected_version), (event,), reply=reply)
        run_here(lambda: self._journal.tell(request), reply.done)
        done: Appended = reply.get(self._timeout(timeout))
        last = done.envelopes[-1]
        return CommandResult(stream, last.seq, last.position, done.envelopes)

    # -- reading ------------------------------------------------------------------------------

    def query(self, projection: type, *, after: int = 0, timeout: float | None = None) -> Any:
        """A proxy whose method calls run inside the projection's actor, once it has handled
        every event up to global position `after` (read-your-writes)."""
        self._running()
        ref = self._query_refs.get(projection)
        if ref is None:
            raise RegistrationError(f"{qualified_name(projection)} is not a registered projection")
        spec = self._projections[projection]
        return _QueryProxy(self, ref, spec, after, self._timeout(timeout))

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Envelope]:
        """The envelopes of one stream, in seq order."""
        self._running()
        return list(self.store.read_stream(stream_id, from_seq, to_seq))

    def read_all(
        self, after: int = 0, types: Collection[type | str] | None = None, limit: int | None = None
    ) -> Iterator[Envelope]:
        """Every envelope after global position `after` (of `types`), lazily, in order."""
        self._running()
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
        after the checkpoint; delivery is at
        least once (dedupe on `envelope.event_id`). `fn` runs on a subscriber thread, where
        `rt.send` is allowed. A raise is retried by `retry` (default: the Runtime's), then
        dead-lettered under the subscriber's name. Returns that name.
        """
        self._running()
        names = None if types is None else frozenset(self.registry.type_names(types))
        label = name or f"{getattr(fn, '__qualname__', 'subscriber')}-{new_id()}"
        if f"subscriber:{label}" in self._consumers:
            raise RegistrationError(f"a subscriber named {name!r} is already running")

        def call(_instance: None, event: Any, env: Envelope) -> None:
            fn(event, env)

        spec = ConsumerType(
            type(fn),
            f"subscriber:{label}",
            label,
            {t: call for t in names} if names is not None else {"*": call},
            names,
            False,
            1,
            {},
            frozenset(),
            retry,
        )
        start = self.store.last_position() if from_position is None else from_position
        if name is not None and self.store.storage.load_checkpoint(spec.name) is None:
            # Where it begins is durable before this returns: a crash after it must not
            # restart it at a later head, past events it was owed.
            reply = Reply()
            self._journal.tell(SaveCheckpoint(Checkpoint(spec.name, start), reply))
            reply.get(self.timeout)
        self._start_consumer(self._blocking, spec, None, start, name is not None)
        return label

    # -- monitoring ---------------------------------------------------------------------------

    def health(self, *, timeout: float | None = None) -> Health:
        """A snapshot of the runtime: state, journal head, each consumer's position (and
        how far behind it is), live aggregates, failures per supervisor, dead letters."""
        if self._state != "running":
            return Health(self._state, self.failure, 0, {}, 0, 0, 0, {}, 0)
        timeout = self._timeout(timeout)
        head = self._sync(self._journal, timeout)
        positions = {label: self._sync(ref, timeout) for label, ref in self._by_label().items()}
        host = self._host
        return Health(
            self._state,
            self.failure,
            head,
            positions,
            len(host),
            host.started,
            host.passivated,
            {s.name: s.failures for s in self._tree.supervisors()},
            len(self.store.storage.dead_letters()),
        )

    # -- dead letters -------------------------------------------------------------------------

    def dead_letters(self, handler: str | None = None) -> list[DeadLetter]:
        """The events handlers gave up on (of one handler: a projection class name or a
        subscriber name), oldest first; each counts the events parked behind it."""
        self._running()
        self._sync(self._journal, self.timeout)  # dead letters told to it before now are saved
        letters = []
        for d in self.store.storage.dead_letters(handler):
            envelope = self.store.at(d.position)
            if envelope is None:
                continue
            letters.append(
                DeadLetter(d.id, d.handler, envelope, d.error, d.attempts, len(d.parked))
            )
        return letters

    def redrive(self, letter_id: str, *, timeout: float | None = None) -> int:
        """Deliver a dead letter's event to its handler again, then the events parked behind
        it, in order; returns how many were delivered. If one fails again it stays (the
        attempt counted) and its error is raised here."""
        return self._order(letter_id, "redrive", timeout)

    def discard(self, letter_id: str, *, timeout: float | None = None) -> int:
        """Drop a dead letter and deliver the events parked behind it, in order."""
        return self._order(letter_id, "discard", timeout)

    def _order(self, letter_id: str, order: str, timeout: float | None) -> int:
        self._running()
        self._sync(self._journal, self.timeout)
        letter = dead_letter_by_id(self.store.storage, letter_id)
        if letter is None:
            raise ReactorError(f"no dead letter {letter_id!r} in {self.store.storage.url}")
        ref = self._by_label().get(letter.handler)
        if ref is None:
            raise ReactorError(
                f"dead letter {letter_id!r} belongs to {letter.handler!r}, which is not running "
                "here: register it (or subscribe it by that name) first"
            )
        reply = Reply()
        ref.tell(DeadLetterOrder(letter_id, order, reply))
        delivered: int = reply.get(self._timeout(timeout))
        return delivered


@attrs.frozen
class Health:
    """What `Runtime.health()` reports. `consumers` maps each projection, saga and named
    subscriber to the last position it has handled; `head` is the journal's last position."""

    state: str
    failure: str | None
    head: int
    consumers: dict[str, int]
    live_aggregates: int
    aggregates_started: int
    passivated: int
    failures: dict[str, int]  # per supervisor
    dead_letters: int

    def lag(self) -> dict[str, int]:
        """How many positions each consumer is behind the journal's head."""
        return {name: self.head - position for name, position in self.consumers.items()}


class _QueryProxy:
    """Calls a projection's public methods inside its actor, after a position."""

    def __init__(
        self, rt: Runtime, ref: ActorRef[Any], spec: ConsumerType, after: int, timeout: float
    ):
        self._rt, self._ref, self._spec, self._after, self._timeout = rt, ref, spec, after, timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in self._spec.queries:
            raise AttributeError(
                f"{self._spec.name} has no query {method!r}; its queries: "
                f"{', '.join(sorted(self._spec.queries)) or 'none'}"
            )

        def call(*args: Any, **kwargs: Any) -> Any:
            self._rt._running()
            reply = Reply()
            query = Query(method, args, kwargs, reply, self._after)
            self._rt._router.tell(Barrier(self._after, self._ref, query))
            return reply.get(self._timeout)

        return call
