"""Membership and shard ownership of one node, kept in the journal's leases (see README,
"Cluster"): a node renews `cluster:member:<node>` (its heartbeat) and the leases
`cluster:shard:<n>` of the shards it owns; each shard should be owned by its rendezvous
choice among the live members, so a node takes a shard once it is free and hands over
(after its aggregates passivate) a shard another live node is now the choice for.

The epoch of a shard's lease fences every append its aggregates make, in the transaction
of the append: a node that lost a shard cannot write to it, whatever its clock says.
`Ownership.step` is one round (the `Membership` thread runs one every `ttl / 3`): its
heartbeat and renewals in one statement, a read of the cluster's leases, and the shards it
takes in one more.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from reactor.cluster.identity import ClusterError
from reactor.cluster.shards import MEMBER, SHARD, choose, member_lease, node_of, shard_lease
from reactor.errors import ReactorError
from reactor.store.base import Lease

log = logging.getLogger(__name__)


class Leases(Protocol):
    """The part of a journal ownership uses (an `EventStore`)."""

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None: ...

    def release_lease(self, name: str, owner: str) -> bool: ...

    def leases(self, prefix: str = "") -> list[Lease]: ...


class Owner(Protocol):
    """What a node does as its shards come and go (called on the ownership thread)."""

    def gained(self, shard: int, lease: Lease) -> None:
        """The node holds `shard` at `lease.epoch`: serve its commands here."""

    def lost(self, shard: int) -> None:
        """Another node took `shard` over (this one stalled): stop serving it at once."""

    def drain(self, shards: set[int]) -> set[int]:
        """Other nodes should own `shards`: stop taking their commands, passivate their
        aggregates; those whose aggregates have all stopped (their leases are released
        then)."""


class Ownership:
    """One node's view of the cluster and its own shards (see the module's docstring)."""

    def __init__(
        self, leases: Leases, node: str, owner: str, shards: int, ttl: float, on: Owner
    ) -> None:
        self.store, self.node, self.owner = leases, node, owner
        self.shards, self.ttl, self.on = shards, ttl, on
        self.held: dict[int, Lease] = {}
        self.leaving: set[int] = set()  # held shards being handed over
        self.members: dict[str, float] = {}  # live node -> its lease's expiry (journal clock)
        self.now = 0.0  # the journal's clock, as of the last heartbeat
        self.renewed = time.monotonic()  # when the last heartbeat went through
        self.joined = False

    def join(self) -> bool:
        """Take this node's member lease; False while another live process holds the node
        name (a previous incarnation killed less than `ttl` ago, or a second process
        started with the same name)."""
        lease = self.store.acquire_lease(member_lease(self.node), self.owner, self.ttl)
        self.joined = lease is not None
        return self.joined

    def step(self) -> None:
        """One round: heartbeat, read the members and shard leases, renew, take and hand
        over shards. A journal that does not answer is retried next round; past 2/3 of the
        ttl without a heartbeat the node stops serving its shards (they may expire)."""
        try:
            self._step()
        except ClusterError:
            raise
        except ReactorError as e:
            log.warning("cluster node %s: the journal did not answer: %s", self.node, e)
            if self.held and time.monotonic() - self.renewed > self.ttl * 2 / 3:
                for shard in list(self.held):
                    self._lose(shard)

    def _step(self) -> None:
        me = member_lease(self.node)
        renewed = self._acquire([me, *map(shard_lease, self.held)])  # one round trip
        mine = renewed.get(me)
        if mine is None:
            for shard in list(self.held):
                self._lose(shard)
            raise ClusterError(
                f"node {self.node} lost its membership (it stalled for over {self.ttl:g}s and "
                "another process took its name)"
            )
        self.renewed = time.monotonic()
        self.now = mine.expires - self.ttl
        for shard, old in list(self.held.items()):
            lease = renewed.get(shard_lease(shard))
            if lease is None or lease.epoch != old.epoch:
                self._lose(shard)
            else:
                self.held[shard] = lease
        found = self.store.leases("cluster:")
        self.members = {
            node_of(x.owner): x.expires
            for x in found
            if x.name.startswith(MEMBER) and x.expires > self.now
        }
        self.members[self.node] = mine.expires
        current = {x.name: x for x in found if x.name.startswith(SHARD)}
        free = []
        for shard in range(self.shards):
            wanted = choose(str(shard), self.members) == self.node
            if shard in self.held:
                if not wanted:
                    self.leaving.add(shard)  # (once leaving, handed over even if wanted again)
            elif wanted:
                other = current.get(shard_lease(shard))
                if other is None or other.expires <= self.now or other.owner == self.owner:
                    free.append(shard)
        for shard in sorted(self.on.drain(set(self.leaving)) if self.leaving else ()):
            self.store.release_lease(shard_lease(shard), self.owner)
            del self.held[shard]
            self.leaving.discard(shard)
            log.info("node %s handed shard %d over", self.node, shard)
        if free:
            taken = self._acquire([shard_lease(s) for s in free])
            for shard in free:
                lease = taken.get(shard_lease(shard))
                if lease is not None:
                    self.held[shard] = lease
                    self.on.gained(shard, lease)

    def _acquire(self, names: list[str]) -> dict[str, Lease]:
        """Take or renew the leases `names` (in one statement where the journal can)."""
        many = getattr(self.store, "acquire_leases", None)
        if many is not None:
            granted: dict[str, Lease] = many(names, self.owner, self.ttl)
            return granted
        found = {n: self.store.acquire_lease(n, self.owner, self.ttl) for n in names}
        return {n: lease for n, lease in found.items() if lease is not None}

    def _lose(self, shard: int) -> None:
        del self.held[shard]
        self.leaving.discard(shard)
        log.warning("node %s lost shard %d: its aggregates stop here", self.node, shard)
        self.on.lost(shard)

    def leave(self) -> None:
        """Give up the membership (the others rebalance at their next round); the shards
        stay held until `release`."""
        if self.joined:
            self.store.release_lease(member_lease(self.node), self.owner)
            self.joined = False

    def release(self) -> None:
        """Give up every shard (after their aggregates stopped)."""
        for shard in list(self.held):
            self.store.release_lease(shard_lease(shard), self.owner)
        self.held.clear()
        self.leaving.clear()

    def live(self, lease: Lease) -> bool:
        """Whether `lease` was held as of the last heartbeat (by the journal's clock)."""
        return lease.expires > self.now


class Membership:
    """The thread that runs `Ownership.step` every `ttl / 3` seconds until `halt`."""

    def __init__(self, ownership: Ownership) -> None:
        self.ownership = ownership
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reactor-cluster", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.ownership.step()
            except ClusterError as e:
                log.critical("%s", e)
                return
            except Exception:  # a bug: its leases expire unless the next round goes through
                log.exception("cluster node %s: a round of ownership failed", self.ownership.node)
            self._stopped.wait(self.ownership.ttl / 3)

    def halt(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)
