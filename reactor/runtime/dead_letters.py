"""Dead letters as operators see them (`Runtime.dead_letters()`), and their orders: redrive
and discard, carried out by the handler that gave up on the event."""

from __future__ import annotations

from reactor.actors.messages import DeadLetterOrder, Reply
from reactor.errors import ReactorError
from reactor.faults import DeadLetter
from reactor.runtime.consumers import Consumers
from reactor.store.base import DeadLetterRecord
from reactor.store.event_store import EventStore


def listed(store: EventStore, handler: str | None) -> list[DeadLetter]:
    """The dead letters (of one handler), oldest first, each with its event, or the reason
    its event cannot be read (a corrupt row, an unknown type)."""
    return [_shown(store, d) for d in store.dead_letters(handler)]


def _shown(store: EventStore, d: DeadLetterRecord) -> DeadLetter:
    stored = store.stored(d.position)
    envelope, unreadable = None, ""
    if stored is None:
        unreadable = f"no event is stored at position {d.position}"
    else:
        try:
            envelope = store.envelope(stored)
        except ReactorError as e:
            unreadable = str(e)
    return DeadLetter(
        id=d.id,
        handler=d.handler,
        position=d.position,
        stream_id=d.stream_id,
        type=stored.type if stored is not None else "",
        version=stored.version if stored is not None else 0,
        envelope=envelope,
        error=d.error,
        attempts=d.attempts,
        waiting=len(d.parked),
        unreadable=unreadable,
    )


def handler_of(store: EventStore, letter_id: str) -> str:
    """The handler of dead letter `letter_id`; `ReactorError` if there is none."""
    letter = store.dead_letter(letter_id)
    if letter is None:
        raise ReactorError(f"no dead letter {letter_id!r} in {store.url}")
    return letter.handler


def order(store: EventStore, consumers: Consumers, letter_id: str, what: str) -> Reply:
    """Tell the handler of dead letter `letter_id` to carry out `what` ("redrive" or
    "discard"); the reply gives how many events were delivered."""
    handler = handler_of(store, letter_id)
    running = consumers.by_label(handler)
    if running is None:
        raise ReactorError(
            f"dead letter {letter_id!r} belongs to {handler!r}, which is not running "
            "here: register it (or subscribe it by that name) first"
        )
    reply = Reply()
    running.ref.tell(DeadLetterOrder(letter_id, what, reply))
    return reply
