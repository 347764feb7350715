"""The hash chain on PostgreSQL: where each batch's hashes are computed, and `HeadCache`.

Hashes are computed in Python (SHA-256 is ~1 µs an event there; a recursive chain in SQL
would cost more and tie the encoding to SQL), which needs the head (the last position
and its hash) before the batch is sent. A process that was the journal's last writer
knows it: it stores its next batch at once, in one statement whose update of the head row
checks the head is still where it believed (if not, nothing is stored and the batch is
decided under the head's lock, which reads it). A process that finds others writing in
between decides its batches under the lock (two round trips, no wasted one) until it is
the last writer again.
"""

from __future__ import annotations

import threading

from reactor.security.chain import event_hash
from reactor.store.base import StoredEvent


class HeadCache:
    """This process's view of the journal's head, and whether to trust it. Thread-safe."""

    link = staticmethod(event_hash)  # the chain's link (perf/postgres.py measures without)

    def __init__(self, head: tuple[int, bytes] | None = None) -> None:
        """`head`: as read when the journal was opened (trusted until a batch misses)."""
        self._lock = threading.Lock()
        self._head = head
        self._trusted = head is not None

    def guess(self) -> tuple[int, bytes] | None:
        """The head to store a batch at once on, or None: decide it under the lock."""
        with self._lock:
            return self._head if self._trusted else None

    def locked(self, head: tuple[int, bytes]) -> None:
        """The head as read under its lock: trust the view again if nobody else wrote
        since this process's last commit (or it has not committed yet)."""
        with self._lock:
            self._trusted = self._head is None or self._head == head

    def missed(self) -> None:
        """A batch stored at once found the head moved (or a check failed): distrust."""
        with self._lock:
            self._trusted = False

    def committed(self, head: tuple[int, bytes] | None) -> None:
        """This process committed a batch ending at `head` (None: unknown, no events)."""
        with self._lock:
            if head is not None and (self._head is None or head[0] >= self._head[0]):
                self._head = head

    def hashes(self, prev: bytes, events: list[StoredEvent]) -> list[bytes]:
        """The chain hash of each of `events` in turn, the first linked to `prev`."""
        out = []
        for event in events:
            prev = self.link(prev, event)
            out.append(prev)
        return out
