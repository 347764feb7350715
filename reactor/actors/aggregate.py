"""Aggregate actors, one per live aggregate instance, and the host that finds them.

An actor rehydrates from its latest snapshot plus the tail, then handles one command at
a time: the handler decides events, the journal appends them at the expected version,
and only then are they applied and the caller answered. Messages that arrive meanwhile
wait in a stash. The host starts actors on demand and passivates idle ones.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import Any

from pykka import ActorRef
from pykka._envelope import Envelope as PykkaEnvelope

from reactor.actors.dispatch import Dispatcher, PooledActor, tell
from reactor.actors.messages import Appended, AppendRequest, Handle, Passivate, SaveSnapshot
from reactor.actors.specs import AggregateType
from reactor.errors import ConcurrencyError, ReactorError, RuntimeStopped
from reactor.events import CommandResult, Envelope, decided_events
from reactor.store.base import Append, CommandRecord, Snapshot
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 3  # reload-and-retry rounds after a ConcurrencyError


class AggregateActor(PooledActor):
    """One aggregate instance: its state, its stream's version, its pending command."""

    runs_here = True  # a sender waiting in `Runtime.send` runs its turns

    def __init__(
        self, dispatcher: Dispatcher, host: AggregateHost, spec: AggregateType, stream_id: str
    ) -> None:
        super().__init__(dispatcher)
        self.host, self.spec, self.stream_id = host, spec, stream_id
        self.state: Any = None
        self.version = 0
        self.snapshot_version = 0
        self.broken: ReactorError | None = None  # rehydration failed: every command gets it
        self.pending: tuple[Handle, int] | None = None  # a command waiting for its append
        self.stash: collections.deque[Any] = collections.deque()
        self.routed = 0  # commands routed here (by the host, under its lock)
        self.completed = 0  # commands answered (by this actor)
        self.last_used = time.monotonic()

    def __str__(self) -> str:
        return f"AggregateActor({self.stream_id}, version={self.version})"

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._rehydrate()
        except ReactorError as e:
            log.error("%s cannot be rebuilt from the journal: %s", self, e)
            self.broken = e
        except Exception as e:
            log.exception("%s: an applier failed while rebuilding", self)
            self.broken = ReactorError(f"stream {self.stream_id!r}: rebuilding failed: {e!r}")

    def on_stop(self) -> None:
        self.host._actor_stopped()

    def on_failed(self, error: BaseException) -> None:
        """Answer the command that was being handled (or awaited) with the error."""
        if self.pending is not None:
            self._answer(self.pending[0], error=error)
            self.pending = None
        if isinstance(self._current, Handle) and self._current.reply.done() is False:
            self._answer(self._current, error=error)

    def on_restart(self) -> None:
        """Rebuild from the journal, then handle what waited."""
        self.on_start()
        while self.stash and self.pending is None and not self.actor_stopped.is_set():
            self._receive(self.stash.popleft())

    def _actor_loop_teardown(self) -> None:
        """No command is dropped silently: any still queued is answered with an error."""
        left = [e.message for e in self._mailbox._queue] + list(self.stash)
        for message in left:
            if isinstance(message, Handle):
                message.reply.fail(
                    RuntimeStopped(f"{self} stopped before handling {message.command!r}")
                )
        super()._actor_loop_teardown()

    def _rehydrate(self) -> None:
        store = self.host.store
        self.state, self.version = self.spec.cls(), 0
        snap = store.storage.load_snapshot(self.stream_id)
        if snap is not None and snap.type == self.spec.name:
            values = store.codec.decode_state(snap.state, self.spec.state_hints)
            vars(self.state).update(values)
            self.version = self.snapshot_version = snap.seq
        self._catch_up()

    def _catch_up(self) -> None:
        for env in self.host.store.read_stream(self.stream_id, self.version + 1):
            self._apply(env)

    def _apply(self, env: Envelope) -> None:
        applier = self.spec.appliers.get(type(env.event))
        if applier is not None:
            applier(self.state, env.event)
        self.version = env.seq

    # -- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if self.pending is None and type(message) is Handle:  # the common case first
            return self._handle(message, 0)
        if isinstance(message, Appended):
            self._appended(message)
            while self.stash and self.pending is None and not self.actor_stopped.is_set():
                self._receive(self.stash.popleft())
        elif self.pending is not None:
            self.stash.append(message)
        else:
            self._receive(message)

    def _receive(self, message: Any) -> None:
        if isinstance(message, Handle):
            self._handle(message, 0)
        elif isinstance(message, Passivate):
            self._stop()
        else:
            log.error("%s: unexpected message %r", self, message)

    def _handle(self, msg: Handle, attempt: int) -> None:
        if self.broken is not None:
            return self._answer(msg, error=self.broken)
        store = self.host.store
        if msg.given_id and attempt == 0:
            done = store.storage.find_command(msg.command_id)
            if done is not None:
                return self._answer_handled_before(msg, done)
        try:
            events = decided_events(self.spec.handlers[type(msg.command)](self.state, msg.command))
            records = [store.new_record(e, msg.correlation_id, msg.command_id) for e in events]
        except Exception as e:  # Rejected, a bug in the handler, an unencodable event
            return self._answer(msg, error=e)
        if not records and not msg.given_id:  # nothing to store, no id to remember
            return self._answer(msg, CommandResult(self.stream_id, self.version, 0, ()))
        # Only a command id the caller chose is recorded: a generated one cannot come again.
        command_id = msg.command_id if msg.given_id else None
        append = Append(self.stream_id, records, self.version, command_id=command_id)
        self.pending = (msg, attempt)
        tell(self.host.journal, AppendRequest(append, tuple(events), sender=self.actor_ref))

    def _answer_handled_before(self, msg: Handle, done: CommandRecord) -> None:
        """The command id was stored: answer with the first result, store nothing."""
        first = done.version - done.count + 1
        events = tuple(self.host.store.read_stream(done.stream_id, first, done.version))
        if done.version > self.version:
            self._catch_up()
        self._answer(msg, CommandResult(done.stream_id, done.version, done.position, events))

    def _appended(self, done: Appended) -> None:
        if self.pending is None:
            log.error("%s: an append result came with no command pending", self)
            return
        msg, attempt = self.pending
        self.pending = None
        outcome = done.outcome
        if isinstance(outcome.error, ConcurrencyError) and attempt < CONFLICT_RETRIES:
            try:  # another writer moved the stream on: reload and decide again
                self._catch_up()
            except Exception as e:
                return self._fail_and_rebuild(msg, e)
            return self._handle(msg, attempt + 1)
        if outcome.error is not None:
            return self._answer(msg, error=outcome.error)
        try:
            if done.envelopes and done.envelopes[0].seq <= self.version:
                self._catch_up()  # the command was handled before (another process?)
            else:
                for env in done.envelopes:
                    self._apply(env)
        except Exception as e:
            return self._fail_and_rebuild(msg, e)
        envs = done.envelopes
        if outcome.command is not None:
            version, position = outcome.command.version, outcome.command.position
        else:
            version, position = envs[-1].seq, envs[-1].position
        self._answer(msg, CommandResult(self.stream_id, version, position, envs))
        self._maybe_snapshot()

    def _fail_and_rebuild(self, msg: Handle, error: Exception) -> None:
        """An applier raised on durable events: rebuild from the journal, tell the caller."""
        log.error("%s: an applier failed after the events were stored: %r", self, error)
        self.on_start()
        self._answer(msg, error=error)

    def _answer(
        self, msg: Handle, result: CommandResult | None = None, error: BaseException | None = None
    ) -> None:
        self.completed += 1
        if error is None:
            msg.reply.set(result)
        else:
            msg.reply.fail(error)
        self.host.trim()

    def _maybe_snapshot(self) -> None:
        every = self.spec.snapshot_every
        if not every or self.version - self.snapshot_version < every:
            return
        values = {k: v for k, v in vars(self.state).items()}
        codec = self.host.store.codec
        try:
            data = codec.encode_state(values, self.spec.state_hints)
            exact = codec.decode_state(data, self.spec.state_hints) == values
        except ReactorError as e:
            data, exact = b"", False
            log.debug("%s: state cannot be encoded: %s", self, e)
        self.snapshot_version = self.version
        if not exact:  # a snapshot that does not round-trip would change replayed state
            self.host.unsnapshottable(self.spec, values)
            return
        self.host.journal.tell(
            SaveSnapshot(Snapshot(self.stream_id, self.version, self.spec.name, 1, data))
        )


