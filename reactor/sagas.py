"""Sagas (process managers): the instances of one saga class, run by a consumer actor
(which meets it as a `reactor.specs.SagaHost`).

The `SagaManager` routes each event to the instance named by the event's key field,
starting one on a `start=True` handler. A handler is atomic: the commands it sends, the
deadlines it sets and `done()` take effect only if it returns; if it raises, the instance
is put back as it was (and the consumer's retry policy applies). Sent commands carry ids
derived from the saga, the instance and the cause, so a redelivered event or a deadline
firing again cannot act twice. Deadlines are saved with the checkpoint, instances as
keyed rows beside it (only those changed since the last one); a finished instance's row is
deleted, and events for it afterwards find no instance (as in Axon and Commanded).
"""

from __future__ import annotations

import collections
import copy
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from reactor.codec import dumps, loads
from reactor.events import Cause, Envelope
from reactor.specs import Rows, StateCodec

log = logging.getLogger(__name__)
RECENTLY_FINISHED = 10_000  # finished keys remembered in memory (start events are ignored)
# (command, command id, correlation id, cause: the event acted on and the saga)
Dispatch = Callable[[Any, str, str | None, Cause | None], None]


@attrs.define
class Deadline:
    """An event to hand back to the instance `key` at wall-clock time `due`; `correlation`
    and `origin` (the event whose handler set it) go on to the commands it causes."""

    key: str
    due: float
    event: Any
    correlation: str | None = None
    origin: str | None = None


@attrs.frozen
class SagaHandler:
    """One `@on` method of a saga: the function, and whether its event starts an instance."""

    fn: Callable[[Any, Any, Any], None]
    start: bool


