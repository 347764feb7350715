"""`BusLink`: a runtime's link to the event bus: its NATS connection, its outbox and (if it
imports anything) its inbox, started after the runtime and stopped before it.

A server that is down (or a URL nothing answers at) does not stop the runtime from
starting: it starts degraded, logs a warning, and `health().bus.connected` is False. That
is how it behaves when NATS goes away later too: commands commit locally, the outbox's
backlog grows, and it drains once NATS is back. A malformed URL is a `ValueError` when the
Runtime is made. On a journal shared by several processes, one of them at a time exports
and imports for the service: the holder of the lease `bus:<service>` (the others stand by,
`health().bus.active` False, and take over when it stops or dies).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from reactor.actors.leases import LeaseKeeper
from reactor.actors.messages import Appended
from reactor.bus.config import BusConfig
from reactor.bus.wire import UNDELIVERABLE, Undeliverable
from reactor.errors import ReactorError
from reactor.events import Envelope, NewEvent, new_id
from reactor.registry import Registry
from reactor.store.base import Fence, Lease
from reactor.store.event_store import EventStore

if TYPE_CHECKING:
    from reactor.bus.connection import Connection
    from reactor.bus.inbox import Inbox
    from reactor.bus.outbox import Outbox

log = logging.getLogger(__name__)
START_WAIT = 5.0  # seconds start() waits for the first attempt to connect, at most


class Host(Protocol):
    """What a link needs of its runtime."""

    @property
    def store(self) -> EventStore: ...

    @property
    def settings(self) -> Any: ...

    def _subscribe(self, fn: Callable[[Any, Envelope], object], types: Collection[str]) -> str:
        """A subscription of the runtime's own (no policy applies)."""
        ...

    def _publish_all(
        self, items: Sequence[tuple[NewEvent, str]]
    ) -> list[Appended | ReactorError]: ...


class Link(Protocol):
    """Something a runtime starts last and stops first."""

    def start(self, host: Host) -> None: ...

    def stop(self, timeout: float) -> None: ...


@attrs.frozen(kw_only=True)
class BusHealth:
    """The bus as `Runtime.health().bus` shows it.

    `connected`: NATS is reachable and the stream and consumers are set up; `error`: why
    not. `outbox_backlog`: integration events committed here and not yet confirmed by
    JetStream; `exported_to`: the journal position confirmed up to. `imported` counts the
    events taken in since start, `redelivered` those that were in already (stored
    nothing), `skipped` the messages of types not imported, `dead_lettered` the
    undecodable ones; `sources` are the exporters' streams pulled from.
    """

    service: str
    url: str
    connected: bool
    active: bool = True  # False: another process exports and imports for the service
    error: str | None = None
    outbox_backlog: int = 0
    exported: int = 0
    exported_to: int = 0
    imported: int = 0
    redelivered: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    sources: tuple[str, ...] = ()


class BusLink:
    """The bus of one runtime (see the module's docstring)."""

    def __init__(self, config: BusConfig, registry: Registry) -> None:
        self.config = config
        registry.add_event(Undeliverable, UNDELIVERABLE, kind="system")
        self._conn: Connection | None = None
        self._outbox: Outbox | None = None
        self._inbox: Inbox | None = None
        self._keeper: LeaseKeeper | None = None
        self._active = threading.Event()  # its outbox and inbox run (once, under the lease)

    def start(self, host: Host) -> None:
        """Connect (waiting `START_WAIT` seconds at most), start the outbox and inbox."""
        from reactor.bus.connection import Connection  # nats-py: an optional extra
        from reactor.bus.inbox import Inbox
        from reactor.bus.outbox import Outbox

        config = self.config
        self._conn = conn = Connection(config.servers, config.service)
        self._outbox = outbox = Outbox(config, host.store, conn)
        if config.imports:
            self._inbox = Inbox(config, host.store, conn, host._publish_all)
        names = outbox.types()
        if names:  # committed integration events wake the outbox at once
            host._subscribe(outbox.poke, names)
        if host.store.shared:  # one process at a time exports and imports for the service
            owner = f"{socket.gethostname()}/{os.getpid()}/{new_id()[-12:]}"
            ttl = host.settings.lease_ttl
            self._keeper = LeaseKeeper(host.store, owner, ttl, self._gained, self._lost)
            self._keeper.want(f"bus:{config.service}")
        else:
            self._run_parts(None)
        if not conn.start(START_WAIT):
            log.warning(
                "bus %s: NATS at %s is out of reach (%s); running degraded: events commit "
                "locally and are exported once it is reachable (health().bus.connected is "
                "False until then)",
                config.service,
                config.url,
                conn.error or f"no answer within {START_WAIT:g}s",
            )

    def _run_parts(self, fence: Fence | None) -> None:
        """Start the outbox (its checkpoints fenced by the lease, if any) and the inbox."""
        if self._active.is_set() or self._outbox is None:
            return
        self._outbox.fence = fence
        self._outbox.start()
        if self._inbox is not None:
            self._inbox.start()
        self._active.set()

    def _gained(self, name: str, lease: Lease) -> None:
        self._run_parts(Fence(name, lease.epoch))

    def _lost(self, name: str) -> None:
        """Another process took the lease (this one stalled): stop exporting and importing
        here for good (its checkpoints would be refused anyway); a restart stands by again."""
        log.critical("%s lost: this runtime stops its outbox and inbox", name)
        self._active.clear()
        for part in (self._inbox, self._outbox):
            if part is not None:
                part.stop(5.0)
        self._outbox = self._inbox = None

    def stop(self, timeout: float) -> None:
        """Stop the inbox and outbox threads, then the connection, and give up the lease.
        Idempotent."""
        if self._keeper is not None:
            self._keeper.halt(timeout)
        for part in (self._inbox, self._outbox, self._conn):
            if part is not None:
                part.stop(timeout)
        if self._keeper is not None:
            self._keeper.release()

    def health(self) -> BusHealth:
        conn, outbox, inbox = self._conn, self._outbox, self._inbox
        if conn is None or outbox is None:
            return BusHealth(service=self.config.service, url=self.config.url, connected=False)
        return BusHealth(
            service=self.config.service,
            url=self.config.url,
            connected=conn.up.is_set(),
            active=self._active.is_set(),
            error=conn.error or outbox.error,
            outbox_backlog=outbox.backlog,
            exported=outbox.published,
            exported_to=outbox.confirmed,
            imported=inbox.imported if inbox else 0,
            redelivered=inbox.again if inbox else 0,
            skipped=inbox.skipped if inbox else 0,
            dead_lettered=inbox.dead_lettered if inbox else 0,
            sources=tuple(sorted(inbox.sources)) if inbox else (),
        )
