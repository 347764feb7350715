"""The aggregate host: finds or starts the actor of a command's aggregate, passivates idle
ones (by `idle_timeout` and `max_live`), and knows when all of them have stopped.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from pykka import ActorRef

from reactor.actors.aggregate import AggregateActor
from reactor.actors.dispatch import Dispatcher
from reactor.actors.instruments import NO_METRICS, NO_TRACING, Instruments, Spans
from reactor.actors.messages import Handle, Passivate, Reload
from reactor.actors.pooled import post, start
from reactor.specs import AggregateType
from reactor.store.base import Fence
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)


class Placement(NamedTuple):
    """Where a cluster node hosts an aggregate: the fence its appends carry (its shard's
    lease at the epoch the node holds it) and what its events' metadata record of it."""

    fence: Fence
    metadata: dict[str, Any]


class AggregateHost:
    """Finds or starts the actor of a command's aggregate; passivates idle ones.

    A plain object shared by client threads: routing happens under one lock, so an actor
    is only forgotten while nothing is routed to it (`routed == completed`), and then no
    new command can reach it.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: EventStore,
        journal: ActorRef[Any],
        *,
        max_live: int | None = None,
        idle_timeout: float | None = None,
        supervisor: Any = None,
        metrics: Instruments = NO_METRICS,
        tracing: Spans = NO_TRACING,
    ) -> None:
        self.dispatcher, self.store, self.journal = dispatcher, store, journal
        self.metrics, self.tracing = metrics, tracing  # what its actors report to
        self.max_live, self.idle_timeout = max_live, idle_timeout
        self.supervisor: Any = supervisor
        # In a cluster: the placement of a stream's new actor (read once, as it starts).
        self.placement: Callable[[str], Placement] | None = None
        self._lru = max_live is not None or idle_timeout is not None  # keep _live in LRU order
        self._lock = threading.Lock()
        self._all_stopped = threading.Condition(self._lock)
        self._alive = 0  # actors started and not yet stopped (passivated ones included)
        self._live: collections.OrderedDict[str, AggregateActor] = collections.OrderedDict()
        self._warned: set[type] = set()
        self.started = 0  # actors started so far
        self.passivated = 0

    def __len__(self) -> int:
        return len(self._live)

    def route(self, spec: AggregateType, stream_id: str, msg: Handle) -> None:
        """Tell the aggregate actor of `stream_id` to handle `msg` (starting it if needed)."""
        with self._lock:
            actor = self._live.get(stream_id)
            if actor is None:
                actor = AggregateActor(self.dispatcher, self, spec, stream_id)
                self._live[stream_id] = actor
                self.started += 1
                self._alive += 1
                start(actor, supervisor=self.supervisor, static=False, registered=False)
            elif self._lru:
                self._live.move_to_end(stream_id)
            actor.routed += 1
            if self.idle_timeout is not None:
                actor.last_used = time.monotonic()
            post(actor, msg)

    def depths(self) -> list[tuple[str, int]]:
        """`(stream id, messages waiting)` of each live actor with mail. O(live actors),
        for a metrics scrape: the lock is held only to copy the list."""
        with self._lock:
            live = list(self._live.items())
        return [(stream_id, n) for stream_id, actor in live if (n := actor.waiting)]

    def trim(self) -> None:
        """Passivate idle actors while more than `max_live` are alive (called as they finish)."""
        if self.max_live is None or len(self._live) <= self.max_live:
            return
        with self._lock:
            if len(self._live) > self.max_live:
                self._evict(len(self._live) - self.max_live)

    def sweep(self) -> None:
        """Passivate actors idle for longer than `idle_timeout` (oldest first)."""
        if self.idle_timeout is None:
            return
        limit = time.monotonic() - self.idle_timeout
        with self._lock:
            victims = []
            for stream_id, actor in self._live.items():
                if actor.last_used > limit:
                    break
                if actor.routed == actor.completed:
                    victims.append(stream_id)
            for stream_id in victims:
                self._passivate(stream_id)

    def reload(self, subject: str) -> int:
        """Tell each live actor whose state may hold personal data of `subject` to rebuild
        from the journal (after it forgot the subject: it then sees the masked values);
        how many were told. O(live actors)."""
        with self._lock:
            holders = [a for a in self._live.values() if a.subjects and subject in a.subjects]
            for actor in holders:
                post(actor, Reload())
        return len(holders)

    def passivate(self, which: Callable[[str], bool]) -> list[AggregateActor]:
        """Passivate the live actors of the streams `which` selects (each finishes what it
        was routed first); those actors (`actor_stopped` tells when each has). O(live)."""
        with self._lock:
            chosen = [s for s in self._live if which(s)]
            return [self._passivate(stream_id) for stream_id in chosen]

    def live_streams(self) -> list[str]:
        """The streams with a live actor. O(live)."""
        with self._lock:
            return list(self._live)

    def stop_all(self) -> None:
        """Passivate every actor (each finishes what it was routed first)."""
        with self._lock:
            for stream_id in list(self._live):
                self._passivate(stream_id)

    def wait_stopped(self, timeout: float) -> bool:
        """Block until every actor has stopped (after `stop_all`); False on timeout."""
        with self._all_stopped:
            return self._all_stopped.wait_for(lambda: self._alive == 0, timeout)

    def _actor_stopped(self) -> None:
        with self._all_stopped:
            self._alive -= 1
            self._all_stopped.notify_all()

    def _evict(self, count: int) -> None:
        """Passivate up to `count` idle actors, least recently used first (under the lock)."""
        idle = (s for s, a in self._live.items() if a.routed == a.completed)
        for stream_id in list(itertools.islice(idle, count)):
            self._passivate(stream_id)

    def _passivate(self, stream_id: str) -> AggregateActor:
        actor = self._live.pop(stream_id)
        self.passivated += 1
        post(actor, Passivate())
        return actor

    def unsnapshottable(self, spec: AggregateType, values: dict[str, Any]) -> None:
        """Say once per class why its state cannot be snapshotted (replay still works)."""
        if spec.cls not in self._warned:
            self._warned.add(spec.cls)
            log.warning(
                "%s: state %s does not survive encoding exactly; no snapshots are taken. "
                "Annotate its attributes on the class (e.g. `balance: Decimal`).",
                spec.name,
                sorted(values),
            )
