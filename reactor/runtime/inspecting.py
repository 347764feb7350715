"""Inspecting: the lineage of a flow (`trace`) and rebuilding a durable projection
(`rebuild`), thin methods over `reactor.runtime.lineage` and `reactor.runtime.rebuild`."""

from __future__ import annotations

from reactor.runtime.core import RuntimeCore
from reactor.runtime.lineage import TraceNode, consumers_of, trace
from reactor.runtime.parts import sync


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
