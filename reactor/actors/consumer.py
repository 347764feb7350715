"""The consumer actor: a projection or a subscriber function, fed by the router.

At start it subscribes, then catches up from the journal after its checkpoint, then
handles live deliveries; positions at or below the last one handled are skipped, so the
hand-over has no gap and no duplicate. Durable consumers save state and checkpoint
together through the journal.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pykka import ActorDeadError, ActorRef

from reactor.actors.dispatch import Dispatcher, PooledActor
from reactor.actors.messages import (
    Deliver,
    Query,
    SaveCheckpoint,
    Subscribe,
    Subscribed,
    Sync,
    Unsubscribe,
)
from reactor.actors.specs import ConsumerType
from reactor.errors import DecodeError, RuntimeStopped, UnknownEventType
from reactor.events import Envelope
from reactor.store.base import Checkpoint
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)


class ConsumerActor(PooledActor):
    """Runs `spec.handlers` on each event of its types, once, in position order.

    `start_at` is where a consumer with no checkpoint begins (0: the whole journal).
    `checkpoints`: save the position (and the state, if `spec.durable`) under `spec.name`.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        spec: ConsumerType,
        instance: Any,
        store: EventStore,
        router: ActorRef[Any],
        journal: ActorRef[Any],
        *,
        start_at: int = 0,
        checkpoints: bool = False,
    ) -> None:
        super().__init__(dispatcher)
        self.spec, self.instance, self.store = spec, instance, store
        self.router, self.journal = router, journal
        self.position = start_at  # every event up to here has been handled
        self.checkpoints = checkpoints or spec.durable
        self.unsaved = 0  # events handled since the last checkpoint
        self.live = False
        self.stash: list[Any] = []
        self.failures: list[tuple[int, str]] = []  # (position, error) of handlers that raised

    def __str__(self) -> str:
        return f"ConsumerActor({self.spec.name}, position={self.position})"

    def on_start(self) -> None:
        if self.checkpoints:
            cp = self.store.storage.load_checkpoint(self.spec.name)
            if cp is None:  # remember where this consumer began, before any event comes
                self.unsaved = 1
                self._save(force=True)
            else:
                self.position = cp.position
                if self.spec.durable and cp.state is not None:
                    vars(self.instance).update(
                        self.store.codec.decode_state(cp.state, self.spec.state_hints)
                    )
        self.router.tell(Subscribe(self.actor_ref, self.spec.types))

    def on_stop(self) -> None:
        for message in self.stash:  # stopped while catching up: answer what waits
            reply = getattr(message, "reply", None)
            if reply is not None:
                reply.fail(RuntimeStopped(f"{self} stopped before answering"))
        self._save(force=True)
        with contextlib.suppress(ActorDeadError):  # the router stopped first
            self.router.tell(Unsubscribe(self.actor_ref))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Subscribed):
            self._catch_up()
            self.live = True
            stashed, self.stash = self.stash, []
            for m in stashed:
                self._handle(m)
        elif not self.live:
            self.stash.append(message)
        else:
            self._handle(message)

    def _catch_up(self) -> None:
        """Handle what the journal holds after `position`, stepping over undecodable rows."""
        while True:
            try:
                for env in self.store.read_all(self.position, self.spec.types):
                    self._apply(env)
                return
            except (DecodeError, UnknownEventType) as e:
                log.error("%s: %s", self, e)
                self.failures.append((e.position, str(e)))
                self.position = e.position

    def _handle(self, message: Any) -> None:
        if isinstance(message, Deliver):
            for env in message.envelopes:
                if env.position > self.position:
                    self._apply(env)
            self._save()
        elif isinstance(message, Query):
            try:
                message.reply.set(
                    getattr(self.instance, message.method)(*message.args, **message.kwargs)
                )
            except Exception as e:
                message.reply.fail(e)
        elif isinstance(message, Sync):
            message.reply.set(self.position)
        else:
            log.error("%s: unexpected message %r", self, message)

    def _apply(self, env: Envelope) -> None:
        handlers = self.spec.handlers
        handler = handlers.get(env.type) or handlers.get("*")
        if handler is not None:
            try:
                handler(self.instance, env.event, env)
            except Exception as e:
                log.exception(
                    "%s: handler for %s at position %d failed", self, env.type, env.position
                )
                self.failures.append((env.position, f"{type(e).__name__}: {e}"))
        self.position = env.position
        self.unsaved += 1

    def _save(self, force: bool = False) -> None:
        if not self.checkpoints or not self.unsaved:
            return
        if not force and self.unsaved < self.spec.checkpoint_every:
            return
        state = None
        if self.spec.durable:
            state = self.store.codec.encode_state(_state(self.instance), self.spec.state_hints)
        self.journal.tell(SaveCheckpoint(Checkpoint(self.spec.name, self.position, state)))
        self.unsaved = 0


def _state(instance: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_reactor")}
