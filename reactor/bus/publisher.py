"""`Publisher`: sends a batch of messages to JetStream in order and awaits their acks on
one reply subscription of its own: which of the first messages were stored in a row.

nats-py's `publish_async` does the same with a future, a semaphore slot, a random token
and a parsed `PubAck` per message; this does with a counter, 1.7x faster (perf/bus.py).
Use it on the connection's loop only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from nats.aio.msg import Msg
from nats.js.errors import APIError
from nats.nuid import NUID

from reactor.bus.connection import BusUnavailable, Connection

Message = tuple[str, bytes, dict[str, str]]  # subject, payload, headers


class _Batch:
    """The acks of one batch as they come: `replies[i]` is message i's (None: none yet)."""

    def __init__(self, number: int, size: int) -> None:
        self.number = number
        self.replies: list[tuple[bytes, dict[str, str] | None] | None] = [None] * size
        self.arrived = 0
        self.expected = size
        self.complete = asyncio.Event()

    def arrive(self, index: int, data: bytes, found: dict[str, str] | None) -> None:
        if self.replies[index] is None:
            self.replies[index] = (data, found)
            self.arrived += 1
        if self.arrived >= self.expected:
            self.complete.set()

    def expect(self, count: int) -> None:
        """Only the first `count` messages were sent: wait for their acks only."""
        self.expected = count
        if self.arrived >= count:
            self.complete.set()


class Publisher:
    """Publishes batches for one outbox (one batch at a time)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._prefix = ""
        self._batch: _Batch | None = None
        self._numbers = 0

    async def listen(self) -> None:
        """Subscribe to the replies (once: the client subscribes again after a reconnect)."""
        if not self._prefix:
            prefix = f"_INBOX.{NUID().next().decode()}."
            await self.conn.client.subscribe(prefix + "*.*", cb=self._replied)
            self._prefix = prefix

    async def send(
        self, messages: Sequence[Message], timeout: float
    ) -> tuple[int, BaseException | None]:
        """Publish in order, then wait for the acks (or a lost connection, or `timeout`):
        how many of the first messages were stored in a row, and the error that stopped
        the rest."""
        self._numbers += 1
        batch = self._batch = _Batch(self._numbers, len(messages))
        error: BaseException | None = None
        client, sent = self.conn.client, 0
        try:
            for i, (subject, data, found) in enumerate(messages):
                reply = f"{self._prefix}{batch.number}.{i}"
                await client.publish(subject, data, reply=reply, headers=found)
                sent += 1
        except Exception as e:  # this message could not be sent (nor those after it)
            error = e
        batch.expect(sent)
        lost = asyncio.ensure_future(self.conn.down())
        complete = asyncio.ensure_future(batch.complete.wait())
        try:
            await asyncio.wait(
                [complete, lost], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            complete.cancel()
            self._batch = None
        return _outcome(batch, sent, error, timeout)

    async def _replied(self, msg: Msg) -> None:
        number, _, index = msg.subject[len(self._prefix) :].partition(".")
        batch = self._batch
        mine = batch is not None and number == str(batch.number) and index.isdigit()
        if mine and batch is not None and int(index) < batch.expected:
            batch.arrive(int(index), msg.data, msg.headers)


def _outcome(
    batch: _Batch, sent: int, error: BaseException | None, timeout: float
) -> tuple[int, BaseException | None]:
    for i in range(sent):
        why = _refusal(batch.replies[i], timeout)
        if why is not None:
            return i, why
    return sent, error


def _refusal(
    reply: tuple[bytes, dict[str, str] | None] | None, timeout: float
) -> BaseException | None:
    """Why a message was not stored (None: it was, or is a duplicate of a stored one)."""
    if reply is None:
        return BusUnavailable(f"no ack within {timeout:g}s, or the connection was lost")
    data, found = reply
    if found and found.get("Status") == "503":
        return BusUnavailable("no stream takes this subject (JetStream answered 503)")
    if b'"error"' not in data:
        return None
    try:
        refused: APIError = APIError.from_error(json.loads(data)["error"])
        return refused
    except (ValueError, KeyError, TypeError):
        return BusUnavailable(f"JetStream answered {data[:200]!r}")
