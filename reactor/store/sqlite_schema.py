"""The SQLite journal's schema, its upgrades, and the statements shared by its reads and
its batches."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reactor.security.chain import event_hash, hashable
from reactor.store.base import (
    GENESIS,
    Checkpoint,
    Fence,
    Lease,
    StoredEvent,
)
from reactor.store.rules import check_fence

SCHEMA = """
CREATE TABLE IF NOT EXISTS reactor_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream INTEGER NOT NULL REFERENCES streams (id),
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    timestamp REAL NOT NULL,
    metadata BLOB,
    correlation_id TEXT,
    causation_id TEXT,
    UNIQUE (stream, seq)
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT PRIMARY KEY, seq INTEGER NOT NULL, type TEXT NOT NULL,
    version INTEGER NOT NULL, state BLOB NOT NULL, timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS keyed_state (
    name TEXT NOT NULL, key TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, position INTEGER NOT NULL, state BLOB, timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,
    count INTEGER NOT NULL, position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, handler TEXT NOT NULL, position INTEGER NOT NULL,
    stream TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    parked TEXT NOT NULL, request TEXT NOT NULL
);
INSERT OR IGNORE INTO reactor_meta VALUES ('application', 'reactor');
INSERT OR IGNORE INTO reactor_meta VALUES ('schema_version', '1');
"""


def _chain(db: sqlite3.Connection) -> None:
    """Step 3: each event's chain hash (existing events are hashed now), the recorded head,
    the data keys of personal data and the audit trail."""
    for statement in (
        "ALTER TABLE events ADD COLUMN hash BLOB",
        "CREATE TABLE IF NOT EXISTS chain (one INTEGER PRIMARY KEY CHECK (one = 1), "
        "position INTEGER NOT NULL, hash BLOB NOT NULL)",
        "INSERT OR IGNORE INTO chain VALUES (1, 0, zeroblob(32))",
        "CREATE TABLE IF NOT EXISTS keys (subject TEXT PRIMARY KEY, wrapped BLOB NOT NULL) "
        "WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, timestamp REAL NOT NULL, "
        "principal TEXT NOT NULL, roles TEXT NOT NULL, action TEXT NOT NULL, "
        "resource TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL)",
    ):
        db.execute(statement)
    position, prev = 0, GENESIS
    while rows := db.execute(
        f"{SELECT_CHAIN} WHERE e.position > ? ORDER BY e.position LIMIT 1000", (position,)
    ).fetchall():
        hashes = []
        for row in rows:
            prev = event_hash(prev, hashable(stored_event(row[:11])))
            position = row[3]
            hashes.append((prev, position))
        db.executemany("UPDATE events SET hash = ? WHERE position = ?", hashes)
    db.execute("UPDATE chain SET position = ?, hash = ?", (position, prev))


# Each step turns schema version k into k + 1 (index k - 1): SQL statements, or a function
# running them; all the steps an opening needs run in one transaction.
UPGRADES: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 2: leases; at most one dead letter per (handler, position)
    """
    CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL, expires REAL NOT NULL
    ) WITHOUT ROWID;
    DELETE FROM dead_letters WHERE rowid NOT IN (
        SELECT max(rowid) FROM dead_letters GROUP BY handler, position
    );
    CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_by_place ON dead_letters (handler, position);
    """,
    # 3: the hash chain, data keys and the audit trail
    _chain,
    # 4: lineage: events by correlation and causation id, notes of commands
    """
    CREATE INDEX IF NOT EXISTS events_by_correlation ON events (correlation_id);
    CREATE INDEX IF NOT EXISTS events_by_causation ON events (causation_id);
    CREATE TABLE IF NOT EXISTS command_notes (
        command_id TEXT PRIMARY KEY, stream TEXT NOT NULL, type TEXT NOT NULL,
        outcome TEXT NOT NULL, error TEXT NOT NULL, correlation_id TEXT, causation_id TEXT,
        by TEXT NOT NULL, timestamp REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS command_notes_by_correlation ON command_notes (correlation_id);
    """,
)
SCHEMA_VERSION = 1 + len(UPGRADES)
# The columns of a StoredEvent, in its field order.
SELECT_EVENT = (
    "SELECT e.event_id, s.name, e.seq, e.position, e.type, e.version, e.data, e.timestamp, "
    "e.metadata, e.correlation_id, e.causation_id "
    "FROM events e LEFT JOIN streams s ON s.id = e.stream"  # LEFT: an orphan row is seen
)
SELECT_CHAIN = SELECT_EVENT.replace(" FROM events", ", e.hash FROM events")  # and its hash
INSERT_EVENT = (  # the columns of a NewRecord after position, stream, seq; then its hash
    "INSERT INTO events (position, stream, seq, event_id, type, version, data, timestamp, "
    "metadata, correlation_id, causation_id, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
stored_event = functools.partial(tuple.__new__, StoredEvent)  # a row as is, no _make checks
SAVE_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (name, position, state, timestamp) VALUES (?, ?, ?, ?)"
)


def load_lease(db: sqlite3.Connection, name: str) -> Lease | None:
    row = db.execute("SELECT name, owner, epoch, expires FROM leases WHERE name = ?", (name,))
    found = row.fetchone()
    if found is None:
        return None
    return Lease(name=found[0], owner=found[1], epoch=found[2], expires=found[3])


def fence_holds(db: sqlite3.Connection, fence: Fence | None) -> None:
    """`FencedError` unless the lease `fence` names is still at its epoch (in a transaction)."""
    if fence is not None:
        check_fence(fence, load_lease(db, fence.lease))


def checkpoint_row(cp: Checkpoint) -> tuple[Any, ...]:
    return (cp.name, cp.position, cp.state, time.time())


def write_checkpoints(db: sqlite3.Connection, checkpoints: Sequence[Checkpoint]) -> None:
    """Save checkpoints and their keyed rows (replaced, or deleted for a None state)."""
    db.executemany(SAVE_CHECKPOINT, [checkpoint_row(cp) for cp in checkpoints])
    db.executemany(
        "INSERT OR REPLACE INTO keyed_state VALUES (?, ?, ?)",
        [(cp.name, k, v) for cp in checkpoints for k, v in cp.keyed if v is not None],
    )
    db.executemany(
        "DELETE FROM keyed_state WHERE name = ? AND key = ?",
        [(cp.name, k) for cp in checkpoints for k, v in cp.keyed if v is None],
    )


def upgrade(db: sqlite3.Connection) -> int:
    """Bring the schema to the current version in one write transaction; the version it was
    at (read under the write lock, so a process upgrading at the same moment does no harm).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        (found,) = db.execute(
            "SELECT value FROM reactor_meta WHERE key = 'schema_version'"
        ).fetchone()
        version = int(found)
        for step in UPGRADES[version - 1 :]:
            if callable(step):
                step(db)
            else:
                for statement in statements(step):
                    db.execute(statement)
        db.execute(
            "UPDATE reactor_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return version


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one by one (`executescript` would commit first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        yield pending.strip()