class AggregateHost:
    """Finds or starts the actor of a command's aggregate; passivates idle ones.

    A plain object shared by client threads: routing happens under one lock, so an actor
    is only forgotten while nothing is routed to it (`routed == completed`), and then no
    new command can reach it.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: EventStore,
        journal: ActorRef[Any],
        *,
        max_live: int | None = None,
        idle_timeout: float | None = None,
        supervisor: Any = None,
    ) -> None:
        self.dispatcher, self.store, self.journal = dispatcher, store, journal
        self.max_live, self.idle_timeout = max_live, idle_timeout
        self.supervisor: Any = supervisor
        self._lru = max_live is not None or idle_timeout is not None  # keep _live in LRU order
        self._lock = threading.Lock()
        self._all_stopped = threading.Condition(self._lock)
        self._alive = 0  # actors started and not yet stopped (passivated ones included)
        self._live: collections.OrderedDict[str, AggregateActor] = collections.OrderedDict()
        self._warned: set[type] = set()
        self.started = 0  # actors started so far
        self.passivated = 0

    def __len__(self) -> int:
        return len(self._live)

    def route(self, spec: AggregateType, msg: Handle) -> None:
        """Tell the command's aggregate actor to handle `msg` (starting it if needed)."""
        stream_id = spec.stream_id(getattr(msg.command, spec.key))
        with self._lock:
            actor = self._live.get(stream_id)
            if actor is None:
                actor = AggregateActor(self.dispatcher, self, spec, stream_id)
                if self.supervisor is not None:
                    self.supervisor.adopt(actor, static=False)
                self._live[stream_id] = actor
                self.started += 1
                self._alive += 1
                actor._start_actor_loop()
            elif self._lru:
                self._live.move_to_end(stream_id)
            actor.routed += 1
            if self.idle_timeout is not None:
                actor.last_used = time.monotonic()
            actor._mailbox.put(PykkaEnvelope(msg))

    def trim(self) -> None:
        """Passivate idle actors while more than `max_live` are alive (called as they finish)."""
        if self.max_live is None or len(self._live) <= self.max_live:
            return
        with self._lock:
            if len(self._live) > self.max_live:
                self._evict(len(self._live) - self.max_live)

    def sweep(self) -> None:
        """Passivate actors idle for longer than `idle_timeout` (oldest first)."""
        if self.idle_timeout is None:
            return
        limit = time.monotonic() - self.idle_timeout
        with self._lock:
            victims = []
            for stream_id, actor in self._live.items():
                if actor.last_used > limit:
                    break
                if actor.routed == actor.completed:
                    victims.append(stream_id)
            for stream_id in victims:
                self._passivate(stream_id)

    def stop_all(self) -> None:
        """Passivate every actor (each finishes what it was routed first)."""
        with self._lock:
            for stream_id in list(self._live):
                self._passivate(stream_id)

    def wait_stopped(self, timeout: float) -> bool:
        """Block until every actor has stopped (after `stop_all`); False on timeout."""
        with self._all_stopped:
            return self._all_stopped.wait_for(lambda: self._alive == 0, timeout)

    def _actor_stopped(self) -> None:
        with self._all_stopped:
            self._alive -= 1
            self._all_stopped.notify_all()

    def _evict(self, count: int) -> None:
        """Passivate up to `count` idle actors, least recently used first (under the lock)."""
        idle = (s for s, a in self._live.items() if a.routed == a.completed)
        for stream_id in list(itertools.islice(idle, count)):
            self._passivate(stream_id)

    def _passivate(self, stream_id: str) -> None:
        actor = self._live.pop(stream_id)
        self.passivated += 1
        actor._mailbox.put(PykkaEnvelope(Passivate()))

    def unsnapshottable(self, spec: AggregateType, values: dict[str, Any]) -> None:
        """Say once per class why its state cannot be snapshotted (replay still works)."""
        if spec.cls not in self._warned:
            self._warned.add(spec.cls)
            log.warning(
                "%s: state %s does not survive encoding exactly; no snapshots are taken. "
                "Annotate its attributes on the class (e.g. `balance: Decimal`).",
                spec.name,
                sorted(values),
            )
