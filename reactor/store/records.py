"""The records storage speaks: events to append and as stored, appends and their outcomes,
and what a journal keeps besides events (checkpoints, snapshots, command records, dead
letters, leases, audit entries, a whole journal's `Dump`). Plain values: bytes, ids and
numbers, never event classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import attrs
import orjson

from reactor.errors import ReactorError


class NewRecord(NamedTuple):
    """One encoded event to append.

    Records are NamedTuples, not attrs classes: they are the rows of the journal's hottest
    paths (a replay builds one per event, 5x faster than an attrs instance; perf/journal.py).
    """

    event_id: str
    type: str
    version: int
    data: bytes
    timestamp: float  # seconds since the epoch, UTC
    metadata: bytes | None = None  # JSON object, or None for none
    correlation_id: str | None = None
    causation_id: str | None = None


class StoredEvent(NamedTuple):
    """One encoded event as stored: a `NewRecord` plus its place in stream and journal."""

    event_id: str
    stream_id: str
    seq: int
    position: int
    type: str
    version: int
    data: bytes
    timestamp: float
    metadata: bytes | None
    correlation_id: str | None
    causation_id: str | None

    @classmethod
    def at(cls, record: NewRecord, stream_id: str, seq: int, position: int) -> StoredEvent:
        """`record` as stored at `seq` in `stream_id` and `position` in the journal."""
        event_id, type_, version, data, timestamp, metadata, correlation, causation = record
        return cls(
            event_id,
            stream_id,
            seq,
            position,
            type_,
            version,
            data,
            timestamp,
            metadata,
            correlation,
            causation,
        )


class Fence(NamedTuple):
    """A lease a write depends on: the write is refused (`FencedError`) unless the lease
    named `lease` still has `epoch`, i.e. nobody took it over since it was acquired."""

    lease: str
    epoch: int


@attrs.frozen(kw_only=True)
class Lease:
    """A named lease: held by `owner` until `expires` (the storage's clock, seconds since
    the epoch). `epoch` grows by one each time another owner takes it over."""

    name: str
    owner: str
    epoch: int
    expires: float


@attrs.frozen(kw_only=True)
class Checkpoint:
    """How far a named consumer got in the journal, with its state (saved atomically).

    `keyed` are per-key rows saved in the same transaction (a saga's instances): each
    `(key, state)` replaces that key's row, or deletes it when `state` is None. With a
    `fence`, the checkpoint is only saved while that lease is still held at its epoch.
    """

    name: str
    position: int
    state: bytes | None = None
    keyed: tuple[tuple[str, bytes | None], ...] = attrs.field(default=(), eq=False)
    fence: Fence | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class Snapshot:
    """The encoded state of a stream's aggregate as of `seq`."""

    stream_id: str
    seq: int
    type: str
    version: int
    state: bytes

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> Snapshot:
        """A stored row in field order (stream id, seq, type, version, state)."""
        stream_id, seq, type_, version, state = row
        return cls(stream_id=stream_id, seq=seq, type=type_, version=version, state=state)


@attrs.frozen(kw_only=True)
class CommandRecord:
    """What a command stored: the stream, its version after the command, how many events
    it appended (the last `count` seqs up to `version`) and the last one's position (0 if none).
    """

    command_id: str
    stream_id: str
    version: int
    count: int
    position: int

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> CommandRecord:
        """A stored row in field order (command id, stream id, version, count, position)."""
        command_id, stream_id, version, count, position = row
        return cls(
            command_id=command_id,
            stream_id=stream_id,
            version=version,
            count=count,
            position=position,
        )

    @classmethod
    def of(
        cls, command_id: str, stream_id: str, stored: Sequence[StoredEvent], version: int
    ) -> CommandRecord:
        """The record of a command that stored `stored` (none: the stream stayed at
        `version`)."""
        last = stored[-1] if stored else None
        return cls(
            command_id=command_id,
            stream_id=stream_id,
            version=last.seq if last else version,
            count=len(stored),
            position=last.position if last else 0,
        )


@attrs.frozen(kw_only=True)
class CommandNote:
    """A command kept for lineage where its events alone would not show it: one that stored
    no event (`outcome` "rejected" or "failed" with its `error`, or "accepted" deciding
    nothing), sent by a saga or subscriber (`by`, its label) or under an id or correlation
    someone may ask about. `causation_id` is the event that caused it (None for a caller's).
    """

    command_id: str
    stream_id: str
    type: str
    outcome: str
    error: str = ""
    correlation_id: str | None = None
    causation_id: str | None = None
    by: str = ""
    timestamp: float

    def row(self) -> tuple[Any, ...]:
        """Its stored columns, in field order."""
        return attrs.astuple(self)

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> CommandNote:
        """A stored row in field order."""
        return cls(**dict(zip(_NOTE_FIELDS, row, strict=True)))


_NOTE_FIELDS = tuple(f.name for f in attrs.fields(CommandNote))


@attrs.frozen(kw_only=True)
class DeadLetterRecord:
    """An event a handler gave up on, and the positions of the later events of the same
    stream parked behind it for that handler (sequenced dead letters).

    `request` is "" or an operator's order the handler carries out when it runs:
    "redrive" (deliver it, then what waits) or "discard" (drop it, deliver what waits).
    The handler owns every field but `request`; the operator owns `request`
    (`Storage.order_dead_letter`), so neither overwrites the other.
    """

    id: str
    handler: str
    position: int
    stream_id: str
    error: str
    attempts: int
    parked: tuple[int, ...] = ()
    request: str = ""

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> DeadLetterRecord:
        """A stored row in field order, `parked` as a sequence of positions."""
        id_, handler, position, stream_id, error, attempts, parked, request = row
        return cls(
            id=id_,
            handler=handler,
            position=position,
            stream_id=stream_id,
            error=error,
            attempts=attempts,
            parked=tuple(parked),
            request=request,
        )


@attrs.frozen
class StreamInfo:
    """One stream in `streams()`: its id, version (last seq) and last global position."""

    stream_id: str
    version: int
    last_position: int


class Append(NamedTuple):
    """One append of an `append_batch`: records for a stream at an expected version.

    `expected_version` is the stream's current last seq (0: a new stream) or None for no
    check. `checkpoint`, if given, is saved in the same transaction iff the append succeeds.
    `command_id`, if given, is recorded with it: appending again under a recorded command id
    writes nothing and returns what the first append stored (the command is idempotent).
    With a `fence`, the append is refused (`FencedError`) unless that lease is still held at
    its epoch. `audit` entries are stored in the same transaction iff the append succeeds
    (the trail of an accepted command). A NamedTuple, like `AppendOutcome`: one of each is
    built per command.
    """

    stream_id: str
    records: Sequence[NewRecord]
    expected_version: int | None = None
    checkpoint: Checkpoint | None = None
    command_id: str | None = None
    fence: Fence | None = None
    audit: Sequence[AuditRecord] = ()


class AppendOutcome(NamedTuple):
    """The result of one append in a batch: the stored events, or the error that refused it."""

    events: tuple[StoredEvent, ...] = ()
    error: ReactorError | None = None
    command: CommandRecord | None = None  # for an append with a command id
    fresh: bool = False  # `events` were written now (not found stored before)

    def result(self) -> list[StoredEvent]:
        """The stored events; raises the error if the append was refused."""
        if self.error is not None:
            raise self.error
        return list(self.events)


@attrs.frozen(kw_only=True)
class AuditRecord:
    """One entry of the audit trail: who (`principal` id, "" for none, and its `roles`) did
    what (`action` on `resource`), when (`timestamp`, seconds since the epoch) and how it
    ended (`outcome`: accepted, rejected, denied, failed or done), with a `detail` (a
    stream, a command id, an error: never the payload). `seq` is its place in the trail,
    given by the store (0 before it is stored)."""

    timestamp: float
    principal: str
    roles: tuple[str, ...] = ()
    action: str
    resource: str
    outcome: str
    detail: str = ""
    seq: int = 0

    def row(self) -> tuple[Any, ...]:
        """Its stored columns but `seq`: timestamp, principal, roles (JSON text), action,
        resource, outcome, detail."""
        roles = orjson.dumps(list(self.roles)).decode()
        return (
            self.timestamp,
            self.principal,
            roles,
            self.action,
            self.resource,
            self.outcome,
            self.detail,
        )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> AuditRecord:
        """A stored row: `seq`, then the columns of `row()`."""
        seq, timestamp, principal, roles, action, resource, outcome, detail = row
        return cls(
            seq=seq,
            timestamp=timestamp,
            principal=principal,
            roles=tuple(orjson.loads(roles)),
            action=action,
            resource=resource,
            outcome=outcome,
            detail=detail,
        )


@attrs.frozen(kw_only=True)
class Dump:
    """Everything a journal holds but its leases, as records read from one consistent
    snapshot of it (`Storage.dump()`), for a backup or a restore (`Storage.load`).

    `head` is the chain head the store recorded (the last position and its hash);
    `events` are `(event, stored hash)` in position order. Each iterable may be read once,
    while the dump is open.
    """

    head: tuple[int, bytes]
    events: Iterable[tuple[StoredEvent, bytes | None]]
    snapshots: Iterable[Snapshot]
    checkpoints: Iterable[Checkpoint]  # each with its keyed rows in `keyed`
    commands: Iterable[CommandRecord]
    dead_letters: Iterable[DeadLetterRecord]
    keys: Iterable[tuple[str, bytes]]
    audit: Iterable[AuditRecord]
    notes: Iterable[CommandNote] = ()
