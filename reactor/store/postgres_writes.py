"""The one write statement of a PostgreSQL batch, and its parameters (`Writes`): the event
rows, the streams' expected versions, command records, checkpoints with their keyed rows
and audit entries, each part of the statement there if needed (see `postgres_schema`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from reactor.store.base import AuditRecord, Checkpoint, NewRecord
from reactor.store.postgres_schema import write_statement

ROW = ("stream", "k", "i", *NewRecord._fields, "hash_")  # an event row of `Writes`
COMMAND = ("c_id", "c_stream", "c_version", "c_count", "c_position", "c_i")
AUDIT = ("a_time", "a_principal", "a_roles", "a_action", "a_resource", "a_outcome", "a_detail")


class Writes:
    """The rows of one write statement. An event row's seq is `actual + k` (its stream's
    version as the statement reads it, plus k) and its position `base + i` (the head
    before, plus i); the statement stores nothing if an expected version differs.

    With a `base` (the head's position and hash, as read under its lock or as this process
    last left it), the rows come with their chain hashes and nothing is stored unless the
    head is still there; without, the statement chains them in SQL on the head it finds."""

    singles = True  # one row of each kind: its values as such, not as arrays (faster to send)

    def __init__(self, base: tuple[int, bytes] | None = None) -> None:
        self.base = base
        self.end = base  # the head after the batch (None: known once it is stored)
        self.rows: list[tuple[Any, ...]] = []  # stream, k, i, the record's fields, the hash
        self.expected: dict[str, int | None] = {}  # the streams written, in row order
        self.commands: list[tuple[Any, ...]] = []  # id, stream, version, count, position, i
        self.checkpoints: dict[str, Checkpoint] = {}  # by name: the last one wins
        self.keyed: dict[tuple[str, str], bytes | None] = {}  # the last state wins
        self.audit: list[AuditRecord] = []
        self.fences: dict[str, int] = {}  # lease name -> the epoch it must be at

    def add(
        self,
        stream_id: str,
        records: Sequence[NewRecord],
        k: int,
        hashes: Sequence[bytes | None] | None = None,
    ) -> None:
        """Records of `stream_id` at seqs `actual + k + 1`, `actual + k + 2`... (`actual`:
        the stream's version as the statement reads it), with their chain hashes (None:
        chained by the statement)."""
        links = hashes if hashes is not None else [None] * len(records)
        for n, r, hash_ in zip(range(k + 1, k + 1 + len(records)), records, links, strict=True):
            self.rows.append((stream_id, n, len(self.rows) + 1, *r, hash_))
        if records and self.base is not None and links[-1] is not None:
            self.end = (self.base[0] + len(self.rows), links[-1])

    def keep(self, checkpoint: Checkpoint) -> None:
        """Save `checkpoint` and its keyed rows with the batch."""
        self.checkpoints[checkpoint.name] = checkpoint
        self.keyed.update(((checkpoint.name, k), v) for k, v in checkpoint.keyed)

    def any(self) -> bool:
        """Whether there is anything to write."""
        return bool(self.rows or self.commands or self.checkpoints or self.audit)

    def statement(self, channel: str) -> tuple[str, dict[str, Any]]:
        """The write statement (`postgres_schema.write_statement`) and its parameters."""
        params: dict[str, Any] = {
            "channel": channel,
            "n": len(self.rows),
            "base": None if self.base is None else self.base[0],
            "hash": None if self.end is None else self.end[1],
            "s_stream": list(self.expected),
            "s_expected": list(self.expected.values()),
            **_columns(ROW, self.rows),
        }
        parts = {
            "commands": _columns(COMMAND, self.commands),
            "audit": _columns(AUDIT, [e.row() for e in self.audit]),
            "checkpoints": _columns(
                ("cp_name", "cp_position", "cp_state", "cp_time"),
                [(c.name, c.position, c.state, time.time()) for c in self.checkpoints.values()],
            ),
            "saved": _columns(
                ("k_name", "k_key", "k_state"),
                [(n, k, v) for (n, k), v in self.keyed.items() if v is not None],
            ),
            "deleted": _columns(
                ("d_name", "d_key"), [k for k, v in self.keyed.items() if v is None]
            ),
        }
        used = {name for name, columns in parts.items() if next(iter(columns.values()))}
        for name in used:
            params.update(parts[name])
        if self.base is None:
            used.add("chained")
        if self.fences:
            used.add("fenced")
            params.update(f_name=list(self.fences), f_epoch=list(self.fences.values()))
        if self.singles and all(len(v) == 1 for v in params.values() if type(v) is list):
            singles = {k: v[0] if type(v) is list else v for k, v in params.items()}
            return write_statement(frozenset(used), single=True), singles
        return write_statement(frozenset(used)), params


def _columns(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows as one list per column, by name (the arrays the statement unnests)."""
    columns = zip(*rows, strict=True) if rows else [()] * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}
