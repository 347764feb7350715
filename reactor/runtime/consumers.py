"""The consumers of a runtime: projections, sagas and subscribers, registered by class (or
function), each run by a consumer actor under its supervisor, found by label, stopped in
order.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import attrs
import pykka
from pykka import ActorRef

from reactor.actors.consumer import ConsumerActor, state_of
from reactor.actors.leases import LeaseKeeper
from reactor.actors.messages import Progress, Reply, SaveCheckpoint
from reactor.actors.pooled import start, tell
from reactor.codec import Codec
from reactor.domain import Projection, Saga
from reactor.errors import ReactorError, RegistrationError
from reactor.events import Envelope, new_id
from reactor.faults import RetryPolicy
from reactor.registry import qualified_name
from reactor.runtime.lineage import acting
from reactor.runtime.parts import Parts
from reactor.sagas import Dispatch
from reactor.specs import ConsumerKind, ConsumerType
from reactor.store.base import Checkpoint, Fence, Lease

log = logging.getLogger(__name__)


@attrs.frozen
class Running:
    """A started consumer: its spec, its actor's ref and its progress."""

    spec: ConsumerType
    ref: ActorRef[Any]
    progress: Progress


@attrs.frozen(kw_only=True)
class Launch:
    """How to start one consumer: from where, checkpointed or not, on which dispatcher."""

    spec: ConsumerType
    start_at: int = 0
    checkpoints: bool = False
    blocking: bool = False  # a subscriber function: on the dispatcher whose actors may block

    @property
    def single_active(self) -> bool:
        """Whether it may run in one process at a time only (it keeps a checkpoint)."""
        return self.spec.durable or self.checkpoints

    @property
    def lease(self) -> str:
        return f"consumer:{self.spec.name}"


