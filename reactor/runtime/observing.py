"""Observing a runtime: its `Metrics` (always on), its tracing (spans once the application
configured a tracer provider), the values read at each scrape (the journal head, consumer
positions, mailboxes, aggregates, stored dead letters) and the `/metrics` endpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from reactor.actors.consumer import Mode
from reactor.actors.pooled import actor_of, mailbox_size
from reactor.metrics import Metrics, Value
from reactor.runtime.consumers import Consumers
from reactor.runtime.parts import Parts
from reactor.tracing import NO_TRACING, NoTracing, Tracing, configure

if TYPE_CHECKING:
    from reactor.prometheus import MetricsServer


class Observability:
    """The metrics, tracing and endpoint of one runtime. `start` before the runtime's parts
    (a port in use fails the start before anything else runs), `watch` once they run,
    `stop` before they shut down (the endpoint's thread is joined)."""

    def __init__(self, port: int | None, tracer_provider: Any = None) -> None:
        self.metrics = Metrics()
        self.tracing: Tracing | NoTracing = NO_TRACING
        self.port = port  # asked for; the one served once started
        self._provider = tracer_provider
        self._server: MetricsServer | None = None
        self._parts: Parts | None = None
        self._consumers: Consumers | None = None
        self._read_by_scrape()

    def start(self) -> None:
        """Take the tracer provider (given, or the application's global one) and serve
        `/metrics` if a port was asked for: `PortInUse` naming it if it is taken."""
        self.tracing = configure(self._provider)
        if self.port is not None:
            from reactor.prometheus import serve  # the `metrics` extra, only when asked for

            self._server = serve(self.metrics, self.port)
            self.port = self._server.port

    def watch(self, parts: Parts, consumers: Consumers) -> None:
        """Read the running `parts` and `consumers` at every scrape from now on."""
        self._parts, self._consumers = parts, consumers

    def stop(self, timeout: float) -> None:
        """Stop serving (joining the endpoint's thread); scrapes read no part any more."""
        self._parts = self._consumers = None
        if self._server is not None:
            self._server.stop(timeout)
            self._server = None

    def _read_by_scrape(self) -> None:
        m = self.metrics
        m.on_scrape("reactor_journal_head", lambda: self._read(lambda p: p.store.last_position()))
        m.on_scrape("reactor_consumer_position", self._positions)
        m.on_scrape("reactor_dead_letters_stored", self._dead_letters)
        m.on_scrape("reactor_aggregates_live", lambda: self._read(lambda p: len(p.host)))
        m.on_scrape(
            "reactor_aggregates_started_total", lambda: self._read(lambda p: p.host.started)
        )
        m.on_scrape(
            "reactor_aggregates_passivated_total", lambda: self._read(lambda p: p.host.passivated)
        )
        m.on_scrape_mailboxes(self._mailboxes)

    def _read(self, read: Any) -> Value:
        parts = self._parts
        return None if parts is None else read(parts)

    def _positions(self) -> Value:
        """Each consumer's position, as far as it has handled every event of its types (so
        a projection of rare types is not shown lagging behind the others' events)."""
        parts, consumers = self._parts, self._consumers
        if parts is None or consumers is None:
            return None
        router = actor_of(parts.tree.router)
        routed = 0 if router is None else router.published
        positions = {}
        for running in consumers:
            position, actor = running.progress.position, actor_of(running.ref)
            if actor is not None and actor.mode is Mode.LIVE and not actor.waiting:
                position = max(position, routed)  # all routed is handled: the rest not its
            positions[running.spec.label] = position
        return positions

    def _dead_letters(self) -> Value:
        parts = self._parts
        if parts is None:
            return None
        return dict(Counter(d.handler for d in parts.store.dead_letters()))

    def _mailboxes(self) -> Iterator[tuple[str, str, int]]:
        """`(kind, actor, waiting)` of the fixed actors, every consumer and each aggregate
        with mail; a zero row per kind, so an idle kind shows as 0."""
        parts, consumers = self._parts, self._consumers
        if parts is None or consumers is None:
            return
        tree = parts.tree
        yield "journal", "journal", mailbox_size(tree.journal)
        yield "router", "router", mailbox_size(tree.router)
        for sup in tree.supervisors():
            yield "supervisor", sup.name, sup.waiting
        yield from (("projection", "", 0), ("saga", "", 0), ("subscriber", "", 0))
        for running in consumers:
            yield running.spec.kind.value, running.spec.label, mailbox_size(running.ref)
        yield "aggregate", "", 0
        for stream_id, waiting in parts.host.depths():
            yield "aggregate", stream_id, waiting
