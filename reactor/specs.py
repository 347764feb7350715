"""What the actors need to know of a user's class, as plain data built by `reactor.domain`.

Both layers meet here: the domain builds specs, the actors run them, neither imports the
other. `SagaHost` is what a saga's consumer needs of the object running its instances.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from reactor.faults import RetryPolicy


@attrs.frozen(kw_only=True)
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


class ConsumerKind(enum.Enum):
    """What runs in a consumer actor: a projection, a saga's instances or a subscriber."""

    PROJECTION = "projection"
    SAGA = "saga"
    SUBSCRIBER = "subscriber"


@attrs.frozen(kw_only=True)
class ConsumerType:
    """A projection, a saga or a subscriber function: what it handles, how it keeps its place.

    `handlers` maps stored type names to `(instance, event, envelope) -> None`; `types` is
    None for "every event". `durable` consumers save state and checkpoint together.
    """

    kind: ConsumerKind
    cls: type
    label: str  # the class name or subscriber name, as dead letters and health show it
    handlers: Mapping[str, Callable[[Any, Any, Any], None]]
    types: frozenset[str] | None
    durable: bool = False
    checkpoint_every: int = 100
    state_hints: Mapping[str, Any] = attrs.field(factory=dict)
    queries: frozenset[str] = frozenset()
    retry: RetryPolicy | None = None  # None: the runtime's default
    factory: Callable[[], Any] | None = None  # makes a fresh instance (default: cls())

    @property
    def name(self) -> str:
        """The checkpoint's name: "<kind>:<label>"."""
        return f"{self.kind.value}:{self.label}"

    def instance(self) -> Any:
        """A fresh instance to run (None for a subscriber function)."""
        if self.kind is ConsumerKind.SUBSCRIBER:
            return None
        return (self.factory or self.cls)()


class StateCodec(Protocol):
    """Encodes events and state for whoever saves them (a `Codec`, or the `EventStore`)."""

    def encode(self, obj: object) -> tuple[str, int, bytes]: ...

    def decode(self, type_name: str, version: int, data: bytes) -> tuple[Any, int]: ...

    def encode_state(self, values: Mapping[str, Any], hints: Mapping[str, Any]) -> bytes: ...

    def decode_state(self, data: bytes, hints: Mapping[str, Any]) -> dict[str, Any]: ...


Rows = tuple[tuple[str, bytes | None], ...]


class SagaHost(Protocol):
    """What a saga's consumer needs of the object that runs the saga's instances: its
    deadlines (armed after each handler, fired when due) and its state."""

    def take_armed(self) -> list[tuple[str, float]]:
        """The deadlines set since the last call, as (deadline id, delay in seconds)."""
        ...

    def rearm(self) -> None:
        """After a (re)start: arm every saved deadline again (those due fire at once)."""
        ...

    def fire(self, deadline_id: str) -> None:
        """A deadline fell due: hand its event to its instance."""
        ...

    def dump_state(self, codec: StateCodec) -> tuple[bytes, Rows]:
        """The saga's own state, and a row per instance changed since the last dump."""
        ...

    def load_state(self, codec: StateCodec, data: bytes, rows: Mapping[str, bytes]) -> None:
        """Restore what `dump_state` saved (its rows by key)."""
        ...
