"""`Parts`: the machinery of a started runtime (the journal store, the dispatchers, the timer
thread, the supervision tree and the aggregate host), made at start and shut down at stop.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from reactor.actors.dispatch import Dispatcher
from reactor.actors.host import AggregateHost
from reactor.actors.scheduler import Scheduler
from reactor.actors.tree import Tree, build_tree
from reactor.runtime.settings import Settings
from reactor.store.event_store import EventStore


@attrs.frozen(kw_only=True)
class Parts:
    """What a running `Runtime` is made of."""

    store: EventStore
    settings: Settings
    pool: Dispatcher  # aggregates, the router, projections and sagas
    io: Dispatcher  # the journal
    blocking: Dispatcher  # subscriber functions (they may block, and send)
    timers: Scheduler
    tree: Tree
    host: AggregateHost

    @classmethod
    def start(cls, store: EventStore, settings: Settings, give_up: Callable[[str], None]) -> Parts:
        """Start the dispatchers, the timer thread, the tree and the host on `store`."""
        pool = Dispatcher(settings.workers, settings.throughput, "reactor")
        io = Dispatcher(1, settings.throughput, "reactor-journal")
        blocking = Dispatcher(settings.subscriber_workers, 1, "reactor-subscribers", may_block=True)
        timers = Scheduler()
        tree = build_tree(pool, io, store, timers, give_up, backlog=settings.backlog)
        host = AggregateHost(
            pool,
            store,
            tree.journal,
            max_live=settings.max_live,
            idle_timeout=settings.idle_timeout,
            supervisor=tree.aggregates,
        )
        return cls(
            store=store,
            settings=settings,
            pool=pool,
            io=io,
            blocking=blocking,
            timers=timers,
            tree=tree,
            host=host,
        )

    def shutdown(self, timeout: float) -> None:
        """Stop the timer thread and the dispatchers' threads, close the store."""
        self.timers.stop()
        for dispatcher in (self.blocking, self.pool, self.io):
            dispatcher.shutdown(timeout)
        self.store.close()
