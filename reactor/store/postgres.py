"""`postgresql://user@host:port/db?schema=NAME`: one journal shared by processes and hosts.

The global order: every append transaction moves the one row of the `head` table (the
last position) before it writes an event, and that row stays locked until it commits.
Appenders thus queue on the row and take positions in commit order: a reader sees
positions 1..n with no hole, and `read_all(after=p)` can never skip an event committed
late (the mechanism of Commanded's EventStore). Chosen over reading below
`pg_snapshot_xmin(pg_current_snapshot())` (an `xid8` column, no lock): that lets writers
commit side by side, but one long transaction anywhere in the database stalls every
reader, and positions have gaps. The price of the lock: one commit at a time per journal
(its fsync included), so writers scale through bigger batches (group commit), not more.

psycopg 3 with a `psycopg_pool.ConnectionPool`; each batch is one transaction, most often
one statement in one round trip (see `postgres_batch`). `wait_for_append` listens on a
connection of its own (NOTIFY wakes it; it always re-reads the head, and polls too).
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from reactor.errors import StorageError
from reactor.store.base import (
    Access,
    Append,
    AppendOutcome,
    Checkpoint,
    CommandRecord,
    DeadLetterRecord,
    Lease,
    NewRecord,
    Snapshot,
    Storage,
    StoredEvent,
    StreamInfo,
    read_pages,
)
from reactor.store.postgres_batch import Batch, commit
from reactor.store.postgres_chain import HeadCache
from reactor.store.postgres_lineage import Lineage
from reactor.store.postgres_listen import Listener
from reactor.store.postgres_schema import (
    ACQUIRE_LEASES,
    LEASES_FROM,
    LETTER_COLUMNS,
    RELEASE_LEASE,
    SAVE_LETTER,
    SAVE_SNAPSHOT,
    SELECT_EVENT,
    prepare,
    stored_event,
)
from reactor.store.postgres_target import Target
from reactor.store.rules import check_fence

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")
POLL = 0.5  # seconds between looks at the head while no notification comes


def open_postgres(rest: str, options: dict[str, str], access: Access) -> Storage:
    """The opener of `postgresql://` and `postgres://` URLs (`reactor.store.open_storage`)."""
    query = f"?{urlencode(options)}" if options else ""
    url = f"postgresql://{rest}{query}"
    return PostgresStorage(url, create=access.create, readonly=access.readonly)


class PostgresStorage(Lineage):
    """A `Storage` in a schema of a PostgreSQL database, shared by every process using it.

    The URL is `postgresql://user@host:port/db?schema=NAME` (see `Target` for its options).
    `create=False` refuses to make a missing journal; `readonly` connections write nothing
    (PostgreSQL refuses it: `default_transaction_read_only`). Raises `StorageError` for a bad URL,
    a server that does not answer, a foreign schema or one of another schema version.
    """

    shared = True

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as e:
            raise StorageError(
                f"{url.partition('?')[0]}: a PostgreSQL journal needs psycopg 3 and "
                f"psycopg-pool: pip install 'reactor-actors[postgres]' ({e})"
            ) from e
        self.target = t = Target.parse(url, readonly=readonly)
        self.url = t.url
        self._closed = False
        self._lock = threading.Lock()
        with self._errors("open the journal"), psycopg.connect(t.conninfo, **t.connect) as conn:
            self._head = HeadCache(prepare(conn, t.schema, create, not readonly))
        self._listener = Listener(lambda: psycopg.connect(t.conninfo, **t.connect), t.schema)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            t.conninfo,
            kwargs=t.connect,
            min_size=1,
            max_size=t.pool_size,
            open=False,
            name=f"reactor {t.schema}",
            timeout=t.timeout,
        )
        self._pool.open()

    def __repr__(self) -> str:
        return f"PostgresStorage({self.url!r})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Driver errors as `StorageError`s naming the journal, the server and the hint."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except PoolTimeout as e:
            raise StorageError(
                f"{self.url}: no connection to PostgreSQL ({self.target.where}) within "
                f"{self.target.timeout:g}s to {what}: is PostgreSQL running? is the URL right?"
            ) from e
        except psycopg.OperationalError as e:
            raise StorageError(
                f"{self.url}: cannot {what}: PostgreSQL ({self.target.where}) failed: "
                f"{str(e).strip()}: is PostgreSQL running? is the URL right?"
            ) from e
        except psycopg.Error as e:
            raise StorageError(f"{self.url}: cannot {what}: {str(e).strip()}") from e

    def _run(
        self, what: str, work: Callable[[psycopg.Connection[Any]], T], retry: bool = True
    ) -> T:
        """`work` on a pooled connection. If that connection is broken (killed, or the server
        restarted), the pool drops every broken idle one and `work` runs once more on a good
        one: `work` must be safe to run again after it failed on a broken connection.

        A connection the server closed while it was idle is found before `work` starts:
        its socket has something to read (the server's goodbye), a cheap test.
        """
        import psycopg

        self._check_open()
        with self._errors(what), self._pool.connection() as conn:
            try:
                if retry and select.select([conn.fileno()], [], [], 0)[0]:
                    conn.execute("")  # fails if the server closed it
                return work(conn)
            except psycopg.OperationalError:
                if not retry or not conn.broken:
                    raise
        self._pool.check()
        return self._run(what, work, retry=False)

    def _fetch(self, sql: str, params: Sequence[Any] = (), what: str = "read") -> list[Any]:
        """The rows of one statement (its own transaction)."""
        return self._run(what, lambda conn: conn.execute(sql, params, binary=True).fetchall())

    def _change(self, sql: str, params: Sequence[Any], what: str) -> int:
        """Run one write statement (its own transaction); the number of rows it touched."""
        return self._run(what, lambda conn: conn.execute(sql, params).rowcount)

    # -- appends -----------------------------------------------------------------------------

    def append(
        self, stream_id: str, records: Sequence[NewRecord], expected_version: int | None
    ) -> list[StoredEvent]:
        return self.append_batch([Append(stream_id, records, expected_version)])[0].result()

    def append_batch(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        """ONE transaction: a batch of plain appends is one statement (one round trip); any
        other, or one that raced another process, is decided under the head's lock (two
        round trips: see `postgres_batch`).

        A connection lost before the writes were sent is retried on another; lost after,
        the outcome is unknown: `StorageError` saying so (re-sending by command id is safe).
        """
        what = f"append a batch of {len(appends)}"
        return self._run(what, lambda conn: commit(conn, appends, self.target, self._head))

    # -- reads -------------------------------------------------------------------------------

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[StoredEvent]:
        self._check_open()
        sql = f"{SELECT_EVENT} WHERE stream = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
        upto = to_seq if to_seq is not None else 2**62
        return self._pages(sql, [stream_id], max(from_seq, 1) - 1, upto, 2, None)

    def read_all(
        self, after: int = 0, types: Collection[str] | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        self._check_open()
        where, params = "position > %s AND position <= %s", []
        if types is not None:
            where, params = f"type = ANY(%b) AND {where}", [list(types)]
            if not params[0]:
                return iter(())
        sql = f"{SELECT_EVENT} WHERE {where} ORDER BY position LIMIT %s"
        return self._pages(sql, params, after, 2**62, 3, limit)

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
        """`read_pages` through `_fetch`: one statement a page."""
        return read_pages(self._fetch, sql, params, after, upto, key, limit, make)

    def last_position(self) -> int:
        return int(self._fetch("SELECT position FROM head")[0][0])

    def stream_version(self, stream_id: str) -> int:
        sql = "SELECT coalesce(max(seq), 0) FROM events WHERE stream = %s"
        return int(self._fetch(sql, [stream_id])[0][0])

    def streams(self) -> Iterator[StreamInfo]:
        sql = "SELECT stream, max(seq), max(position) FROM events GROUP BY stream ORDER BY stream"
        return iter([StreamInfo(*row) for row in self._fetch(sql)])

    def find_command(self, command_id: str) -> CommandRecord | None:
        rows = self._fetch(
            "SELECT command_id, stream, version, count, position FROM commands "
            "WHERE command_id = %s",
            [command_id],
        )
        return CommandRecord.of_row(rows[0]) if rows else None

    # -- snapshots, dead letters and checkpoints ---------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        s = snapshot
        self._change(
            SAVE_SNAPSHOT,
            [s.stream_id, s.seq, s.type, s.version, s.state, time.time()],
            "save a snapshot",
        )

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        rows = self._fetch(
            "SELECT stream, seq, type, version, state FROM snapshots WHERE stream = %s",
            [stream_id],
        )
        return Snapshot.of_row(rows[0]) if rows else None

    def save_dead_letter(self, letter: DeadLetterRecord) -> None:
        d = letter

        def save(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    "DELETE FROM dead_letters WHERE handler = %s AND position = %s AND id <> %s",
                    [d.handler, d.position, d.id],
                )
                row = (d.id, d.handler, d.position, d.stream_id, d.error, d.attempts)
                conn.execute(SAVE_LETTER, [*row, list(d.parked), d.request])

        self._run("save a dead letter", save)

    def order_dead_letter(
        self, letter_id: str, order: str, *, replacing: str | None = None
    ) -> bool:
        sql, params = "UPDATE dead_letters SET request = %s WHERE id = %s", [order, letter_id]
        if replacing is not None:
            sql, params = f"{sql} AND request = %s", [*params, replacing]
        return self._change(sql, params, "order a dead letter") > 0

    def delete_dead_letter(self, letter_id: str) -> bool:
        sql = "DELETE FROM dead_letters WHERE id = %s"
        return self._change(sql, [letter_id], "delete a dead letter") > 0

    def dead_letters(self, handler: str | None = None) -> list[DeadLetterRecord]:
        where, params = ("WHERE handler = %s", [handler]) if handler is not None else ("", [])
        sql = f"SELECT {LETTER_COLUMNS} FROM dead_letters {where} ORDER BY position, handler"
        return [DeadLetterRecord.of_row(row) for row in self._fetch(sql, params)]

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        fence = checkpoint.fence

        def save(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                batch = Batch()
                if fence is not None:
                    batch.read_leases(conn, [fence.lease])
                    check_fence(fence, batch.leases.get(fence.lease))
                batch.writes.keep(checkpoint)
                conn.execute(*batch.writes.statement(self.target.schema))

        self._run("save a checkpoint", save)

    def load_keyed(self, name: str) -> dict[str, bytes]:
        return dict(self._fetch("SELECT key, state FROM keyed_state WHERE name = %s", [name]))

    def checkpoints(self, prefix: str = "") -> list[Checkpoint]:
        rows = self._fetch(
            "SELECT name, position FROM checkpoints WHERE starts_with(name, %s) ORDER BY name",
            [prefix],
        )
        return [Checkpoint(name=name, position=position) for name, position in rows]

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        rows = self._fetch("SELECT name, position, state FROM checkpoints WHERE name = %s", [name])
        if not rows:
            return None
        name, position, state = rows[0]
        return Checkpoint(name=name, position=position, state=state)

    # -- leases, waiting and claims ----------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        return self.acquire_leases([name], owner, ttl).get(name)

    def acquire_leases(self, names: Sequence[str], owner: str, ttl: float) -> dict[str, Lease]:
        rows = self._fetch(ACQUIRE_LEASES, [owner, ttl, sorted(set(names))], "take leases")
        return {n: Lease(name=n, owner=owner, epoch=e, expires=x) for n, e, x in rows}

    def release_lease(self, name: str, owner: str) -> bool:
        return self._change(RELEASE_LEASE, [name, owner], "release a lease") > 0

    def leases(self, prefix: str = "") -> list[Lease]:
        rows = self._fetch(LEASES_FROM, [prefix])
        return [Lease(name=n, owner=o, epoch=e, expires=x) for n, o, e, x in rows]

    def wait_for_append(self, after: int, timeout: float) -> int:
        """Block until the head is beyond `after` or `timeout` passes; the head then: woken
        by a NOTIFY from an appending transaction of any process, polling every `POLL`
        seconds too (see `Listener.wait_beyond`)."""
        self._check_open()
        return self._listener.wait_beyond(after, timeout, self.last_position, POLL)

    def claim(self, owner: str) -> None:
        """Nothing to hold: a PostgreSQL journal serves any number of runtimes at once."""
        self._check_open()

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()
        self._listener.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self.url}: the store is closed")
