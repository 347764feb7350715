"""The `Storage` protocol every journal backend implements, and the checks they share.

Storage is plain synchronous code on encoded records (`reactor.store.records`): it knows
nothing of event classes. `EventStore` puts the codec on top of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

from reactor.errors import StorageError
from reactor.store.records import (
    Append,
    AppendOutcome,
    AuditRecord,
    Checkpoint,
    CommandNote,
    CommandRecord,
    DeadLetterRecord,
    Dump,
    Fence,
    Lease,
    NewRecord,
    Snapshot,
    StoredEvent,
    StreamInfo,
)

__all__ = [
    "GENESIS",
    "PAGE",
    "Access",
    "Append",
    "AppendOutcome",
    "AuditRecord",
    "Checkpoint",
    "CommandNote",
    "CommandRecord",
    "DeadLetterRecord",
    "Dump",
    "Fence",
    "Lease",
    "NewRecord",
    "Progress",
    "Snapshot",
    "Storage",
    "StoredEvent",
    "StreamInfo",
    "dead_letter_by_id",
    "not_empty",
    "read_pages",
    "stored_at",
]

GENESIS = bytes(32)  # the chain's "previous hash" of position 1
Progress = Callable[[int, int], None]  # (done, total), called as a long task advances


@attrs.frozen
class Access:
    """How a store is opened: may it create the journal, must it only read?"""

    create: bool = True
    readonly: bool = False


@runtime_checkable
class Storage(Protocol):
    """A journal backend. Every method is thread-safe and synchronous.

    Guarantees (the conformance kit `reactor.testing.storage.StorageContract` checks each):
    per stream, seqs are 1..n with no gap; positions strictly increase in commit order and
    a reader never skips a position committed late; an append is all or none;
    re-appending event ids already stored at that place returns them and writes nothing;
    each event is stored with its hash chained to the previous one's
    (`reactor.security.chain.event_hash`), and the last one's is the recorded head.
    It is also the `KeyStore` of the data keys of personal data (`save_key`...).

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

    # -- lineage: events by id, correlation and cause; notes of commands -------------------

    def find_event(self, event_id: str) -> StoredEvent | None:
        """The event stored with this id, or None (by index)."""
        ...

    def correlated(self, correlation_id: str) -> list[StoredEvent]:
        """The events stored with this correlation id, in position order (by index)."""
        ...

    def caused_by(self, causation_id: str) -> list[StoredEvent]:
        """The events stored with this causation id (a command's), in position order (by
        index)."""
        ...

    def save_note(self, note: CommandNote) -> None:
        """Keep a command's note (replacing one under the same command id)."""
        ...

    def find_note(self, command_id: str) -> CommandNote | None:
        """The note kept for this command id, or None."""
        ...

    def notes(self, correlation_id: str) -> list[CommandNote]:
        """The notes of commands with this correlation id, oldest first (by index)."""
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

    def delete_checkpoint(self, name: str) -> bool:
        """Forget the named checkpoint and its keyed rows (a finished rebuild's shadow);
        False if there was none."""
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

    def acquire_leases(self, names: Sequence[str], owner: str, ttl: float) -> dict[str, Lease]:
        """`acquire_lease` of each name (in one statement where the backend can: a cluster
        node renews all of its shards' leases at once); the leases granted, by name."""
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

    # -- governance: the hash chain, the audit trail, data keys, dump and load ---------------

    def read_chain(
        self, after: int = 0, limit: int | None = None
    ) -> Iterator[tuple[StoredEvent, bytes | None]]:
        """Events after `after` with the hash stored with each, lazily, in position order."""
        ...

    def chain_head(self) -> tuple[int, bytes]:
        """The chain head recorded with the last append: its position and hash
        (0 and `GENESIS` for an empty journal)."""
        ...

    def append_audit(self, entries: Sequence[AuditRecord]) -> None:
        """Store audit entries durably, in order (their `seq` is given by the store)."""
        ...

    def audit(
        self, since: float | None = None, principal: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Audit entries (at or after timestamp `since`, of one principal id), oldest first,
        at most `limit`. O(entries) without an index: meant for operators, not hot paths."""
        ...

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        """Store `wrapped` as the subject's data key unless it has one; return the key now
        stored (atomic: racing writers get one winner)."""
        ...

    def load_key(self, subject: str) -> bytes | None:
        """The subject's wrapped data key, or None."""
        ...

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        """The wrapped keys of those `subjects` that have one, in one round trip."""
        ...

    def delete_key(self, subject: str) -> bool:
        """Destroy the subject's key so that no copy stays in the store's files (as far as
        the backend can: see its docstring); False if it had none."""
        ...

    def dump(self) -> AbstractContextManager[Dump]:
        """Everything stored but leases, read from one consistent snapshot while other
        writers go on (`with storage.dump() as d: ...`)."""
        ...

    def load(self, dump: Dump, progress: Progress | None = None) -> int:
        """Fill this empty journal with `dump`, as it is (stored hashes too); returns the
        number of events loaded. `StorageError` if the journal holds anything already."""
        ...

    def claim(self, owner: str) -> None:
        """Announce a runtime (`owner` describes it) on this journal until `close()`. A
        journal that is not `shared` serves one runtime at a time: `StorageError` naming the
        journal and the holder when another process holds it."""
        ...

    def close(self) -> None:
        """Release connections; later calls raise `StorageError`. Idempotent."""
        ...


def not_empty(url: str) -> StorageError:
    """The error of a `load` into a journal that holds something already."""
    return StorageError(
        f"{url}: refusing to load into a journal that is not empty (it holds events, data "
        "keys, audit entries, snapshots, checkpoints, commands or dead letters): restore into "
        "a new, empty store"
    )


PAGE = 1000  # rows a page of `read_pages`


def read_pages(
    fetch: Callable[[str, list[Any]], list[Any]],
    sql: str,
    params: list[Any],
    after: int,
    upto: int,
    key: int,
    limit: int | None,
    make: Callable[[Any], Any],
) -> Iterator[Any]:
    """Run `sql` page by page through `fetch` (a backend's one short read, so no read
    transaction stays open between pages): its last three parameters bound column `key`
    (seq or position) after `after` and up to `upto`, and the page size; each row made
    into a record by `make`; `limit` rows at most (None: all)."""
    left = limit if limit is not None else -1
    while left != 0:
        size = PAGE if left < 0 else min(PAGE, left)
        rows = fetch(sql, [*params, max(after, 0), upto, size])
        yield from map(make, rows)
        if len(rows) < size:
            return
        after = rows[-1][key]
        left -= len(rows) if left > 0 else 0


def dead_letter_by_id(storage: Storage, letter_id: str) -> DeadLetterRecord | None:
    """The dead letter with this id, or None."""
    return next((d for d in storage.dead_letters() if d.id == letter_id), None)


def stored_at(storage: Storage, position: int) -> StoredEvent | None:
    """The event stored at a global position, or None if there is none."""
    stored = next(storage.read_all(position - 1, limit=1), None)
    return stored if stored is not None and stored.position == position else None
