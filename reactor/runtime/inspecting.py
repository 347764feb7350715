"""Inspecting: the lineage of a flow (`trace`) and rebuilding a durable projection
(`rebuild`), thin methods over `reactor.runtime.lineage` and `reactor.runtime.rebuild`."""

from __future__ import annotations

import threading

from reactor.errors import ReactorError
from reactor.runtime.core import RuntimeCore
from reactor.runtime.lineage import TraceNode, consumers_of, trace
from reactor.runtime.parts import sync
from reactor.runtime.rebuild import Rebuild, Rebuilt
from reactor.specs import ConsumerKind
from reactor.store.base import Progress


class Inspecting(RuntimeCore):
    """The lineage and rebuild part of `Runtime`."""

    def trace(self, id: str) -> TraceNode:  # `id`: the name the contract pins
        """The causal tree of the flow `id` belongs to (an event, command or correlation
        id): command -> its events -> the consumers they reached -> their commands ...,
        rejections and dead letters marked; the node of `id` has `focus`. Raises
        `UnknownTraceId` (a `LookupError`) naming the id if nothing has it."""
        parts = self._running_parts()
        sync(parts.tree.journal, self.settings.timeout)  # notes told to it are saved
        specs = [r.spec for r in self._consumers] + list(self._consumers.registered.values())
        return trace(parts.store, id, consumers_of({s.name: s for s in specs}.values()))

    def rebuild(
        self,
        projection: type,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> Rebuilt:
        """Replay the durable `projection` from position 0 into a fresh instance while the
        running one keeps serving queries, then swap it in between two events (its dead
        letters go: the new state applied those events). `progress(position, head)` is
        called after each batch. Stopped (`stop` set, KeyboardInterrupt, a crash), it keeps
        its progress under a shadow checkpoint, and the next rebuild goes on from there.
        `ReactorError` for a class that is not a registered durable projection, or naming
        the event whose handler raised (nothing is swapped)."""
        self._running()
        spec = self._consumers.registered.get(projection)
        if spec is None or spec.kind is not ConsumerKind.PROJECTION or not spec.durable:
            raise ReactorError(
                f"rebuild() takes a registered durable projection class, got {projection!r}: "
                "register() it first; a projection that is not durable replays at every start"
            )
        wait = self._timeout(timeout)
        running = self._consumers.projection(projection, wait)
        assert running is not None  # registered, a projection
        parts = self._running_parts()
        return Rebuild(parts.store, spec, running, progress, stop).run(wait)
