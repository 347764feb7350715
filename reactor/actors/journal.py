"""The journal actor: this process's only writer of the store, committing appends in groups.

It drains every append waiting in its mailbox into one `append_batch` transaction,
hands the new envelopes, in position order, to the router, then answers each writer.
Nothing reaches the router before it is durable, and nothing reaches it twice. In a
journal shared with other processes, what they stored before is published first (read
back from the store), so the router still sees every position, in order, once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pykka import ActorRef

from reactor.actors.dispatch import Dispatcher
from reactor.actors.instruments import NO_METRICS, NO_TRACING, Instruments, Spans
from reactor.actors.messages import (
    Appended,
    AppendRequest,
    Committed,
    DropDeadLetter,
    OrderDeadLetter,
    Publish,
    SaveAudit,
    SaveCheckpoint,
    SaveDeadLetter,
    SaveNote,
    SaveSnapshot,
    Sync,
    Tail,
)
from reactor.actors.pooled import PooledActor, tell
from reactor.errors import ReactorError
from reactor.events import Envelope
from reactor.store.base import Append, AppendOutcome
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
MAX_GROUP = 2000  # appends in one transaction at most: bounds the latency of a commit


class JournalActor(PooledActor):
    """Owns the `EventStore` for writing. Runs on a dispatcher of its own (it blocks on I/O),
    or on the thread of a sender waiting for its commit (`run_here`)."""

    runs_here = True

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: EventStore,
        router: ActorRef[Any],
        *,
        metrics: Instruments = NO_METRICS,
        tracing: Spans = NO_TRACING,
    ) -> None:
        super().__init__(dispatcher)
        self.store = store
        self.router = router
        self.metrics, self.tracing = metrics, tracing
        self.published = store.last_position()  # positions up to here went to the router
        self.commits = 0
        self._group: list[Grouped] = []  # being committed

    def __str__(self) -> str:
        return f"JournalActor({self.store.url})"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, AppendRequest | SaveCheckpoint | SaveAudit):
            self._commit(self._drain(message))
        elif isinstance(message, SaveSnapshot):
            self.store.save_snapshot(message.snapshot)
        elif isinstance(message, SaveNote):
            self.store.save_note(message.note)
        elif isinstance(message, SaveDeadLetter):
            self.store.save_dead_letter(message.letter)
        elif isinstance(message, DropDeadLetter):
            self.store.delete_dead_letter(message.letter_id)
        elif isinstance(message, OrderDeadLetter):
            self.store.order_dead_letter(
                message.letter_id, message.order, replacing=message.replacing
            )
        elif isinstance(message, Tail):  # (its own appends wake the tailer too: no read)
            self._publish(self._stored_up_to(message.head))
        elif isinstance(message, Sync):
            message.reply.set(self.published)
        else:
            raise TypeError(f"{self} cannot handle {message!r}")

    def _stored_up_to(self, position: int) -> tuple[Committed, ...]:
        """What is stored after `published` up to `position`: in a journal shared with
        other processes, what they appended (committed before this process's later
        appends, which take later positions)."""
        if position <= self.published:
            return ()
        return tuple(self.store.read_all_with_errors(self.published, position - self.published))

    def _publish(self, committed: tuple[Committed, ...]) -> None:
        if committed:
            self.published = committed[-1].position
            tell(self.router, Publish(committed))

    def _drain(self, first: Grouped) -> list[Grouped]:
        """The first request and every append, checkpoint or audit queued right behind it."""
        return [first, *self.take_queued(_groups, MAX_GROUP - 1)]

    def on_failed(self, error: BaseException) -> None:
        """Whoever waits on the group being committed hears of the failure."""
        for r in self._group:
            if isinstance(r, AppendRequest) and r.sender is not None:
                tell(r.sender, Appended(AppendOutcome(error=_as_reactor_error(error)), ()))
            elif r.reply is not None:
                r.reply.fail(error)
        self._group = []

    def on_restart(self) -> None:
        """What was committed but not routed is read from the store by the consumers,
        which restart after the journal (rest-for-one)."""
        self.published = self.store.last_position()

    def _commit(self, group: list[Grouped]) -> None:
        self._group = group
        appends = [_append_of(r) for r in group]
        began = time.perf_counter()
        try:
            if self.tracing.enabled:
                outcomes = self._traced_commit(group, appends)
            else:
                outcomes = self.store.commit(appends)
        except ReactorError as e:
            log.error("%s: a commit of %d appends failed: %s", self, len(group), e)
            self.on_failed(e)  # every writer of the group hears of it
            return
        took = time.perf_counter() - began
        self.commits += 1
        answers: list[tuple[AppendRequest, AppendOutcome, tuple[Envelope, ...]]] = []
        fresh: list[Envelope] = []
        for request, outcome in zip(group, outcomes, strict=True):
            if isinstance(request, SaveCheckpoint):
                self._saved(request, outcome)
                continue
            if isinstance(request, SaveAudit):
                if request.reply is not None:
                    request.reply.set(len(request.entries))
                continue
            try:
                envelopes = self._envelopes(request, outcome)
            except ReactorError as e:  # what was stored before cannot be decoded any more
                outcome, envelopes = AppendOutcome(error=e), ()
            fresh.extend(e for e in envelopes if e.position > self.published)
            answers.append((request, outcome, envelopes))
        self.metrics.record_commit(len(group), len(fresh), took)
        if fresh:  # routed first: a sender that runs these turns itself starts the readers
            if fresh[0].position > self.published + 1:  # others stored some meanwhile
                self._publish((*self._stored_up_to(fresh[0].position - 1), *fresh))
            else:
                self.published = fresh[-1].position
                tell(self.router, Publish(tuple(fresh)))
        for request, outcome, envelopes in answers:
            if request.sender is not None:
                tell(request.sender, Appended(outcome, envelopes))
            elif request.reply is not None:
                if outcome.error is not None:
                    request.reply.fail(outcome.error)
                else:
                    request.reply.set(Appended(outcome, envelopes))
        self._group = []

    def _traced_commit(self, group: list[Grouped], appends: list[Append]) -> list[AppendOutcome]:
        """The commit in a span, child of the first traced command of the group."""
        parents = [r.span for r in group if isinstance(r, AppendRequest)]
        events = sum(len(a.records) for a in appends)
        with self.tracing.commit(appends=len(appends), events=events, parents=parents):
            return self.store.commit(appends)

    @staticmethod
    def _saved(request: SaveCheckpoint, outcome: AppendOutcome) -> None:
        """Answer who waits on a checkpoint; a refused one (its consumer lost its lease) is
        logged: that consumer stops, and its successor resumes from the last one saved."""
        if outcome.error is not None:
            log.warning("checkpoint %s refused: %s", request.checkpoint.name, outcome.error)
            if request.reply is not None:
                request.reply.fail(outcome.error)
        elif request.reply is not None:
            request.reply.set(request.checkpoint.position)

    def _envelopes(self, request: AppendRequest, outcome: AppendOutcome) -> tuple[Envelope, ...]:
        """Envelopes of what was stored: the events as given, or decoded if it was there."""
        envelope = self.store.envelope
        if outcome.fresh:  # written now: the objects in hand are what was stored
            return tuple(map(envelope, outcome.events, request.events))
        return tuple(envelope(s) for s in outcome.events)  # stored before: decode


Grouped = AppendRequest | SaveCheckpoint | SaveAudit  # what joins a group commit


def _groups(message: Any) -> bool:
    """Whether a message joins a group commit."""
    return isinstance(message, AppendRequest | SaveCheckpoint | SaveAudit)


def _append_of(request: Grouped) -> Append:
    """The append a grouped request makes (a checkpoint or audit entries: no events)."""
    if isinstance(request, AppendRequest):
        return request.append
    if isinstance(request, SaveCheckpoint):
        return Append("", (), None, request.checkpoint)
    return Append("", (), None, audit=request.entries)


def _as_reactor_error(error: BaseException) -> ReactorError:
    if isinstance(error, ReactorError):
        return error
    wrapped = ReactorError(f"the journal failed: {error!r}")
    wrapped.__cause__ = error
    return wrapped
