"""The hash chain on PostgreSQL, and the batches stored at once (one statement, one round
trip) that it must not slow down.

Where the chain is computed: in Python (`event_hash`, ~1 µs an event) when this process
was the journal's last writer, on the head it left (`HeadCache`): the statement then only
checks that the head is still there. Otherwise in SQL (`postgres_schema.LINK`, ~6 µs an
event), inside the statement, on the head it finds under the head's lock, so that writers
of several processes still take one round trip each and hold the lock no longer than the
statement. A batch chained in Python that finds the head moved stores nothing; it is sent
again, chained in SQL. Batches that need deciding (fences, a stream twice...) are decided
under the lock as before (`postgres_batch.Batch`), chained in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from reactor.security.chain import event_hash
from reactor.store.base import Append, AppendOutcome, CommandRecord, StoredEvent
from reactor.store.postgres_writes import Writes
from reactor.store.rules import fences_of

if TYPE_CHECKING:
    import psycopg


class HeadCache:
    """This process's view of the journal's head (position and hash), and whether to chain
    its next batch on it in Python. Thread-safe."""

    link = staticmethod(event_hash)  # the chain's link (perf/postgres.py measures without)

    def __init__(self, head: tuple[int, bytes] | None = None) -> None:
        """`head`: as read when the journal was opened (trusted until a batch misses)."""
        self._lock = threading.Lock()
        self._head = head
        self._trusted = head is not None

    def guess(self) -> tuple[int, bytes] | None:
        """The head to chain a batch on in Python, or None: chain it in SQL."""
        with self._lock:
            return self._head if self._trusted else None

    def committed(self, base: int, head: tuple[int, bytes] | None) -> None:
        """This process stored a batch on the head at position `base`, ending at `head`
        (None: no events): trust the view again if nobody else had written since its
        last commit."""
        with self._lock:
            known = self._head
            self._trusted = known is not None and known[0] == base
            if head is not None and (known is None or head[0] >= known[0]):
                self._head = head

    def missed(self) -> None:
        """A batch chained in Python found the head moved (or a check failed)."""
        with self._lock:
            self._trusted = False

    def hashes(self, prev: bytes, events: list[StoredEvent]) -> list[bytes]:
        """The chain hash of each of `events` in turn, the first linked to `prev`."""
        out = []
        for event in events:
            prev = self.link(prev, event)
            out.append(prev)
        return out


class Plan(NamedTuple):
    """A batch to store at once: its writes, and the row `i` of each append's first event."""

    writes: Writes
    firsts: list[int]


def at_once(appends: Sequence[Append], cache: HeadCache) -> Plan | None:
    """The writes of a batch that can be stored without reading first (chained in Python on
    the cache's guess if every append with events has a version check, else in SQL); None
    if the batch needs deciding: it has a stream twice, a version check or a command id
    with no records, an id twice, or two epochs of one lease in its fences (the statement
    checks the others: `postgres_schema.FENCES_HOLD`)."""
    guess = cache.guess()
    if any(a.records and a.expected_version is None for a in appends):
        guess = None  # its seqs are not known here: chained in SQL
    writes, firsts = Writes(guess), []
    ids: set[str] = set()
    commands: set[str] = set()
    for a in appends:
        if a.fence is not None or a.checkpoint is not None:  # (most appends: no call)
            for fence in fences_of(a):
                if writes.fences.setdefault(fence.lease, fence.epoch) != fence.epoch:
                    return None
        if not a.records and (a.expected_version is not None or a.command_id is not None):
            return None
        if a.records and a.stream_id in writes.expected:
            return None
        ids.update(r.event_id for r in a.records)
        if a.command_id is not None:
            if a.command_id in commands:
                return None
            commands.add(a.command_id)
            last = len(writes.rows) + len(a.records)
            writes.commands.append((a.command_id, a.stream_id, None, len(a.records), None, last))
        firsts.append(len(writes.rows) + 1)
        if a.records:
            writes.expected[a.stream_id] = a.expected_version
            writes.add(a.stream_id, a.records, 0, _hashes(a, writes, cache))
        if a.checkpoint is not None:
            writes.keep(a.checkpoint)
        writes.audit.extend(a.audit)
    return Plan(writes, firsts) if len(ids) == len(writes.rows) else None


def _hashes(a: Append, writes: Writes, cache: HeadCache) -> list[bytes] | None:
    """The chain hashes of an append's events, chained on the batch's so far (None if the
    batch is chained in SQL)."""
    if writes.end is None or a.expected_version is None:
        return None
    position, prev = writes.end
    events = [
        StoredEvent.at(r, a.stream_id, a.expected_version + k, position + k)
        for k, r in enumerate(a.records, 1)
    ]
    return cache.hashes(prev, events)


def store_at_once(
    conn: psycopg.Connection[Any],
    appends: Sequence[Append],
    plan: Plan,
    cache: HeadCache,
    channel: str,
) -> list[AppendOutcome] | None:
    """Store a batch in one statement; its outcomes, or None if a check, the head's place
    or a unique key refused it (then nothing was stored)."""
    import psycopg

    writes = plan.writes
    if not writes.any():
        return stored_at_once(appends, plan.firsts, 0, {})
    try:
        ((base, versions, _, last),) = conn.execute(*writes.statement(channel)).fetchall()
    except psycopg.errors.UniqueViolation:
        base = None
    if base is None:
        cache.missed()
        return None
    cache.committed(base, (base + len(writes.rows), last) if writes.rows else None)
    return stored_at_once(
        appends, plan.firsts, base, dict(zip(writes.expected, versions or [], strict=True))
    )


def stored_at_once(
    appends: Sequence[Append], firsts: list[int], base: int, versions: dict[str, int]
) -> list[AppendOutcome]:
    """The outcomes of a batch stored at once after position `base`, its streams having
    been at `versions`."""
    outcomes = []
    for a, first in zip(appends, firsts, strict=True):
        actual = versions.get(a.stream_id, 0)
        events = [
            StoredEvent.at(r, a.stream_id, actual + k, base + i)
            for k, (i, r) in enumerate(enumerate(a.records, first), 1)
        ]
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, events, actual)
        outcomes.append(AppendOutcome(events=tuple(events), command=command, fresh=True))
    return outcomes
