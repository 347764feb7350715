"""Retry policies and dead letters: what a failing handler gets before it is given up on.

`RetryPolicy` computes exponential backoff with jitter; `DeadLetter` is what
`Runtime.dead_letters()` shows of an event a handler gave up on.
"""

from __future__ import annotations

import random

import attrs

from reactor.errors import DecodeError, Rejected, UnknownEventType
from reactor.events import Envelope

NOT_RETRIED: tuple[type[BaseException], ...] = (Rejected, DecodeError, UnknownEventType)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How often and how late a failing handler is tried again.

    `max_attempts` counts every attempt, the first included. The delay after failed
    attempt n is `first_delay * multiplier ** (n - 1)`, at most `max_delay`, then moved
    by up to `jitter` (a fraction) either way so that retries do not march in step.
    """

    max_attempts: int = attrs.field(default=5)
    first_delay: float = attrs.field(default=0.05, validator=_positive)
    max_delay: float = attrs.field(default=5.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2)

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or value < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, got {value!r}")

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"RetryPolicy.jitter must be between 0 and 1, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay, self.first_delay * self.multiplier ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * random.random() - 1)))


def retried(error: BaseException) -> bool:
    """Whether a handler's error is worth another attempt (a domain refusal or a decode
    error will fail the same way every time)."""
    return not isinstance(error, NOT_RETRIED)


@attrs.frozen(kw_only=True)
class DeadLetter:
    """An event a handler gave up on, as `Runtime.dead_letters()` shows it.

    `handler` is the projection or saga class name, or the subscriber name; `error` is
    `"<ExceptionType>: <message>"`; `waiting` counts the later events of the same stream
    parked behind it for that handler. `envelope` is None when the stored event cannot be
    decoded (`unreadable` says why; `type` and `version` are as stored).
    """

    id: str
    handler: str
    position: int
    stream_id: str
    type: str
    version: int
    envelope: Envelope | None
    error: str
    attempts: int
    waiting: int
    unreadable: str = ""