class SagaContext:
    """What a saga handler may do: `send`, `schedule`, `cancel`, `done`. Buffered until the
    handler returns."""

    def __init__(
        self, manager: SagaManager, key: str, cause: str, correlation_id: str | None, origin: str
    ):
        self._manager, self.key, self._cause, self._correlation = (
            manager,
            key,
            cause,
            correlation_id,
        )
        self._origin = origin  # the event this handler acts on (for a deadline: its setter's)
        self._commands: list[tuple[Any, str]] = []
        self._deadlines: dict[str, Deadline] = {}
        self._cancelled: list[str] = []
        self._done = False
        self._n = 0

    def _next_id(self, kind: str) -> str:
        self._n += 1
        return f"saga:{self._manager.name}:{self.key}:{self._cause}:{kind}{self._n}"

    def send(self, command: Any) -> str:
        """Send a command (without waiting for its result); returns its derived id."""
        command_id = self._next_id("c")
        self._commands.append((command, command_id))
        return command_id

    def schedule(self, delay: float | timedelta, event: Any) -> str:
        """Hand `event` (of a registered event class, carrying the key) back to this
        instance after `delay` unless cancelled; returns the deadline's id."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        timer_id = self._next_id("d")
        due = time.time() + seconds
        self._deadlines[timer_id] = Deadline(self.key, due, event, self._correlation, self._origin)
        return timer_id

    def cancel(self, timer_id: str) -> None:
        """Cancel a deadline of this instance (set now or earlier)."""
        self._cancelled.append(timer_id)

    def done(self) -> None:
        """End this instance: later events for its key are ignored."""
        self._done = True


class SagaManager:
    """The live instances of one saga class, their finished keys and their deadlines."""

    def __init__(
        self,
        saga: type,
        name: str,
        key: str,
        handlers: Mapping[type, SagaHandler],
        hints: Mapping[str, Any],
        dispatch: Dispatch,
    ) -> None:
        self.saga, self.name, self.key, self.handlers, self.hints = saga, name, key, handlers, hints
        self.dispatch = dispatch
        self.armed: list[tuple[str, float]] = []  # (deadline id, delay) for the owner to arm
        self.instances: dict[str, Any] = {}
        self.finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.deadlines: dict[str, Deadline] = {}
        self.dirty: set[str] = set()  # keys changed since the last dump

    def on_event(self, event: Any, env: Envelope) -> None:
        """Route a journal event to its instance (starting one if its handler starts)."""
        handler = self.handlers[type(event)]
        correlation = env.correlation_id or env.event_id  # a flow starts at an uncorrelated event
        key = str(getattr(event, self.key))
        self._run(key, handler, event, env.event_id, correlation, env.event_id)

    def fire(self, deadline_id: str) -> None:
        """A deadline fell due: hand its event to its instance (if both still exist)."""
        deadline = self.deadlines.get(deadline_id)
        if deadline is None:
            return
        handler = self.handlers.get(type(deadline.event))
        if handler is None:
            log.error("%s: no handler for deadline event %r", self.name, deadline.event)
            del self.deadlines[deadline_id]
            return
        origin = deadline.origin or deadline_id
        self._run(deadline.key, handler, deadline.event, deadline_id, deadline.correlation, origin)
        self.deadlines.pop(deadline_id, None)

    def _run(
        self,
        key: str,
        handler: SagaHandler,
        event: Any,
        cause: str,
        correlation: str | None,
        origin: str,
    ) -> None:
        if key in self.finished:
            return
        instance = self.instances.get(key)
        if instance is None:
            if not handler.start:
                return  # not started: only start handlers create instances
            instance = self.saga()
        before = copy.deepcopy(vars(instance))
        ctx = SagaContext(self, key, cause, correlation, origin)
        try:
            handler.fn(instance, event, ctx)
        except BaseException:
            vars(instance).clear()
            vars(instance).update(before)  # atomic: as if the handler never ran
            raise
        for timer_id in ctx._cancelled:
            self.deadlines.pop(timer_id, None)
            ctx._deadlines.pop(timer_id, None)
        for command, command_id in ctx._commands:
            self.dispatch(command, command_id, correlation, Cause(origin, f"saga:{self.name}"))
        self.dirty.add(key)
        if ctx._done:
            self.instances.pop(key, None)
            self.finished[key] = None  # a guard against stray start events, bounded
            if len(self.finished) > RECENTLY_FINISHED:
                self.finished.popitem(last=False)
            self.deadlines = {i: d for i, d in self.deadlines.items() if d.key != key}
            return
        self.instances[key] = instance
        for timer_id, deadline in ctx._deadlines.items():
            self.deadlines[timer_id] = deadline
            self.armed.append((timer_id, max(0.0, deadline.due - time.time())))

    def take_armed(self) -> list[tuple[str, float]]:
        """The deadlines set since the last call, as (id, delay): the actor schedules them."""
        armed, self.armed = self.armed, []
        return armed

    def rearm(self) -> None:
        """After a (re)start: every saved deadline is to be armed; those already due fire
        at once."""
        for timer_id, deadline in self.deadlines.items():
            self.armed.append((timer_id, max(0.0, deadline.due - time.time())))

    def dump_state(self, codec: StateCodec) -> tuple[bytes, Rows]:
        """The deadlines, and a row per instance changed since the last dump (None: gone)."""
        deadlines = {}
        for timer_id, d in self.deadlines.items():
            type_name, version, data = codec.encode(d.event)
            deadlines[timer_id] = [
                d.key,
                d.due,
                type_name,
                version,
                data.decode(),
                d.correlation,
                d.origin,
            ]
        rows = tuple(
            (key, codec.encode_state(vars(self.instances[key]), self.hints))
            if key in self.instances
            else (key, None)
            for key in sorted(self.dirty)
        )
        self.dirty.clear()
        return dumps({"deadlines": deadlines}), rows

    def load_state(self, codec: StateCodec, data: bytes, rows: Mapping[str, bytes]) -> None:
        self.instances = {}
        for key, values in rows.items():
            instance = self.saga()
            vars(instance).update(codec.decode_state(values, self.hints))
            self.instances[key] = instance
        self.deadlines = {
            timer_id: _deadline(codec, saved)
            for timer_id, saved in loads(data)["deadlines"].items()
        }
        self.dirty.clear()


def _deadline(codec: StateCodec, saved: list[Any]) -> Deadline:
    """A saved deadline: `[key, due, type, version, data]`, then (since lineage) its
    correlation and origin."""
    key, due, type_name, version, text, *lineage = saved
    event = codec.decode(type_name, version, text.encode())[0]
    return Deadline(key, due, event, *lineage)
