"""One `append_batch` on PostgreSQL: ONE statement stores it, in one of two ways.

At once (`at_once`): a batch of plain appends (no fence, each stream once, at an expected
version) is sent as the statement alone, its own transaction: one round trip, its chain
hashes computed on the head this process last wrote (`postgres_chain.HeadCache`). It checks
the head and the expected versions it reads; a write that another process raced is refused
by the unique keys (a seq or event id already stored), and the batch is then decided the
careful way, where nothing is guessed.

Decided (`Batch`): BEGIN, lock the head, read it (position and hash), the versions, stored
event ids, recorded command ids and fenced leases (one round trip); decide each append in
Python (`check_append`, shared with the other backends); then the statement and COMMIT.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from reactor.errors import ReactorError, StorageError
from reactor.store.base import (
    Append,
    AppendOutcome,
    AuditRecord,
    Checkpoint,
    CommandRecord,
    Fence,
    Lease,
    NewRecord,
    StoredEvent,
    check_append,
    check_fence,
)
from reactor.store.postgres_chain import HeadCache
from reactor.store.postgres_schema import (
    COMMANDS,
    EVENTS_OF,
    LEASES,
    LOCK_HEAD,
    STORED,
    VERSIONS,
    Target,
    stored_event,
    write_statement,
)

if TYPE_CHECKING:
    import psycopg

ROW = ("stream", "k", "i", *NewRecord._fields, "hash_")  # an event row of `Writes`
COMMAND = ("c_id", "c_stream", "c_version", "c_count", "c_position", "c_i")
AUDIT = ("a_time", "a_principal", "a_roles", "a_action", "a_resource", "a_outcome", "a_detail")


def commit(
    conn: psycopg.Connection[Any], appends: Sequence[Append], target: Target, head: HeadCache
) -> list[AppendOutcome]:
    """Store a batch in ONE transaction: at once if it can be, else decided (see above).

    `StorageError` if the connection is lost after the writes were sent (the outcome is
    unknown); lost before, the driver's error (running it again is safe).
    """
    import psycopg

    plan, writing = at_once(appends, head), False
    try:
        if plan is not None:
            writing = True
            stored = _store_at_once(conn, plan, channel=target.schema)
            if stored is not None:
                head.committed(plan[0].end)
                return stored
            head.missed()
        batch, writing = Batch(head), False
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            batch.read(conn, pipeline, appends)
            outcomes = [batch.decide(a) for a in appends]
            writing = True
            if batch.writes.any():
                conn.execute(*batch.writes.statement(target.schema))
            conn.execute("COMMIT")
        head.committed(batch.writes.end)
    except psycopg.OperationalError as e:
        if writing and conn.broken:
            raise StorageError(
                f"{target.url}: the connection to PostgreSQL ({target.where}) was lost while "
                f"committing {len(appends)} append(s): they may or may not be stored. "
                "Re-sending a command with the same command id is safe: it is stored once"
            ) from e
        rollback(conn)
        raise
    except BaseException:
        rollback(conn)
        raise
    return outcomes


def _store_at_once(
    conn: psycopg.Connection[Any], plan: tuple[Writes, list[AppendOutcome]], *, channel: str
) -> list[AppendOutcome] | None:
    """Store a batch in one statement; its outcomes, or None if a check or a unique key
    refused it (then nothing was stored)."""
    import psycopg

    writes, outcomes = plan
    if not writes.any():
        return outcomes
    try:
        ((base, _, _),) = conn.execute(*writes.statement(channel)).fetchall()
    except psycopg.errors.UniqueViolation:
        return None
    return None if base is None else outcomes


def rollback(conn: psycopg.Connection[Any]) -> None:
    """Roll back what `conn` has in progress, if it still can."""
    import psycopg

    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


class Writes:
    """The rows of one write statement. An event row's seq is `actual + k` (its stream's
    version as the statement reads it, plus k) and its position `base + i` (the head
    before, plus i); the statement stores nothing if the head is not at `base` or an
    expected version differs."""

    def __init__(self, base: tuple[int, bytes] | None = None) -> None:
        self.base = base  # the head the batch chains on (None: no events, any head)
        self.end = base  # the head after it
        self.rows: list[tuple[Any, ...]] = []  # stream, k, i, the record's fields, the hash
        self.expected: dict[str, int | None] = {}  # the streams written, in row order
        self.commands: list[tuple[Any, ...]] = []  # id, stream, version, count, position, i
        self.checkpoints: dict[str, Checkpoint] = {}  # by name: the last one wins
        self.keyed: dict[tuple[str, str], bytes | None] = {}  # the last state wins
        self.audit: list[AuditRecord] = []

    def add(
        self, stream_id: str, records: Sequence[NewRecord], k: int, hashes: Sequence[bytes]
    ) -> None:
        """Records of `stream_id` at seqs `actual + k + 1`, `actual + k + 2`... (`actual`:
        the stream's version as the statement reads it), with their chain hashes."""
        for n, r, hash_ in zip(range(k + 1, k + 1 + len(records)), records, hashes, strict=True):
            self.rows.append((stream_id, n, len(self.rows) + 1, *r, hash_))
        if records and self.base is not None:
            self.end = (self.base[0] + len(self.rows), hashes[-1])

    def keep(self, checkpoint: Checkpoint) -> None:
        """Save `checkpoint` and its keyed rows with the batch."""
        self.checkpoints[checkpoint.name] = checkpoint
        self.keyed.update(((checkpoint.name, k), v) for k, v in checkpoint.keyed)

    def any(self) -> bool:
        """Whether there is anything to write."""
        return bool(self.rows or self.commands or self.checkpoints or self.audit)

    def statement(self, channel: str) -> tuple[str, dict[str, Any]]:
        """The write statement (`postgres_schema.write_statement`) and its parameters."""
        params: dict[str, Any] = {
            "channel": channel,
            "n": len(self.rows),
            "base": None if self.base is None else self.base[0],
            "hash": None if self.end is None else self.end[1],
            "s_stream": list(self.expected),
            "s_expected": list(self.expected.values()),
            **_columns(ROW, self.rows),
        }
        parts = {
            "commands": _columns(COMMAND, self.commands),
            "audit": _columns(AUDIT, [e.row() for e in self.audit]),
            "checkpoints": _columns(
                ("cp_name", "cp_position", "cp_state", "cp_time"),
                [(c.name, c.position, c.state, time.time()) for c in self.checkpoints.values()],
            ),
            "saved": _columns(
                ("k_name", "k_key", "k_state"),
                [(n, k, v) for (n, k), v in self.keyed.items() if v is not None],
            ),
            "deleted": _columns(
                ("d_name", "d_key"), [k for k, v in self.keyed.items() if v is None]
            ),
        }
        used = frozenset(name for name, columns in parts.items() if next(iter(columns.values())))
        for name in used:
            params.update(parts[name])
        return write_statement(used), params


def _columns(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows as one list per column, by name (the arrays the statement unnests)."""
    columns = zip(*rows, strict=True) if rows else [()] * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def at_once(
    appends: Sequence[Append], head: HeadCache
) -> tuple[Writes, list[AppendOutcome]] | None:
    """The writes of a batch that can be stored without reading first, and its outcomes if
    it is; None if the batch needs deciding: the head is not known, or it has a fence, a
    stream twice, records with no version check, a version check or a command id with no
    records, or an id twice."""
    base = head.guess()
    if base is None:
        return None
    writes, outcomes = Writes(base), []
    position, prev = base
    ids: set[str] = set()
    commands: set[str] = set()
    for a in appends:
        if a.fence is not None or (a.checkpoint is not None and a.checkpoint.fence is not None):
            return None
        if not a.records and (a.expected_version is not None or a.command_id is not None):
            return None
        if a.records and (a.stream_id in writes.expected or a.expected_version is None):
            return None
        ids.update(r.event_id for r in a.records)
        if a.command_id is not None:
            if a.command_id in commands:
                return None
            commands.add(a.command_id)
            last = len(writes.rows) + len(a.records)
            writes.commands.append((a.command_id, a.stream_id, None, len(a.records), None, last))
        actual = a.expected_version or 0
        events = [
            StoredEvent.at(r, a.stream_id, actual + k, position + k)
            for k, r in enumerate(a.records, 1)
        ]
        if a.records:
            writes.expected[a.stream_id] = a.expected_version
            hashes = head.hashes(prev, events)
            writes.add(a.stream_id, a.records, 0, hashes)
            position, prev = events[-1].position, hashes[-1]
        if a.checkpoint is not None:
            writes.keep(a.checkpoint)
        writes.audit.extend(a.audit)
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, events, actual)
        outcomes.append(AppendOutcome(events=tuple(events), command=command, fresh=True))
    return (writes, outcomes) if len(ids) == len(writes.rows) else None


class Batch:
    """The decisions of one `append_batch` made inside its transaction, and their writes
    (`cache`: this process's view of the head, told what the head's lock reads)."""

    def __init__(self, cache: HeadCache | None = None) -> None:
        self.cache = cache if cache is not None else HeadCache()
        self.head = 0  # the last position taken
        self.versions: dict[str, int] = {}
        self.start: dict[str, int] = {}  # the versions before the batch
        self.by_id: dict[str, StoredEvent] = {}  # stored, or inserted by this batch
        self.commands: dict[str, CommandRecord] = {}  # recorded, or recorded by this batch
        self.command_events: dict[str, tuple[StoredEvent, ...]] = {}
        self.leases: dict[str, Lease] = {}  # the stored leases the batch's fences name
        self.writes = Writes()

    def read(
        self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline, appends: Sequence[Append]
    ) -> None:
        """Lock the head, then read what the decisions need (one round trip; one more if
        some command ids were recorded before)."""
        head = conn.execute(LOCK_HEAD)
        versions = conn.execute(VERSIONS, [list({a.stream_id for a in appends})])
        ids = [r.event_id for a in appends for r in a.records]
        stored = conn.execute(STORED, [ids], binary=True) if ids else None
        command_ids = [a.command_id for a in appends if a.command_id is not None]
        commands = conn.execute(COMMANDS, [command_ids]) if command_ids else None
        names = sorted({f.lease for f in _fences(appends)})
        leases = conn.execute(LEASES, [names]) if names else None
        pipeline.sync()
        ((self.head, prev),) = head.fetchall()
        self.writes = Writes((self.head, prev))
        self.cache.locked((self.head, prev))
        self.versions = dict(versions.fetchall())
        self.start = dict(self.versions)
        if stored is not None:
            self.by_id = {row[0]: stored_event(row) for row in stored}
        if leases is not None:
            self._keep_leases(leases.fetchall())
        if commands is not None:
            self.commands = {row[0]: CommandRecord.of_row(row) for row in commands.fetchall()}
            self._read_events_of_commands(conn, pipeline)

    def read_leases(self, conn: psycopg.Connection[Any], names: list[str]) -> None:
        """Read (and share-lock) the leases named, outside a pipeline."""
        self._keep_leases(conn.execute(LEASES, [names]).fetchall())

    def _keep_leases(self, rows: list[Any]) -> None:
        self.leases = {n: Lease(name=n, owner=o, epoch=e, expires=x) for n, o, e, x in rows}

    def _read_events_of_commands(
        self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline
    ) -> None:
        cursors = {
            c.command_id: conn.execute(
                EVENTS_OF, [c.stream_id, c.version - c.count, c.version], binary=True
            )
            for c in self.commands.values()
        }
        if cursors:
            pipeline.sync()
        for command_id, cursor in cursors.items():
            self.command_events[command_id] = tuple(map(stored_event, cursor.fetchall()))

    def decide(self, a: Append) -> AppendOutcome:
        """The outcome of one append, given the stored state and the batch's earlier ones
        (its audit entries are written with it if it succeeds)."""
        outcome = self._decide(a)
        if outcome.error is None:
            self.writes.audit.extend(a.audit)
        return outcome

    def _decide(self, a: Append) -> AppendOutcome:
        done = self.commands.get(a.command_id) if a.command_id is not None else None
        if done is not None:
            return AppendOutcome(events=self.command_events[done.command_id], command=done)
        actual = self.versions.get(a.stream_id, 0)
        try:
            for fence in _fences((a,)):
                check_fence(fence, self.leases.get(fence.lease))
            stored = check_append(
                a.stream_id,
                a.records,
                a.expected_version,
                actual,
                [self.by_id.get(r.event_id) for r in a.records],
            )
        except ReactorError as refused:
            return AppendOutcome(error=refused)
        if stored is not None:
            return self._outcome(a, stored, actual, fresh=False)
        stored = [
            StoredEvent.at(r, a.stream_id, seq, self.head + n)
            for n, (seq, r) in enumerate(enumerate(a.records, actual + 1), 1)
        ]
        if a.records:
            start = self.start.setdefault(a.stream_id, 0)
            self.writes.expected.setdefault(a.stream_id, None)
            prev = self.writes.end[1] if self.writes.end is not None else b""
            hashes = self.cache.hashes(prev, stored)
            self.writes.add(a.stream_id, a.records, actual - start, hashes)
        self.head += len(stored)
        self.by_id.update((e.event_id, e) for e in stored)
        self.versions[a.stream_id] = actual + len(stored)
        if a.checkpoint is not None:
            self.writes.keep(a.checkpoint)
        return self._outcome(a, stored, actual, fresh=True)

    def _outcome(
        self, a: Append, stored: list[StoredEvent], actual: int, *, fresh: bool
    ) -> AppendOutcome:
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, stored, actual)
            self.commands[a.command_id] = command
            self.command_events[a.command_id] = tuple(stored)
            c = command
            self.writes.commands.append(
                (c.command_id, c.stream_id, c.version, c.count, c.position, 0)
            )
        return AppendOutcome(events=tuple(stored), command=command, fresh=fresh)


def _fences(appends: Sequence[Append]) -> Iterator[Fence]:
    """The fences of appends and of their checkpoints."""
    for a in appends:
        if a.fence is not None:
            yield a.fence
        if a.checkpoint is not None and a.checkpoint.fence is not None:
            yield a.checkpoint.fence
