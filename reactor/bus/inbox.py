"""The inbox: imports the integration events this service takes from others.

It looks for exporters every `DISCOVER_EVERY` seconds (the streams of other services on
its bus that hold an imported type) and pulls from a durable consumer on each, in stream
order. A pulled
batch is appended to the local journal through the runtime's journal (one commit; so
projections, sagas and subscribers get each event as any local one), idempotently by
event id, then acknowledged: a redelivery stores nothing. What cannot be decoded (headers
missing, an unknown version, corrupt data) is kept as an `Undeliverable` event, dead-
lettered under `bus:inbox`, and acknowledged, so it does not block what follows. A batch
that cannot be committed is given back (nak'd in order) and pulled again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from reactor.actors.messages import Appended
from reactor.bus.config import SERVICE, BusConfig, local_stream, type_tokens
from reactor.bus.connection import Connection, check_cancelled
from reactor.bus.wire import KEPT, TYPE, Incoming, Undeliverable, WireError
from reactor.errors import DecodeError, DuplicateEventId, ReactorError, UnknownEventType
from reactor.events import NewEvent
from reactor.store.base import DeadLetterRecord
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
FETCH = 500  # messages per pull
FETCH_WAIT = 1.0  # seconds a pull waits for a first message
DISCOVER_EVERY = 1.0  # seconds between looks for exporters
ACK_WAIT = 30.0  # seconds before JetStream sends an unacknowledged message again
BACKOFF = 0.5  # seconds before a batch that could not be committed is pulled again
Results = list[Appended | ReactorError]
AppendAll = Callable[[Sequence[tuple[NewEvent, str]]], Results]


@attrs.frozen
class Batch:
    """Messages pulled from one stream, and the future their puller awaits: how many of
    the first ones were taken in (the rest are given back)."""

    messages: list[Msg]
    taken: asyncio.Future[int]


class Inbox:
    """Pulls on the connection's loop, appends on a thread of its own."""

    def __init__(
        self, config: BusConfig, store: EventStore, conn: Connection, append_all: AppendAll
    ) -> None:
        self.config, self.store, self.conn, self.append_all = config, store, conn, append_all
        self.sources: set[str] = set()  # streams pulled from
        self.imported = self.again = self.skipped = self.dead_lettered = 0
        self._wanted = {type_tokens(t): t for t in config.imports}  # by subject tail
        self._batches: queue.Queue[Batch] = queue.Queue()
        self._stopping = threading.Event()
        self._handing = threading.Lock()  # no batch is handed over once stopping
        self._thread = threading.Thread(
            target=self._run, name=f"reactor-bus-inbox-{config.service}", daemon=True
        )
        conn.on_up.append(self.discover)

    def start(self) -> None:
        self._thread.start()
        self.conn.spawn(self._discover_forever())

    def stop(self, timeout: float) -> None:
        """Finish the batch in hand and stop the thread; batches not taken are given back
        (the pullers stop with the loop)."""
        with self._handing:
            self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        while not self._batches.empty():
            self.conn.resolve(self._batches.get().taken, 0)

    # -- on the loop: finding exporters, pulling ---------------------------------------------

    async def _discover_forever(self) -> None:
        while True:
            await asyncio.sleep(DISCOVER_EVERY)
            if self.conn.up.is_set():
                try:
                    await self.discover()
                except Exception as e:
                    check_cancelled()
                    log.warning("bus %s: looking for exporters failed: %r", self.config.service, e)

    async def discover(self) -> None:
        """Pull from each exporter's stream on this bus that holds an imported type."""
        js, config = self.conn.js, self.config
        for stream in await self._streams():
            if stream in self.sources or stream == config.stream:
                continue
            try:
                info = await js.stream_info(stream, subjects_filter=f"{config.root}.>")
                service = _exporter(config, stream, info.config.subjects or [])
                held = set(info.state.subjects or ())
                wanted = {config.subject(t, service) for t in config.imports} if service else set()
                if service and not held.isdisjoint(wanted):
                    await self._pull_from(js, stream, service)
            except NotFoundError:  # deleted since it was listed
                continue

    async def _streams(self) -> list[str]:
        """The names of the streams on this bus's subjects, every page."""
        names: list[str] = []
        while True:
            request = {"subject": f"{self.config.root}.>", "offset": len(names)}
            reply = await self.conn.request("$JS.API.STREAM.NAMES", json.dumps(request))
            page = json.loads(reply)
            names += page.get("streams") or []
            if not page.get("streams") or len(names) >= page.get("total", 0):
                return names

    async def _pull_from(self, js: JetStreamContext, stream: str, service: str) -> None:
        durable = self.config.durable
        config = ConsumerConfig(
            durable_name=durable,
            description=f"reactor service {self.config.service} imports "
            + ", ".join(sorted(self.config.imports)),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_deliver=-1,
            max_ack_pending=FETCH * 4,
            filter_subject=self.config.subjects_of(service),
        )
        try:
            await js.consumer_info(stream, durable)
        except NotFoundError:
            await js.add_consumer(stream, config)
        subscription = await js.pull_subscribe_bind(durable=durable, stream=stream)
        self.sources.add(stream)
        log.info("bus %s: importing from %s", self.config.service, stream)
        self.conn.spawn(self._pull(stream, subscription))

    async def _pull(self, stream: str, subscription: JetStreamContext.PullSubscription) -> None:
        """Pull a batch, hand it to the thread, ack what it took in, nak the rest; again.
        (Pulling the next batch while the thread commits one gained nothing measurable:
        both hold the GIL most of the time.)"""
        try:
            while True:
                try:
                    messages = await subscription.fetch(FETCH, timeout=FETCH_WAIT)
                except NatsTimeout:
                    continue
                except NotFoundError:
                    log.warning("bus %s: %s or its consumer is gone", self.config.service, stream)
                    return
                except Exception as e:  # disconnected: the subscription outlives it
                    check_cancelled()
                    log.debug("bus %s: pulling from %s: %r", self.config.service, stream, e)
                    await asyncio.sleep(BACKOFF)
                    continue
                batch = Batch(messages, asyncio.get_running_loop().create_future())
                with self._handing:
                    if self._stopping.is_set():
                        return  # not acked: JetStream delivers them again
                    self._batches.put(batch)
                taken = await batch.taken
                for message in messages[:taken]:
                    await message.ack()
                for message in messages[taken:]:
                    await message.nak()
        finally:
            self.sources.discard(stream)
            await _quietly(subscription.unsubscribe())

    # -- on the thread: taking batches in -----------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._batches.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                taken = self._take(batch.messages)
            except Exception:  # given back whole, and pulled again
                log.exception("bus %s: a batch could not be taken in", self.config.service)
                taken = 0
            if taken < len(batch.messages):
                self._stopping.wait(BACKOFF)
            self.conn.resolve(batch.taken, taken)

    def _take(self, messages: list[Msg]) -> int:
        """Append a batch in one commit; how many of its first messages are in (imported,
        skipped or dead-lettered), the rest to be pulled again."""
        plan: list[tuple[NewEvent, str] | None] = []
        poison: dict[int, str] = {}
        for i, message in enumerate(messages):
            try:
                plan.append(self._import(message))
            except (WireError, DecodeError, UnknownEventType) as e:
                plan.append(None)
                poison[i] = f"{type(e).__name__}: {e}"
        self.skipped += sum(1 for p in plan if p is None) - len(poison)
        wanted = [(i, p) for i, p in enumerate(plan) if p is not None]
        results = self.append_all([p for _, p in wanted])
        taken = len(messages)
        for (i, _), result in zip(wanted, results, strict=True):
            if isinstance(result, DuplicateEventId):
                poison[i] = f"{type(result).__name__}: {result}"
            elif isinstance(result, ReactorError):
                log.warning("bus %s: an import failed: %s", self.config.service, result)
                taken = min(taken, i)
            elif result.outcome.fresh:
                self.imported += 1
            else:
                self.again += 1
        for i in sorted(poison):
            if i < taken and not self._dead_letter(messages[i], poison[i]):
                taken = min(taken, i)
        return taken

    def _import(self, message: Msg) -> tuple[NewEvent, str] | None:
        """What to append for one message (None: not of a type this service imports)."""
        wanted = self._wanted.get(message.subject.split(".", 2)[-1])
        if wanted is None:
            return None
        incoming = Incoming.of(message.headers, message.data)
        if incoming.type != wanted:
            raise WireError(
                f"header {TYPE} is {incoming.type!r}, but the subject is the one of {wanted!r}"
            )
        event, _ = self.store.decode(incoming.type, incoming.version, incoming.data)
        new = NewEvent(
            event,
            event_id=incoming.event_id,
            correlation_id=incoming.correlation_id,
            causation_id=incoming.causation_id,
            metadata=incoming.metadata(),
        )
        return new, local_stream(incoming.service, incoming.stream_id)

    def _dead_letter(self, message: Msg, error: str) -> bool:
        """Keep an undecodable message as an event and dead-letter it; whether it worked."""
        meta = message.metadata
        kept = Undeliverable(
            subject=message.subject,
            stream=meta.stream,
            sequence=meta.sequence.stream,
            headers=dict(message.headers or {}),
            data=message.data[: KEPT * 4].decode("utf-8", "backslashreplace")[:KEPT],
            error=error,
        )
        letter_id = f"bus:{meta.stream}:{meta.sequence.stream}"
        [result] = self.append_all([(NewEvent(kept, event_id=letter_id), "bus:undeliverable")])
        if isinstance(result, ReactorError):
            log.warning("bus %s: a dead letter failed: %s", self.config.service, result)
            return False
        self.store.save_dead_letter(
            DeadLetterRecord(
                id=letter_id,
                handler="bus:inbox",
                position=result.envelopes[0].position,
                stream_id="bus:undeliverable",
                error=f"{message.subject} (stream {meta.stream}, seq {meta.sequence.stream}): "
                + error,
                attempts=meta.num_delivered or 1,
            )
        )
        self.dead_lettered += result.outcome.fresh
        log.error("bus %s: dead-lettered %s: %s", self.config.service, letter_id, error)
        return True


def _exporter(config: BusConfig, stream: str, subjects: list[str]) -> str | None:
    """The service whose stream `stream` is (on subjects `<root>.<service>.>`), or None."""
    if len(subjects) != 1:
        return None
    root, _, service = subjects[0].removesuffix(".>").partition(".")
    if root != config.root or not SERVICE.fullmatch(service):
        return None
    return service if config.stream_of(service) == stream else None


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except Exception as e:
        log.debug("ignored while closing: %r", e)
