"""Shard ownership under random schedules of nodes joining, leaving, being killed and
stalling, on a lease table with a clock the test moves: never two owners of a shard at one
epoch (so a stale owner's writes are always fenced), and once the schedule settles every
shard is owned once, by its rendezvous choice among the live nodes."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reactor.cluster.ownership import Ownership
from reactor.cluster.shards import choose
from reactor.store.base import Lease

SHARDS = 8
TTL = 3.0
NAMES = ("n0", "n1", "n2", "n3")


class LeaseTable:
    """The leases of a journal (the semantics of `Storage.acquire_lease`), on a clock the
    test sets."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.rows: dict[str, Lease] = {}

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        old = self.rows.get(name)
        if old is None:
            epoch = 1
        elif old.owner == owner and old.expires > self.now:
            epoch = old.epoch
        elif old.expires <= self.now:
            epoch = old.epoch + 1
        else:
            return None
        self.rows[name] = lease = Lease(name=name, owner=owner, epoch=epoch, expires=self.now + ttl)
        return lease

    def release_lease(self, name: str, owner: str) -> bool:
        old = self.rows.get(name)
        if old is None or old.owner != owner or old.expires <= self.now:
            return False
        self.rows[name] = attrs.evolve(old, expires=self.now)
        return True

    def leases(self, prefix: str = "") -> list[Lease]:
        return [v for k, v in sorted(self.rows.items()) if k.startswith(prefix)]


class Node:
    """A node's side of ownership: the shards it serves; its aggregates take one more
    round to passivate when it hands a shard over."""

    def __init__(self) -> None:
        self.serving: dict[int, int] = {}  # shard -> epoch
        self.draining: set[int] = set()

    def gained(self, shard: int, lease: Lease) -> None:
        self.serving[shard] = lease.epoch

    def lost(self, shard: int) -> None:
        self.serving.pop(shard, None)

    def drain(self, shards: set[int]) -> set[int]:
        done = shards & self.draining
        for shard in shards:
            self.serving.pop(shard, None)
        self.draining = (self.draining | shards) - done
        return done


class Schedules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = LeaseTable()
        self.nodes: dict[str, tuple[Ownership, Node]] = {}  # running (or stalled) nodes
        self.incarnations = 0
        self.epoch_owner: dict[tuple[int, int], str] = {}

    @precondition(lambda self: len(self.nodes) < len(NAMES))
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.nodes]))
        self.incarnations += 1
        node = Node()
        ownership = Ownership(self.table, name, f"{name}#{self.incarnations}#3", SHARDS, TTL, node)
        if ownership.join():
            self.nodes[name] = (ownership, node)

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.nodes)))
        self.nodes[name][0].step()

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        """A clean stop: membership given up, then (its aggregates stopped) the shards."""
        ownership, _ = self.nodes.pop(data.draw(st.sampled_from(sorted(self.nodes))))
        ownership.leave()
        ownership.release()

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        """kill -9: it renews nothing any more; its leases expire."""
        del self.nodes[data.draw(st.sampled_from(sorted(self.nodes)))]

    @rule(seconds=st.floats(0.1, 2 * TTL))
    def time_passes(self, seconds: float) -> None:
        self.table.now += seconds

    @invariant()
    def one_owner_per_epoch(self) -> None:
        for ownership, node in self.nodes.values():
            for shard, epoch in node.serving.items():
                assert ownership.held[shard].epoch == epoch and shard not in ownership.leaving
                first = self.epoch_owner.setdefault((shard, epoch), ownership.owner)
                assert first == ownership.owner, f"shard {shard} epoch {epoch}: two owners"

    def teardown(self) -> None:
        """Settle: every live node steps each ttl/3 for a while; then every shard has one
        owner, its rendezvous choice."""
        if not self.nodes:
            return
        for _ in range(12):
            for name in sorted(self.nodes):
                self.nodes[name][0].step()
            self.one_owner_per_epoch()
            self.table.now += TTL / 3
        live = set(self.nodes)
        for shard in range(SHARDS):
            serving = [n for n, (_, node) in self.nodes.items() if shard in node.serving]
            assert serving == [choose(str(shard), live)], f"shard {shard}: {serving}"


TestSchedules = Schedules.TestCase
