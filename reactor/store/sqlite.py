"""`sqlite:///path.db`: the embedded default journal, one SQLite file in WAL mode.

One writer connection behind a lock (other processes wait on SQLite's busy timeout),
a pool of reader connections, lazy reads in short pages. `synchronous` is FULL by default.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reactor.errors import StorageError
from reactor.store.base import (
    Append,
    AppendOutcome,
    CommandRecord,
    NewRecord,
    StoredEvent,
    StreamInfo,
    read_pages,
)
from reactor.store.sqlite_batch import Batch
from reactor.store.sqlite_governance import Governance
from reactor.store.sqlite_lineage import Lineage
from reactor.store.sqlite_schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SELECT_EVENT,
    stored_event,
    upgrade,
)

log = logging.getLogger(__name__)
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
PRIVATE = 0o600  # the journal, its WAL and its lock file: readable by their owner only
_POLL = 0.02  # seconds between looks at the head while waiting for an append


class SQLiteStorage(Lineage, Governance):
    """A `Storage` in one SQLite file.

    `synchronous` is SQLite's durability setting (FULL: an acknowledged append survives
    power loss; NORMAL: it survives a process crash). `create=False` refuses to make a new
    file. Raises `StorageError` for a missing file, a foreign database or a newer schema.
    A SQLite journal serves one runtime at a time (`claim`); other processes may read it
    (the CLI) and write small orders (dead-letter orders) meanwhile. Deleted rows are
    overwritten (`secure_delete`), so that a forgotten data key leaves no copy.
    """

    shared = False

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        create: bool = True,
        busy_timeout: float = 10.0,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.url = f"sqlite:///{path}"
        self.synchronous = synchronous.upper()
        if self.synchronous not in SYNCHRONOUS:
            raise StorageError(
                f"{self.url}: synchronous must be one of {', '.join(SYNCHRONOUS)}, "
                f"got {synchronous!r}"
            )
        if not create and not self.path.is_file():
            raise StorageError(f"no journal at {self.path}: the file does not exist")
        self._busy_ms = int(busy_timeout * 1000)
        self._lock = threading.Lock()  # the write lock
        self._idle: list[sqlite3.Connection] = []  # reader connections not in use
        self._closed = False
        self._claim: int | None = None  # the lock file's descriptor while claimed
        if create and not readonly and not self.path.exists():
            _create_private(self.path)
        self._uri = self._open_uri()
        self._writer = self._connect()
        try:
            self._prepare_schema()
            if not readonly:
                self._writer.execute("PRAGMA journal_mode=WAL")
                self._writer.execute(f"PRAGMA synchronous={self.synchronous}")
                self._writer.execute("PRAGMA secure_delete=ON")
        except sqlite3.DatabaseError as e:
            self._writer.close()
            raise StorageError(f"{self.path} is not a reactor journal: {e}") from e
        except BaseException:
            self._writer.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.url!r}, synchronous={self.synchronous!r})"

    # -- connections -------------------------------------------------------------------------

    def _open_uri(self) -> str:
        """The file's URI: read-write, or read-only; on a read-only file system (where
        SQLite cannot make the WAL's shared-memory file) read as an immutable file."""
        uri = f"file:{quote(str(self.path.absolute()))}"
        if not self.readonly:
            return uri
        try:
            probe = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        except sqlite3.Error:
            return f"{uri}?mode=ro&immutable=1"
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return f"{uri}?mode=ro"
        except sqlite3.Error:
            return f"{uri}?mode=ro&immutable=1"
        finally:
            probe.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        except sqlite3.Error as e:
            raise StorageError(f"{self.url}: cannot open: {e}") from e
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one read on a pooled reader connection (a short read transaction)."""
        self._check_open()
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"{self.url}: read failed: {e}") from e
        finally:
            self._idle.append(conn)
            if self._closed:
                self.close()

    def _prepare_schema(self) -> None:
        tables = {
            r[0]
            for r in self._writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables and self.readonly:
            raise StorageError(f"{self.path} is not a reactor journal (it has no tables)")
        if not tables:  # IF NOT EXISTS: another process may be creating it right now
            self._writer.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
            self._upgrade(1)
            return
        if "reactor_meta" not in tables:
            raise StorageError(
                f"{self.path} is not a reactor journal (it has tables "
                f"{', '.join(sorted(tables))}, but no reactor_meta)"
            )
        meta = dict(self._writer.execute("SELECT key, value FROM reactor_meta").fetchall())
        version = int(meta.get("schema_version", "0"))
        if meta.get("application") != "reactor" or version < 1:
            raise StorageError(f"{self.path} is not a reactor journal (reactor_meta: {meta})")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has journal schema {version}, newer than this reactor's "
                f"{SCHEMA_VERSION}: upgrade reactor to open it"
            )
        if version < SCHEMA_VERSION and not self.readonly:  # an older journal reads as it is
            self._upgrade(version)

    def _upgrade(self, version: int) -> None:
        """Bring the schema from `version` to the current one (see `sqlite_schema.upgrade`)."""
        version = upgrade(self._writer)
        if version > 1:
            log.info(
                "%s: journal schema upgraded from %d to %d", self.path, version, SCHEMA_VERSION
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- appends -----------------------------------------------------------------------------

    def append(
        self, stream_id: str, records: Sequence[NewRecord], expected_version: int | None
    ) -> list[StoredEvent]:
        return self.append_batch([Append(stream_id, records, expected_version)])[0].result()

    def append_batch(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        """One transaction for the whole batch, with a fixed number of statements.

        Under the write lock (and SQLite's) nobody else writes, so the batch (see
        `sqlite_batch`) reads what it needs at once, decides each append in order in
        Python, then inserts all rows with one `executemany`.
        """
        with self._transaction() as db:
            return Batch(db).run(appends)

    # -- reads -------------------------------------------------------------------------------

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[StoredEvent]:
        self._check_open()
        return self._pages(
            f"{SELECT_EVENT} WHERE s.name = ? AND e.seq > ? AND e.seq <= ? ORDER BY e.seq LIMIT ?",
            [stream_id],
            max(from_seq, 1) - 1,
            to_seq if to_seq is not None else 2**62,
            2,
            None,
        )

    def read_all(
        self, after: int = 0, types: Collection[str] | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        self._check_open()
        where = "e.position > ? AND e.position <= ?"
        params: list[Any] = []
        if types is not None:
            types = list(types)
            if not types:
                return iter(())
            where = f"e.type IN ({', '.join('?' * len(types))}) AND {where}"
            params = types
        return self._pages(
            f"{SELECT_EVENT} WHERE {where} ORDER BY e.position LIMIT ?",
            params,
            max(after, 0),
            2**62,
            3,
            limit,
        )

    def _pages(
        self,
        sql: str,
        params: list[Any],
        after: int,
        upto: int,
        key: int,
        limit: int | None,
        make: Callable[[Any], Any] = stored_event,
    ) -> Iterator[Any]:
        """`read_pages` through `_query`: one short read a page."""
        return read_pages(self._query, sql, params, after, upto, key, limit, make)

    def last_position(self) -> int:
        return int(self._query("SELECT coalesce(max(position), 0) FROM events")[0][0])

    def stream_version(self, stream_id: str) -> int:
        return int(
            self._query(
                "SELECT coalesce(max(e.seq), 0) FROM events e JOIN streams s ON s.id = e.stream "
                "WHERE s.name = ?",
                (stream_id,),
            )[0][0]
        )

    def streams(self) -> Iterator[StreamInfo]:
        rows = self._query(
            "SELECT s.name, max(e.seq), max(e.position) FROM streams s "
            "JOIN events e ON e.stream = s.id GROUP BY s.id ORDER BY s.name"
        )
        return iter([StreamInfo(*row) for row in rows])

    def find_command(self, command_id: str) -> CommandRecord | None:
        rows = self._query("SELECT * FROM commands WHERE command_id = ?", (command_id,))
        return CommandRecord.of_row(rows[0]) if rows else None

    def wait_for_append(self, after: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (last := self.last_position()) <= after and time.monotonic() < deadline:
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
        return last

    def claim(self, owner: str) -> None:
        """Hold `<journal>.lock` (an flock, released when this store closes or its process
        dies) for one runtime; `StorageError` naming the holder if another one has it."""
        self._check_open()
        if self._claim is not None:
            return
        lock = Path(f"{self.path}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 500).decode(errors="replace").strip() or "another runtime"
            os.close(fd)
            raise StorageError(
                f"{self.path} is in use by {holder}: a SQLite journal serves one runtime at a "
                "time (the reactor CLI may still read it). Stop that runtime first, or use a "
                "postgresql:// journal to share one journal between processes."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, owner.encode())
        self._claim = fd

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
                if self._claim is not None:
                    os.close(self._claim)  # releases the flock
                    self._claim = None
        while True:  # readers in use are closed by _query when they come back
            try:
                self._idle.pop().close()
            except IndexError:
                return

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self.url}: the store is closed")


def _create_private(path: Path) -> None:
    """Create an empty journal file readable by its owner only (SQLite gives its WAL and
    shared-memory files the same permissions as the journal)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        pass  # another process made it a moment ago
    except OSError as e:
        raise StorageError(f"sqlite:///{path}: cannot create the journal: {e}") from e


class _Transaction:
    """`with storage._transaction() as db:` holds the write lock around one transaction.

    Entering begins it (BEGIN IMMEDIATE: SQLite's write lock too); leaving commits, or
    rolls back and re-raises as `StorageError`.
    """

    def __init__(self, storage: SQLiteStorage) -> None:
        self.storage = storage

    def __enter__(self) -> sqlite3.Connection:
        storage = self.storage
        storage._lock.acquire()
        try:
            storage._check_open()
            storage._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            storage._lock.release()
            raise StorageError(f"{storage.url}: write failed: {e}") from e
        except BaseException:
            storage._lock.release()
            raise
        return storage._writer

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        db = self.storage._writer
        try:
            if exc is None:
                try:
                    db.execute("COMMIT")
                except sqlite3.Error as e:
                    _rollback(db)
                    raise StorageError(f"{self.storage.url}: commit failed: {e}") from e
            else:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"{self.storage.url}: write failed: {exc}") from exc
        finally:
            self.storage._lock.release()


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")
