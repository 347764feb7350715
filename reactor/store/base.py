"""The `Storage` protocol every journal backend implements, and the records it speaks.

Storage is plain synchronous code on encoded records (bytes, ids, numbers): it knows
nothing of event classes. `EventStore` puts the codec on top of it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import attrs

from reactor.errors import ConcurrencyError, DuplicateEventId, FencedError, ReactorError


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
    its epoch. A NamedTuple, like `AppendOutcome`: one of each is built per command.
    """

    stream_id: str
    records: Sequence[NewRecord]
    expected_version: int | None = None
    checkpoint: Checkpoint | None = None
    command_id: str | None = None
    fence: Fence | None = None


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


@runtime_checkable
class Storage(Protocol):
    """A journal backend. Every method is thread-safe and synchronous.

    Guarantees (the conformance kit `reactor.testing.storage.StorageContract` checks each):
    per stream, seqs are 1..n with no gap; positions strictly increase in commit order and
    a reader never skips a position committed late; an append is all or none;
    re-appending event ids already stored at that place returns them and writes nothing.

    `shared` says whether several processes' runtimes may use the journal at once (and so
    whether events may appear that this process did not append).
    """

    url: str
    shared: bool

    def append(
        self, stream_id: str, records: Sequence[NewRecord], expected_version: int | None
    ) -> list[StoredEvent]:
        """Append atomically; `ConcurrencyError` on a stale `expected_version`."""
        ...

    def append_batch(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        """Run many appends in ONE transaction, with an outcome per append, in order."""
        ...

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[StoredEvent]:
        """The stream's events with `from_seq <= seq <= to_seq`, lazily, in seq order."""
        ...

    def read_all(
        self, after: int = 0, types: Collection[str] | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        """Events with `position > after` (of `types` if given), lazily, in position order.

        Read in pages: events committed while iterating may or may not be included, but
        what is yielded has no gap and no duplicate.
        """
        ...

    def last_position(self) -> int:
        """The position of the last stored event (0 when empty)."""
        ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's last seq (0 when it does not exist)."""
        ...

    def streams(self) -> Iterator[StreamInfo]:
        """Every stream, ordered by stream id."""
        ...

    def find_command(self, command_id: str) -> CommandRecord | None:
        """What the append recorded under `command_id` stored, or None."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as the stream's latest, replacing an older one."""
        ...

    def save_dead_letter(self, letter: DeadLetterRecord) -> None:
        """Save a dead letter by id: a new one whole; a stored one keeps its `request` (the
        operator's). At most one letter per (handler, position): saving one under another
        id replaces the older."""
        ...

    def order_dead_letter(
        self, letter_id: str, order: str, *, replacing: str | None = None
    ) -> bool:
        """Set a dead letter's `request` to `order` ("" clears it), only if its request is
        `replacing` when that is given; False if no letter with this id (and that request)."""
        ...

    def delete_dead_letter(self, letter_id: str) -> bool:
        """Forget a dead letter; False if there was none with this id."""
        ...

    def dead_letters(self, handler: str | None = None) -> list[DeadLetterRecord]:
        """Dead letters (of one handler), oldest position first."""
        ...

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's latest snapshot, or None."""
        ...

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Save (replace) the named checkpoint."""
        ...

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """The named checkpoint, or None (its `keyed` rows come from `load_keyed`)."""
        ...

    def load_keyed(self, name: str) -> dict[str, bytes]:
        """The keyed rows saved with the named checkpoint, by key."""
        ...

    def checkpoints(self, prefix: str = "") -> list[Checkpoint]:
        """Every checkpoint whose name starts with `prefix`, by name: its name and position
        (not its state, which `load_checkpoint` gives)."""
        ...

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take or renew the lease `name` for `ttl` seconds: granted if it is free, expired
        or already `owner`'s (a renewal keeps the epoch; a takeover adds one); None while
        another owner holds it."""
        ...

    def release_lease(self, name: str, owner: str) -> bool:
        """Give up `owner`'s lease `name` (it expires now); False if `owner` did not hold it."""
        ...

    def leases(self, prefix: str = "") -> list[Lease]:
        """The leases whose name starts with `prefix`, expired ones included, by name."""
        ...

    def wait_for_append(self, after: int, timeout: float) -> int:
        """Block until an event beyond position `after` is stored (by any process) or
        `timeout` seconds pass; returns `last_position()`."""
        ...

    def claim(self, owner: str) -> None:
        """Announce a runtime (`owner` describes it) on this journal until `close()`. A
        journal that is not `shared` serves one runtime at a time: `StorageError` naming the
        journal and the holder when another process holds it."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise `StorageError`. Idempotent."""
        ...


def check_fence(fence: Fence | None, lease: Lease | None) -> None:
    """Raise `FencedError` unless `lease` (the stored lease `fence` names) is at its epoch."""
    if fence is not None and (lease is None or lease.epoch != fence.epoch):
        raise FencedError(fence.lease, fence.epoch, lease.epoch if lease is not None else 0)


def check_append(
    stream_id: str,
    records: Sequence[NewRecord],
    expected_version: int | None,
    actual_version: int,
    stored: Sequence[StoredEvent | None],
) -> list[StoredEvent] | None:
    """Decide an append before writing: the stored events if it is an idempotent re-append,
    None if it may be written, or raise `DuplicateEventId` / `ConcurrencyError`.

    `stored` holds, for each record, the stored event with its event id (or None).
    Shared by the backends so they agree on every case.
    """
    if len(records) > 1:
        ids = [r.event_id for r in records]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DuplicateEventId(dup, stream_id, 0)
    if any(s is not None for s in stored):
        return _already_stored(stream_id, records, expected_version, stored)
    if expected_version is not None and expected_version != actual_version:
        raise ConcurrencyError(stream_id, expected_version, actual_version)
    return None


def _already_stored(
    stream_id: str,
    records: Sequence[NewRecord],
    expected_version: int | None,
    stored: Sequence[StoredEvent | None],
) -> list[StoredEvent]:
    """Some event ids are stored: all of them at this place (idempotent), or a clash."""
    found = [s for s in stored if s is not None]
    first = stored[0]
    if (
        len(found) == len(records)
        and first is not None
        and all(
            s is not None and s.stream_id == stream_id and s.seq == first.seq + i
            for i, s in enumerate(stored)
        )
        and (expected_version is None or first.seq == expected_version + 1)
    ):
        return found
    clash = found[0]
    raise DuplicateEventId(clash.event_id, clash.stream_id, clash.seq)


def dead_letter_by_id(storage: Storage, letter_id: str) -> DeadLetterRecord | None:
    """The dead letter with this id, or None."""
    return next((d for d in storage.dead_letters() if d.id == letter_id), None)


def stored_at(storage: Storage, position: int) -> StoredEvent | None:
    """The event stored at a global position, or None if there is none."""
    stored = next(storage.read_all(position - 1, limit=1), None)
    return stored if stored is not None and stored.position == position else None
