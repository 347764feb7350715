"""The messages reactor's actors send each other, and `Reply`.

Messages are attrs frozen classes; the three of every command's path (`Handle`,
`AppendRequest`, `Appended`) are NamedTuples, built 3.5x faster.

A `Reply` is where an answer goes: a thread blocks on `get(timeout)`, an asyncio task
awaits it. Actors only ever `set` or `fail` it: they never block on one.
"""

from __future__ import annotations

import _thread
import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
from pykka import ActorRef

from reactor.errors import DecodeError, Timeout, UnknownEventType
from reactor.events import Cause, Envelope
from reactor.security.policy import Principal
from reactor.store.base import (
    Append,
    AppendOutcome,
    AuditRecord,
    Checkpoint,
    CommandNote,
    DeadLetterRecord,
    Snapshot,
)

log = logging.getLogger(__name__)


# What the journal publishes: an envelope, or the error of a row another process stored that
# cannot be decoded here (it names the row's type, stream and position; its consumers
# dead-letter it).
Committed = Envelope | DecodeError | UnknownEventType


class Reply:
    """A one-shot answer slot: `set(value)` or `fail(exception)` once, from any thread.

    For threads it is a bare lock, held until the answer comes (a pykka future builds a
    Condition per command: measurably slower on the command path).
    """

    __slots__ = ("_error", "_future", "_lock", "_loop", "_value", "abandoned")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self.abandoned = False  # the caller gave up waiting (and counted it as timed out)
        self._value: Any = None
        self._error: BaseException | None = None
        if loop is None:
            self._lock = _thread.allocate_lock()
            self._lock.acquire()
        else:
            self._future: asyncio.Future[Any] = loop.create_future()

    def set(self, value: Any) -> None:
        if self._loop is None:
            self._value = value
            self._lock.release()
        else:
            self._loop.call_soon_threadsafe(_resolve, self._future, value, None)

    def fail(self, error: BaseException) -> None:
        if self._loop is None:
            self._error = error
            self._lock.release()
        else:
            self._loop.call_soon_threadsafe(_resolve, self._future, None, error)

    def done(self) -> bool:
        """Whether the answer has come."""
        return not self._lock.locked() if self._loop is None else self._future.done()

    def get(self, timeout: float | None = None) -> Any:
        """Block until answered; raises the failure, or `Timeout` after `timeout` seconds."""
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise Timeout(f"no answer within {timeout} seconds")
        self._lock.release()  # answered: later calls return at once
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self) -> asyncio.Future[Any]:
        """The asyncio future to await (for a Reply made with a loop)."""
        return self._future


class NoReply:
    """The reply slot of a command a saga sent: nobody waits; a failure is logged."""

    __slots__ = ("command",)
    abandoned = False

    def __init__(self, command: Any) -> None:
        self.command = command

    def set(self, value: Any) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        log.warning("a command sent by a saga failed: %r: %r", self.command, error)

    def done(self) -> bool:
        return False


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class Handle(NamedTuple):
    """To an aggregate: handle `command`; answer `reply` with a CommandResult. The events
    keep `principal` in their metadata; with `audit`, its end goes to the audit trail.
    `sent_at` (`time.perf_counter()`) times its answer; `trace` is the tracing context it
    was sent from (None: not traced)."""

    command: Any
    command_id: str
    correlation_id: str | None
    reply: Reply | NoReply
    given_id: bool  # the caller chose command_id (so it may have been handled already)
    sent_at: float  # time.perf_counter() when it was sent (or arrived from another node)
    principal: Principal | None = None
    audit: bool = False
    cause: Cause | None = None  # sent by a consumer acting on an event (lineage)
    fresh: bool = False  # known never handled (a cluster's first delivery): no look-up
    trace: Any = None


@attrs.frozen
class Passivate:
    """To an aggregate: stop now (the host has forgotten it while it was idle)."""


@attrs.frozen
class Reload:
    """To an aggregate: rebuild from the journal (a subject whose data it holds was
    forgotten, so that it sees the masked values)."""


class AppendRequest(NamedTuple):
    """To the journal: append, then tell `sender` `Appended` (or answer `reply`); `span`:
    the traced command it is for (its commit's parent)."""

    append: Append
    events: tuple[Any, ...]
    sender: ActorRef[Any] | None = None
    reply: Reply | None = None
    span: Any = None


