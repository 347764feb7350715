"""The tailer: for a journal other processes append to, a thread that waits for their
appends (`Storage.wait_for_append`: LISTEN/NOTIFY, or polling) and tells the journal actor
to publish them. A thread, not an actor: waiting on the store would block a pool worker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pykka import ActorRef

from reactor.actors.messages import Tail
from reactor.actors.pooled import tell
from reactor.errors import ReactorError
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)


class Tailer:
    """Wakes `journal` whenever the store's head moves beyond what this thread last saw
    (its own process's appends included: the journal then finds nothing new). A store
    error is logged and waited out, as long as the runtime runs."""

    def __init__(self, store: EventStore, journal: ActorRef[Any], wait: float = 0.5) -> None:
        self.store, self.journal, self.wait = store, journal, wait
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reactor-tailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        seen = -1
        while not self._stopped.is_set():
            try:
                head = self.store.wait_for_append(max(seen, 0), self.wait)
            except ReactorError as e:
                log.warning("tailing %s failed, trying again: %s", self.store.url, e)
                self._stopped.wait(self.wait)
                continue
            if head > seen:
                seen = head
                tell(self.journal, Tail(head))
