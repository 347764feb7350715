"""`Health`: what `Runtime.health()` reports, read without waiting behind any mailbox (a
consumer's position is its `Progress`, the head is the journal's, counts are counters)."""

from __future__ import annotations

import attrs

from reactor.bus import BusHealth
from reactor.runtime.consumers import Consumers
from reactor.runtime.parts import Parts


@attrs.frozen(kw_only=True)
class Health:
    """A snapshot of a runtime. `consumers` maps each projection, saga and named subscriber
    to the last position it has handled; `head` is the journal's last position."""

    state: str
    failure: str | None
    head: int = 0
    consumers: dict[str, int] = attrs.field(factory=dict)
    live_aggregates: int = 0
    aggregates_started: int = 0
    passivated: int = 0
    failures: dict[str, int] = attrs.field(factory=dict)  # per supervisor
    dead_letters: int = 0
    stopped: dict[str, str] = attrs.field(factory=dict)  # consumers given up on: why
    standby: list[str] = attrs.field(factory=list)  # waiting for another process's lease
    bus: BusHealth | None = None  # with Runtime(bus=...): the connection, outbox and inbox

    def lag(self) -> dict[str, int]:
        """How many positions each consumer is behind the journal's head."""
        return {name: self.head - position for name, position in self.consumers.items()}


def report(
    state: str,
    failure: str | None,
    parts: Parts,
    consumers: Consumers,
    bus: BusHealth | None = None,
) -> Health:
    """The health of a running runtime made of `parts`."""
    host = parts.host
    return Health(
        state=state,
        failure=failure,
        head=parts.store.last_position(),
        consumers={r.spec.label: r.progress.position for r in consumers},
        live_aggregates=len(host),
        aggregates_started=host.started,
        passivated=host.passivated,
        failures={s.name: s.failures for s in parts.tree.supervisors()},
        dead_letters=len(parts.store.dead_letters()),
        stopped={n: why for s in parts.tree.supervisors() for n, why in s.retired.items()},
        standby=sorted(
            launch.spec.label
            for launch in list(consumers.standby.values())
            if launch.spec.name not in consumers.running
        ),
        bus=bus,
    )
