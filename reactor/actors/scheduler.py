"""The scheduler: delayed work on one timer thread, ordered by a sortedcontainers list.

`tell(delay, target, message)` tells an actor later; `schedule(delay, fn)` runs `fn` on
the timer thread after `delay` seconds; both unless cancelled. A timer is a thread, not an
actor: waiting on a clock would block a pool worker. Callbacks must be quick.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pykka import ActorDeadError, ActorRef
from sortedcontainers import SortedList

log = logging.getLogger(__name__)


class Scheduler:
    """Timers by due time; `cancel` is O(log n), the next due timer is found in O(1)."""

    def __init__(self, name: str = "reactor-timers") -> None:
        self._timers: SortedList = SortedList()  # (due, id, fn)
        self._by_id: dict[int, tuple[float, int, Callable[[], object]]] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._by_id)

    def schedule(self, delay: float, fn: Callable[[], object]) -> int:
        """Run `fn` after `delay` seconds; returns a timer id for `cancel`."""
        with self._changed:
            timer_id = next(self._ids)
            entry = (time.monotonic() + max(delay, 0.0), timer_id, fn)
            self._timers.add(entry)
            self._by_id[timer_id] = entry
            if self._timers[0] is entry:
                self._changed.notify()
            return timer_id

    def tell(self, delay: float, target: ActorRef[Any], message: Any) -> int:
        """Tell `target` `message` after `delay` seconds (dropped if it stopped meanwhile)."""

        def deliver() -> None:
            with contextlib.suppress(ActorDeadError):
                target.tell(message)

        return self.schedule(delay, deliver)

    def cancel(self, timer_id: int) -> bool:
        """Cancel a timer; False if it already ran or never existed."""
        with self._changed:
            entry = self._by_id.pop(timer_id, None)
            if entry is None:
                return False
            self._timers.remove(entry)
            return True

    def stop(self, timeout: float = 5.0) -> None:
        """Drop every pending timer and stop the thread."""
        with self._changed:
            self._stopped = True
            self._timers.clear()
            self._by_id.clear()
            self._changed.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped:
                    now = time.monotonic()
                    if self._timers and self._timers[0][0] <= now:
                        _, timer_id, fn = self._timers.pop(0)
                        del self._by_id[timer_id]
                        break
                    self._changed.wait(self._timers[0][0] - now if self._timers else None)
                else:
                    return
            try:
                fn()
            except Exception:
                log.exception("scheduler: a timer callback failed")
