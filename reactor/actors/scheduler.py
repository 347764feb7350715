"""The scheduler: delayed work on one timer thread, ordered by a sortedcontainers list.

`tell(delay, target, message)` tells an actor later; `schedule(delay, fn)` runs `fn` on
the timer thread after `delay` seconds. A timer is a thread, not an actor: waiting on a
clock would block a pool worker. Callbacks must be quick. (Nothing is cancelled: a saga's
cancelled deadline still comes due, and finds nothing to do.)
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
    """Timers by due time: adding one is O(log n), the next due one is found in O(1)."""

    def __init__(self, name: str = "reactor-timers") -> None:
        self._timers: SortedList = SortedList()  # (due, sequence number, fn)
        self._ids = itertools.count(1)  # ties on `due` keep their order; fns never compared
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        """How many timers wait."""
        return len(self._timers)

    def schedule(self, delay: float, fn: Callable[[], object]) -> None:
        """Run `fn` after `delay` seconds."""
        with self._changed:
            entry = (time.monotonic() + max(delay, 0.0), next(self._ids), fn)
            self._timers.add(entry)
            if self._timers[0] is entry:
                self._changed.notify()

    def tell(self, delay: float, target: ActorRef[Any], message: Any) -> None:
        """Tell `target` `message` after `delay` seconds (dropped if it stopped meanwhile)."""

        def deliver() -> None:
            with contextlib.suppress(ActorDeadError):
                target.tell(message)

        self.schedule(delay, deliver)

    def stop(self, timeout: float = 5.0) -> None:
        """Drop every pending timer and stop the thread."""
        with self._changed:
            self._stopped = True
            self._timers.clear()
            self._changed.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped:
                    now = time.monotonic()
                    if self._timers and self._timers[0][0] <= now:
                        fn = self._timers.pop(0)[2]
                        break
                    self._changed.wait(self._timers[0][0] - now if self._timers else None)
                else:
                    return
            try:
                fn()
            except Exception:
                log.exception("scheduler: a timer callback failed")
