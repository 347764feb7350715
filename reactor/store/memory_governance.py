"""What a `memory://` journal keeps for governance: each event's chain hash, the audit
trail, the data keys of personal data, and a whole journal as a `Dump` (a part of
`MemoryStorage`, which mixes it in and holds the lock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence

import attrs

from reactor.errors import StorageError
from reactor.store.base import (
    GENESIS,
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


class MemoryGovernance:
    """Chain hashes, audit entries, data keys, dump and load, behind the storage's lock."""

    url: str
    _lock: threading.Lock
    _events: list[StoredEvent]
    _streams: dict[str, list[StoredEvent]]
    _by_id: dict[str, StoredEvent]
    _snapshots: dict[str, Snapshot]
    _checkpoints: dict[str, Checkpoint]
    _keyed: dict[str, dict[str, bytes]]
    _commands: dict[str, CommandRecord]
    _dead: dict[str, DeadLetterRecord]
    _hashes: list[bytes]  # the hash of position p at index p - 1
    _audit: list[AuditRecord]
    _keys: dict[str, bytes]
    _notes: dict[str, CommandNote]

    def _check_open(self) -> None:
        raise NotImplementedError

    def _index(self, e: StoredEvent) -> None:
        raise NotImplementedError

    # -- the chain ---------------------------------------------------------------------------

    def read_chain(
        self, after: int = 0, limit: int | None = None
    ) -> Iterator[tuple[StoredEvent, bytes | None]]:
        with self._lock:
            self._check_open()
            end = len(self._events) if limit is None else max(after, 0) + limit
            start = max(after, 0)
            rows = list(zip(self._events[start:end], self._hashes[start:end], strict=True))
        return iter(rows)

    def chain_head(self) -> tuple[int, bytes]:
        with self._lock:
            self._check_open()
            return len(self._events), self._hashes[-1] if self._hashes else GENESIS

    # -- the audit trail ---------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditRecord]) -> None:
        with self._lock:
            self._check_open()
            self._keep_audit(entries)

    def _keep_audit(self, entries: Iterable[AuditRecord]) -> None:
        for entry in entries:
            self._audit.append(attrs.evolve(entry, seq=len(self._audit) + 1))

    def audit(
        self, since: float | None = None, principal: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        with self._lock:
            self._check_open()
            found = [
                e
                for e in self._audit
                if (since is None or e.timestamp >= since)
                and (principal is None or e.principal == principal)
            ]
        return found if limit is None else found[:limit]

    # -- data keys ---------------------------------------------------------------------------

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        with self._lock:
            self._check_open()
            return self._keys.setdefault(subject, bytes(wrapped))

    def load_key(self, subject: str) -> bytes | None:
        with self._lock:
            self._check_open()
            return self._keys.get(subject)

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        with self._lock:
            self._check_open()
            return {s: self._keys[s] for s in subjects if s in self._keys}

    def delete_key(self, subject: str) -> bool:
        with self._lock:
            self._check_open()
            return self._keys.pop(subject, None) is not None

    # -- dump and load -----------------------------------------------------------------------

    @contextlib.contextmanager
    def dump(self) -> Iterator[Dump]:
        """A copy taken under the lock: consistent, and the store goes on meanwhile."""
        with self._lock:
            self._check_open()
            checkpoints = [
                attrs.evolve(cp, keyed=tuple(self._keyed.get(name, {}).items()))
                for name, cp in sorted(self._checkpoints.items())
            ]
            copy = Dump(
                head=(len(self._events), self._hashes[-1] if self._hashes else GENESIS),
                events=list(zip(self._events, self._hashes, strict=True)),
                snapshots=list(self._snapshots.values()),
                checkpoints=checkpoints,
                commands=list(self._commands.values()),
                dead_letters=list(self._dead.values()),
                keys=list(self._keys.items()),
                audit=list(self._audit),
                notes=list(self._notes.values()),
            )
        yield copy

    def load(self, dump: Dump, progress: Progress | None = None) -> int:
        with self._lock:
            self._check_open()
            held = (self._snapshots, self._checkpoints, self._commands, self._dead, self._keys)
            if self._events or self._audit or self._notes or any(held):
                raise not_empty(self.url)
            total = dump.head[0]
            for n, (event, hash_) in enumerate(dump.events, 1):
                if event.position != n or hash_ is None:
                    raise StorageError(
                        f"{self.url}: a memory journal holds positions 1..n, each with its "
                        f"hash: cannot load position {event.position} (expected {n}, hash "
                        f"{'missing' if hash_ is None else 'given'})"
                    )
                self._events.append(event)
                self._hashes.append(hash_)
                self._streams.setdefault(event.stream_id, []).append(event)
                self._by_id[event.event_id] = event
                self._index(event)
                if progress is not None and n % 1000 == 0:
                    progress(n, total)
            if progress is not None:
                progress(len(self._events), total)
            self._load_records(dump)
            return len(self._events)

    def _load_records(self, dump: Dump) -> None:
        self._snapshots.update((s.stream_id, s) for s in dump.snapshots)
        for cp in dump.checkpoints:
            self._checkpoints[cp.name] = attrs.evolve(cp, keyed=(), fence=None)
            self._keyed[cp.name] = {k: v for k, v in cp.keyed if v is not None}
        self._commands.update((c.command_id, c) for c in dump.commands)
        self._dead.update((d.id, d) for d in dump.dead_letters)
        self._keys.update(dump.keys)
        self._audit.extend(dump.audit)
        self._notes.update((n.command_id, n) for n in dump.notes)
