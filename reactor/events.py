"""Declaring events and commands, and the `Envelope` a stored event travels in.

`@event`, `@command` and `@upcaster` register into `default_registry` unless given
another `Registry`; `NewEvent` is an event on its way into the journal.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from reactor.registry import Kind, Registry, Upcaster, default_registry

T = TypeVar("T", bound=type)


def event(
    name: str, *, version: int = 1, kind: Kind = "domain", registry: Registry | None = None
) -> Callable[[T], T]:
    """Register an attrs class as event type `name`, schema `version`.

    `kind` is "domain" (facts of one aggregate), "integration" (published to other
    services) or "system" (reactor's own). Put it above `@attrs.frozen`.
    Raises `RegistrationError` for a non-attrs class or a name taken by another class.
    """

    def register(cls: T) -> T:
        (registry or default_registry).add_event(cls, name, version, kind)
        return cls

    return register


def command(cls: T | None = None, *, registry: Registry | None = None) -> Any:
    """Mark an attrs class as a command (`@command` or `@command(registry=...)`)."""

    def register(c: T) -> T:
        (registry or default_registry).add_command(c)
        return c

    return register if cls is None else register(cls)


def upcaster(
    name: str, *, from_version: int, registry: Registry | None = None
) -> Callable[[Upcaster], Upcaster]:
    """Register a function `dict -> dict` turning stored `name` data of `from_version` into
    `from_version + 1`. Chains run on read, oldest first, up to the current version."""

    def register(fn: Upcaster) -> Upcaster:
        (registry or default_registry).add_upcaster(name, from_version, fn)
        return fn

    return register


def decided_events(decided: Any) -> list[Any]:
    """A command handler's answer as a list of events: one event, a list or tuple, or None."""
    if decided is None:
        return []
    return list(decided) if isinstance(decided, list | tuple) else [decided]


def new_id() -> str:
    """A fresh event or command id: a time-ordered UUID (version 7, RFC 9562) as text.

    Time-ordered ids keep the journal's unique index append-mostly: random UUID4 ids cut
    SQLite's batched inserts to a third (perf/journal.py). The 74 random bits come from
    `random`, not `os.urandom`: a syscall releases the GIL, and under load every release
    waits to get it back (it was a quarter of the command path; perf/runtime.py).
    """
    bits = _random_bits(74)
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | (bits >> 62) << 64
        | 0b10 << 62
        | bits & 0x3FFF_FFFF_FFFF_FFFF
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_random_bits = random.getrandbits  # reseeded after fork by the random module


@attrs.frozen
class NewEvent:
    """An event to append, with the ids and metadata it will be stored with.

    Re-appending a `NewEvent` with the same `event_id` at the same place is idempotent.
    """

    event: Any
    event_id: str = attrs.field(factory=new_id)
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Cause:
    """Why a consumer sent a command: the event it acted on (`event_id`) and who it is
    (`by`: its checkpoint name, e.g. "saga:Checkout"). Kept in the metadata of the events
    the command stores ("cause", "by", "command": its class), so lineage can follow it."""

    event_id: str
    by: str


@attrs.frozen
class CommandResult:
    """What a command did: its stream, the stream's version after it, the global position
    of its last event (0 if it stored none) and the envelopes it stored."""

    stream_id: str
    version: int
    position: int
    events: tuple[Envelope, ...] = ()


@attrs.frozen
class Envelope:
    """A stored event: where it lies in its stream and in the whole journal, and why.

    `seq` is 1-based in its stream, `position` 1-based and global; `version` is the schema
    version of `event` as decoded (after upcasting); `timestamp` is UTC.
    """

    event_id: str
    stream_id: str
    seq: int
    position: int
    type: str
    version: int
    event: Any
    timestamp: datetime
    correlation_id: str | None
    causation_id: str | None
    metadata: Mapping[str, Any]
