"""What the actors need to know of a user's class, as plain data built by `reactor.domain`.

The actor layer stays below the user API: it never imports `reactor.domain`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from reactor.faults import RetryPolicy


@attrs.frozen
class AggregateType:
    """An aggregate class: its stream prefix, key field, command handlers and appliers."""

    cls: type
    name: str
    key: str
    handlers: Mapping[type, Callable[[Any, Any], Any]]
    appliers: Mapping[type, Callable[[Any, Any], None]]
    snapshot_every: int | None
    state_hints: Mapping[str, Any]

    def stream_id(self, key: object) -> str:
        return f"{self.name}-{key}"


@attrs.frozen
class ConsumerType:
    """A projection (or a subscriber function): what it handles and how it keeps its place.

    `handlers` maps stored type names to `(instance, event, envelope) -> None`; `types` is
    None for "every event". `durable` consumers save state and checkpoint together.
    """

    cls: type
    name: str  # the checkpoint's name: "projection:<label>" or "subscriber:<label>"
    label: str  # the class name or subscriber name, as dead letters show it
    handlers: Mapping[str, Callable[[Any, Any, Any], None]]
    types: frozenset[str] | None
    durable: bool
    checkpoint_every: int
    state_hints: Mapping[str, Any]
    queries: frozenset[str]
    retry: RetryPolicy | None = None  # None: the runtime's default
    factory: Callable[[], Any] | None = None  # makes a fresh instance (default: cls())
