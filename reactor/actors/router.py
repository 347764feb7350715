"""The router actor: delivers committed envelopes to every subscriber of their type.

Each subscriber gets one `Deliver` per published batch that holds any of its types, so
it sees its events in global position order, once. A subscriber with more than `backlog`
pushed events still in its mailbox is detached (it reads the journal itself until it
catches up), so no mailbox grows without bound. Barriers hold a message for a subscriber
until the router has routed a given position (read-your-writes queries).
"""

from __future__ import annotations

import itertools
from typing import Any

from pykka import ActorDeadError, ActorRef
from sortedcontainers import SortedList

from reactor.actors.dispatch import Dispatcher
from reactor.actors.messages import (
    Barrier,
    Committed,
    Deliver,
    Detached,
    Progress,
    Publish,
    Subscribe,
    Subscribed,
    Sync,
    Unsubscribe,
)
from reactor.actors.pooled import PooledActor
from reactor.errors import RuntimeStopped


class RouterActor(PooledActor):
    """Subscriptions by type name (or all events), and barriers ordered by position."""

    runs_here = True  # a sender waiting in `Runtime.send` routes its own events

    def __init__(self, dispatcher: Dispatcher, published: int, backlog: int = 10_000) -> None:
        super().__init__(dispatcher)
        self.published = published  # every event up to here has been routed
        self.backlog = backlog
        self._by_type: dict[str, list[ActorRef[Any]]] = {}
        self._to_all: list[ActorRef[Any]] = []
        self._progress: dict[ActorRef[Any], Progress] = {}
        self._sent: dict[ActorRef[Any], int] = {}  # events pushed to each subscriber
        self._barriers: SortedList = SortedList(key=lambda b: (b[0], b[1]))
        self._order = itertools.count()

    def __str__(self) -> str:
        return f"RouterActor(published={self.published})"

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Publish):
            self._publish(message.envelopes)
        elif isinstance(message, Barrier):
            if message.position <= self.published:
                _tell(message.target, message.message)
            else:
                self._barriers.add((message.position, next(self._order), message))
        elif isinstance(message, Subscribe):
            ref = message.subscriber
            self._unsubscribe(ref)
            if message.types is None:
                self._to_all.append(ref)
            else:
                for name in message.types:
                    self._by_type.setdefault(name, []).append(ref)
            self._progress[ref] = message.progress
            self._sent[ref] = message.progress.received
            _tell(ref, Subscribed())
        elif isinstance(message, Unsubscribe):
            self._unsubscribe(message.subscriber)
        elif isinstance(message, Sync):
            message.reply.set(self.published)
        else:
            raise TypeError(f"{self} cannot handle {message!r}")

    def _publish(self, envelopes: tuple[Committed, ...]) -> None:
        batches: dict[ActorRef[Any], list[Committed]] = {}
        by_type, to_all = self._by_type, self._to_all
        for env in envelopes:
            for ref in by_type.get(env.type, ()):
                batches.setdefault(ref, []).append(env)
        for ref in to_all:
            batches.setdefault(ref, []).extend(envelopes)
        sent, progress = self._sent, self._progress
        for ref, batch in batches.items():
            if sent[ref] - progress[ref].received > self.backlog:
                self._unsubscribe(ref)
                _tell(ref, Detached())
                continue
            sent[ref] += len(batch)
            _tell(ref, Deliver(tuple(batch)))
        self.published = envelopes[-1].position
        while self._barriers and self._barriers[0][0] <= self.published:
            barrier = self._barriers.pop(0)[2]
            _tell(barrier.target, barrier.message)

    def _unsubscribe(self, ref: ActorRef[Any]) -> None:
        self._progress.pop(ref, None)
        self._sent.pop(ref, None)
        if ref in self._to_all:
            self._to_all.remove(ref)
        for refs in self._by_type.values():
            if ref in refs:
                refs.remove(ref)


def _tell(ref: ActorRef[Any], message: Any) -> None:
    """Tell `ref`; if it has stopped, fail the message's reply (if any) instead of raising."""
    try:
        ref.tell(message)
    except ActorDeadError:
        reply = getattr(message, "reply", None)
        if reply is not None:
            reply.fail(RuntimeStopped(f"{ref} has stopped"))
