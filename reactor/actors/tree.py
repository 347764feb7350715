"""The supervision tree of a runtime: root (rest-for-one) -> journal, router, projections,
subscribers, aggregates.

A journal or router restart restarts every consumer after it, which then catches up from
the store: nothing routed half-way is missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from pykka import ActorRef

from reactor.actors.dispatch import Dispatcher
from reactor.actors.instruments import NO_METRICS, NO_TRACING, Instruments, Spans
from reactor.actors.journal import JournalActor
from reactor.actors.pooled import start
from reactor.actors.router import RouterActor
from reactor.actors.scheduler import Scheduler
from reactor.actors.supervisor import Strategy, SupervisorActor
from reactor.store.event_store import EventStore

RETIRE_AFTER = 3  # a consumer failing the same way this many times in a row is stopped


@attrs.frozen
class Tree:
    """The fixed actors of a runtime and the supervisors for everything else."""

    root: SupervisorActor
    journal: ActorRef[Any]
    router: ActorRef[Any]
    projections: SupervisorActor  # projections and sagas, one-for-one
    subscribers: SupervisorActor  # subscriber functions, one-for-one
    aggregates: SupervisorActor  # aggregate actors (not kept: there may be millions)

    def supervisors(self) -> tuple[SupervisorActor, ...]:
        return (self.root, self.projections, self.subscribers, self.aggregates)


def build_tree(
    pool: Dispatcher,
    io: Dispatcher,
    store: EventStore,
    timers: Scheduler,
    give_up: Callable[[str], None],
    *,
    backlog: int = 10_000,
    metrics: Instruments = NO_METRICS,
    tracing: Spans = NO_TRACING,
) -> Tree:
    """Start the supervisors, the router (on `pool`) and the journal (on `io`), reporting
    to `metrics` and `tracing`."""

    def supervisor(name: str, strategy: Strategy, **kw: Any) -> SupervisorActor:
        sup = SupervisorActor(pool, name, timers, strategy=strategy, metrics=metrics, **kw)
        start(sup, supervisor=root)
        return sup

    root = SupervisorActor(
        pool,
        "root",
        timers,
        strategy=Strategy.REST_FOR_ONE,
        give_up=give_up,
        metrics=metrics,
    )
    start(root)
    router = RouterActor(pool, store.last_position(), backlog)
    journal = JournalActor(io, store, router.actor_ref, metrics=metrics, tracing=tracing)
    start(journal, supervisor=root)
    start(router, supervisor=root)
    projections = supervisor("projections", Strategy.ONE_FOR_ONE, retire_after=RETIRE_AFTER)
    subscribers = supervisor("subscribers", Strategy.ONE_FOR_ONE, retire_after=RETIRE_AFTER)
    aggregates = supervisor("aggregates", Strategy.ONE_FOR_ONE, max_restarts=100)
    return Tree(root, journal.actor_ref, router.actor_ref, projections, subscribers, aggregates)
