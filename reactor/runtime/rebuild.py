"""Rebuilding a durable projection (`Runtime.rebuild`): replay the journal from position 0
into a fresh instance while the running one keeps serving queries, then swap.

The fresh instance's progress is saved as a shadow checkpoint ("<checkpoint>~rebuild",
state and position together, after each batch), so a rebuild that is stopped (`stop`
set, KeyboardInterrupt, a crash) leaves it, and the next one goes on from there. The
shadow never passes the running consumer's position; once it has caught up, the consumer
swaps it in between two events (`reactor.actors.replace`) and the shadow is deleted.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs

from reactor.actors.consumer import state_of
from reactor.actors.messages import Replace, Reply
from reactor.actors.pooled import tell
from reactor.actors.replace import Busy
from reactor.errors import ReactorError
from reactor.events import Envelope
from reactor.runtime.consumers import Running
from reactor.specs import ConsumerType
from reactor.store.base import Checkpoint, Progress
from reactor.store.event_store import EventStore

SHADOW = "~rebuild"  # the shadow checkpoint's name: the projection's, then this
BATCH = 1000  # events applied between two saves of the shadow
SWAP_TRIES = 100  # a swap waits behind a pending retry this many times (50 ms each)


@attrs.frozen(kw_only=True)
class Rebuilt:
    """What a rebuild did: the projection, the position its state stands at, the events
    applied by this call, whether the new state serves now (`swapped`; False: stopped,
    the shadow kept for the next rebuild) and how long it took."""

    projection: str
    position: int
    events: int
    swapped: bool
    seconds: float


class Rebuild:
    """One rebuild of the projection `spec`, whose running consumer is `running`."""

    def __init__(
        self,
        store: EventStore,
        spec: ConsumerType,
        running: Running,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store, self.spec, self.running = store, spec, running
        self.progress, self.stop = progress, stop
        self.shadow = f"{spec.name}{SHADOW}"
        self.instance, self.position = self._resume()
        self.applied = 0

    def _resume(self) -> tuple[Any, int]:
        """A fresh instance at 0, or the shadow's state and position a stopped one left."""
        instance = self.spec.instance()
        saved = self.store.load_checkpoint(self.shadow)
        if saved is None or saved.state is None:  # (a shadow is saved with its state)
            return instance, 0
        vars(instance).update(self.store.decode_state(saved.state, self.spec.state_hints))
        return instance, saved.position

    def run(self, timeout: float) -> Rebuilt:
        """Replay in batches up to the running consumer's position, then swap; returns
        early (not swapped) when `stop` is set. A handler that raises stops the rebuild
        with a `ReactorError` naming the event (the shadow stays where the last batch left
        it)."""
        began = time.monotonic()
        while self.stop is None or not self.stop.is_set():
            target = self.running.progress.position
            if self.position >= target and self._swap(timeout):
                break
            self._batch(target)
            self._save()
            if self.progress is not None:
                self.progress(self.position, max(target, self.store.last_position()))
        else:
            return self._result(began, swapped=False)
        self.store.delete_checkpoint(self.shadow)
        return self._result(began, swapped=True)

    def _batch(self, target: int) -> None:
        """Apply the projection's events after `position` up to `target`, at most BATCH;
        at `target` once none of its events is left up to there."""
        events = list(self.store.read_all(self.position, self.spec.types, BATCH))
        for env in events:
            if env.position > target:
                break
            self._apply(env)
        else:
            if len(events) == BATCH:  # more may follow
                return
        self.position = max(self.position, target)

    def _apply(self, env: Envelope) -> None:
        handlers = self.spec.handlers
        handler = handlers.get(env.type) or handlers.get("*")
        try:
            if handler is not None:
                handler(self.instance, env.event, env)
        except Exception as e:
            raise ReactorError(
                f"rebuilding projection {self.spec.label} stopped at position {env.position} "
                f"({env.type}, stream {env.stream_id!r}): {e!r}; the rebuilt state is kept at "
                f"position {self.position}: fix the handler and rebuild again to go on"
            ) from e
        self.position = env.position
        self.applied += 1

    def _save(self) -> None:
        owner = f"projection {self.spec.label} (rebuilding)"
        state = self.store.encode_state(state_of(self.instance), self.spec.state_hints, owner)
        self.store.save_checkpoint(
            Checkpoint(name=self.shadow, position=self.position, state=state)
        )

    def _swap(self, timeout: float) -> bool:
        """Hand the instance to the running consumer, which catches it up to its own
        position first; False if the consumer moved on past what it can catch up to."""
        for _ in range(SWAP_TRIES):
            reply = Reply()
            tell(self.running.ref, Replace(self._caught_up, reply))
            try:
                self.position = reply.get(timeout)
                return True
            except _Behind:
                return False
            except Busy:
                time.sleep(0.05)
        raise ReactorError(
            f"projection {self.spec.label} kept retrying an event: the rebuilt state was not "
            "swapped in (it is kept: rebuild again to swap)"
        )

    def _caught_up(self, position: int) -> Any:
        """In the consumer's turn: apply what lies between the shadow and `position`."""
        if position - self.position > BATCH:
            raise _Behind()
        for env in self.store.read_all(self.position, self.spec.types):
            if env.position > position:
                break
            self._apply(env)
        self.position = position
        return self.instance

    def _result(self, began: float, *, swapped: bool) -> Rebuilt:
        return Rebuilt(
            projection=self.spec.label,
            position=self.position,
            events=self.applied,
            swapped=swapped,
            seconds=time.monotonic() - began,
        )


class _Behind(ReactorError):
    """The running consumer is more than a batch ahead: catch up outside its turn first."""
