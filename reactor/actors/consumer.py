"""The consumer actor: a projection, a saga's instances or a subscriber function.

It reads the journal after its checkpoint page by page (pulling), then subscribes to the
router and takes what the router pushes (live); positions at or below the last one taken
are skipped, so each hand-over has no gap and no duplicate. A consumer that falls too far
behind is detached by the router and pulls again, so its mailbox stays bounded whatever
the lag. Retries and sequenced dead letters are its `Sequencer`'s; durable consumers save
state and checkpoint together, only when no retry is pending.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from typing import Any, cast

import attrs
from pykka import ActorDeadError, ActorRef

from reactor.actors.dispatch import Dispatcher
from reactor.actors.instruments import NO_METRICS, NO_TRACING, Instruments, Spans, spanned
from reactor.actors.messages import (
    CheckOrders,
    Committed,
    DeadLetterOrder,
    DeadlineDue,
    Deliver,
    Detached,
    DropDeadLetter,
    OrderDeadLetter,
    Progress,
    Pull,
    Query,
    Replace,
    RetryDue,
    SaveCheckpoint,
    SaveDeadLetter,
    Subscribe,
    Subscribed,
    Sync,
    Unsubscribe,
)
from reactor.actors.pooled import PooledActor, tell
from reactor.actors.replace import replace
from reactor.actors.scheduler import Scheduler
from reactor.actors.sequencer import Effects, Sequencer
from reactor.errors import DecodeError, RuntimeStopped, UnknownEventType
from reactor.events import Envelope
from reactor.faults import RetryPolicy
from reactor.specs import ConsumerKind, ConsumerType, SagaHost
from reactor.store.base import Checkpoint, DeadLetterRecord, Fence
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
PAGE = 500  # events read from the journal per turn while pulling
ORDERS_EVERY = 1.0  # seconds between looks for operators' orders, while there are letters


class Mode(enum.Enum):
    PULLING = "pulling"  # reading the journal itself, page by page
    SUBSCRIBING = "subscribing"  # asked the router for live events, waiting for Subscribed
    LIVE = "live"  # the router pushes every committed event of its types


class ConsumerActor(PooledActor):
    """Runs `spec.handlers` on each event of its types, once, in position order per stream.

    `start_at` is where a consumer with no checkpoint begins (0: the whole journal).
    `checkpoints`: save the position (and the state, if `spec.durable`) under `spec.name`,
    fenced by `fence` when it runs as the holder of a lease.
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
        fence: Fence | None = None,
        metrics: Instruments = NO_METRICS,
        tracing: Spans = NO_TRACING,  # each event handled in a span
    ) -> None:
        super().__init__(dispatcher)
        self.spec, self.store, self.instance = spec, store, instance
        self.router, self.journal, self.timers = router, journal, timers
        self.start_at, self.fence = start_at, fence
        self.progress = Progress(start_at)  # every event up to here is handled or parked
        self.checkpoints = checkpoints or spec.durable
        self.unsaved = 0  # events handled since the last checkpoint
        self.mode = Mode.PULLING
        self.stash: list[Deliver] = []  # pushed while subscribing
        self.waiting_queries: list[Query] = []
        self.checking_orders = False  # a CheckOrders is scheduled
        self.went_live = False  # (a consumer detached later leaves its lag to the next start)
        self.sequencer = Sequencer(
            spec.label,
            spec.retry or retry,
            Effects(
                run=spanned(tracing, spec.label, self._run),
                schedule_retry=self._schedule_retry,
                read=store.at,
                save_letter=self._save_letter,
                clear_order=self._clear_order,
                drop_letter=lambda letter: tell(journal, DropDeadLetter(letter.id)),
            ),
            metrics,
        )

    def __str__(self) -> str:
        return f"ConsumerActor({self.spec.label}, position={self.position})"

    @property
    def label(self) -> str:
        """The projection, saga or subscriber name (as health and dead letters show it)."""
        return self.spec.label

    @property
    def position(self) -> int:
        return self.progress.position

    @property
    def saga(self) -> SagaHost | None:
        """The saga's instances, when this consumer runs a saga."""
        return cast(SagaHost, self.instance) if self.spec.kind is ConsumerKind.SAGA else None

    # -- life ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.checkpoints:
            cp = self.store.load_checkpoint(self.spec.name)
            if cp is None:  # remember where this consumer began, before any event comes
                self.unsaved = 1
                self._save(force=True)
            else:
                self.progress.position = cp.position
                if self.spec.durable and cp.state is not None:
                    self._load(cp.state)
        self.sequencer.reset(self.store.dead_letters(self.spec.label))
        self._check_orders_later()
        saga = self.saga
        if saga is not None:  # its deadlines (those due while stopped fire now)
            saga.rearm()
            self._arm()
        self._start_pulling()

    def on_failed(self, error: BaseException) -> None:
        if isinstance(self._current, Query):
            self._current.reply.fail(error)

    def on_restart(self) -> None:
        """Start over from the checkpoint (or the start), keeping what waits in the mailbox."""
        if self.spec.kind is not ConsumerKind.SUBSCRIBER:
            self.instance = self.spec.instance()
        self.progress.position, self.unsaved = self.start_at, 0
        self.on_start()

    def on_stop(self) -> None:
        if not self.went_live:  # stopped before its first hand-over: what is committed is ours
            self._read()
        for query in self.waiting_queries:
            query.reply.fail(RuntimeStopped(f"{self} stopped before answering"))
        self._save(force=True)
        with contextlib.suppress(ActorDeadError):  # the router stopped first
            self.router.tell(Unsubscribe(self.actor_ref))

    def _load(self, state: bytes) -> None:
        saga = self.saga
        if saga is not None:  # its instances are keyed rows
            saga.load_state(self.store, state, self.store.load_keyed(self.spec.name))
        else:
            vars(self.instance).update(self.store.decode_state(state, self.spec.state_hints))

    def _dump(self) -> tuple[bytes, tuple[tuple[str, bytes | None], ...]]:
        """The state, and the keyed rows that changed (a saga's instances)."""
        saga = self.saga
        if saga is not None:
            return saga.dump_state(self.store)
        owner = f"{self.spec.kind.value} {self.spec.label}"
        return self.store.encode_state(state_of(self.instance), self.spec.state_hints, owner), ()

    # -- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self.progress.received += len(message.envelopes)
            if self.mode is Mode.LIVE:
                self._deliver(message)
            elif self.mode is Mode.SUBSCRIBING:
                self.stash.append(message)
            # pulling: what was pushed before the detach is read from the journal
        elif isinstance(message, Pull):
            self._pull()
        elif isinstance(message, Subscribed):
            self._go_live()
        elif isinstance(message, Detached):
            log.info("%s fell behind: reading the journal itself until it catches up", self)
            self._start_pulling()
        elif isinstance(message, RetryDue):
            if self.sequencer.retry(message.stream_id):
                self._release_queries()
                self._save()
        elif isinstance(message, DeadlineDue):
            self._deadline(message)
        elif isinstance(message, Query):
            self.waiting_queries.append(message)
            self._release_queries()
        elif isinstance(message, DeadLetterOrder):
            self._order(message)
        elif isinstance(message, CheckOrders):
            self.checking_orders = False
            self._carry_out_stored_orders()
            self._save()
            self._check_orders_later()
        elif isinstance(message, Sync):
            message.reply.set(self.position)
        elif isinstance(message, Replace):
            replace(self, message)
        else:
            log.error("%s: unexpected message %r", self, message)

    def _start_pulling(self) -> None:
        self.mode, self.stash = Mode.PULLING, []
        tell(self.actor_ref, Pull())

    def _pull(self) -> None:
        """Read one page; subscribe once a page comes back short (the head is near)."""
        if self.mode is not Mode.PULLING:
            return
        if self._read(PAGE) >= PAGE:
            tell(self.actor_ref, Pull())  # the next page in a later turn: others go first
        else:
            self.mode = Mode.SUBSCRIBING
            tell(self.router, Subscribe(self.actor_ref, self.spec.types, self.progress))
        self._save()

    def _go_live(self) -> None:
        self._read()  # what was committed before the router's first push
        self._carry_out_stored_orders()
        self.mode, self.went_live = Mode.LIVE, True
        stashed, self.stash = self.stash, []
        for deliver in stashed:
            self._deliver(deliver)
        self._release_queries()
        self._save()

    def _deliver(self, message: Deliver) -> None:
        for env in message.envelopes:
            if env.position > self.position:
                self._take(env)
        self._save()

    def _read(self, limit: int | None = None) -> int:
        """Take up to `limit` (None: all) journal events after `position`, stepping over
        undecodable rows (each a dead letter); returns how many rows were taken."""
        count = 0
        while True:
            left = None if limit is None else limit - count
            try:
                for env in self.store.read_all(self.position, self.spec.types, left):
                    self._take(env)
                    count += 1
                return count
            except (DecodeError, UnknownEventType) as e:
                self._take(e)
                count += 1
                if limit is not None and count >= limit:
                    return count

    def _take(self, env: Committed) -> None:
        """Own the event at `env.position` (the position only moves forward); one this
        process cannot decode becomes a dead letter."""
        self.progress.position = env.position
        if isinstance(env, Envelope):
            self.sequencer.take(env)
        else:
            log.error("%s: %s", self, env)
            self.sequencer.dead_letter(env.position, env.stream_id, env, 1)

    def _run(self, env: Envelope) -> None:
        handlers = self.spec.handlers
        handler = handlers.get(env.type) or handlers.get("*")
        if handler is not None:
            handler(self.instance, env.event, env)
        self._arm()
        self.unsaved += 1

    def _schedule_retry(self, stream_id: str, delay: float) -> None:
        self.timers.tell(delay, self.actor_ref, RetryDue(stream_id))

    # -- saga deadlines -----------------------------------------------------------------------

    def _arm(self) -> None:
        """Schedule the deadlines a saga's handler set (each comes back as DeadlineDue)."""
        saga = self.saga
        if saga is not None:
            for deadline_id, delay in saga.take_armed():
                self.timers.tell(delay, self.actor_ref, DeadlineDue(deadline_id))

    def _deadline(self, due: DeadlineDue) -> None:
        """A saga deadline fell due: hand it over, retrying by the policy if that fails."""
        saga = self.saga
        if saga is None:
            return
        try:
            saga.fire(due.deadline_id)
            self._arm()
        except Exception as e:
            policy = self.sequencer.policy
            if due.attempt >= policy.max_attempts:
                log.error("%s: gave up on deadline %s: %r", self, due.deadline_id, e)
                return
            log.warning("%s: deadline %s failed, will retry: %r", self, due.deadline_id, e)
            retry = DeadlineDue(due.deadline_id, due.attempt + 1)
            self.timers.tell(policy.delay(due.attempt), self.actor_ref, retry)
            return
        self.unsaved += 1
        self._save()

    # -- operators ----------------------------------------------------------------------------

    def _order(self, message: DeadLetterOrder) -> None:
        try:
            letter = self.sequencer.letter(message.letter_id)
            delivered = self.sequencer.carry_out(letter, message.order)
        except Exception as e:
            message.reply.fail(e)
        else:
            message.reply.set(delivered)
        self._save()

    def _carry_out_stored_orders(self) -> None:
        """Orders an operator left in the store: carried out, a failure logged (nobody
        waits; the order is cleared, the letter stays with one attempt more)."""
        if not self.sequencer.letters:
            return
        for stored in self.store.dead_letters(self.spec.label):
            held = self.sequencer.letters.get(stored.stream_id)
            if not stored.request or held is None or held.id != stored.id:
                continue
            try:
                self.sequencer.carry_out(attrs.evolve(held, request=stored.request), stored.request)
            except Exception as e:
                log.error("%s: %s of dead letter %s failed: %r", self, stored.request, stored.id, e)

    def _check_orders_later(self) -> None:
        if self.sequencer.letters and not self.checking_orders:
            self.checking_orders = True
            self.timers.tell(ORDERS_EVERY, self.actor_ref, CheckOrders())

    def _save_letter(self, letter: DeadLetterRecord) -> None:
        tell(self.journal, SaveDeadLetter(letter))
        self._check_orders_later()

    def _clear_order(self, letter: DeadLetterRecord) -> None:
        tell(self.journal, OrderDeadLetter(letter.id, "", letter.request))

    # -- queries and checkpoints --------------------------------------------------------------

    def _release_queries(self) -> None:
        """Answer the queries nothing holds back: this consumer is live and no event at or
        below their position waits for a retry."""
        if self.mode is not Mode.LIVE:
            return
        waiting, self.waiting_queries = self.waiting_queries, []
        for query in waiting:
            if self.sequencer.retrying_up_to(query.after):
                self.waiting_queries.append(query)
                continue
            try:
                method = getattr(self.instance, query.method)
                query.reply.set(method(*query.args, **query.kwargs))
            except Exception as e:
                query.reply.fail(e)

    def _save(self, force: bool = False) -> None:
        if not self.checkpoints or not self.unsaved or self.sequencer.busy:
            return  # a pending retry holds the checkpoint: state and position must agree
        if not force and self.unsaved < self.spec.checkpoint_every:
            return
        state, rows = self._dump() if self.spec.durable else (None, ())
        checkpoint = Checkpoint(
            name=self.spec.name, position=self.position, state=state, keyed=rows, fence=self.fence
        )
        tell(self.journal, SaveCheckpoint(checkpoint))
        self.unsaved = 0


def state_of(instance: Any) -> dict[str, Any]:
    """A projection's state as it is saved: its attributes."""
    return {k: v for k, v in vars(instance).items() if not k.startswith("_reactor")}
