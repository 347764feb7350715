"""A storage backend with injectable failures, for fault tolerance tests: `faulty://`
opens a memory store whose methods raise `StorageError` while failures are armed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reactor.errors import StorageError
from reactor.store import MemoryStorage, register_backend
from reactor.store.base import Access


class FaultyStorage(MemoryStorage):
    """Arm `fail(method, times)` or `fail_when(method, predicate)`; calls then raise."""

    last: FaultyStorage | None = None  # the store the latest `faulty://` URL opened

    def __init__(self) -> None:
        super().__init__("faulty://")
        self._faults: dict[str, Callable[[], bool]] = {}
        self._guard = threading.Lock()
        self.injected = 0

    def fail(self, method: str, times: int = 1) -> None:
        left = [times]

        def once() -> bool:
            left[0] -= 1
            return left[0] >= 0

        self.fail_when(method, once)

    def fail_when(self, method: str, predicate: Callable[[], bool]) -> None:
        with self._guard:
            self._faults[method] = predicate

    def _maybe_fail(self, method: str) -> None:
        with self._guard:
            predicate = self._faults.get(method)
            if predicate is None or not predicate():
                return
            self.injected += 1
        raise StorageError(f"injected failure in {method}")

    def append_batch(self, appends: Any) -> Any:
        self._maybe_fail("append_batch")
        return super().append_batch(appends)

    def save_snapshot(self, snapshot: Any) -> None:
        self._maybe_fail("save_snapshot")
        super().save_snapshot(snapshot)

    def load_checkpoint(self, name: str) -> Any:
        self._maybe_fail("load_checkpoint")
        return super().load_checkpoint(name)

    def save_dead_letter(self, letter: Any) -> None:
        self._maybe_fail("save_dead_letter")
        super().save_dead_letter(letter)


def _open(rest: str, options: dict[str, str], access: Access) -> FaultyStorage:
    FaultyStorage.last = FaultyStorage()
    return FaultyStorage.last


register_backend("faulty", _open)
