"""What a PostgreSQL journal keeps for governance: the hash chain's reads, the audit trail,
the data keys of personal data, a `Dump` read in one REPEATABLE READ snapshot, and `load`
(COPY, in one transaction under the head's lock). A part of `PostgresStorage`.

A deleted data key is vacuumed from its table at once; PostgreSQL's write-ahead log and
any base backup still hold its old page until they are recycled: encrypt the server's
disks, or keep WAL archives no longer than a forget may take to be final.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from reactor.store.base import (
    AuditRecord,
    Checkpoint,
    CommandNote,
    CommandRecord,
    DeadLetterRecord,
    Dump,
    Progress,
    Snapshot,
    StoredEvent,
    not_empty,
)
from reactor.store.postgres_schema import (
    LETTER_COLUMNS,
    LOCK_HEAD,
    SAVE_LETTER,
    SAVE_SNAPSHOT,
    SELECT_EVENT,
    stored_event,
)
from reactor.store.postgres_target import Target
from reactor.store.postgres_upgrade import NOTE_COLUMNS, SAVE_NOTE

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")
SELECT_CHAIN = SELECT_EVENT.replace(" FROM events", ", hash FROM events")
AUDIT_COLUMNS = "seq, timestamp, principal, roles, action, resource, outcome, detail"
COPY_EVENTS = (
    "COPY events (event_id, stream, seq, position, type, version, data, timestamp, metadata, "
    "correlation_id, causation_id, hash) FROM STDIN (FORMAT BINARY)"
)
# The column types of COPY_EVENTS, in order.
COPY_TYPES = "text text int8 int8 text int4 bytea float8 bytea text text bytea"
_TABLES = (
    "events", "snapshots", "checkpoints", "commands", "dead_letters", "keys", "audit",
    "command_notes",
)  # fmt: skip


def chain_row(row: Sequence[Any]) -> tuple[StoredEvent, bytes | None]:
    """A row of `SELECT_CHAIN` as (event, stored hash)."""
    return stored_event(row[:11]), row[11]


class Governance:
    """The chain, the audit trail, data keys, dump and load, through the storage's pooled
    connections (`_run`, `_fetch`, `_change`, `_pages`)."""

    url: str
    target: Target
    _pool: ConnectionPool[psycopg.Connection[Any]]

    def _errors(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _run(
        self, what: str, work: Callable[[psycopg.Connection[Any]], T], retry: bool = True
    ) -> T:
        raise NotImplementedError

    def _fetch(self, sql: str, params: Sequence[Any] = (), what: str = "read") -> list[Any]:
        raise NotImplementedError

    def _change(self, sql: str, params: Sequence[Any], what: str) -> int:
        raise NotImplementedError

    def _pages(
        self,
        sql: str,
        params: list[Any],
        after: int,
        upto: int,
        key: int,
        limit: int | None,
        make: Callable[[Any], Any],
    ) -> Iterator[Any]:
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    # -- the chain ---------------------------------------------------------------------------

    def read_chain(
        self, after: int = 0, limit: int | None = None
    ) -> Iterator[tuple[StoredEvent, bytes | None]]:
        self._check_open()
        sql = f"{SELECT_CHAIN} WHERE position > %s AND position <= %s ORDER BY position LIMIT %s"
        return self._pages(sql, [], after, 2**62, 3, limit, chain_row)

    def chain_head(self) -> tuple[int, bytes]:
        ((position, hash_),) = self._fetch("SELECT position, hash FROM head")
        return position, hash_

    # -- the audit trail ---------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditRecord]) -> None:
        columns = list(zip(*(e.row() for e in entries), strict=True)) if entries else [()] * 7
        self._change(
            "INSERT INTO audit (timestamp, principal, roles, action, resource, outcome, detail) "
            "SELECT * FROM unnest(%b::float8[], %b::text[], %b::text[], %b::text[], %b::text[], "
            "%b::text[], %b::text[])",
            [list(c) for c in columns],
            "write the audit trail",
        )

    def audit(
        self, since: float | None = None, principal: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        rows = self._fetch(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE (%s::float8 IS NULL OR timestamp >= %s) "
            "AND (%s::text IS NULL OR principal = %s) ORDER BY seq LIMIT %s",
            [since, since, principal, principal, limit],
        )
        return [AuditRecord.of_row(row) for row in rows]

    # -- data keys ---------------------------------------------------------------------------

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        rows = self._fetch(
            "WITH ins AS (INSERT INTO keys VALUES (%s, %s) ON CONFLICT (subject) DO NOTHING "
            "RETURNING wrapped) SELECT wrapped FROM ins",
            [subject, wrapped],
            "save a data key",
        )
        if rows:
            return bytes(rows[0][0])
        stored = self.load_key(subject)  # another writer won (committed before we looked)
        if stored is None:  # and was deleted since: try again
            return self.save_key(subject, wrapped)
        return stored

    def load_key(self, subject: str) -> bytes | None:
        rows = self._fetch("SELECT wrapped FROM keys WHERE subject = %s", [subject])
        return bytes(rows[0][0]) if rows else None

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        rows = self._fetch(
            "SELECT subject, wrapped FROM keys WHERE subject = ANY(%b::text[])", [list(subjects)]
        )
        return {subject: bytes(wrapped) for subject, wrapped in rows}

    def delete_key(self, subject: str) -> bool:
        """Delete the key, then VACUUM its table so that its dead row is gone from the
        table's pages (see the module docstring for the server's WAL)."""
        deleted = self._change("DELETE FROM keys WHERE subject = %s", [subject], "forget a key") > 0
        self._change("VACUUM keys", [], "vacuum the keys")
        return deleted

    # -- dump and load -----------------------------------------------------------------------

    @contextlib.contextmanager
    def dump(self) -> Iterator[Dump]:
        """Read in one REPEATABLE READ, READ ONLY transaction: one snapshot of the schema
        while other processes go on writing."""
        self._check_open()
        with self._errors("dump the journal"), self._pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                ((position, hash_),) = conn.execute("SELECT position, hash FROM head").fetchall()
                yield _dump(conn, (position, hash_))
            finally:
                if not conn.broken:
                    conn.execute("ROLLBACK")

    def load(self, dump: Dump, progress: Progress | None = None) -> int:
        """COPY the dump's events and insert the rest as it is, in one transaction that
        holds the head's lock (appends of other processes wait)."""

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                conn.execute(LOCK_HEAD)
                held = " OR ".join(f"EXISTS (SELECT FROM {t})" for t in _TABLES)
                if conn.execute(f"SELECT {held}").fetchall()[0][0]:
                    raise not_empty(self.url)
                count = _copy_events(conn, dump, progress)
                conn.execute("UPDATE head SET position = %s, hash = %s", list(dump.head))
                _load_records(conn, dump)
            return count

        return self._run("load a dump", work, retry=False)


