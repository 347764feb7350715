"""Operating: what an operator asks of a running runtime (its health, its dead letters
and orders to redrive or discard them)."""

from __future__ import annotations

from typing import Any

from reactor.cluster.status import ClusterStatus
from reactor.faults import DeadLetter
from reactor.runtime import dead_letters
from reactor.runtime.core import RuntimeCore
from reactor.runtime.health import Health, report
from reactor.runtime.parts import sync
from reactor.security.policy import Principal


class Operating(RuntimeCore):
    """The operating part of `Runtime`."""

    # -- monitoring ---------------------------------------------------------------------------

    def health(self) -> Health:
        """A snapshot of the runtime: state, journal head, each consumer's position (and
        how far behind it is), live aggregates, failures per supervisor, dead letters.
        It waits behind no actor's mailbox."""
        parts = self._parts
        if self._state != "running" or parts is None:
            return Health(state=self._state, failure=self.failure)
        bus = None if self._bus is None else self._bus.health()
        return report(self._state, self.failure, parts, self._consumers, bus)

    def metrics(self) -> dict[str, Any]:
        """Every metric now, as a plain dict: Prometheus name -> a number, a
        `reactor.metrics.Histogram`, or a dict by label value (a tuple for several labels),
        e.g. `rt.metrics()["reactor_commands_total"][("Deposit", "ok")]`. Always on; read
        without waiting behind any mailbox. O(command types + live aggregates)."""
        return self._observe.metrics.snapshot()

    @property
    def metrics_port(self) -> int | None:
        """The port `/metrics` is served on (the free one chosen for `metrics_port=0`), or
        None without `metrics_port`."""
        return self._observe.port

    # -- dead letters -------------------------------------------------------------------------

    def cluster(self) -> ClusterStatus | None:
        """The cluster this runtime is a node of, as seen now: its members and their last
        heartbeat, the owner of each shard, each node's live aggregates (asked over NATS,
        a second at most); None for a runtime that is not in a cluster."""
        self._running()
        return None if self._cluster is None else self._cluster.status()

    def dead_letters(self, handler: str | None = None) -> list[DeadLetter]:
        """The events handlers gave up on (of one handler: a projection or saga class name,
        or a subscriber name), oldest first; each counts the events parked behind it."""
        parts = self._running_parts()
        sync(parts.tree.journal, self.settings.timeout)  # letters told to it are saved
        return dead_letters.listed(parts.store, handler)

    def redrive(
        self, letter_id: str, *, timeout: float | None = None, principal: Principal | None = None
    ) -> int:
        """Deliver a dead letter's event to its handler again, then the events parked behind
        it, in order; returns how many were delivered. If one fails again it stays (the
        attempt counted) and its error is raised here. With a policy, `Unauthorized` unless
        `principal` may operate the letter's handler; the order goes to the audit trail."""
        return self._order(letter_id, "redrive", timeout, principal)

    def discard(
        self, letter_id: str, *, timeout: float | None = None, principal: Principal | None = None
    ) -> int:
        """Drop a dead letter and deliver the events parked behind it, in order (as
        `redrive`: checked by the policy, written to the audit trail)."""
        return self._order(letter_id, "discard", timeout, principal)

    def _order(
        self, letter_id: str, what: str, timeout: float | None, principal: Principal | None
    ) -> int:
        parts = self._running_parts()
        sync(parts.tree.journal, self.settings.timeout)
        handler = dead_letters.handler_of(parts.store, letter_id)
        detail = f"dead letter {letter_id}"
        self._gov.check(principal, "operate", handler, detail, doing=what)

        def run() -> int:
            reply = dead_letters.order(parts.store, self._consumers, letter_id, what)
            delivered: int = reply.get(self._timeout(timeout))
            return delivered

        return self._gov.audited(principal, what, handler, detail, run, "{} delivered".format)
