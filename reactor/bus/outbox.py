"""The outbox: exports this service's integration events to its JetStream stream, read from
the local journal once durable, in position order, and saves how far JetStream confirmed
them (the checkpoint `bus:outbox:<service>`).

After a crash it publishes again from that checkpoint: JetStream drops what it stored
already (by `Nats-Msg-Id`, within the stream's duplicate window) and an importer stores an
event id once anyway. Each message of a run of publishes but the first names the one
before it (`Nats-Expected-Last-Msg-Id`): a message lost on a dropped connection cannot be
overtaken by the next one, so the stream keeps the journal's order. Imported events (their
metadata names another source) are not exported again. An event NATS refuses for good (over
its maximum payload) is dead-lettered under `bus:outbox` and passed over.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time

from nats.errors import MaxPayloadError
from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import NotFoundError

from reactor.bus.config import BusConfig
from reactor.bus.connection import BusUnavailable, Connection
from reactor.bus.publisher import Message, Publisher
from reactor.bus.wire import headers
from reactor.codec import loads
from reactor.errors import ReactorError
from reactor.events import new_id
from reactor.store.base import Append, Checkpoint, DeadLetterRecord, Fence, StoredEvent
from reactor.store.event_store import EventStore

log = logging.getLogger(__name__)
HOLD = 10_000  # unconfirmed events held in memory at most; beyond them, only counted
BATCH = 512  # messages published before their acks are awaited
PAGE = 1_000  # events counted per read while the held ones fill HOLD
ACK_WAIT = 5.0  # seconds for the acks of a batch
SAVE_IDLE = 0.2  # seconds without an event before the checkpoint is saved
SAVE_BUSY = 5.0  # seconds between checkpoint saves while events keep coming
IDLE = 0.5  # seconds between looks at the journal when nothing wakes the outbox
BACKOFF = 0.5  # seconds after a failed batch
EXPECTED_LAST = "Nats-Expected-Last-Msg-Id"


class Outbox:
    """Publishes on its own thread. `held` are the exportable events read but not yet
    confirmed (up to `read_upto`); `beyond` counts those after them up to `counted_upto`."""

    def __init__(self, config: BusConfig, store: EventStore, conn: Connection) -> None:
        self.config, self.store, self.conn = config, store, conn
        self.name = f"bus:outbox:{config.service}"
        self.fence: Fence | None = None  # on a shared journal: the link's lease
        self._resume()
        self.held: collections.deque[StoredEvent] = collections.deque()
        self.beyond = 0
        self.published = 0  # messages JetStream confirmed since start
        self.error: str | None = None  # why the last batch failed, until one passes
        self.wake = threading.Event()
        self._chain: str | None = None  # the last confirmed event id of this run
        self._types: tuple[int, list[str]] = (-1, [])  # (registry generation, names)
        self._last_save = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"reactor-bus-outbox-{config.service}", daemon=True
        )
        self._publisher = Publisher(conn)
        self._subjects: dict[str, str] = {}  # by type name
        conn.on_up.append(self.ensure_stream)
        conn.on_up.append(self._publisher.listen)
        conn.on_change.append(self.wake.set)

    @property
    def backlog(self) -> int:
        """Integration events committed here and not yet confirmed by JetStream."""
        return len(self.held) + self.beyond

    def poke(self, event: object, env: object) -> None:
        """An integration event was committed here: look at the journal now (a subscriber
        of the runtime, so that an export waits for no polling)."""
        self.wake.set()

    def types(self) -> list[str]:
        """The integration event type names of the registry (cached per registration)."""
        registry = self.store.registry
        if self._types[0] != registry.generation:
            names = [i.name for i in registry.catalog() if i.kind == "integration"]
            self._types = (registry.generation, names)
        return self._types[1]

    async def ensure_stream(self) -> None:
        """Create this service's stream unless it exists (an operator may have tuned it)."""
        js = self.conn.js
        try:
            await js.stream_info(self.config.stream)
        except NotFoundError:
            await js.add_stream(
                name=self.config.stream,
                subjects=[self.config.subjects_of(self.config.service)],
                description=f"integration events of the reactor service {self.config.service}",
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
            )

    def _resume(self) -> None:
        """Start from the saved checkpoint (a standby resumes where the last holder was)."""
        checkpoint = self.store.load_checkpoint(self.name)
        self.confirmed = self.saved = checkpoint.position if checkpoint else 0
        self.read_upto = self.counted_upto = self.confirmed

    def start(self) -> None:
        self._resume()
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the batch in hand (or give it up), save the checkpoint, stop the thread."""
        self._stopping.set()
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.wake.clear()
            try:
                self._read()
                if self.held and self.conn.up.is_set():
                    self._publish()
                    self._save(SAVE_BUSY)
                    continue
            except Exception:  # a store or the connection failed: try again
                log.exception("%s: exporting failed", self.name)
                self._chain = None
                self._stopping.wait(BACKOFF)
            unsaved = self.saved < self.confirmed
            if not self.wake.wait(SAVE_IDLE if unsaved else IDLE) and unsaved:
                self._saving(0.0)  # quiet for a while: a good time
        self._saving(0.0)

    def _saving(self, every: float) -> None:
        try:
            self._save(every)
        except ReactorError as e:
            log.error("%s: the checkpoint was not saved: %s", self.name, e)

    def _exportable(self, stored: StoredEvent) -> bool:
        """Committed here (not imported from another service)."""
        if stored.metadata is None:
            return True
        source = loads(stored.metadata).get("source", self.config.service)
        return bool(source == self.config.service)

    def _read(self) -> None:
        """Hold what is new in the journal (while there is room), else count it."""
        names = self.types()
        if not names:
            return
        room = HOLD - len(self.held)
        if room > 0:
            for stored in self.store.read_stored(self.read_upto, names, limit=room):
                if self._exportable(stored):
                    self.held.append(stored)
                    if stored.position <= self.counted_upto:
                        self.beyond -= 1  # counted while it did not fit
                self.read_upto = stored.position
            self.counted_upto = max(self.counted_upto, self.read_upto)
        else:
            for stored in self.store.read_stored(self.counted_upto, names, limit=PAGE):
                self.beyond += self._exportable(stored)
                self.counted_upto = stored.position
        if not self.held:  # what was read is confirmed or not for export
            self.confirmed = self.read_upto

    def _publish(self) -> None:
        """Publish the next batch of held events and await their acks; pop the confirmed."""
        batch = list(itertools.islice(self.held, BATCH))
        messages = self._messages(batch)
        try:
            done, error = self.conn.call(self._publisher.send(messages, ACK_WAIT), ACK_WAIT + 5)
        except BusUnavailable as e:
            done, error = 0, e
        for _ in range(done):
            self.held.popleft()
        if done:
            self.confirmed, self._chain = batch[done - 1].position, batch[done - 1].event_id
            self.published += done
        if isinstance(error, MaxPayloadError):
            self._refused(self.held.popleft(), error)
        elif error is not None:
            self._chain = None  # the next run starts unchained
            if self.error is None:
                log.warning("%s: publishing failed (retrying): %r", self.name, error)
            self.error = repr(error)
            self._stopping.wait(BACKOFF)
            return
        self.error = None
        if not self.held:
            self.confirmed = self.read_upto

    def _messages(self, batch: list[StoredEvent]) -> list[Message]:
        out, previous = [], self._chain
        for stored in batch:
            found = headers(self.config.service, stored)
            if previous is not None:
                found[EXPECTED_LAST] = previous
            subject = self._subjects.get(stored.type)
            if subject is None:
                subject = self._subjects[stored.type] = self.config.subject(stored.type)
            out.append((subject, stored.data, found))
            previous = stored.event_id
        return out

    def _refused(self, stored: StoredEvent, error: BaseException) -> None:
        """Dead-letter an event NATS will never take, and go on with the next."""
        self.store.save_dead_letter(
            DeadLetterRecord(
                id=new_id(),
                handler="bus:outbox",
                position=stored.position,
                stream_id=stored.stream_id,
                error=(
                    f"{type(error).__name__}: {len(stored.data):,} bytes of {stored.type} "
                    f"(event {stored.event_id}) are over the NATS server's max_payload; "
                    f"not exported to {self.config.subject(stored.type)}"
                ),
                attempts=1,
            )
        )
        log.error(
            "%s: event %s at position %d dead-lettered: %r",
            self.name,
            stored.event_id,
            stored.position,
            error,
        )
        self.confirmed = stored.position

    def _save(self, every: float) -> None:
        """Save the checkpoint if it moved and was last saved `every` seconds ago or more.
        Off the export path while events keep coming (a commit waits for the disk): a
        crash publishes again what JetStream confirmed since, and JetStream drops it."""
        at = time.monotonic()
        if self.confirmed <= self.saved or at - self._last_save < every:
            return
        checkpoint = Checkpoint(name=self.name, position=self.confirmed, fence=self.fence)
        self.store.commit([Append("", (), None, checkpoint)])
        self.saved, self._last_save = checkpoint.position, at
