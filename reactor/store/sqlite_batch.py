"""One `append_batch` on SQLite: every append decided in Python inside the transaction.

Under the write lock nobody else writes, so the batch reads the journal's head (the last
position and its chain hash), every stream's (id, version), every known event id and
command id at once, decides each append in order (hashing each new event onto the
previous one), then inserts all rows with one `executemany`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from reactor.errors import ReactorError
from reactor.security.chain import event_hash
from reactor.store.base import (
    GENESIS,
    Append,
    AppendOutcome,
    Checkpoint,
    CommandRecord,
    Lease,
    StoredEvent,
)
from reactor.store.rules import decide_append, fences_of
from reactor.store.sqlite_schema import (
    INSERT_EVENT,
    SELECT_EVENT,
    load_lease,
    stored_event,
    write_checkpoints,
)

MAX_VARIABLES = 30_000  # SQLite allows 32,766 parameters per statement
# The last event's hash and position as a row (NULL, hash, position): read with the
# streams' rows, one statement less per commit (each costs about as much as a small insert).
SELECT_HEAD = (
    "SELECT NULL, hash, position FROM (SELECT hash, position FROM events "
    "ORDER BY position DESC LIMIT 1)"
)
INSERT_AUDIT = (
    "INSERT INTO audit (timestamp, principal, roles, action, resource, outcome, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class Batch:
    """The decisions and rows of one `append_batch`, inside its transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.streams: dict[str, tuple[int | None, int]] = {}  # name -> (id, version)
        self.by_id: dict[str, StoredEvent] = {}  # stored or inserted by this batch
        self.rows: list[tuple[Any, ...]] = []
        self.checkpoints: list[Checkpoint] = []
        self.commands: dict[str, CommandRecord] = {}  # recorded, or recorded by this batch
        self.new_commands: dict[str, tuple[StoredEvent, ...]] = {}  # with their events
        self.touched: dict[int, int] = {}  # stream id -> new version
        self.position = 0  # the last position taken
        self.prev = GENESIS  # the chain hash of the last position taken
        self.leases: dict[str, Lease | None] = {}  # the leases the batch's fences name

    def run(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        names = list({a.stream_id for a in appends})
        for chunk in chunks(names):  # the journal's head, then each known stream's row
            for name, sid, version in self.db.execute(
                f"{SELECT_HEAD} UNION ALL "
                f"SELECT name, id, version FROM streams WHERE name IN ({marks(chunk)})",
                chunk,
            ):
                if name is None:
                    self.position, self.prev = version, sid or GENESIS
                else:
                    self.streams[name] = (sid, version)
        ids = [r.event_id for a in appends for r in a.records]
        for chunk in chunks(ids):
            for row in self.db.execute(
                f"{SELECT_EVENT} WHERE e.event_id IN ({marks(chunk)})", chunk
            ):
                self.by_id[row[0]] = StoredEvent._make(row)
        command_ids = [a.command_id for a in appends if a.command_id is not None]
        for chunk in chunks(command_ids):
            for row in self.db.execute(
                f"SELECT * FROM commands WHERE command_id IN ({marks(chunk)})", chunk
            ):
                self.commands[row[0]] = CommandRecord.of_row(row)
        for a in appends:
            if a.fence is not None or a.checkpoint is not None:  # (most appends: no call)
                for fence in fences_of(a):
                    if fence.lease not in self.leases:
                        self.leases[fence.lease] = load_lease(self.db, fence.lease)
        outcomes = [self._decide(a) for a in appends]
        self.db.executemany(INSERT_EVENT, self.rows)
        self.db.executemany(
            "UPDATE streams SET version = ? WHERE id = ?",
            [(version, sid) for sid, version in self.touched.items()],
        )
        if self.rows:
            self.db.execute("UPDATE chain SET position = ?, hash = ?", (self.position, self.prev))
        audit = [
            e for a, o in zip(appends, outcomes, strict=True) if o.error is None for e in a.audit
        ]
        if audit:
            self.db.executemany(INSERT_AUDIT, [e.row() for e in audit])
        if self.checkpoints:  # (an empty executemany still costs a statement)
            write_checkpoints(self.db, self.checkpoints)
        if self.new_commands:
            self.db.executemany(
                "INSERT INTO commands VALUES (?, ?, ?, ?, ?)",
                [
                    (c.command_id, c.stream_id, c.version, c.count, c.position)
                    for c in map(self.commands.__getitem__, self.new_commands)
                ],
            )
        return outcomes

    hash = staticmethod(event_hash)  # the chain's link (perf/journal.py measures without)

    def _decide(self, a: Append) -> AppendOutcome:
        done = self.commands.get(a.command_id) if a.command_id is not None else None
        if done is not None:
            events = self.new_commands.get(done.command_id)
            if events is None:
                events = tuple(self._events_of(done))
            return AppendOutcome(events=events, command=done)
        sid, actual = self.streams.get(a.stream_id, (None, 0))
        try:
            stored = decide_append(a, actual, self.by_id.get, self.leases.__getitem__)
        except ReactorError as refused:
            return AppendOutcome(error=refused)
        if stored is not None:
            return self._outcome(a, stored, actual, fresh=False)
        if a.records:
            if sid is None:
                cursor = self.db.execute(
                    "INSERT INTO streams (name, version) VALUES (?, 0)", (a.stream_id,)
                )
                sid = int(cursor.lastrowid)  # type: ignore[arg-type]
            stored = []
            for seq, r in enumerate(a.records, actual + 1):
                self.position += 1
                e = StoredEvent.at(r, a.stream_id, seq, self.position)
                self.prev = self.hash(self.prev, e)
                self.rows.append((self.position, sid, seq, *r, self.prev))
                self.by_id[r.event_id] = e
                stored.append(e)
            self.streams[a.stream_id] = (sid, actual + len(a.records))
            self.touched[sid] = actual + len(a.records)
        if a.checkpoint is not None:
            self.checkpoints.append(a.checkpoint)
        return self._outcome(a, stored or [], actual, fresh=True)

    def _outcome(
        self, a: Append, stored: list[StoredEvent], actual: int, *, fresh: bool
    ) -> AppendOutcome:
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, stored, actual)
            self.commands[a.command_id] = command
            self.new_commands[a.command_id] = tuple(stored)
        return AppendOutcome(events=tuple(stored), command=command, fresh=fresh)

    def _events_of(self, c: CommandRecord) -> list[StoredEvent]:
        rows = self.db.execute(
            f"{SELECT_EVENT} WHERE s.name = ? AND e.seq > ? AND e.seq <= ? ORDER BY e.seq",
            (c.stream_id, c.version - c.count, c.version),
        )
        return [stored_event(row) for row in rows]


def chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), MAX_VARIABLES):
        yield items[start : start + MAX_VARIABLES]


def marks(items: Sequence[object]) -> str:
    return ", ".join("?" * len(items))
