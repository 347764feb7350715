"""`ClusterNode`: one runtime's place in its cluster: it joins (its member lease), keeps its
shards (`Ownership` on the `Membership` thread), serves the commands of its shards that
other nodes send (one NATS subscription per shard, in the queue group of the owners) and
the status requests addressed to it, and spreads single-active consumers over the nodes.

Subjects: `reactor-cluster.<cluster id>.shard.<n>` (commands for shard n) and
`reactor-cluster.<cluster id>.node.<node>` (the node's status).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from reactor.actors.host import AggregateHost, Placement
from reactor.actors.instruments import NO_TRACING, NoTracing
from reactor.actors.messages import Handle, Reply
from reactor.cluster.config import ClusterConfig
from reactor.cluster.identity import ClusterError, Identity, identity
from reactor.cluster.ownership import Membership, Ownership
from reactor.cluster.route import ClusterRoute
from reactor.cluster.shards import choose, shard_lease, shard_of
from reactor.cluster.status import ClusterStatus, cluster_status
from reactor.cluster.wire import MOVED, decode_request, encode_error, encode_result
from reactor.errors import FencedError, Timeout
from reactor.registry import qualified_name
from reactor.specs import AggregateType
from reactor.store.base import Fence, Lease
from reactor.store.event_store import EventStore
from reactor.tracing import Tracing

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from reactor.bus.connection import Connection

log = logging.getLogger(__name__)
START_WAIT = 5.0  # seconds start() waits for NATS, at most (then it goes on trying)
LIVE_SHOWN = 1000  # live aggregates a status answer names, at most


class Commands(Protocol):
    """The registered aggregates of the runtime (its `Commands`)."""

    def spec(self, command: object) -> AggregateType: ...

    def stream_of(self, spec: AggregateType, command: object) -> str: ...

    def __iter__(self) -> Iterator[AggregateType]: ...


def subjects(cluster_id: str) -> str:
    """The first tokens of every subject of a cluster."""
    return f"reactor-cluster.{cluster_id}"


class ClusterNode:
    """One runtime's membership of a cluster (see the module's docstring)."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.node = config.node
        self.identity: Identity | None = None
        self.route: ClusterRoute | None = None
        self.ownership: Ownership | None = None
        self.conn: Connection | None = None
        self._membership: Membership | None = None
        self._host: AggregateHost | None = None
        self._store: EventStore | None = None
        self._commands: Commands | None = None
        self._timeout = 30.0
        self._serving: set[int] = set()  # shards whose subject this node should listen to
        self._subs: dict[int, Subscription] = {}  # on the loop
        self._sub_lock: asyncio.Lock | None = None
        self._status_sub: Subscription | None = None
        self._draining: dict[int, list[Any]] = {}  # shard -> its passivated actors
        self._free_since: dict[str, float] = {}  # consumer leases seen free, since when
        self._classes: dict[str, type] = {}  # command classes by qualified name
        self._tasks: set[asyncio.Task[None]] = set()  # commands being answered (on the loop)
        self._lock = threading.RLock()

    # -- life ---------------------------------------------------------------------------------

    def start(
        self,
        store: EventStore,
        host: AggregateHost,
        commands: Commands,
        timeout: float,
        ttl: float,
        tracing: Tracing | NoTracing = NO_TRACING,
    ) -> ClusterRoute:
        """Join the cluster on `store`, take this node's shards, listen on NATS; the route
        commands take from now on. `ClusterError` if the journal is not shared, records
        another shard count, or the node name is live in another process."""
        from reactor.bus.connection import Connection  # nats-py: an optional extra

        if not store.shared:
            raise ClusterError(
                f"Runtime(cluster=...) needs a journal its nodes share (postgresql://...): "
                f"{store.url} serves one process"
            )
        config = self.config
        self.identity = found = identity(store, config.shards, config.url)
        self._store, self._host, self._commands, self._timeout = store, host, commands, timeout
        self.conn = conn = Connection(config.servers, f"cluster-{self.node}")
        root = subjects(found.id)
        self.route = route = ClusterRoute(
            host=host,
            store=store,
            conn=conn,
            shards=found.shards,
            subject=lambda shard: f"{root}.shard.{shard}",
            timeout=timeout,
            attempt=max(ttl, 1.0),
            fenced=self.lost,
            tracing=tracing,
        )
        host.placement = route.placement
        owner = f"{self.node}#{uuid.uuid4().hex[:8]}#{ttl:g}"
        self.ownership = ownership = Ownership(store, self.node, owner, found.shards, ttl, self)
        self._join(ownership, ttl)
        conn.on_up.append(self._listen)
        if not conn.start(START_WAIT):
            log.warning(
                "cluster node %s: NATS at %s is out of reach (%s): it serves its own shards "
                "only until NATS is reachable",
                self.node,
                config.url,
                conn.error or f"no answer within {START_WAIT:g}s",
            )
        ownership.step()  # its shards at once (a lone node serves every command locally)
        self._membership = Membership(ownership)
        return route

    def _join(self, ownership: Ownership, ttl: float) -> None:
        deadline = time.monotonic() + ttl * 1.5
        while not ownership.join():
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {self.node} is a live member of the cluster already (another "
                    "process runs under that name): give each node a name of its own"
                )
            time.sleep(ttl / 10)  # a previous incarnation's lease is expiring

    def leave(self, timeout: float) -> None:
        """Stop taking commands from other nodes and give up the membership (the others
        rebalance); this node's own shards stay served locally until `stop`."""
        if self._membership is not None:
            self._membership.halt(timeout)
        if self.ownership is not None:
            self.ownership.leave()
        with self._lock:
            self._serving.clear()
        if self.conn is not None and self.conn.up.is_set():
            try:
                self.conn.call(self._subscriptions(), timeout)
            except Exception as e:  # its subscriptions go with its connection anyway
                log.warning("cluster node %s: unsubscribing: %r", self.node, e)

    def stop(self, timeout: float) -> None:
        """After the aggregates stopped: hand the shards over, wait a little (two lease
        ttls at most, none if no other node is live) for the commands sent to other nodes,
        close the connection (those still in flight fail with `RuntimeStopped`)."""
        ownership, route = self.ownership, self.route
        grace = 0.0
        if ownership is not None:
            ownership.release()
            if len(ownership.members) > 1:  # another node may still answer what is in flight
                grace = min(timeout, 2 * ownership.ttl)
        deadline = time.monotonic() + grace
        while route is not None and route.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.conn is not None:
            self.conn.stop(timeout)
        if self._host is not None:
            self._host.placement = None

    def status(self) -> ClusterStatus:
        """The cluster as seen now (see `ClusterStatus`)."""
        assert self._store is not None and self.identity is not None
        return cluster_status(self._store, self.identity, self.conn)

    # -- ownership (called on the membership thread; `lost` on any) -----------------------------

    def gained(self, shard: int, lease: Lease) -> None:
        assert self.route is not None
        where = {"cluster": {"node": self.node, "shard": shard, "epoch": lease.epoch}}
        placement = Placement(Fence(shard_lease(shard), lease.epoch), where)
        with self._lock:
            self._draining.pop(shard, None)
            self.route.owned[shard] = placement
            self._serving.add(shard)
        self._resubscribe()

    def lost(self, shard: int) -> None:
        """The shard is another node's now: stop serving it; its actors stop (their
        appends would be refused: their fence is stale)."""
        if self._stop_serving(shard) and self._host is not None:
            self._host.passivate(lambda s: shard_of(s, self.config.shards) == shard)

    def drain(self, shards: set[int]) -> set[int]:
        """Hand `shards` over: off the local path and their subjects, their actors
        passivated (one pass over the live actors for those new to draining); those whose
        actors have all stopped."""
        assert self._host is not None and self.route is not None
        count = self.config.shards
        with self._lock:
            new = shards - self._draining.keys()
            if new:
                for shard in new:
                    self.route.owned.pop(shard, None)
                    self._serving.discard(shard)
                    self._draining[shard] = []
                for actor in self._host.passivate(lambda s: shard_of(s, count) in new):
                    self._draining[shard_of(actor.stream_id, count)].append(actor)
            done = {
                shard
                for shard in shards
                if all(a.actor_stopped.is_set() for a in self._draining[shard])
            }
            for shard in done:
                del self._draining[shard]
        if new:
            self._resubscribe()
        return done

    def _stop_serving(self, shard: int) -> bool:
        """Take `shard` off the local path and its subject; whether it was on them."""
        with self._lock:
            was = self.route is not None and self.route.owned.pop(shard, None) is not None
            self._serving.discard(shard)
        self._resubscribe()
        return was

    # -- NATS (on the connection's loop) --------------------------------------------------------

    def _resubscribe(self) -> None:
        if self.conn is not None and self.conn.up.is_set():
            self.conn.spawn(self._subscriptions())

    async def _listen(self) -> None:
        """Set-up step after each (re)connect: the status subject, the shards' subjects."""
        assert self.conn is not None and self.identity is not None
        if self._status_sub is None:
            subject = f"{subjects(self.identity.id)}.node.{self.node}"
            self._status_sub = await self.conn.client.subscribe(subject, cb=self._status)
        await self._subscriptions()

    async def _subscriptions(self) -> None:
        """Listen to the subjects of the shards served here, and no other."""
        assert self.conn is not None and self.identity is not None
        if self._sub_lock is None:
            self._sub_lock = asyncio.Lock()
        root = subjects(self.identity.id)
        async with self._sub_lock:
            with self._lock:
                wanted = set(self._serving)
            for shard in sorted(wanted - self._subs.keys()):
                self._subs[shard] = await self.conn.client.subscribe(
                    f"{root}.shard.{shard}", queue="owner", cb=self._serve
                )
            for shard in sorted(self._subs.keys() - wanted):
                await self._subs.pop(shard).unsubscribe()

    async def _serve(self, msg: Msg) -> None:
        """A command another node sent to a shard of this node: handled in a task of its
        own (nats-py runs a subscription's callbacks one after another: awaiting each
        command here would take a shard's commands one at a time, with no group commit)."""
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            answer = await self._handle(msg.data)
        except Exception as e:  # a request that cannot be decoded, a command unknown here
            answer = encode_error(e)
        try:
            await msg.respond(answer)
        except Exception as e:  # the asker gave up, or the connection is gone: it asks again
            log.debug("cluster node %s: answering: %r", self.node, e)

    async def _handle(self, data: bytes) -> bytes:
        assert self._store is not None and self._commands is not None and self.route is not None
        assert self._host is not None
        request = decode_request(self._store, data, self._command_class)
        spec = self._commands.spec(request.command)
        stream_id = self._commands.stream_of(spec, request.command)
        shard = shard_of(stream_id, self.config.shards)
        if shard not in self.route.owned:
            return MOVED
        reply = Reply(loop=asyncio.get_running_loop())
        handle = Handle(
            command=request.command,
            command_id=request.command_id,
            correlation_id=request.correlation_id,
            reply=reply,
            given_id=True,  # it may come again (the asker retries): handled once
            principal=request.principal,
            audit=request.audit,
            fresh=request.fresh,
            cause=request.cause,
            sent_at=time.perf_counter(),  # (its latency metric: from its arrival here)
            trace=self.route.tracing.context_of(request.trace) if request.trace else None,
        )
        self._host.route(spec, stream_id, handle)
        try:
            result = await asyncio.wait_for(reply.wait(), self._timeout)
        except FencedError as e:
            self.route.refused(stream_id, e)
            return MOVED
        except TimeoutError:
            return encode_error(Timeout(f"stream {stream_id!r} did not answer on {self.node}"))
        except Exception as e:
            return encode_error(e)
        return encode_result(self._store, result)

    def _command_class(self, name: str) -> type | None:
        """The registered command class of a qualified name (the table is rebuilt when a
        name is missing: aggregates may be registered after start)."""
        found = self._classes.get(name)
        if found is None and self._commands is not None:
            self._classes = {
                qualified_name(cls): cls for spec in self._commands for cls in spec.handlers
            }
            found = self._classes.get(name)
        return found

    async def _status(self, msg: Msg) -> None:
        live = self._host.live_streams() if self._host is not None else []
        owned = sorted(self.route.owned) if self.route is not None else []
        answer = {"node": self.node, "shards": owned, "aggregates": len(live)}
        answer["live"] = sorted(live)[:LIVE_SHOWN]
        try:
            await msg.respond(orjson.dumps(answer))
        except Exception as e:
            log.debug("cluster node %s: answering a status request: %r", self.node, e)

    # -- consumers ------------------------------------------------------------------------------

    def eligible(self, lease_name: str) -> bool:
        """Whether this node may take a single-active consumer's lease now: it is the
        lease's rendezvous choice among the live members, or the lease has been free for
        over a ttl (its choice does not take it)."""
        ownership, store = self.ownership, self._store
        if ownership is None or store is None:
            return True
        if choose(lease_name, ownership.members) == self.node:
            return True
        held = [x for x in store.leases(lease_name) if x.name == lease_name and ownership.live(x)]
        if held:
            self._free_since.pop(lease_name, None)
            return False
        since = self._free_since.setdefault(lease_name, time.monotonic())
        return time.monotonic() - since > ownership.ttl
