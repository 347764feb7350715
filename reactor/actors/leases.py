"""Single-active work on a shared journal: a `LeaseKeeper` thread that holds, renews and
waits for the leases of what must run in one process at a time (durable projections, sagas,
named subscribers, a service's bus link), calling back when a lease is gained (start it)
and lost (stop it). What it starts writes its checkpoints with the lease's epoch as a
fence, so a holder that lost its lease cannot write them. A thread, not an actor: it waits
on the journal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from reactor.errors import ReactorError
from reactor.store.base import Lease
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
Gained = Callable[[str, Lease], None]
Lost = Callable[[str], None]
Eligible = Callable[[str], bool]


class LeaseKeeper:
    """Every `ttl / 3` seconds: renews the leases it holds, tries to take those it wants
    (a standby takes one over once its holder stopped renewing: within `ttl` of a crash,
    at once after a clean stop, which releases it). `gained(name, lease)` and `lost(name)`
    run on its thread. With `eligible`, a lease not held is only tried while
    `eligible(name)` (a cluster spreads its consumers over its nodes so)."""

    def __init__(
        self,
        store: EventStore,
        owner: str,
        ttl: float,
        gained: Gained,
        lost: Lost,
        eligible: Eligible | None = None,
    ) -> None:
        self.store, self.owner, self.ttl = store, owner, ttl
        self.gained, self.lost, self.eligible = gained, lost, eligible
        self.wanted: set[str] = set()
        self.held: dict[str, Lease] = {}
        self.renewed: dict[str, float] = {}  # when each held lease was last renewed (monotonic)
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reactor-leases", daemon=True)
        self._thread.start()

    def want(self, name: str) -> None:
        """Hold the lease `name` whenever it is free (tried at once)."""
        with self._lock:
            self.wanted.add(name)
        self._changed.set()

    def halt(self, timeout: float = 5.0) -> None:
        """Stop renewing and taking leases (those held stay held until they expire or are
        released)."""
        self._stopped.set()
        self._changed.set()
        self._thread.join(timeout)

    def release(self) -> None:
        """Halt, then give up every lease held (standbys take them over at once)."""
        self.halt()
        for name in list(self.held):
            try:
                self.store.release_lease(name, self.owner)
            except ReactorError as e:
                log.warning("lease %s was not released (it expires in %gs): %s", name, self.ttl, e)
        self.held.clear()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                wanted = sorted(self.wanted)
            for name in wanted:
                if self._stopped.is_set():
                    return
                self._keep(name)
            self._changed.wait(self.ttl / 3)
            self._changed.clear()

    def _keep(self, name: str) -> None:
        if name not in self.held and self.eligible is not None and not self.eligible(name):
            return
        try:
            lease = self.store.acquire_lease(name, self.owner, self.ttl)
        except ReactorError as e:
            log.warning("lease %s: the journal did not answer: %s", name, e)
            if name in self.held and time.monotonic() - self.renewed[name] > self.ttl * 2 / 3:
                self._lose(name)  # it may expire before we reach the journal again
            return
        if lease is None:
            if name in self.held:
                self._lose(name)
            return
        self.renewed[name] = time.monotonic()
        if name not in self.held:
            log.info("%s holds lease %s (epoch %d)", self.owner, name, lease.epoch)
            self.held[name] = lease
            self.gained(name, lease)
        else:
            self.held[name] = lease

    def _lose(self, name: str) -> None:
        del self.held[name]
        log.warning("%s lost lease %s: its consumer stops here", self.owner, name)
        self.lost(name)
