"""`Parts`: the machinery of a started runtime (the journal store, the dispatchers, the timer
thread, the supervision tree and the aggregate host), made at start and shut down at stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

import attrs
from pykka import ActorRef

from reactor.actors.dispatch import Dispatcher
from reactor.actors.host import AggregateHost
from reactor.actors.instruments import Instruments, Spans
from reactor.actors.messages import Reply, Sync
from reactor.actors.scheduler import Scheduler
from reactor.actors.tailer import Tailer
from reactor.actors.tree import Tree, build_tree
from reactor.runtime.settings import Settings
from reactor.specs import ConsumerKind
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)


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
    tailer: Tailer | None  # for a journal other processes append to
    metrics: Instruments  # what the actors report to
    tracing: Spans

    @classmethod
    def start(
        cls,
        store: EventStore,
        settings: Settings,
        give_up: Callable[[str], None],
        metrics: Instruments,
        tracing: Spans,
    ) -> Parts:
        """Start the dispatchers, the timer thread, the tree and the host on `store`."""
        pool = Dispatcher(settings.workers, settings.throughput, "reactor")
        io = Dispatcher(1, settings.throughput, "reactor-journal")
        blocking = Dispatcher(settings.subscriber_workers, 1, "reactor-subscribers", may_block=True)
        timers = Scheduler()
        tree = build_tree(
            pool,
            io,
            store,
            timers,
            give_up,
            backlog=settings.backlog,
            metrics=metrics,
            tracing=tracing,
        )
        host = AggregateHost(
            pool,
            store,
            tree.journal,
            max_live=settings.max_live,
            idle_timeout=settings.idle_timeout,
            supervisor=tree.aggregates,
            metrics=metrics,
            tracing=tracing,
        )
        tailer = Tailer(store, tree.journal) if store.shared else None
        return cls(
            store=store,
            settings=settings,
            pool=pool,
            io=io,
            blocking=blocking,
            timers=timers,
            tree=tree,
            host=host,
            tailer=tailer,
            metrics=metrics,
            tracing=tracing,
        )

    def stop_actors(
        self, stop_consumers: Callable[[Collection[ConsumerKind], float], None], timeout: float
    ) -> None:
        """Stop the actors in an order that loses nothing accepted: the supervisors (no
        restarts while stopping), sagas (the commands they send on the way still go through),
        aggregates (each answers what it was sent), what they sent to the journal and the
        router, the other consumers (every delivery handled, checkpoints saved), then the
        router and the journal."""
        tree = self.tree
        if self.tailer is not None:
            self.tailer.stop(timeout)
        for sup in tree.supervisors():
            sup.actor_ref.stop(block=True, timeout=timeout)
        self._drain(timeout)
        stop_consumers([ConsumerKind.SAGA], timeout)
        self.host.stop_all()
        if not self.host.wait_stopped(timeout):
            log.warning("aggregates still busy after %.1fs", timeout)
        self._drain(timeout)
        stop_consumers([ConsumerKind.PROJECTION, ConsumerKind.SUBSCRIBER], timeout)
        sync(tree.journal, timeout)
        tree.router.stop(block=True, timeout=timeout)
        tree.journal.stop(block=True, timeout=timeout)

    def _drain(self, timeout: float) -> None:
        """Wait until what was sent to the journal is committed and routed."""
        sync(self.tree.journal, timeout)
        sync(self.tree.router, timeout)

    def shutdown(self, timeout: float) -> None:
        """Stop the timer thread and the dispatchers' threads, close the store."""
        self.timers.stop()
        for dispatcher in (self.blocking, self.pool, self.io):
            dispatcher.shutdown(timeout)
        self.store.close()


def sync(ref: ActorRef[Any], timeout: float) -> Any:
    """Wait until the actor behind `ref` has handled everything told to it before; its
    answer (the journal and the router: the last position they published)."""
    reply = Reply()
    ref.tell(Sync(reply))
    return reply.get(timeout)
