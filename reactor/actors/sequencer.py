"""Per-stream retries and sequenced dead letters for one consumer (as Axon's sequenced
dead-letter queue does).

A handler that raises is retried with backoff while other streams go on; the later events
of its stream queue behind it. One that keeps failing becomes a dead letter, and the later
events of its stream are parked behind it until an operator redrives or discards it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable

import attrs

from reactor.actors.instruments import NO_METRICS, Instruments
from reactor.errors import ReactorError
from reactor.events import Envelope, new_id
from reactor.faults import RetryPolicy, retried
from reactor.store.base import DeadLetterRecord

log = logging.getLogger(__name__)


@attrs.define
class _Retrying:
    """A stream whose head event waits for another attempt, and what queued behind it."""

    envelope: Envelope
    attempts: int
    queued: collections.deque[Envelope] = attrs.Factory(collections.deque)


@attrs.frozen(kw_only=True)
class Effects:
    """What the sequencer asks of its consumer: run the handler on an event, schedule a
    retry of a stream's head, read the event at a position, and save, order (clear) or
    drop a dead letter durably."""

    run: Callable[[Envelope], None]
    schedule_retry: Callable[[str, float], None]
    read: Callable[[int], Envelope | None]
    save_letter: Callable[[DeadLetterRecord], None]
    clear_order: Callable[[DeadLetterRecord], None]
    drop_letter: Callable[[DeadLetterRecord], None]


class Sequencer:
    """The retrying and parked streams of one handler (`label`), by stream id; each retry
    and new dead letter counted in `metrics`. Not thread-safe: its consumer actor owns it."""

    def __init__(
        self,
        label: str,
        policy: RetryPolicy,
        effects: Effects,
        metrics: Instruments = NO_METRICS,
    ) -> None:
        self.label, self.policy, self.effects, self.metrics = label, policy, effects, metrics
        self.retrying: dict[str, _Retrying] = {}
        self.letters: dict[str, DeadLetterRecord] = {}  # parked streams, by stream id

    def reset(self, letters: Iterable[DeadLetterRecord]) -> None:
        """Forget what is in flight; the stored letters of this handler park their streams."""
        self.retrying = {}
        self.letters = {d.stream_id: d for d in letters}

    @property
    def busy(self) -> bool:
        """Whether an event waits for another attempt (the checkpoint must wait too)."""
        return bool(self.retrying)

    def retrying_up_to(self, position: int) -> bool:
        return any(r.envelope.position <= position for r in self.retrying.values())

    def lettered(self, position: int, stream_id: str) -> bool:
        """Whether the event at `position` is its stream's dead letter already."""
        letter = self.letters.get(stream_id)
        return letter is not None and letter.position == position

    def take(self, env: Envelope) -> None:
        """Handle `env`, or park it behind its stream's dead letter, or queue it behind its
        stream's retrying event (so each stream keeps its order for this handler)."""
        if self.lettered(env.position, env.stream_id):
            return  # dead-lettered before a restart: not retried on replay
        stream = env.stream_id
        letter = self.letters.get(stream)
        if letter is not None and env.position > letter.position:
            if env.position not in letter.parked:
                self._save(attrs.evolve(letter, parked=(*letter.parked, env.position)))
            return
        retrying = self.retrying.get(stream)
        if retrying is not None:
            retrying.queued.append(env)
        elif self._attempt(env, 1) == "retry":
            self.retrying[stream] = _Retrying(env, 1)
            self.metrics.record_retry(self.label)
            self.effects.schedule_retry(stream, self.policy.delay(1))

    def retry(self, stream: str) -> bool:
        """Try a stream's head event again; True once the stream is no longer retrying."""
        retrying = self.retrying.get(stream)
        if retrying is None:
            return False
        retrying.attempts += 1
        if self._attempt(retrying.envelope, retrying.attempts) == "retry":
            self.metrics.record_retry(self.label)
            self.effects.schedule_retry(stream, self.policy.delay(retrying.attempts))
            return False
        del self.retrying[stream]
        for env in retrying.queued:  # what waited behind it, in order
            self.take(env)
        return True

    def dead_letter(
        self, position: int, stream_id: str, error: BaseException, attempts: int
    ) -> None:
        """Give up on the event at `position` (one letter per position and handler)."""
        if self.lettered(position, stream_id):
            return
        self._new_letter(position, stream_id, error, attempts, ())

    def carry_out(self, letter: DeadLetterRecord, order: str) -> int:
        """Redrive (deliver it, then what waits) or discard (deliver only what waits);
        returns how many were delivered. If a delivery fails, the failing event is the dead
        letter from then on, with what was still to come parked behind it, and the error is
        raised."""
        positions = [letter.position, *letter.parked] if order == "redrive" else list(letter.parked)
        for n, position in enumerate(positions):
            env = self.effects.read(position)
            if env is None:
                continue
            try:
                self.effects.run(env)
            except Exception as e:
                rest = tuple(positions[n + 1 :])
                if position == letter.position:  # the same letter, one attempt more
                    self._save(
                        attrs.evolve(
                            letter, attempts=letter.attempts + 1, parked=rest, error=_describe(e)
                        )
                    )
                    if letter.request:
                        self.effects.clear_order(letter)
                else:
                    self.effects.drop_letter(letter)
                    self._new_letter(position, letter.stream_id, e, 1, rest)
                raise
        del self.letters[letter.stream_id]
        self.effects.drop_letter(letter)
        return len(positions)

    def letter(self, letter_id: str) -> DeadLetterRecord:
        """This handler's dead letter with that id; `ReactorError` if it has none."""
        for letter in self.letters.values():
            if letter.id == letter_id:
                return letter
        raise ReactorError(f"{self.label} has no dead letter {letter_id!r}")

    def _attempt(self, env: Envelope, attempt: int) -> str:
        """Run the handler once: "handled", "retry" (try again later) or "dead"."""
        try:
            self.effects.run(env)
        except Exception as e:
            if attempt >= self.policy.max_attempts or not retried(e):
                log.error(
                    "%s: gave up on %s at position %d (stream %r) after %d attempt(s): %r",
                    self.label,
                    env.type,
                    env.position,
                    env.stream_id,
                    attempt,
                    e,
                )
                self._new_letter(env.position, env.stream_id, e, attempt, ())
                return "dead"
            log.warning(
                "%s: %s at position %d failed (attempt %d), will retry: %r",
                self.label,
                env.type,
                env.position,
                attempt,
                e,
            )
            return "retry"
        return "handled"

    def _new_letter(
        self,
        position: int,
        stream_id: str,
        error: BaseException,
        attempts: int,
        parked: tuple[int, ...],
    ) -> None:
        self.metrics.record_dead_letter(self.label)
        self._save(
            DeadLetterRecord(
                id=new_id(),
                handler=self.label,
                position=position,
                stream_id=stream_id,
                error=_describe(error),
                attempts=attempts,
                parked=parked,
            )
        )

    def _save(self, letter: DeadLetterRecord) -> None:
        self.letters[letter.stream_id] = letter
        self.effects.save_letter(letter)


def _describe(error: BaseException) -> str:
    """An error as dead letters show it: "<ExceptionType>: <message>"."""
    return f"{type(error).__name__}: {error}"
