"""What a SQLite journal keeps for governance: the hash chain's reads, the audit trail, the
data keys of personal data (destroyed for good: `secure_delete` and a WAL checkpoint), a
consistent `Dump` and `load`, and online backups (a part of `SQLiteStorage`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from reactor.errors import StorageError
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
from reactor.store.sqlite_batch import INSERT_AUDIT
from reactor.store.sqlite_lineage import NOTE_COLUMNS
from reactor.store.sqlite_records import letter_of
from reactor.store.sqlite_schema import INSERT_EVENT, SELECT_CHAIN, stored_event, write_checkpoints

BACKUP_PAGES = 100  # pages copied per step of an online backup (progress is shown between)
_CHUNK = 1000  # events inserted per statement while loading
_TABLES = (
    "events", "snapshots", "checkpoints", "commands", "dead_letters", "keys", "audit",
    "command_notes",
)  # fmt: skip


class _Transaction(Protocol):
    def __enter__(self) -> sqlite3.Connection: ...

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None: ...


def chain_row(row: Sequence[Any]) -> tuple[StoredEvent, bytes | None]:
    """A row of `SELECT_CHAIN` as (event, stored hash)."""
    return stored_event(row[:11]), row[11]


class Governance:
    """The chain, the audit trail, data keys, dump, load and backup, through the storage's
    reads (`_query`, `_pages`) and write transactions (`_transaction`)."""

    url: str
    _lock: threading.Lock
    _writer: sqlite3.Connection

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
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

    def _transaction(self) -> _Transaction:
        raise NotImplementedError

    def _connect(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    # -- the chain ---------------------------------------------------------------------------

    def read_chain(
        self, after: int = 0, limit: int | None = None
    ) -> Iterator[tuple[StoredEvent, bytes | None]]:
        self._check_open()
        sql = f"{SELECT_CHAIN} WHERE e.position > ? AND e.position <= ? ORDER BY e.position LIMIT ?"
        return self._pages(sql, [], max(after, 0), 2**62, 3, limit, chain_row)

    def chain_head(self) -> tuple[int, bytes]:
        try:
            ((position, hash_),) = self._query("SELECT position, hash FROM chain")
        except StorageError as e:
            raise StorageError(
                f"{self.url} has no hash chain: a journal older than schema 3, opened "
                f"read-only? Open it read-write once (a runtime does) to upgrade it ({e})"
            ) from e
        return position, hash_

    # -- the audit trail ---------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditRecord]) -> None:
        with self._transaction() as db:
            db.executemany(INSERT_AUDIT, [e.row() for e in entries])

    def audit(
        self, since: float | None = None, principal: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        rows = self._query(
            "SELECT * FROM audit WHERE (? IS NULL OR timestamp >= ?) AND "
            "(? IS NULL OR principal = ?) ORDER BY seq LIMIT ?",
            (since, since, principal, principal, -1 if limit is None else limit),
        )
        return [AuditRecord.of_row(row) for row in rows]

    # -- data keys ---------------------------------------------------------------------------

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO keys VALUES (?, ?)", (subject, wrapped))
            stored: bytes = db.execute(
                "SELECT wrapped FROM keys WHERE subject = ?", (subject,)
            ).fetchone()[0]
        return stored

    def load_key(self, subject: str) -> bytes | None:
        rows = self._query("SELECT wrapped FROM keys WHERE subject = ?", (subject,))
        return rows[0][0] if rows else None

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        wanted = json.dumps(list(subjects))
        return dict(
            self._query(
                "SELECT subject, wrapped FROM keys WHERE subject IN (SELECT value FROM "
                "json_each(?))",
                (wanted,),
            )
        )

    def delete_key(self, subject: str) -> bool:
        """Delete the key, overwritten in the file (`secure_delete`), then checkpoint and
        truncate the WAL, which held copies of its page (waiting on readers for up to the
        busy timeout)."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM keys WHERE subject = ?", (subject,)).rowcount > 0
        with self._lock:
            self._check_open()
            busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StorageError(
                f"{self.url}: the key of subject {subject!r} is deleted, but a reader kept the "
                "WAL from being truncated, so a copy of it may remain there until the next "
                "checkpoint: forget it again when no reader is busy"
            )
        return deleted

    # -- dump, load and backup ---------------------------------------------------------------

    @contextlib.contextmanager
    def dump(self) -> Iterator[Dump]:
        """Read from one snapshot: a read transaction held open on a connection of its own
        (in WAL mode, writers go on meanwhile)."""
        self._check_open()
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            position, hash_ = conn.execute("SELECT position, hash FROM chain").fetchone()
            yield _dump(conn, (position, hash_))
        except sqlite3.Error as e:
            raise StorageError(f"{self.url}: dump failed: {e}") from e
        finally:
            conn.close()

    def load(self, dump: Dump, progress: Progress | None = None) -> int:
        """Insert the dump's rows as they are, in one transaction."""
        with self._transaction() as db:
            held = " OR ".join(f"EXISTS (SELECT 1 FROM {t})" for t in _TABLES)
            if db.execute(f"SELECT {held}").fetchone()[0]:
                raise not_empty(self.url)
            count = _load_events(db, dump, progress)
            db.execute("UPDATE chain SET position = ?, hash = ?", dump.head)
            _load_records(db, dump)
        return count

    def backup_to(self, path: Path, progress: Progress | None = None) -> int:
        """Copy the journal to a new file at `path` (readable by its owner only) with
        SQLite's online backup, from one read snapshot while writers go on; the last
        position copied. `StorageError` if `path` exists."""
        self._check_open()
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            raise StorageError(f"cannot create the backup {path}: {e.strerror or e}") from e
        source = self._connect()
        try:
            source.execute("BEGIN")
            (position,) = source.execute("SELECT position FROM chain").fetchone()
            target = sqlite3.connect(path)
            try:
                step = None
                if progress is not None:
                    step = lambda _status, left, total: progress(total - left, total)  # noqa: E731
                source.backup(target, pages=BACKUP_PAGES, progress=step)
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                target.close()
        except sqlite3.Error as e:
            raise StorageError(f"{self.url}: backup to {path} failed: {e}") from e
        finally:
            source.close()
        return int(position)


