"""`RuntimeCore`: a runtime's options, life cycle and registrations, which the parts of the
`Runtime` facade (sending, reading, operating) share.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self, cast

from reactor.actors.messages import Handle, NoReply
from reactor.bus import BusLink, Host, Link, bus_config
from reactor.cluster import cluster_config
from reactor.codec import MAX_EVENT_BYTES
from reactor.domain import Aggregate, Projection, Saga
from reactor.errors import ReactorError, RegistrationError, RuntimeStopped
from reactor.events import Cause
from reactor.faults import RetryPolicy
from reactor.registry import Registry, default_registry
from reactor.runtime.commands import CommandRoute, Commands, LocalRoute
from reactor.runtime.consumers import Consumers
from reactor.runtime.governance import Governance
from reactor.runtime.observing import Observability
from reactor.runtime.parts import Parts
from reactor.runtime.settings import Settings
from reactor.security.policy import Policy
from reactor.store import EventStore, open_store

if TYPE_CHECKING:
    from reactor.cluster.node import ClusterNode

log = logging.getLogger(__name__)


class RuntimeCore:
    """The state every part of a `Runtime` works on (see `Runtime` for the options)."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        registry: Registry | None = None,
        workers: int = 2,
        throughput: int = 100,
        snapshot_every: int | None = None,
        idle_timeout: float | None = None,
        max_live: int | None = None,
        timeout: float = 30.0,
        subscriber_workers: int = 2,
        retry: RetryPolicy | None = None,
        backlog: int = 10_000,
        lease_ttl: float = 5.0,
        max_event_bytes: int | None = MAX_EVENT_BYTES,
        service: str | None = None,
        bus: str | None = None,
        imports: Iterable[type | str] | None = None,
        policy: Policy | None = None,
        master_key: bytes | None = None,
        audit: bool | None = None,
        cluster: str | None = None,
        node: str | None = None,
        shards: int = 64,
        metrics_port: int | None = None,
        tracer_provider: Any = None,
    ) -> None:
        if not isinstance(url, str):
            raise ValueError(f"Runtime(url) must be a store URL string, got {url!r}")
        self.url = url
        self.registry = registry if registry is not None else default_registry
        self.settings = Settings(
            workers=workers,
            throughput=throughput,
            snapshot_every=snapshot_every,
            idle_timeout=idle_timeout,
            max_live=max_live,
            timeout=timeout,
            subscriber_workers=subscriber_workers,
            retry=retry if retry is not None else RetryPolicy(),
            backlog=backlog,
            lease_ttl=lease_ttl,
            max_event_bytes=max_event_bytes,
            metrics_port=metrics_port,
        )
        self.timeout = timeout
        self._lock = threading.RLock()
        self._state = "new"  # new -> running -> stopping -> stopped
        self.failure: str | None = None  # why the root supervisor gave up, if it did
        self._commands = Commands()
        self._consumers = Consumers(self._saga_send)
        self._parts: Parts | None = None
        self._route: CommandRoute | None = None
        on_bus = bus_config(service, bus, imports, self.registry)
        self._bus = None if on_bus is None else BusLink(on_bus, self.registry)
        self._links: list[Link] = [] if self._bus is None else [self._bus]  # started last
        self._gov = Governance(policy, master_key, audit, lambda: self._parts)
        self._observe = Observability(metrics_port, tracer_provider)
        self._cluster_config = cluster_config(cluster, node, shards)
        self._cluster: ClusterNode | None = None

    def __repr__(self) -> str:
        return f"Runtime({self.url!r}, {self._state})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def store(self) -> EventStore:
        """The journal this runtime runs on (while it runs)."""
        return self._running_parts().store

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the journal and start the actors (idempotent). Checks the registry first."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise RuntimeStopped(f"{self!r} was stopped; make a new Runtime")
            self._observe.start()  # a metrics port in use: nothing else has started
            try:
                store = open_store(
                    self.url,
                    registry=self.registry,
                    max_event_bytes=self.settings.max_event_bytes,
                )
            except BaseException:
                self._observe.stop(self.settings.timeout)
                raise
            try:
                store.claim(f"a reactor runtime on {socket.gethostname()} (pid {os.getpid()})")
                self._gov.unlock(store, self._commands, self._consumers.registered.values())
            except BaseException:
                store.close()
                self._observe.stop(self.settings.timeout)
                raise
            observe = self._observe
            self._parts = parts = Parts.start(
                store, self.settings, self._give_up, observe.metrics, observe.tracing
            )
            observe.watch(parts, self._consumers)
            self._route = self._start_route(parts)
            self._state = "running"
            self._consumers.start(parts)
            if self.settings.idle_timeout is not None:
                self._sweep()
            for link in self._links:  # a Runtime: Sending and Reading complete the Host
                link.start(cast(Host, self))
        return self

    def _start_route(self, parts: Parts) -> CommandRoute:
        """The local route, or (in a cluster) the node's, once it has joined."""
        config = self._cluster_config
        if config is None:
            return LocalRoute(parts.host)
        from reactor.cluster.node import ClusterNode  # nats-py: an optional extra

        self._cluster = node = ClusterNode(config)
        settings = self.settings
        try:
            route = node.start(
                parts.store,
                parts.host,
                self._commands,
                settings.timeout,
                settings.lease_ttl,
                self._observe.tracing,
            )
        except BaseException:
            node.leave(settings.timeout)
            node.stop(settings.timeout)
            parts.stop_actors(self._consumers.stop, settings.timeout)
            self._observe.stop(settings.timeout)
            parts.shutdown(settings.timeout)
            raise
        self._consumers.eligible = node.eligible
        return route

    def _give_up(self, reason: str) -> None:
        """The root supervisor's restart intensity was exceeded: stop cleanly, say why."""
        log.critical("%r gives up and stops: %s", self, reason)
        self.failure = reason
        threading.Thread(target=self.stop, name="reactor-give-up", daemon=True).start()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let what was accepted finish, save checkpoints, stop everything
        (in the order `Parts.stop_actors` gives). Idempotent."""
        timeout = self._timeout(timeout)
        with self._lock:
            if self._state != "running" or self._parts is None:
                self._state = "stopped"
                return
            for link in self._links:  # first: what they still hand in commits
                link.stop(timeout)
            self._state = "stopping"
            parts = self._parts
        try:
            self._consumers.halt()
            if self._cluster is not None:  # no more commands from other nodes
                self._cluster.leave(timeout)
            parts.stop_actors(self._consumers.stop, timeout)
        finally:
            self._consumers.clear()
            if self._cluster is not None:  # its aggregates stopped: hand its shards over
                self._cluster.stop(timeout)
            self._observe.stop(timeout)
            parts.shutdown(timeout)
            self._state = "stopped"

    def _timeout(self, timeout: float | None) -> float:
        """`timeout`, or the Runtime's default for None."""
        return self.settings.timeout if timeout is None else timeout

    def _running(self) -> None:
        if self._state != "running":
            raise RuntimeStopped(
                f"{self!r} is not running: start() it (or use `with Runtime(...)`)"
                if self._state == "new"
                else f"{self!r} is {self._state}: it takes no more work"
            )

    def _running_parts(self) -> Parts:
        self._running()
        assert self._parts is not None
        return self._parts

    def _sweep(self) -> None:
        parts = self._parts
        if self._state != "running" or parts is None or self.settings.idle_timeout is None:
            return
        parts.host.sweep()
        parts.timers.schedule(self.settings.idle_timeout / 2, self._sweep)

    # -- registration -------------------------------------------------------------------------

    def register(self, *classes: type) -> Self:
        """Register Aggregate, Projection and Saga classes (before or after `start`).

        Raises `RegistrationError` for anything else, an aggregate without key or handlers,
        a command class two aggregates handle, or two classes under one name.
        """
        with self._lock:
            for cls in classes:
                if isinstance(cls, type) and issubclass(cls, Aggregate):
                    self._commands.register(cls, self.settings.snapshot_every)
                elif isinstance(cls, type) and issubclass(cls, Projection | Saga):
                    self._consumers.register(cls, self.registry)
                else:
                    raise RegistrationError(
                        f"register() takes Aggregate, Projection and Saga subclasses, got {cls!r}"
                    )
        return self

    def _saga_send(
        self, command: Any, command_id: str, correlation_id: str | None, cause: Cause | None = None
    ) -> None:
        """A command from a saga: routed even while stopping (sagas drain first)."""
        try:
            spec = self._commands.spec(command)
            stream_id = self._commands.stream_of(spec, command)
        except ReactorError as e:
            log.error("a saga sent %r, which cannot be routed: %s", command, e)
            return
        tracing = self._observe.tracing
        handle = Handle(
            command=command,
            command_id=command_id,
            correlation_id=correlation_id or command_id,
            reply=NoReply(command),
            given_id=True,
            cause=cause,
            sent_at=time.perf_counter(),
            trace=tracing.capture() if tracing.enabled else None,  # the event's consumer
        )
        if self._route is not None:
            self._route.deliver(spec, stream_id, handle)
