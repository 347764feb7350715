"""One `append_batch` on PostgreSQL: the reads and writes of its transaction, and the
decision of each append in between (`check_append`, shared with the other backends).

`read` locks the journal's head row first, so everything it reads next is the state left
by the last committed batch; `write` then puts every row in one statement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from reactor.errors import ReactorError
from reactor.store.base import (
    Append,
    AppendOutcome,
    Checkpoint,
    CommandRecord,
    Fence,
    Lease,
    StoredEvent,
    check_append,
    check_fence,
)
from reactor.store.postgres_schema import SELECT_EVENT, stored_event

if TYPE_CHECKING:
    import psycopg

LOCK_HEAD = "SELECT position FROM head FOR UPDATE"
VERSIONS = (
    "SELECT s, coalesce((SELECT max(seq) FROM events WHERE stream = s), 0) "
    "FROM unnest(%s::text[]) AS s"
)
STORED = f"{SELECT_EVENT} WHERE event_id = ANY(%s::text[])"
COMMANDS = (
    "SELECT command_id, stream, version, count, position FROM commands "
    "WHERE command_id = ANY(%s::text[])"
)
# FOR SHARE: a takeover of a lease this batch depends on waits until the batch is committed.
LEASES = "SELECT name, owner, epoch, expires FROM leases WHERE name = ANY(%s::text[]) FOR SHARE"
EVENTS_OF = f"{SELECT_EVENT} WHERE stream = %s AND seq > %s AND seq <= %s ORDER BY seq"
# The parts of the one write statement, each present when it has rows.
INSERT_EVENTS = (
    "INSERT INTO events (event_id, stream, seq, position, type, version, data, timestamp, "
    "metadata, correlation_id, causation_id) SELECT * FROM unnest(%(event_id)s::text[], "
    "%(stream)s::text[], %(seq)s::bigint[], %(position)s::bigint[], %(type)s::text[], "
    "%(version)s::int[], %(data)s::bytea[], %(timestamp)s::float8[], %(metadata)s::bytea[], "
    "%(correlation_id)s::text[], %(causation_id)s::text[])"
)
SET_HEAD = "UPDATE head SET position = %(head)s"
SAVE_CHECKPOINTS = (
    "INSERT INTO checkpoints (name, position, state, timestamp) SELECT * FROM "
    "unnest(%(cp_name)s::text[], %(cp_position)s::bigint[], %(cp_state)s::bytea[], "
    "%(cp_time)s::float8[]) ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
    "state = excluded.state, timestamp = excluded.timestamp"
)
SAVE_KEYED = (
    "INSERT INTO keyed_state (name, key, state) SELECT * FROM unnest(%(k_name)s::text[], "
    "%(k_key)s::text[], %(k_state)s::bytea[]) ON CONFLICT (name, key) DO UPDATE "
    "SET state = excluded.state"
)
DELETE_KEYED = (
    "DELETE FROM keyed_state WHERE (name, key) IN "
    "(SELECT * FROM unnest(%(d_name)s::text[], %(d_key)s::text[]))"
)
SAVE_COMMANDS = (
    "INSERT INTO commands (command_id, stream, version, count, position) SELECT * FROM "
    "unnest(%(c_id)s::text[], %(c_stream)s::text[], %(c_version)s::bigint[], "
    "%(c_count)s::int[], %(c_position)s::bigint[])"
)
NOTIFY = "SELECT pg_notify(%(channel)s, %(head)s::text)"
EVENT_COLUMNS = ("event_id", "stream", *StoredEvent._fields[2:])  # the parameters of a row


class Batch:
    """The decisions and rows of one `append_batch`, inside its transaction."""

    def __init__(self) -> None:
        self.head = 0  # the last position taken
        self.versions: dict[str, int] = {}
        self.by_id: dict[str, StoredEvent] = {}  # stored, or inserted by this batch
        self.commands: dict[str, CommandRecord] = {}  # recorded, or recorded by this batch
        self.command_events: dict[str, tuple[StoredEvent, ...]] = {}
        self.leases: dict[str, Lease] = {}  # the stored leases the batch's fences name
        self.rows: list[StoredEvent] = []
        self.checkpoints: dict[str, Checkpoint] = {}  # by name: the last one wins
        self.keyed: dict[tuple[str, str], bytes | None] = {}  # the last state wins
        self.new_commands: list[CommandRecord] = []

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
        ((self.head,),) = head.fetchall()
        self.versions = dict(versions.fetchall())
        if stored is not None:
            self.by_id = {row[0]: stored_event(row) for row in stored}
        if leases is not None:
            self._keep_leases(leases.fetchall())
        if commands is not None:
            self.commands = {row[0]: CommandRecord(*row) for row in commands.fetchall()}
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
        """The outcome of one append, given the stored state and the batch's earlier ones."""
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
        stored = []
        for seq, r in enumerate(a.records, actual + 1):
            self.head += 1
            e = StoredEvent.at(r, a.stream_id, seq, self.head)
            self.by_id[r.event_id] = e
            stored.append(e)
        self.rows.extend(stored)
        self.versions[a.stream_id] = actual + len(stored)
        if a.checkpoint is not None:
            self.keep(a.checkpoint)
        return self._outcome(a, stored, actual, fresh=True)

    def keep(self, checkpoint: Checkpoint) -> None:
        """Save `checkpoint` and its keyed rows with the batch."""
        self.checkpoints[checkpoint.name] = checkpoint
        self.keyed.update(((checkpoint.name, k), v) for k, v in checkpoint.keyed)

    def _outcome(
        self, a: Append, stored: list[StoredEvent], actual: int, *, fresh: bool
    ) -> AppendOutcome:
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, stored, actual)
            self.commands[a.command_id] = command
            self.command_events[a.command_id] = tuple(stored)
            self.new_commands.append(command)
        return AppendOutcome(events=tuple(stored), command=command, fresh=fresh)

    def write(self, conn: psycopg.Connection[Any], channel: str) -> None:
        """Queue the one statement that writes every row of the batch (if it has any), and
        the notification of the new head when it stored events."""
        parts: list[str] = []
        params: dict[str, Any] = {"channel": channel, "head": self.head}
        if self.rows:
            parts += [INSERT_EVENTS, SET_HEAD]
            params.update(zip(EVENT_COLUMNS, map(list, zip(*self.rows, strict=True)), strict=True))
        if self.checkpoints:
            parts.append(SAVE_CHECKPOINTS)
            cps = self.checkpoints.values()
            now = time.time()
            params.update(
                cp_name=[c.name for c in cps],
                cp_position=[c.position for c in cps],
                cp_state=[c.state for c in cps],
                cp_time=[now] * len(cps),
            )
        saved = [(k, v) for k, v in self.keyed.items() if v is not None]
        if saved:
            parts.append(SAVE_KEYED)
            params.update(
                k_name=[n for (n, _), _ in saved],
                k_key=[k for (_, k), _ in saved],
                k_state=[v for _, v in saved],
            )
        deleted = [k for k, v in self.keyed.items() if v is None]
        if deleted:
            parts.append(DELETE_KEYED)
            params.update(d_name=[n for n, _ in deleted], d_key=[k for _, k in deleted])
        if self.new_commands:
            parts.append(SAVE_COMMANDS)
            cs = self.new_commands
            params.update(
                c_id=[c.command_id for c in cs],
                c_stream=[c.stream_id for c in cs],
                c_version=[c.version for c in cs],
                c_count=[c.count for c in cs],
                c_position=[c.position for c in cs],
            )
        if parts:
            ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts))
            last = NOTIFY if self.rows else "SELECT 1"
            conn.execute(f"WITH {ctes} {last}", params)


def _fences(appends: Sequence[Append]) -> Iterator[Fence]:
    """The fences of appends and of their checkpoints."""
    for a in appends:
        if a.fence is not None:
            yield a.fence
        if a.checkpoint is not None and a.checkpoint.fence is not None:
            yield a.checkpoint.fence