def _dump(conn: sqlite3.Connection, head: tuple[int, bytes]) -> Dump:
    """The lazy reads of a dump on `conn`, inside its read transaction."""

    def checkpoints() -> Iterator[Checkpoint]:
        for name, position, state in conn.execute(
            "SELECT name, position, state FROM checkpoints ORDER BY name"
        ).fetchall():
            keyed = conn.execute("SELECT key, state FROM keyed_state WHERE name = ?", (name,))
            yield Checkpoint(name=name, position=position, state=state, keyed=tuple(keyed))

    def letters() -> Iterator[DeadLetterRecord]:
        yield from map(letter_of, conn.execute("SELECT * FROM dead_letters"))

    def notes() -> Iterator[CommandNote]:
        found = "SELECT 1 FROM sqlite_master WHERE name = 'command_notes'"
        if conn.execute(found).fetchone():  # (none in a journal older than schema 4)
            sql = f"SELECT {NOTE_COLUMNS} FROM command_notes"
            yield from map(CommandNote.of_row, conn.execute(sql))

    return Dump(
        head=head,
        events=map(chain_row, conn.execute(f"{SELECT_CHAIN} ORDER BY e.position")),
        snapshots=map(
            Snapshot.of_row,
            conn.execute("SELECT stream, seq, type, version, state FROM snapshots"),
        ),
        checkpoints=checkpoints(),
        commands=map(CommandRecord.of_row, conn.execute("SELECT * FROM commands")),
        dead_letters=letters(),
        keys=iter(conn.execute("SELECT subject, wrapped FROM keys")),
        audit=map(AuditRecord.of_row, conn.execute("SELECT * FROM audit ORDER BY seq")),
        notes=notes(),
    )


def _load_events(db: sqlite3.Connection, dump: Dump, progress: Progress | None) -> int:
    """Insert the dump's events (and their streams) in chunks; how many."""
    streams: dict[str, int] = {}
    versions: dict[int, int] = {}
    rows: list[tuple[Any, ...]] = []
    count = 0
    for e, hash_ in dump.events:
        sid = streams.get(e.stream_id)
        if sid is None:
            cursor = db.execute("INSERT INTO streams (name, version) VALUES (?, 0)", (e.stream_id,))
            sid = streams[e.stream_id] = int(cursor.lastrowid)  # type: ignore[arg-type]
        versions[sid] = max(versions.get(sid, 0), e.seq)
        rows.append((e.position, sid, e.seq, e.event_id, *e[4:], hash_))
        count += 1
        if len(rows) == _CHUNK:
            db.executemany(INSERT_EVENT, rows)
            rows.clear()
            if progress is not None:
                progress(count, dump.head[0])
    db.executemany(INSERT_EVENT, rows)
    db.executemany(
        "UPDATE streams SET version = ? WHERE id = ?", [(v, sid) for sid, v in versions.items()]
    )
    if progress is not None:
        progress(count, dump.head[0])
    return count


def _load_records(db: sqlite3.Connection, dump: Dump) -> None:
    """Insert everything but events, as it is."""
    db.executemany(
        "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
        [(s.stream_id, s.seq, s.type, s.version, s.state, time.time()) for s in dump.snapshots],
    )
    write_checkpoints(db, list(dump.checkpoints))
    db.executemany(
        "INSERT INTO commands VALUES (?, ?, ?, ?, ?)",
        [(c.command_id, c.stream_id, c.version, c.count, c.position) for c in dump.commands],
    )
    db.executemany(
        "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                d.id,
                d.handler,
                d.position,
                d.stream_id,
                d.error,
                d.attempts,
                json.dumps(d.parked),
                d.request,
            )
            for d in dump.dead_letters
        ],
    )
    db.executemany("INSERT INTO keys VALUES (?, ?)", list(dump.keys))
    db.executemany(
        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(a.seq, *a.row()) for a in dump.audit],
    )
    db.executemany(
        f"INSERT INTO command_notes ({NOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [n.row() for n in dump.notes],
    )