class Consumers:
    """Registered projection and saga classes, and every running consumer by name."""

    def __init__(self, saga_send: Dispatch) -> None:
        self.saga_send = saga_send
        self.registered: dict[type, ConsumerType] = {}  # projections and sagas, by class
        self.running: dict[str, Running] = {}  # by checkpoint name
        self.standby: dict[str, Launch] = {}  # single-active ones, by lease: run or wait
        self.parts: Parts | None = None
        self.keeper: LeaseKeeper | None = None
        self.eligible: Callable[[str], bool] | None = None  # a cluster's spread of leases
        self.halted = False  # stopping: no consumer starts or stops by a lease any more
        self._lock = threading.RLock()
        self._started = threading.Condition(self._lock)  # a consumer started

    def register(self, cls: type[Projection] | type[Saga], registry: Any) -> None:
        """Add a projection or saga class (started at once if the runtime runs);
        `RegistrationError` if another class has its label (and so its checkpoint)."""
        if cls in self.registered:
            return
        if issubclass(cls, Saga):
            spec = cls.__reactor_type__(registry, self.saga_send)
        else:
            spec = cls.__reactor_type__(registry)
        for other in self.registered.values():
            if other.name == spec.name:
                raise RegistrationError(
                    f"{qualified_name(cls)} and {qualified_name(other.cls)} are both the "
                    f"{spec.kind.value} {spec.label!r} (one checkpoint, one set of dead "
                    f"letters): give one a name of its own with `name=`, e.g. class "
                    f'{cls.__name__}({spec.kind.value.title()}, name="<name>")'
                )
        if spec.kind is ConsumerKind.PROJECTION and spec.durable:  # its state must save
            owner = f"projection {spec.label}"
            Codec(registry).check_state(state_of(spec.instance()), spec.state_hints, owner)
        self.registered[cls] = spec
        if self.parts is not None:
            self._launch(Launch(spec=spec))

    def start(self, parts: Parts) -> None:
        """Start every registered projection and saga (or, on a shared journal, wait for
        the lease of those that run in one process at a time)."""
        self.parts = parts
        if parts.store.shared:
            owner = f"{socket.gethostname()}/{os.getpid()}/{new_id()[-12:]}"
            ttl = parts.settings.lease_ttl
            self.keeper = LeaseKeeper(
                parts.store, owner, ttl, self._gained, self._lost, self.eligible
            )
        for spec in self.registered.values():
            self._launch(Launch(spec=spec))

    def subscribe(
        self,
        fn: Callable[[Any, Envelope], object],
        names: frozenset[str] | None,
        name: str | None,
        from_position: int | None,
        retry: RetryPolicy | None,
    ) -> str:
        """Start a subscriber consumer calling `fn` (see `Runtime.subscribe`); its label."""
        parts = self._parts()
        label = name or f"{getattr(fn, '__qualname__', 'subscriber')}-{new_id()}"
        call = acting(fn, f"{ConsumerKind.SUBSCRIBER.value}:{label}")

        spec = ConsumerType(
            kind=ConsumerKind.SUBSCRIBER,
            cls=type(fn),
            label=label,
            handlers={t: call for t in names} if names is not None else {"*": call},
            types=names,
            retry=retry,
        )
        if spec.name in self.running:
            raise RegistrationError(f"a subscriber named {name!r} is already running")
        store = parts.store
        begin = store.last_position() if from_position is None else from_position
        if name is not None and store.load_checkpoint(spec.name) is None:
            # Where it begins is durable before this returns: a crash after it must not
            # restart it at a later head, past events it was owed.
            reply = Reply()
            tell(
                parts.tree.journal,
                SaveCheckpoint(Checkpoint(name=spec.name, position=begin), reply),
            )
            reply.get(parts.settings.timeout)
        self._launch(Launch(spec=spec, start_at=begin, checkpoints=name is not None, blocking=True))
        return label

    def _launch(self, launch: Launch) -> None:
        """Start a consumer now, or (single-active on a shared journal) once it holds its
        lease."""
        with self._lock:
            if self.keeper is not None and launch.single_active:
                self.standby[launch.lease] = launch
                self.keeper.want(launch.lease)
            else:
                self._start(launch, None)

    def _start(self, launch: Launch, fence: Fence | None) -> None:
        parts = self._parts()
        tree, spec = parts.tree, launch.spec
        actor = ConsumerActor(
            parts.blocking if launch.blocking else parts.pool,
            spec,
            spec.instance(),
            parts.store,
            tree.router,
            tree.journal,
            parts.timers,
            parts.settings.retry,
            start_at=launch.start_at,
            checkpoints=launch.checkpoints,
            fence=fence,
            metrics=parts.metrics,
            tracing=parts.tracing,
        )
        supervisor = tree.subscribers if spec.kind is ConsumerKind.SUBSCRIBER else tree.projections
        ref = start(actor, supervisor=supervisor)
        with self._started:
            self.running[spec.name] = Running(spec, ref, actor.progress)
            self._started.notify_all()

    def _gained(self, lease_name: str, lease: Lease) -> None:
        """The keeper took a consumer's lease: it starts here, its writes fenced by it."""
        with self._lock:
            launch = self.standby.get(lease_name)
            if launch is not None and not self.halted:
                self._start(launch, Fence(lease_name, lease.epoch))

    def _lost(self, lease_name: str) -> None:
        """Another process holds a consumer's lease now: it stops here (and waits)."""
        with self._lock:
            launch = self.standby.get(lease_name)
            gone = None if launch is None or self.halted else self.running.pop(launch.spec.name)
        if gone is not None:
            gone.ref.stop(block=False)

    def _parts(self) -> Parts:
        if self.parts is None:
            raise RegistrationError("the runtime is not started")
        return self.parts

    # -- finding ------------------------------------------------------------------------------

    def by_label(self, label: str) -> Running | None:
        """The running consumer a dead letter or a health report names."""
        return next((r for r in self.running.values() if r.spec.label == label), None)

    def projection(self, cls: type, timeout: float = 0.0) -> Running | None:
        """The running consumer of a registered projection class (None: not registered).
        One on standby (another process holds its lease) is waited for up to `timeout`."""
        spec = self.registered.get(cls)
        if spec is None or spec.kind is not ConsumerKind.PROJECTION:
            return None
        with self._started:
            if not self._started.wait_for(lambda: spec.name in self.running, timeout):
                raise ReactorError(
                    f"projection {spec.label} runs in another process sharing this journal "
                    f"(this one waits for its lease): query it there, or make it a "
                    f"projection that is not durable, which runs in every process"
                )
            return self.running[spec.name]

    def __iter__(self) -> Iterator[Running]:
        return iter(list(self.running.values()))

    # -- stopping -----------------------------------------------------------------------------

    def halt(self) -> None:
        """No consumer starts or stops by a lease from now on (the runtime is stopping)."""
        with self._lock:
            self.halted = True
        if self.keeper is not None:
            self.keeper.halt()

    def stop(self, kinds: Collection[ConsumerKind], timeout: float) -> None:
        """Stop the running consumers of these kinds (each saves its place)."""
        with self._lock:
            running_now = list(self.running.items())
        for name, running in running_now:
            if running.spec.kind not in kinds:
                continue
            try:
                running.ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.warning("%s did not stop within %.1fs", name, timeout)

    def clear(self) -> None:
        """Forget the stopped consumers; release their leases (a standby takes over now)."""
        if self.keeper is not None:
            self.keeper.release()
        self.running.clear()
        self.standby.clear()
        self.parts, self.keeper = None, None
