"""`memory://`: a journal kept in this process only, for tests and throwaway runs.

Behaves exactly as the SQLite backend does (the conformance suite runs both) but keeps
nothing when the process ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence

import attrs

from reactor.errors import ReactorError, StorageError
from reactor.security.chain import event_hash
from reactor.store.base import (
    GENESIS,
    PAGE,
    Append,
    AppendOutcome,
    AuditRecord,
    Checkpoint,
    CommandNote,
    CommandRecord,
    DeadLetterRecord,
    Lease,
    NewRecord,
    Snapshot,
    StoredEvent,
    StreamInfo,
)
from reactor.store.memory_governance import MemoryGovernance
from reactor.store.rules import check_fence, decide_append, each_lease


class MemoryStorage(MemoryGovernance):
    """A `Storage` in lists and dicts behind one lock."""

    shared = False  # nothing outside this process can reach it

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._events: list[StoredEvent] = []  # position p is at index p - 1
        self._streams: dict[str, list[StoredEvent]] = {}
        self._by_id: dict[str, StoredEvent] = {}
        self._lineage: dict[str, list[StoredEvent]] = {}  # by correlation id, by causation id
        self._notes: dict[str, CommandNote] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._commands: dict[str, CommandRecord] = {}
        self._dead: dict[str, DeadLetterRecord] = {}
        self._keyed: dict[str, dict[str, bytes]] = {}
        self._leases: dict[str, Lease] = {}
        self._hashes: list[bytes] = []
        self._audit: list[AuditRecord] = []
        self._keys: dict[str, bytes] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStorage({self.url!r})"

    def append(
        self, stream_id: str, records: Sequence[NewRecord], expected_version: int | None
    ) -> list[StoredEvent]:
        return self.append_batch([Append(stream_id, records, expected_version)])[0].result()

    def append_batch(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        with self._lock:
            self._check_open()
            outcomes = [self._append_one(a) for a in appends]
            self._keep_audit(
                e
                for a, o in zip(appends, outcomes, strict=True)
                if o.error is None
                for e in a.audit
            )
            self._appended.notify_all()
            return outcomes

    def _append_one(self, a: Append) -> AppendOutcome:
        stream = self._streams.get(a.stream_id, [])
        done = self._commands.get(a.command_id) if a.command_id is not None else None
        if done is not None:
            first = self._streams.get(done.stream_id, [])[done.version - done.count : done.version]
            return AppendOutcome(events=tuple(first), command=done)
        try:
            stored = decide_append(a, len(stream), self._by_id.get, self._leases.get)
        except ReactorError as refused:
            return AppendOutcome(error=refused)
        written = stored is None
        if stored is None:
            stored = []
            for r in a.records:
                e = StoredEvent.at(r, a.stream_id, len(stream) + 1, len(self._events) + 1)
                stream.append(e)
                self._hashes.append(event_hash(self._hashes[-1] if self._events else GENESIS, e))
                self._events.append(e)
                self._by_id[e.event_id] = e
                self._index(e)
                stored.append(e)
            if stream:
                self._streams[a.stream_id] = stream
            if a.checkpoint is not None:
                self._keep(a.checkpoint)
        command = None
        if a.command_id is not None:
            command = CommandRecord.of(a.command_id, a.stream_id, stored, len(stream))
            self._commands[a.command_id] = command
        return AppendOutcome(events=tuple(stored), command=command, fresh=written)

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[StoredEvent]:
        with self._lock:
            self._check_open()
            stream = self._streams.get(stream_id, [])
        end = len(stream) if to_seq is None else min(to_seq, len(stream))
        return iter(stream[max(from_seq, 1) - 1 : end])  # a stream only grows: a copy is exact

    def read_all(
        self, after: int = 0, types: Collection[str] | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        with self._lock:
            self._check_open()
        wanted = None if types is None else frozenset(types)
        return self._read_all(max(after, 0), wanted, limit)

    def _read_all(
        self, after: int, wanted: frozenset[str] | None, limit: int | None
    ) -> Iterator[StoredEvent]:
        left = limit if limit is not None else -1
        while left != 0:
            with self._lock:
                page = self._events[after : after + PAGE]
            after += len(page)
            for e in page:
                if wanted is None or e.type in wanted:
                    yield e
                    left -= 1
                    if left == 0:
                        return
            if len(page) < PAGE:
                return

    def last_position(self) -> int:
        with self._lock:
            self._check_open()
            return len(self._events)

    def stream_version(self, stream_id: str) -> int:
        with self._lock:
            self._check_open()
            return len(self._streams.get(stream_id, ()))

    def streams(self) -> Iterator[StreamInfo]:
        with self._lock:
            self._check_open()
            infos = [StreamInfo(s, len(evs), evs[-1].position) for s, evs in self._streams.items()]
        return iter(sorted(infos, key=lambda i: i.stream_id))

    def find_command(self, command_id: str) -> CommandRecord | None:
        with self._lock:
            self._check_open()
            return self._commands.get(command_id)

    # -- lineage ----------------------------------------------------------------------------

    def _index(self, e: StoredEvent) -> None:
        """Index an event by its correlation and causation ids (keys "c:" and "k:")."""
        if e.correlation_id is not None:
            self._lineage.setdefault(f"c:{e.correlation_id}", []).append(e)
        if e.causation_id is not None:
            self._lineage.setdefault(f"k:{e.causation_id}", []).append(e)

    def find_event(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            self._check_open()
            return self._by_id.get(event_id)

    def correlated(self, correlation_id: str) -> list[StoredEvent]:
        with self._lock:
            self._check_open()
            return list(self._lineage.get(f"c:{correlation_id}", ()))

    def caused_by(self, causation_id: str) -> list[StoredEvent]:
        with self._lock:
            self._check_open()
            return list(self._lineage.get(f"k:{causation_id}", ()))

    def save_note(self, note: CommandNote) -> None:
        with self._lock:
            self._check_open()
            self._notes[note.command_id] = note

    def find_note(self, command_id: str) -> CommandNote | None:
        with self._lock:
            self._check_open()
            return self._notes.get(command_id)

    def notes(self, correlation_id: str) -> list[CommandNote]:
        with self._lock:
            self._check_open()
            found = [n for n in self._notes.values() if n.correlation_id == correlation_id]
        return sorted(found, key=lambda n: n.timestamp)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._check_open()
            self._snapshots[snapshot.stream_id] = snapshot

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        with self._lock:
            self._check_open()
            return self._snapshots.get(stream_id)

    def save_dead_letter(self, letter: DeadLetterRecord) -> None:
        with self._lock:
            self._check_open()
            old = self._dead.get(letter.id)
            if old is not None:
                letter = attrs.evolve(letter, request=old.request)
            for other in [d for d in self._dead.values() if d.id != letter.id]:
                if (other.handler, other.position) == (letter.handler, letter.position):
                    del self._dead[other.id]
            self._dead[letter.id] = letter

    def order_dead_letter(
        self, letter_id: str, order: str, *, replacing: str | None = None
    ) -> bool:
        with self._lock:
            self._check_open()
            letter = self._dead.get(letter_id)
            if letter is None or (replacing is not None and letter.request != replacing):
                return False
            self._dead[letter_id] = attrs.evolve(letter, request=order)
            return True

    def delete_dead_letter(self, letter_id: str) -> bool:
        with self._lock:
            self._check_open()
            return self._dead.pop(letter_id, None) is not None

    def dead_letters(self, handler: str | None = None) -> list[DeadLetterRecord]:
        with self._lock:
            self._check_open()
            found = [d for d in self._dead.values() if handler is None or d.handler == handler]
        return sorted(found, key=lambda d: (d.position, d.handler))

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            self._check_open()
            if checkpoint.fence is not None:
                check_fence(checkpoint.fence, self._leases.get(checkpoint.fence.lease))
            self._keep(checkpoint)

    def _keep(self, checkpoint: Checkpoint) -> None:
        self._checkpoints[checkpoint.name] = attrs.evolve(checkpoint, keyed=())
        rows = self._keyed.setdefault(checkpoint.name, {})
        for key, state in checkpoint.keyed:
            if state is None:
                rows.pop(key, None)
            else:
                rows[key] = state

    def delete_checkpoint(self, name: str) -> bool:
        with self._lock:
            self._check_open()
            self._keyed.pop(name, None)
            return self._checkpoints.pop(name, None) is not None

    def load_keyed(self, name: str) -> dict[str, bytes]:
        with self._lock:
            self._check_open()
            return dict(self._keyed.get(name, {}))

    def checkpoints(self, prefix: str = "") -> list[Checkpoint]:
        with self._lock:
            self._check_open()
            found = sorted(n for n in self._checkpoints if n.startswith(prefix))
            return [Checkpoint(name=n, position=self._checkpoints[n].position) for n in found]

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        with self._lock:
            self._check_open()
            return self._checkpoints.get(name)

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        with self._lock:
            self._check_open()
            now = time.time()
            old = self._leases.get(name)
            if old is None:
                epoch = 1
            elif old.owner == owner and old.expires > now:
                epoch = old.epoch
            elif old.expires <= now:
                epoch = old.epoch + 1
            else:
                return None
            lease = Lease(name=name, owner=owner, epoch=epoch, expires=now + ttl)
            self._leases[name] = lease
            return lease

    def acquire_leases(self, names: Sequence[str], owner: str, ttl: float) -> dict[str, Lease]:
        return each_lease(self.acquire_lease, names, owner, ttl)

    def release_lease(self, name: str, owner: str) -> bool:
        with self._lock:
            self._check_open()
            old = self._leases.get(name)
            if old is None or old.owner != owner or old.expires <= time.time():
                return False
            self._leases[name] = attrs.evolve(old, expires=time.time())
            return True

    def leases(self, prefix: str = "") -> list[Lease]:
        with self._lock:
            self._check_open()
            return [v for k, v in sorted(self._leases.items()) if k.startswith(prefix)]

    def wait_for_append(self, after: int, timeout: float) -> int:
        with self._appended:
            self._check_open()
            self._appended.wait_for(lambda: len(self._events) > after or self._closed, timeout)
            return len(self._events)

    def claim(self, owner: str) -> None:
        self.last_position()  # only this process can reach it: nothing to hold

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._appended.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self.url}: the store is closed")
