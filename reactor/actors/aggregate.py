"""Aggregate actors, one per live aggregate instance (found and started by `host`).

An actor rehydrates from its latest snapshot plus the tail, then handles one command at
a time: the handler decides events, the journal appends them at the expected version,
and only then are they applied and the caller answered. Messages that arrive meanwhile
wait in a stash.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from reactor.actors.dispatch import Dispatcher
from reactor.actors.messages import (
    Appended,
    AppendRequest,
    Handle,
    Passivate,
    Reload,
    SaveAudit,
    SaveNote,
    SaveSnapshot,
)
from reactor.actors.notes import note_of, traced, with_cause
from reactor.actors.pooled import PooledActor, tell
from reactor.errors import (
    ConcurrencyError,
    DecodeError,
    EncodeError,
    ReactorError,
    RuntimeStopped,
    UnknownEventType,
)
from reactor.events import CommandResult, Envelope, decided_events
from reactor.security.audit import command_entry, principal_metadata
from reactor.specs import AggregateType
from reactor.store.base import Append, CommandRecord, Snapshot

if TYPE_CHECKING:
    from reactor.actors.host import AggregateHost

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 10  # reload-and-retry rounds after a ConcurrencyError (other writers)


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
        self.span: Any = None  # the traced command being handled (tracing on)
        self.stash: collections.deque[Any] = collections.deque()
        self.subjects: set[str] | None = None  # whose personal data its state may hold
        self.routed = 0  # commands routed here (by the host, under its lock)
        self.completed = 0  # commands answered (by this actor)
        self.last_used = time.monotonic()
        self.placed = None if host.placement is None else host.placement(stream_id)

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

    def on_left_unhandled(self, messages: list[Any]) -> None:
        """No command is dropped silently: any still queued is answered with an error."""
        for message in [*messages, *self.stash]:
            if isinstance(message, Handle):
                error = RuntimeStopped(f"{self} stopped before handling {message.command!r}")
                self._count(message, error)
                message.reply.fail(error)

    def _rehydrate(self) -> None:
        store = self.host.store
        self.state, self.version, self.subjects = self.spec.cls(), 0, None
        snap = store.load_snapshot(self.stream_id)
        opened = store.open_snapshot(snap) if snap and snap.type == self.spec.name else None
        if snap is not None and opened is not None:  # None: sealed for a forgotten subject
            state, owners = opened
            vars(self.state).update(store.decode_state(state, self.spec.state_hints))
            self.version = self.snapshot_version = snap.seq
            self.subjects = set(owners) or None
        self._catch_up()

    def _catch_up(self) -> None:
        for env in self.host.store.read_stream(self.stream_id, self.version + 1):
            if env.seq != self.version + 1:  # a deleted row, or one whose seq is corrupt
                raise DecodeError(
                    f"seq {self.version + 1} is missing (the next stored is seq {env.seq}): "
                    "the stream cannot be rebuilt without it",
                    stream_id=self.stream_id,
                    seq=env.seq,
                    position=env.position,
                )
            self._apply(env)

    def _apply(self, env: Envelope) -> None:
        applier = self.spec.appliers.get(type(env.event))
        if applier is not None:
            applier(self.state, env.event)
            if "pii" in env.metadata:  # it applied personal data: note whose
                self.subjects = (self.subjects or set()) | set(self.host.store.subjects(env.event))
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
        elif isinstance(message, Reload):
            self.on_start()
        else:
            log.error("%s: unexpected message %r", self, message)

    def _handle(self, msg: Handle, attempt: int) -> None:
        if self.broken is not None:
            return self._answer(msg, error=self.broken)
        store = self.host.store
        if msg.given_id and attempt == 0 and not msg.fresh:
            done = store.find_command(msg.command_id)
            if done is not None:
                return self._answer_handled_before(msg, done)
        handler = self.spec.handlers[type(msg.command)]
        tracing = self.host.tracing
        if tracing.enabled and attempt == 0:
            self.span = tracing.start_command(
                aggregate=self.spec.name,
                command=type(msg.command).__name__,
                stream_id=self.stream_id,
                command_id=msg.command_id,
                parent=msg.trace,
            )
        try:
            if self.span is None:
                events = decided_events(handler(self.state, msg.command))
            else:
                with tracing.activate(self.span):  # the handler's own spans nest under it
                    events = decided_events(handler(self.state, msg.command))
        except Exception as e:  # Rejected, or a bug in the handler
            return self._answer(msg, error=e)
        meta = None if msg.principal is None else principal_metadata(msg.principal)
        if msg.correlation_id is not msg.command_id and traced(msg):
            meta = with_cause(msg, meta)
        placed = self.placed
        if placed is not None:  # a cluster node: its events say where they were decided
            meta = placed.metadata if meta is None else {**meta, **placed.metadata}
        if self.span is not None:  # its events carry the trace on to their consumers
            meta = {**(meta or {}), **tracing.carrier(self.span)}
        try:
            records = [
                store.new_record(e, msg.correlation_id, msg.command_id, meta) for e in events
            ]
        except (EncodeError, UnknownEventType) as e:  # nothing is stored
            return self._answer(msg, error=self._cannot_store(handler, msg.command, e))
        if not records and not msg.given_id:  # nothing to store, no id to remember
            return self._answer(
                msg,
                CommandResult(
                    stream_id=self.stream_id, version=self.version, position=0, events=()
                ),
            )
        # Only a command id the caller chose is recorded: a generated one cannot come again.
        command_id = msg.command_id if msg.given_id else None
        append = Append(
            stream_id=self.stream_id,
            records=records,
            expected_version=self.version,
            command_id=command_id,
            fence=None if placed is None else placed.fence,
            audit=(command_entry(msg.principal, msg.command, self._where(msg)),)
            if msg.audit
            else (),
        )
        self.pending = (msg, attempt)
        tell(
            self.host.journal,
            AppendRequest(
                append=append, events=tuple(events), sender=self.actor_ref, span=self.span
            ),
        )

    def _cannot_store(self, handler: Any, command: Any, error: ReactorError) -> EncodeError:
        """What a handler decided cannot be stored: say which aggregate, command and
        handler decided it."""
        where = f"{self.spec.name}.{getattr(handler, '__name__', 'handler')}"
        wrong = EncodeError(
            f"{where}, handling {type(command).__name__} for stream {self.stream_id!r}, "
            f"decided what cannot be stored (nothing was): {error}; a handler returns an "
            "@event instance, a list of them, or None"
        )
        wrong.__cause__ = error
        return wrong

    def _answer_handled_before(self, msg: Handle, done: CommandRecord) -> None:
        """The command id was stored: answer with the first result, store nothing."""
        first = done.version - done.count + 1
        events = tuple(self.host.store.read_stream(done.stream_id, first, done.version))
        if done.version > self.version:
            self._catch_up()
        self._answer(
            msg,
            CommandResult(
                stream_id=done.stream_id,
                version=done.version,
                position=done.position,
                events=events,
            ),
        )

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
        self._answer(
            msg,
            CommandResult(
                stream_id=self.stream_id, version=version, position=position, events=envs
            ),
            audited=True,  # with its append
        )
        self._maybe_snapshot()

    def _fail_and_rebuild(self, msg: Handle, error: Exception) -> None:
        """An applier raised on durable events: rebuild from the journal, tell the caller."""
        log.error("%s: an applier failed after the events were stored: %r", self, error)
        self.on_start()
        self._answer(msg, error=error)

    def _answer(
        self,
        msg: Handle,
        result: CommandResult | None = None,
        error: BaseException | None = None,
        audited: bool = False,
    ) -> None:
        if msg.audit and not audited:  # its end goes to the trail with the next commit
            entry = command_entry(msg.principal, msg.command, self._where(msg), error)
            tell(self.host.journal, SaveAudit((entry,)))
        if error is not None or (result is not None and not result.events):
            note = note_of(msg, self.stream_id, error)
            if note is not None:
                tell(self.host.journal, SaveNote(note))
        self.completed += 1
        self._count(msg, error)  # (before answering: the caller then sees it counted)
        if self.span is not None:
            self.host.tracing.end_command(self.span, error)
            self.span = None
        if error is None:
            msg.reply.set(result)
        else:
            msg.reply.fail(error)
        self.host.trim()

    def _count(self, msg: Handle, error: BaseException | None) -> None:
        """Count the answer by command type and outcome, timed from when it was sent (one
        the caller gave up on was counted as timed out then)."""
        if not msg.reply.abandoned:
            seconds = time.perf_counter() - msg.sent_at
            self.host.metrics.record_answer(type(msg.command).__name__, error, seconds)

    def _where(self, msg: Handle) -> str:
        return f"stream {self.stream_id}, command {msg.command_id}"

    def _maybe_snapshot(self) -> None:
        every = self.spec.snapshot_every
        if not every or self.version - self.snapshot_version < every:
            return
        values = {k: v for k, v in vars(self.state).items()}
        store = self.host.store
        try:
            data = store.encode_state(values, self.spec.state_hints, f"aggregate {self.spec.name}")
            exact = store.decode_state(data, self.spec.state_hints) == values
        except ReactorError as e:
            data, exact = b"", False
            log.debug("%s: state cannot be encoded: %s", self, e)
        self.snapshot_version = self.version
        if not exact:  # a snapshot that does not round-trip would change replayed state
            self.host.unsnapshottable(self.spec, values)
            return
        snapshot = Snapshot(
            stream_id=self.stream_id, seq=self.version, type=self.spec.name, version=1, state=data
        )
        self.host.journal.tell(SaveSnapshot(store.seal_snapshot(snapshot, self.subjects or ())))
        self.host.metrics.record_snapshot(self.spec.name)
