"""`Settings`: the options of a `Runtime`, each checked when the Runtime is made.

A wrong value is a `ValueError` naming the option, the accepted range and the value given,
raised by the constructor (not at some later start or command).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from reactor.codec import MAX_EVENT_BYTES
from reactor.faults import RetryPolicy


def _count(minimum: int, optional: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if optional and value is None:
            return
        if type(value) is not int or value < minimum:
            none = " or None" if optional else ""
            raise ValueError(
                f"Runtime({attribute.name}=...) must be an int >= {minimum}{none}, got {value!r}"
            )

    return check


def _seconds(optional: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if optional and value is None:
            return
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value <= 0:
            none = " or None" if optional else ""
            raise ValueError(
                f"Runtime({attribute.name}=...) must be a finite number of seconds > 0{none}, "
                f"got {value!r}"
            )

    return check


def _port(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= 65535):
        raise ValueError(
            f"Runtime({attribute.name}=...) must be a TCP port 0..65535 (0: any free one) "
            f"or None, got {value!r}"
        )


def _policy(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, RetryPolicy):
        raise ValueError(f"Runtime(retry=...) must be a RetryPolicy, got {value!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """How a runtime runs (see `Runtime` for each option)."""

    workers: int = attrs.field(default=2, validator=_count(1))
    throughput: int = attrs.field(default=100, validator=_count(1))
    snapshot_every: int | None = attrs.field(default=None, validator=_count(1, optional=True))
    idle_timeout: float | None = attrs.field(default=None, validator=_seconds(optional=True))
    max_live: int | None = attrs.field(default=None, validator=_count(1, optional=True))
    timeout: float = attrs.field(default=30.0, validator=_seconds())
    subscriber_workers: int = attrs.field(default=2, validator=_count(1))
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, validator=_policy)
    backlog: int = attrs.field(default=10_000, validator=_count(1))
    lease_ttl: float = attrs.field(default=5.0, validator=_seconds())
    max_event_bytes: int | None = attrs.field(
        default=MAX_EVENT_BYTES, validator=_count(1, optional=True)
    )
    metrics_port: int | None = attrs.field(default=None, validator=_port)
