"""Swapping a rebuilt instance into a running projection's consumer (`Replace`), between
two of its events: queries see the old state or the new one, never a mix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reactor.actors.messages import DropDeadLetter, Replace
from reactor.actors.pooled import tell
from reactor.errors import ReactorError

if TYPE_CHECKING:
    from reactor.actors.consumer import ConsumerActor


class Busy(ReactorError):
    """The consumer waits to retry an event: its state is not whole, swap again later."""


def replace(consumer: ConsumerActor, message: Replace) -> None:
    """In the consumer's turn: `message.make(position)` brings the rebuilt instance to the
    consumer's position, then it serves and is saved at once. Refused while an event waits
    for a retry. The rebuilt instance applied every event the old one parked (a rebuild
    stops at a handler that fails), so the consumer's dead letters go."""
    try:
        if consumer.sequencer.busy:
            raise Busy(f"{consumer} waits to retry an event: swap again later")
        consumer.instance = message.make(consumer.position)
    except Exception as e:
        message.reply.fail(e)
        return
    for letter in consumer.sequencer.letters.values():
        tell(consumer.journal, DropDeadLetter(letter.id))
    consumer.sequencer.reset(())
    consumer.unsaved += 1
    consumer._save(force=True)
    message.reply.set(consumer.position)
