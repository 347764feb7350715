"""The consumer actor: a projection or a subscriber function, fed by the router.

At start it subscribes, then catches up from the journal after its checkpoint, then
handles live deliveries; positions at or below the last one taken are skipped, so the
hand-over has no gap and no duplicate. A handler that raises is retried with backoff
while other streams go on; one that keeps failing leaves a dead letter, and the later
events of its stream are parked behind it (sequenced dead letters, as Axon does).
Durable consumers save state and checkpoint together, only when no retry is pending.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import Any

import attrs
from pykka import ActorDeadError, ActorRef

from reactor.actors.dispatch import Dispatcher, PooledActor, tell
from reactor.actors.messages import (
    DeadLetterOrder,
    DeadlineDue,
    Deliver,
    DropDeadLetter,
    OrderDeadLetter,
    Query,
    RetryDue,
    SaveCheckpoint,
    SaveDeadLetter,
    Subscribe,
    Subscribed,
    Sync,
    Unsubscribe,
)
from reactor.actors.scheduler import Scheduler
from reactor.actors.specs import ConsumerType
from reactor.errors import DecodeError, ReactorError, RuntimeStopped, UnknownEventType
from reactor.events import Envelope, new_id
from reactor.faults import RetryPolicy, retried
from reactor.store.base import Checkpoint, DeadLetterRecord
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)


@attrs.define
class _Retrying:
    """A stream whose head event waits for another attempt, and what queued behind it."""

    envelope: Envelope
    attempts: int
    queued: collections.deque[Envelope] = attrs.Factory(collections.deque)


class ConsumerActor(PooledActor):
    """Runs `spec.handlers` on each event of its types, once, in position order per stream.

    `start_at` is where a consumer with no checkpoint begins (0: the whole journal).
    `checkpoints`: save the position (and the state, if `spec.durable`) under `spec.name`.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        spec: ConsumerType,
        instance: Any,
        store: EventStore,
        router: ActorRef[Any],
        journal: ActorRef[Any],
        timers: Scheduler,
        retry: RetryPolicy,
        *,
        start_at: int = 0,
        checkpoints: bool = False,
    ) -> None:
        super().__init__(dispatcher)
        self.spec, self.store = spec, store
        self._use(instance)
        self.router, self.journal, self.timers = router, journal, timers
        self.retry = spec.retry or retry
        self.start_at = start_at
        self.position = start_at  # every event up to here is handled, retrying or parked
        self.checkpoints = checkpoints or spec.durable
        self.unsaved = 0  # events handled since the last checkpoint
        self.live = False
        self.stash: list[Any] = []
        self.retrying: dict[str, _Retrying] = {}
        self.dead: dict[str, DeadLetterRecord] = {}  # parked streams, by stream id
        self.waiting_queries: list[Query] = []

    def __str__(self) -> str:
        return f"ConsumerActor({self.spec.label}, position={self.position})"

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.checkpoints:
            cp = self.store.storage.load_checkpoint(self.spec.name)
            if cp is None:  # remember where this consumer began, before any event comes
                self.unsaved = 1
                self._save(force=True)
            else:
                self.position = cp.position
                if self.spec.durable and cp.state is not None:
                    self._load(cp.state)
        self.dead = {d.stream_id: d for d in self.store.storage.dead_letters(self.spec.label)}
        rearm = getattr(self.instance, "rearm", None)
        if rearm is not None:  # a saga's deadlines (those due while stopped fire now)
            rearm()
            self._arm()
        self.router.tell(Subscribe(self.actor_ref, self.spec.types))

    def _load(self, state: bytes) -> None:
        load = getattr(self.instance, "load_state", None)
        if load is not None:  # a saga: its instances are keyed rows
            load(self.store.codec, state, self.store.storage.load_keyed(self.spec.name))
        else:
            vars(self.instance).update(self.store.codec.decode_state(state, self.spec.state_hints))

    def _dump(self) -> tuple[bytes, tuple[tuple[str, bytes | None], ...]]:
        """The state, and the keyed rows that changed (a saga's instances)."""
        dump = getattr(self.instance, "dump_state", None)
        if dump is not None:
            state, rows = dump(self.store.codec)
            return state, rows
        return self.store.codec.encode_state(_state(self.instance), self.spec.state_hints), ()

    def on_failed(self, error: BaseException) -> None:
        if isinstance(self._current, Query):
            self._current.reply.fail(error)

    def on_restart(self) -> None:
        """Start over from the checkpoint (or the start), keeping what waits in the mailbox."""
        if self.instance is not None:
            self._use((self.spec.factory or self.spec.cls)())
        self.position, self.unsaved, self.live = self.start_at, 0, False
        self.retrying, self.dead = {}, {}
        self.on_start()

    def on_stop(self) -> None:
        if not self.live:  # stopped before the router's hand-over: what is committed is ours
            self._catch_up()
        for message in [*self.stash, *self.waiting_queries]:  # answer what waits
            reply = getattr(message, "reply", None)
            if reply is not None:
                reply.fail(RuntimeStopped(f"{self} stopped before answering"))
        self._save(force=True)
        with contextlib.suppress(ActorDeadError):  # the router stopped first
            self.router.tell(Unsubscribe(self.actor_ref))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Subscribed):
            self._catch_up()
            for letter in list(self.dead.values()):  # orders an operator left in the store
                if letter.request:
                    self._carry_out(letter, letter.request, None)
            self.live = True
            stashed, self.stash = self.stash, []
            for m in stashed:
                self._handle(m)
        elif not self.live:
            self.stash.append(message)
        else:
            self._handle(message)

    def _catch_up(self) -> None:
        """Take what the journal holds after `position`, stepping over undecodable rows."""
        while True:
            try:
                for env in self.store.read_all(self.position, self.spec.types):
                    self._take(env)
                return
            except (DecodeError, UnknownEventType) as e:
                log.error("%s: %s", self, e)
                self.position = e.position
                self._dead_letter(e.position, e.stream_id, e, 1)

    def _handle(self, message: Any) -> None:
        if isinstance(message, Deliver):
            for env in message.envelopes:
                if env.position > self.position:
                    self._take(env)
            self._save()
        elif isinstance(message, RetryDue):
            self._retry(message.stream_id)
        elif isinstance(message, DeadlineDue):
            self._deadline(message)
        elif isinstance(message, Query):
            if self._retrying_up_to(message.after):
                self.waiting_queries.append(message)
            else:
                self._answer(message)
        elif isinstance(message, DeadLetterOrder):
            letter = next((d for d in self.dead.values() if d.id == message.letter_id), None)
            if letter is None:
                message.reply.fail(
                    ReactorError(f"{self.spec.label} has no dead letter {message.letter_id!r}")
                )
            else:
                self._carry_out(letter, message.order, message.reply)
        elif isinstance(message, Sync):
            message.reply.set(self.position)
        else:
            log.error("%s: unexpected message %r", self, message)

    def _answer(self, query: Query) -> None:
        try:
            query.reply.set(getattr(self.instance, query.method)(*query.args, **query.kwargs))
        except Exception as e:
            query.reply.fail(e)

    # -- events -------------------------------------------------------------------------------

    def _take(self, env: Envelope) -> None:
        """Own the event at `env.position` (the position only moves forward)."""
        self.position = env.position
        letter = self.dead.get(env.stream_id)
        if letter is not None and env.position == letter.position:
            return  # dead-lettered before a restart: not retried on replay
        self._route(env)

    def _route(self, env: Envelope) -> None:
        """Handle `env`, or park it behind its stream's dead letter, or queue it behind its
        stream's retrying event (so each stream keeps its order for this handler)."""
        stream = env.stream_id
        letter = self.dead.get(stream)
        if letter is not None and env.position > letter.position:
            if env.position not in letter.parked:
                self._save_letter(attrs.evolve(letter, parked=(*letter.parked, env.position)))
            return
        retrying = self.retrying.get(stream)
        if retrying is not None:
            retrying.queued.append(env)
        elif self._attempt(env, 1) == "retry":
            self.retrying[stream] = _Retrying(env, 1)
            self._schedule_retry(stream, 1)

    def _attempt(self, env: Envelope, attempt: int) -> str:
        """Run the handler once: "handled", "retry" (try again later) or "dead"."""
        try:
            self._run(env)
        except Exception as e:
            if attempt >= self.retry.max_attempts or not retried(e):
                log.error(
                    "%s: gave up on %s at position %d after %d attempt(s): %r",
                    self,
                    env.type,
                    env.position,
                    attempt,
                    e,
                )
                self._dead_letter(env.position, env.stream_id, e, attempt)
                return "dead"
            log.warning(
                "%s: %s at position %d failed (attempt %d), will retry: %r",
                self,
                env.type,
                env.position,
                attempt,
                e,
            )
            return "retry"
        self.unsaved += 1
        return "handled"

    def _run(self, env: Envelope) -> None:
        handlers = self.spec.handlers
        handler = handlers.get(env.type) or handlers.get("*")
        if handler is not None:
            handler(self.instance, env.event, env)
        self._arm()

    def _use(self, instance: Any) -> None:
        self.instance = instance
        self._take_armed = getattr(instance, "take_armed", None)  # a saga's deadlines

    def _arm(self) -> None:
        """Schedule the deadlines a saga's handler set (each comes back as DeadlineDue)."""
        if self._take_armed is not None:
            for deadline_id, delay in self._take_armed():
                self.timers.tell(delay, self.actor_ref, DeadlineDue(deadline_id))

    def _schedule_retry(self, stream: str, attempt: int) -> None:
        self.timers.tell(self.retry.delay(attempt), self.actor_ref, RetryDue(stream))

    def _retry(self, stream: str) -> None:
        retrying = self.retrying.get(stream)
        if retrying is None:
            return
        retrying.attempts += 1
        if self._attempt(retrying.envelope, retrying.attempts) == "retry":
            self._schedule_retry(stream, retrying.attempts)
            return
        del self.retrying[stream]
        for env in retrying.queued:  # what waited behind it, in order
            self._route(env)
        self._release_queries()
        self._save()

    def _deadline(self, due: DeadlineDue) -> None:
        """A saga deadline fell due: hand it over, retrying by the policy if that fails."""
        try:
            self.instance.fire(due.deadline_id)
            self._arm()
        except Exception as e:
            if due.attempt >= self.retry.max_attempts:
                log.error(
                    "%s: gave up on deadline %s after %d attempts: %r",
                    self,
                    due.deadline_id,
                    due.attempt,
                    e,
                )
                return
            log.warning(
                "%s: deadline %s failed (attempt %d), will retry: %r",
                self,
                due.deadline_id,
                due.attempt,
                e,
            )
            retry = DeadlineDue(due.deadline_id, due.attempt + 1)
            self.timers.tell(self.retry.delay(due.attempt), self.actor_ref, retry)
            return
        self.unsaved += 1
        self._save()

    def _dead_letter(
        self,
        position: int,
        stream_id: str,
        error: BaseException,
        attempts: int,
        parked: tuple[int, ...] = (),
    ) -> None:
        """Give up on the event at `position`: a new dead letter, `parked` behind it."""
        letter = DeadLetterRecord(
            id=new_id(),
            handler=self.spec.label,
            position=position,
            stream_id=stream_id,
            error=_describe(error),
            attempts=attempts,
            parked=parked,
        )
        self._save_letter(letter)

    def _save_letter(self, letter: DeadLetterRecord) -> None:
        self.dead[letter.stream_id] = letter
        tell(self.journal, SaveDeadLetter(letter))

    # -- operators ----------------------------------------------------------------------------

    def _carry_out(self, letter: DeadLetterRecord, order: str, reply: Any) -> None:
        """Redrive (deliver it, then what waits) or discard (deliver only what waits).

        If a delivery fails, the failing event is the dead letter from then on, with what
        was still to come parked behind it, and the error goes to `reply`.
        """
        positions = [letter.position, *letter.parked] if order == "redrive" else list(letter.parked)
        for n, position in enumerate(positions):
            env = self.store.at(position)
            if env is None:
                continue
            try:
                self._run(env)
            except Exception as e:
                rest = tuple(positions[n + 1 :])
                if position == letter.position:  # the same letter, one attempt more
                    self._save_letter(
                        attrs.evolve(
                            letter,
                            attempts=letter.attempts + 1,
                            parked=rest,
                            error=_describe(e),
                            request="",
                        )
                    )
                    if letter.request:  # the operator's order is carried out: clear it
                        tell(self.journal, OrderDeadLetter(letter.id, "", letter.request))
                else:
                    tell(self.journal, DropDeadLetter(letter.id))
                    self._dead_letter(position, letter.stream_id, e, 1, rest)
                if reply is not None:
                    reply.fail(e)
                return
            self.unsaved += 1
        del self.dead[letter.stream_id]
        tell(self.journal, DropDeadLetter(letter.id))
        self._save()
        if reply is not None:
            reply.set(len(positions))

    # -- queries and checkpoints --------------------------------------------------------------

    def _retrying_up_to(self, position: int) -> bool:
        return any(r.envelope.position <= position for r in self.retrying.values())

    def _release_queries(self) -> None:
        waiting, self.waiting_queries = self.waiting_queries, []
        for query in waiting:
            if self._retrying_up_to(query.after):
                self.waiting_queries.append(query)
            else:
                self._answer(query)

    def _save(self, force: bool = False) -> None:
        if not self.checkpoints or not self.unsaved or self.retrying:
            return  # a pending retry holds the checkpoint: state and position must agree
        if not force and self.unsaved < self.spec.checkpoint_every:
            return
        state, rows = self._dump() if self.spec.durable else (None, ())
        tell(self.journal, SaveCheckpoint(Checkpoint(self.spec.name, self.position, state, rows)))
        self.unsaved = 0


def _state(instance: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_reactor")}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