def _dump(conn: psycopg.Connection[Any], head: tuple[int, bytes]) -> Dump:
    """The lazy reads of a dump on `conn`, inside its snapshot (events through a server-side
    cursor, so that a large journal is never held whole in memory)."""

    def events() -> Iterator[tuple[StoredEvent, bytes | None]]:
        with conn.cursor(name="reactor_dump", binary=True) as cursor:
            cursor.itersize = 2000
            cursor.execute(f"{SELECT_CHAIN} ORDER BY position")
            yield from map(chain_row, cursor)

    def checkpoints() -> Iterator[Checkpoint]:
        keyed: dict[str, list[tuple[str, bytes | None]]] = {}
        for name, key, state in conn.execute("SELECT name, key, state FROM keyed_state"):
            keyed.setdefault(name, []).append((key, state))
        for name, position, state in conn.execute(
            "SELECT name, position, state FROM checkpoints ORDER BY name"
        ):
            yield Checkpoint(
                name=name, position=position, state=state, keyed=tuple(keyed.get(name, ()))
            )

    def letters() -> Iterator[DeadLetterRecord]:
        sql = f"SELECT {LETTER_COLUMNS} FROM dead_letters"
        yield from map(DeadLetterRecord.of_row, conn.execute(sql))

    def rows(sql: str) -> Iterator[Any]:
        yield from conn.execute(sql)

    def notes() -> Iterator[CommandNote]:
        ((found,),) = conn.execute("SELECT to_regclass('command_notes') IS NOT NULL").fetchall()
        if found:  # (none in a version-2 journal opened read-only)
            yield from map(CommandNote.of_row, rows(f"SELECT {NOTE_COLUMNS} FROM command_notes"))

    return Dump(
        head=head,
        events=events(),
        snapshots=map(
            Snapshot.of_row, rows("SELECT stream, seq, type, version, state FROM snapshots")
        ),
        checkpoints=checkpoints(),
        commands=map(
            CommandRecord.of_row,
            rows("SELECT command_id, stream, version, count, position FROM commands"),
        ),
        dead_letters=letters(),
        keys=((s, bytes(w)) for s, w in rows("SELECT subject, wrapped FROM keys")),
        audit=map(AuditRecord.of_row, rows(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq")),
        notes=notes(),
    )


def _copy_events(conn: psycopg.Connection[Any], dump: Dump, progress: Progress | None) -> int:
    count = 0
    with conn.cursor().copy(COPY_EVENTS) as copy:
        copy.set_types(COPY_TYPES.split())
        for event, hash_ in dump.events:
            copy.write_row((*event, hash_))
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(count, dump.head[0])
    if progress is not None:
        progress(count, dump.head[0])
    return count


def _load_records(conn: psycopg.Connection[Any], dump: Dump) -> None:
    """Insert everything but events, as it is (in the load's transaction)."""
    cursor = conn.cursor()
    cursor.executemany(
        SAVE_SNAPSHOT,
        [(s.stream_id, s.seq, s.type, s.version, s.state, time.time()) for s in dump.snapshots],
    )
    checkpoints = list(dump.checkpoints)
    cursor.executemany(
        "INSERT INTO checkpoints VALUES (%s, %s, %s, %s)",
        [(c.name, c.position, c.state, time.time()) for c in checkpoints],
    )
    cursor.executemany(
        "INSERT INTO keyed_state VALUES (%s, %s, %s)",
        [(c.name, k, v) for c in checkpoints for k, v in c.keyed if v is not None],
    )
    cursor.executemany(
        "INSERT INTO commands VALUES (%s, %s, %s, %s, %s)",
        [(c.command_id, c.stream_id, c.version, c.count, c.position) for c in dump.commands],
    )
    letters = [(d, list(d.parked)) for d in dump.dead_letters]
    cursor.executemany(
        SAVE_LETTER,
        [
            (d.id, d.handler, d.position, d.stream_id, d.error, d.attempts, p, d.request)
            for d, p in letters
        ],
    )
    cursor.executemany("INSERT INTO keys VALUES (%s, %s)", list(dump.keys))
    cursor.executemany(
        f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [(a.seq, *a.row()) for a in dump.audit],
    )
    cursor.executemany(SAVE_NOTE, [n.row() for n in dump.notes])
    conn.execute(
        "SELECT setval(pg_get_serial_sequence('audit', 'seq'), coalesce(max(seq), 0) + 1, "
        "false) FROM audit"
    )
