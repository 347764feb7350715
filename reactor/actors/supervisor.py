"""Supervisors: restart failed actors by strategy, within a restart intensity, with backoff.

A `PooledActor` whose handler raises is suspended, not stopped: its mailbox and ActorRef
stay, its supervisor decides. One-for-one restarts the failed child, one-for-all every
child, rest-for-one the failed child and those started after it. A restart happens after
an exponential backoff with jitter, in place (same ref, same mailbox, `on_restart` rebuilds
its state). More than `max_restarts` within `within` seconds escalates to the parent; the
root then gives up: the runtime stops cleanly and says why.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs

from reactor.actors.dispatch import Dispatcher
from reactor.actors.instruments import NO_METRICS, Instruments
from reactor.actors.pooled import ChildFailed, PooledActor, tell
from reactor.actors.scheduler import Scheduler
from reactor.faults import RetryPolicy

log = logging.getLogger(__name__)


class Strategy(enum.Enum):
    """Which children a failure restarts."""

    ONE_FOR_ONE = "one-for-one"
    ONE_FOR_ALL = "one-for-all"
    REST_FOR_ONE = "rest-for-one"


@attrs.frozen
class RestartDue:
    """From the scheduler to a supervisor: restart these children now."""

    children: tuple[Any, ...]


class SupervisorActor(PooledActor):
    """Supervises children: actors, or supervisors of its own.

    `children` are kept in start order; `adopt(child, static=False)` supervises an actor
    without keeping it (the many aggregate actors: one-for-one only). `give_up` is called
    (on this supervisor's worker) when the root's restart intensity is exceeded. With
    `retire_after=n`, a child that fails the same way n times in a row (each within `within`
    seconds of the last) is not restarted again but stopped, and kept in `retired` with
    the reason: a restart would only fail again, and its siblings go on.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        name: str,
        timers: Scheduler,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 10,
        within: float = 10.0,
        backoff: RetryPolicy | None = None,
        give_up: Callable[[str], None] | None = None,
        retire_after: int | None = None,
        metrics: Instruments = NO_METRICS,
    ) -> None:
        super().__init__(dispatcher)
        self.metrics = metrics
        self.name, self.timers, self.strategy = name, timers, strategy
        self.max_restarts, self.within = max_restarts, within
        self.backoff = backoff or RetryPolicy(first_delay=0.01, max_delay=2.0)
        self.give_up = give_up
        self.children: list[Any] = []
        self.recent: collections.deque[float] = collections.deque()  # restart times
        self.failures = 0  # every child failure seen, for health reports
        self.retire_after = retire_after
        self.streaks: dict[int, tuple[str, int, float]] = {}  # child -> (failure, times, when)
        self.retired: dict[str, str] = {}  # children stopped for good, by name: why

    def __str__(self) -> str:
        return f"SupervisorActor({self.name}, {self.strategy.value})"

    def adopt(self, child: PooledActor | SupervisorActor, *, static: bool = True) -> None:
        """Supervise `child` (call before its first message can fail)."""
        child.supervisor = self
        if static:
            self.children.append(child)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildFailed):
            self._failed(message.child, message.error)
        elif isinstance(message, RestartDue):
            for child in message.children:
                child._order_restart()
        else:
            raise TypeError(f"{self} cannot handle {message!r}")

    def _failed(self, child: Any, error: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if self._repeats(child, error, now) >= (self.retire_after or 0) > 0:
            self._retire(child, error)
            return
        while self.recent and self.recent[0] < now - self.within:
            self.recent.popleft()
        if len(self.recent) >= self.max_restarts:
            reason = (
                f"{self}: {len(self.recent) + 1} failures within {self.within:g}s "
                f"(at most {self.max_restarts} restarts allowed), the last in {child}: {error!r}"
            )
            self._escalate(reason, error)
            return
        self.recent.append(now)
        targets = self._targets(child)
        delay = self.backoff.delay(len(self.recent))
        log.warning(
            "%s restarts %s in %.3fs after %r", self, [str(t) for t in targets], delay, error
        )
        self.timers.tell(delay, self.actor_ref, RestartDue(tuple(targets)))
        self.metrics.record_restart(self.name)

    def _repeats(self, child: Any, error: BaseException, now: float) -> int:
        """How many times in a row `child` has now failed with this very error."""
        failure = f"{type(error).__name__}: {error}"
        last, times, when = self.streaks.get(id(child), ("", 0, 0.0))
        times = times + 1 if last == failure and now - when <= self.within else 1
        self.streaks[id(child)] = (failure, times, now)
        return times

    def _retire(self, child: Any, error: BaseException) -> None:
        name = getattr(child, "label", None) or str(child)
        reason = f"failed {self.retire_after} times in a row with {error!r}; not restarted"
        log.critical("%s stops %s for good: it %s", self, name, reason)
        self.retired[name] = reason
        self.streaks.pop(id(child), None)
        if child in self.children:
            self.children.remove(child)
        child.actor_ref.stop(block=False)

    def _targets(self, child: Any) -> list[Any]:
        if child not in self.children or self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return list(self.children)
        return self.children[self.children.index(child) :]

    def _escalate(self, reason: str, error: BaseException) -> None:
        log.error("%s gives up: %s", self, reason)
        if self.supervisor is not None:
            tell(self.supervisor.actor_ref, ChildFailed(self, error))
        elif self.give_up is not None:
            self.give_up(reason)

    def _order_restart(self) -> None:
        """Restarted by its own supervisor: a fresh intensity window, every child restarted."""
        self.recent.clear()
        for child in self.children:
            child._order_restart()