class Appended(NamedTuple):
    """From the journal: the outcome of an `AppendRequest`, with its envelopes."""

    outcome: AppendOutcome
    envelopes: tuple[Envelope, ...]


@attrs.frozen
class SaveCheckpoint:
    """To the journal: save `checkpoint` (with the next batch); answer `reply` if given."""

    checkpoint: Checkpoint
    reply: Reply | None = None


@attrs.frozen
class Tail:
    """To the journal, from the tailer: the journal's head is at `head` (other processes may
    have appended); publish what is stored beyond what you published."""

    head: int


@attrs.frozen
class SaveNote:
    """To the journal: keep a command's lineage note (`Storage.save_note`)."""

    note: CommandNote


@attrs.frozen
class SaveSnapshot:
    """To the journal: keep `snapshot` as its stream's latest."""

    snapshot: Snapshot


@attrs.frozen
class Publish:
    """From the journal to the router: committed envelopes, in position order."""

    envelopes: tuple[Committed, ...]


class Progress:
    """How far a consumer got: the last position it has handled (retrying and parked
    events included), and how many pushed events it has taken off its mailbox. Written by
    its consumer only; read by the router (to stop pushing to a consumer that falls
    behind) and by health reports, without asking the actor."""

    __slots__ = ("position", "received")

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self.received = 0


@attrs.frozen
class Subscribe:
    """To the router: deliver events of `types` (None: all) to `subscriber` as `Deliver`,
    then tell it `Subscribed`; stop (`Detached`) if it falls more than the router's limit
    behind (its `progress`)."""

    subscriber: ActorRef[Any]
    types: frozenset[str] | None
    progress: Progress


@attrs.frozen
class Unsubscribe:
    subscriber: ActorRef[Any]


@attrs.frozen
class Subscribed:
    """From the router: from now on every committed event of your types comes to you."""


@attrs.frozen
class Detached:
    """From the router: you fell too far behind, nothing more is pushed to you; read what
    follows from the journal and subscribe again when you have caught up."""


@attrs.frozen
class CheckOrders:
    """To a consumer from the scheduler: carry out dead-letter orders an operator left in
    the store (`reactor dlq redrive`), while it has dead letters."""


@attrs.frozen
class Pull:
    """To a consumer from itself: read the next page of the journal after your position."""


@attrs.frozen
class Deliver:
    """From the router: committed envelopes of your types, in position order."""

    envelopes: tuple[Committed, ...]


@attrs.frozen
class Barrier:
    """To the router: tell `target` `message` once every event up to `position` has been
    routed (so the target has them in its mailbox before `message`)."""

    position: int
    target: ActorRef[Any]
    message: Any


@attrs.frozen
class Query:
    """To a projection: call its public method `method` and answer `reply`, once nothing
    at or below position `after` is waiting for a retry."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: Reply
    after: int = 0


@attrs.frozen
class Replace:
    """To a projection: swap in a rebuilt instance between two events. `make(position)`
    brings it up to the consumer's position and returns it (in the consumer's turn);
    `reply` gets that position, or the error that refused the swap."""

    make: Callable[[int], Any]
    reply: Reply


@attrs.frozen
class RetryDue:
    """From the scheduler to a consumer: try the head event of `stream_id` again."""

    stream_id: str


@attrs.frozen
class DeadlineDue:
    """From the scheduler to a saga's consumer: the deadline `deadline_id` fell due."""

    deadline_id: str
    attempt: int = 1


@attrs.frozen
class DeadLetterOrder:
    """To a consumer: "redrive" or "discard" its dead letter `letter_id`; answer `reply`."""

    letter_id: str
    order: str
    reply: Reply


@attrs.frozen
class SaveDeadLetter:
    """To the journal: save (replace) a dead letter."""

    letter: DeadLetterRecord


@attrs.frozen
class OrderDeadLetter:
    """To the journal: set a dead letter's order (if it is still `replacing`)."""

    letter_id: str
    order: str
    replacing: str | None = None


@attrs.frozen
class DropDeadLetter:
    """To the journal: delete a dead letter."""

    letter_id: str


@attrs.frozen
class SaveAudit:
    """To the journal: store audit entries (with the next group commit); answer `reply`."""

    entries: tuple[AuditRecord, ...]
    reply: Reply | None = None


@attrs.frozen
class Sync:
    """To any reactor actor: answer `reply` once every earlier message is handled."""

    reply: Reply
