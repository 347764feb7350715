"""One `append_batch` on PostgreSQL: ONE statement stores it, in one of two ways.

At once (`postgres_chain.at_once`): a batch of plain appends (fenced or not, each stream once)
is sent as the statement alone, its own transaction: one round trip (two if its chain,
computed in Python on the head this process last left, finds the head moved: see
`postgres_chain`). It checks the expected versions it reads; a write that another process
raced is refused by the unique keys (a seq or event id already stored), and the batch is
then decided the careful way, where nothing is guessed.

Decided (`Batch`): BEGIN, share-lock the fenced leases, lock the head, read it (position and
hash), the versions, stored event ids and recorded command ids (one round trip); decide each
append in Python (`decide_append`, shared with the other backends); then the statement and
COMMIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reactor.errors import ReactorError, StorageError
from reactor.store.base import (
    Append,
    AppendOutcome,
    CommandRecord,
    Lease,
    StoredEvent,
)
from reactor.store.postgres_chain import HeadCache, at_once, store_at_once
from reactor.store.postgres_schema import (
    COMMANDS,
    EVENTS_OF,
    LEASES,
    LOCK_HEAD,
    STORED,
    VERSIONS,
    stored_event,
)
from reactor.store.postgres_target import Target
from reactor.store.postgres_writes import Writes
from reactor.store.rules import decide_append, fences_of

if TYPE_CHECKING:
    import psycopg


def commit(
    conn: psycopg.Connection[Any], appends: Sequence[Append], target: Target, head: HeadCache
) -> list[AppendOutcome]:
    """Store a batch in ONE transaction: at once if it can be, else decided (see above).

    `StorageError` if the connection is lost after the writes were sent (the outcome is
    unknown); lost before, the driver's error (running it again is safe).
    """
    import psycopg

    writing = False
    try:
        for _ in range(2):  # chained in Python on the head it knows, then in SQL if missed
            plan = at_once(appends, head)
            if plan is None:
                break
            writing = True
            stored = store_at_once(conn, appends, plan, head, target.schema)
            if stored is not None:
                return stored
            if plan.writes.base is None:
                break
        batch, writing = Batch(head), False
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            batch.read(conn, pipeline, appends)
            outcomes = [batch.decide(a) for a in appends]
            writing = True
            if batch.writes.any():
                conn.execute(*batch.writes.statement(target.schema))
            conn.execute("COMMIT")
        head.committed(batch.base, batch.writes.end)
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


def rollback(conn: psycopg.Connection[Any]) -> None:
    """Roll back what `conn` has in progress, if it still can."""
    import psycopg

    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


class Batch:
    """The decisions of one `append_batch` made inside its transaction, and their writes
    (`cache`: this process's view of the head, told what the head's lock reads)."""

    def __init__(self, cache: HeadCache | None = None) -> None:
        self.cache = cache if cache is not None else HeadCache()
        self.head = 0  # the last position taken
        self.base = 0  # the head's position before the batch
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
        """Share-lock the fences' leases, lock the head (in that order, as the statement
        stored at once takes them), then read what the decisions need (one round trip; one
        more if some command ids were recorded before)."""
        names = sorted({f.lease for a in appends for f in fences_of(a)})
        leases = conn.execute(LEASES, [names]) if names else None
        head = conn.execute(LOCK_HEAD)
        versions = conn.execute(VERSIONS, [list({a.stream_id for a in appends})])
        ids = [r.event_id for a in appends for r in a.records]
        stored = conn.execute(STORED, [ids], binary=True) if ids else None
        command_ids = [a.command_id for a in appends if a.command_id is not None]
        commands = conn.execute(COMMANDS, [command_ids]) if command_ids else None
        pipeline.sync()
        ((self.head, prev),) = head.fetchall()
        self.base = self.head
        self.writes = Writes((self.head, prev))
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
            stored = decide_append(a, actual, self.by_id.get, self.leases.get)
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
