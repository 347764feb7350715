"""What a SQLite journal keeps besides events: snapshots, checkpoints with their keyed
rows, dead letters and leases (a part of `SQLiteStorage`, which mixes it in)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol

from reactor.store.base import Checkpoint, DeadLetterRecord, Lease, Snapshot
from reactor.store.rules import each_lease
from reactor.store.sqlite_schema import fence_holds, load_lease, write_checkpoints


class _Transaction(Protocol):
    def __enter__(self) -> sqlite3.Connection: ...

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None: ...


def letter_of(row: Sequence[Any]) -> DeadLetterRecord:
    """A `dead_letters` row (`parked`: a JSON list) as a record."""
    return DeadLetterRecord.of_row((*row[:6], json.loads(row[6]), row[7]))


class Records:
    """Snapshots, checkpoints, dead letters and leases, through the storage's own short
    reads (`_query`) and write transactions (`_transaction`)."""

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _transaction(self) -> _Transaction:
        raise NotImplementedError

    # -- snapshots and checkpoints -----------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                (
                    snapshot.stream_id,
                    snapshot.seq,
                    snapshot.type,
                    snapshot.version,
                    snapshot.state,
                    time.time(),
                ),
            )

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        rows = self._query(
            "SELECT stream, seq, type, version, state FROM snapshots WHERE stream = ?", (stream_id,)
        )
        return Snapshot.of_row(rows[0]) if rows else None

    def save_dead_letter(self, letter: DeadLetterRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM dead_letters WHERE handler = ? AND position = ? AND id != ?",
                (letter.handler, letter.position, letter.id),
            )
            db.execute(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO "
                "UPDATE SET handler = excluded.handler, position = excluded.position, "
                "stream = excluded.stream, error = excluded.error, attempts = excluded.attempts, "
                "parked = excluded.parked",
                (
                    letter.id,
                    letter.handler,
                    letter.position,
                    letter.stream_id,
                    letter.error,
                    letter.attempts,
                    json.dumps(letter.parked),
                    letter.request,
                ),
            )

    def order_dead_letter(
        self, letter_id: str, order: str, *, replacing: str | None = None
    ) -> bool:
        sql, params = "UPDATE dead_letters SET request = ? WHERE id = ?", [order, letter_id]
        if replacing is not None:
            sql, params = f"{sql} AND request = ?", [*params, replacing]
        with self._transaction() as db:
            return db.execute(sql, params).rowcount > 0

    def delete_dead_letter(self, letter_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,)).rowcount > 0

    def dead_letters(self, handler: str | None = None) -> list[DeadLetterRecord]:
        where, params = ("WHERE handler = ?", (handler,)) if handler is not None else ("", ())
        rows = self._query(f"SELECT * FROM dead_letters {where} ORDER BY position, handler", params)
        return list(map(letter_of, rows))

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._transaction() as db:
            fence_holds(db, checkpoint.fence)
            write_checkpoints(db, [checkpoint])

    def delete_checkpoint(self, name: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM keyed_state WHERE name = ?", (name,))
            return db.execute("DELETE FROM checkpoints WHERE name = ?", (name,)).rowcount > 0

    def load_keyed(self, name: str) -> dict[str, bytes]:
        return dict(self._query("SELECT key, state FROM keyed_state WHERE name = ?", (name,)))

    def checkpoints(self, prefix: str = "") -> list[Checkpoint]:
        rows = self._query(
            "SELECT name, position FROM checkpoints WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [Checkpoint(name=name, position=position) for name, position in rows]

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        rows = self._query("SELECT name, position, state FROM checkpoints WHERE name = ?", (name,))
        if not rows:
            return None
        name, position, state = rows[0]
        return Checkpoint(name=name, position=position, state=state)

    # -- leases, waiting and claims ----------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        with self._transaction() as db:
            now = time.time()
            old = load_lease(db, name)
            if old is None:
                epoch = 1
            elif old.expires > now:
                if old.owner != owner:
                    return None
                epoch = old.epoch
            else:
                epoch = old.epoch + 1
            lease = Lease(name=name, owner=owner, epoch=epoch, expires=now + ttl)
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)",
                (name, owner, epoch, lease.expires),
            )
            return lease

    def acquire_leases(self, names: Sequence[str], owner: str, ttl: float) -> dict[str, Lease]:
        return each_lease(self.acquire_lease, names, owner, ttl)

    def release_lease(self, name: str, owner: str) -> bool:
        with self._transaction() as db:
            now = time.time()
            return (
                db.execute(
                    "UPDATE leases SET expires = ? WHERE name = ? AND owner = ? AND expires > ?",
                    (now, name, owner, now),
                ).rowcount
                > 0
            )

    def leases(self, prefix: str = "") -> list[Lease]:
        rows = self._query(
            "SELECT name, owner, epoch, expires FROM leases WHERE substr(name, 1, ?) = ? "
            "ORDER BY name",
            (len(prefix), prefix),
        )
        return [Lease(name=n, owner=o, epoch=e, expires=x) for n, o, e, x in rows]
