"""`ClusterRoute`: the command route of a cluster node. A command for a shard this node
owns goes to its aggregate host (no network hop), its appends fenced by the shard's lease;
any other goes over NATS request/reply to the subject of its shard, which only the owner
subscribes to. With no owner yet (a handover, a node that died), no answer within the
attempt's time (the owner died mid-flight: a lease ttl, doubling at each attempt so that
a slow handler gets its answer out), or an owner that lost the shard meanwhile ("moved", a
fenced append), it is sent again with the same command id, so the journal's command
records make it happen once, until the runtime's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from reactor.actors.host import AggregateHost, Placement
from reactor.actors.instruments import NO_TRACING, NoTracing
from reactor.actors.messages import Handle, NoReply
from reactor.cluster.shards import shard_lease, shard_of
from reactor.cluster.wire import decode_answer, encode_request
from reactor.errors import FencedError, RuntimeStopped, Timeout
from reactor.events import CommandResult
from reactor.specs import AggregateType
from reactor.store.base import Fence
from reactor.store.event_store import EventStore
from reactor.tracing import Tracing

if TYPE_CHECKING:
    from reactor.bus.connection import Connection

log = logging.getLogger(__name__)
PAUSE = (0.005, 0.25)  # seconds between attempts with no owner: first, at most (doubling)


class Rerouting(NoReply):
    """The reply slot of a command taken the local path: a fenced append (the node lost
    the shard since) sends the command on again instead of failing it. (A `NoReply` only
    to fit `Handle.reply`: it answers the command's own reply slot.)"""

    __slots__ = ("deadline", "handle", "route", "spec", "stream_id")

    def __init__(
        self,
        route: ClusterRoute,
        spec: AggregateType,
        stream_id: str,
        handle: Handle,
        deadline: float,
    ) -> None:
        super().__init__(handle.command)
        self.route, self.spec, self.stream_id, self.handle = route, spec, stream_id, handle
        self.deadline = deadline

    def set(self, value: Any) -> None:
        self.handle.reply.set(value)

    def fail(self, error: BaseException) -> None:
        if isinstance(error, FencedError) and time.monotonic() < self.deadline:
            self.route.refused(self.stream_id, error)
            try:
                self.route.send(self.spec, self.stream_id, self.handle, self.deadline)
            except Exception as e:  # it cannot travel (a field NATS cannot carry)
                self.handle.reply.fail(e)
        else:
            self.handle.reply.fail(error)

    def done(self) -> bool:
        return self.handle.reply.done()


class ClusterRoute:
    """Routes each command to its shard's owner (see the module's docstring)."""

    def __init__(
        self,
        *,
        host: AggregateHost,
        store: EventStore,
        conn: Connection,
        shards: int,
        subject: Callable[[int], str],
        timeout: float,
        attempt: float,
        fenced: Callable[[int], None],
        tracing: Tracing | NoTracing = NO_TRACING,
    ) -> None:
        self.host, self.store, self.conn = host, store, conn
        self.shards, self.subject = shards, subject
        self.timeout, self.attempt = timeout, attempt
        self.fenced, self.tracing = fenced, tracing
        self.owned: dict[int, Placement] = {}  # the shards served here, and their fence
        self.inflight = 0  # commands on their way to another node (under `lock`)
        self.lock = threading.Lock()
        self.remote = self.local = 0  # commands sent each way so far

    def deliver(self, spec: AggregateType, stream_id: str, handle: Handle) -> None:
        self.send(spec, stream_id, handle, time.monotonic() + self.timeout)

    def send(self, spec: AggregateType, stream_id: str, handle: Handle, deadline: float) -> None:
        """Hand the command to the local host if this node owns its shard, else to NATS."""
        shard = shard_of(stream_id, self.shards)
        if shard in self.owned:
            self.local += 1
            reply = Rerouting(self, spec, stream_id, handle, deadline)
            self.host.route(spec, stream_id, handle._replace(reply=reply))
            return
        # (raises at the caller: nothing sent) A command under an id the runtime made
        # reaches its first owner "fresh": no look-up of its id, only its record.
        payload = encode_request(self.store, handle, not handle.given_id, self._trace(handle))
        with self.lock:
            self.remote += 1
            self.inflight += 1
        self.conn.spawn(self._remote(spec, stream_id, handle, payload, deadline))

    def _trace(self, handle: Handle) -> Mapping[str, str]:
        """The context the command was sent from, as text for the other node."""
        return {} if handle.trace is None else self.tracing.carrier_of(handle.trace)

    def refused(self, stream_id: str, error: FencedError) -> None:
        """An append of `stream_id`'s actor was fenced: that actor goes (its fence is
        stale), and the shard too if its fence is the one this node holds (another node
        took the shard over)."""
        shard = shard_of(stream_id, self.shards)
        placed = self.owned.get(shard)
        if placed is not None and placed.fence.epoch == error.epoch:
            self.fenced(shard)  # its actors go with it
        else:
            self.host.passivate(lambda s: s == stream_id)

    def placement(self, stream_id: str) -> Placement:
        """The placement of a new actor of `stream_id` (a fence no lease has, should the
        shard be gone already: its first append is refused and the command sent on)."""
        shard = shard_of(stream_id, self.shards)
        found = self.owned.get(shard)
        return found if found is not None else Placement(Fence(shard_lease(shard), -1), {})

    async def _remote(
        self, spec: AggregateType, stream_id: str, handle: Handle, payload: bytes, deadline: float
    ) -> None:
        try:
            answer = await self._ask(stream_id, handle, payload, deadline)
        except asyncio.CancelledError:
            handle.reply.fail(RuntimeStopped(f"the runtime stopped before {stream_id} answered"))
            raise
        finally:
            with self.lock:
                self.inflight -= 1
        if isinstance(answer, _Local):
            self.send(spec, stream_id, handle, deadline)
        elif isinstance(answer, CommandResult):
            handle.reply.set(answer)
        else:
            handle.reply.fail(answer)

    async def _ask(
        self, stream_id: str, handle: Handle, payload: bytes, deadline: float
    ) -> CommandResult | BaseException | _Local:
        """Ask the shard's owner until it answers (`payload` first; then, as the command
        may have been handled, one that has its id looked up)."""
        shard = shard_of(stream_id, self.shards)
        subject, pause, attempt = self.subject(shard), PAUSE[0], self.attempt
        client = self.conn.client
        while True:
            left = deadline - time.monotonic()
            if shard in self.owned:  # taken over by this node meanwhile
                return _Local()
            if left <= 0:
                return Timeout(
                    f"no node of the cluster answered for stream {stream_id!r} (shard {shard}) "
                    f"within {self.timeout:g}s; it may still complete: send it again with the "
                    "same command_id to learn its outcome (nothing is stored twice)"
                )
            try:
                msg = await client.request(subject, payload, timeout=min(left, attempt))
            except NoRespondersError:
                answer = None  # no owner now: a handover, or the owner died
            except (NatsTimeout, ConnectionClosedError, OSError) as e:
                log.debug("shard %d: %r; asking again", shard, e)
                attempt *= 2  # a slow handler gets its answer out on a later attempt
                answer = None
            else:
                answer = decode_answer(self.store, msg.data)
            if answer is not None:
                return answer
            if not handle.given_id:
                payload = encode_request(self.store, handle, False, self._trace(handle))
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, PAUSE[1])


class _Local:
    """The shard came here while the command was on its way elsewhere."""
