"""`ClusterStatus`: what `Runtime.cluster()` and `reactor cluster status` show: the members
and their last heartbeat (from the journal's leases), the owner of each shard, and each
node's live aggregates (asked of each node over NATS, with a short timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from reactor.cluster.identity import Identity, Journal
from reactor.cluster.shards import MEMBER, SHARD, node_of
from reactor.store.base import Lease

if TYPE_CHECKING:
    from reactor.bus.connection import Connection

ASK_TIMEOUT = 1.0  # seconds a node has to answer a status request
GONE_SHOWN = 300.0  # seconds a member that stopped renewing is still shown (not alive)


@attrs.frozen(kw_only=True)
class Member:
    """A node of the cluster: `alive` while its heartbeat lease has not expired (by this
    process's clock), `heartbeat` its last one (seconds since the epoch), the shards it
    owns, and (None if it did not answer) its live aggregates: how many, and the first
    1000 of their streams."""

    node: str
    alive: bool
    heartbeat: float
    shards: tuple[int, ...] = ()
    aggregates: int | None = None
    live: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ClusterStatus:
    """A cluster as seen now: its id, shard count, members (by name) and shard owners
    (None: no live owner; commands for it wait until a node takes it)."""

    cluster: str
    shards: int
    members: tuple[Member, ...]
    owners: Mapping[int, str | None]

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "shards": self.shards,
            "members": [attrs.asdict(m) for m in self.members],
            "owners": {str(k): v for k, v in self.owners.items()},
        }


def _heartbeat(lease: Lease) -> float:
    """When the owner last renewed `lease` (its owner is `<node>#<incarnation>#<ttl>`)."""
    ttl = lease.owner.rsplit("#", 1)[-1]
    try:
        return lease.expires - float(ttl)
    except ValueError:
        return lease.expires


def cluster_status(store: Journal, found: Identity, conn: Connection | None) -> ClusterStatus:
    """The status of the cluster recorded in `store`; live aggregates are asked over
    `conn` (left out without one, or for a node that does not answer in time)."""
    now = time.time()
    leases = store.leases("cluster:")
    members = {
        node_of(x.owner): x
        for x in leases
        if x.name.startswith(MEMBER) and x.expires > now - GONE_SHOWN
    }
    alive = sorted(n for n, x in members.items() if x.expires > now)
    owners: dict[int, str | None] = dict.fromkeys(range(found.shards))
    for x in leases:
        tail = x.name[len(SHARD) :]
        if x.name.startswith(SHARD) and tail.isdigit() and x.expires > now:
            owners[int(tail)] = node_of(x.owner)
    answers: dict[str, dict[str, Any]] = {}
    if conn is not None and alive and conn.up.is_set():
        root = f"reactor-cluster.{found.id}"
        answers = conn.call(_ask_all(conn, root, alive), ASK_TIMEOUT * 3)
    shown = []
    for node, lease in sorted(members.items()):
        said = answers.get(node)
        shown.append(
            Member(
                node=node,
                alive=node in alive,
                heartbeat=_heartbeat(lease),
                shards=tuple(s for s, o in owners.items() if o == node),
                aggregates=None if said is None else int(said["aggregates"]),
                live=() if said is None else tuple(said["live"]),
            )
        )
    return ClusterStatus(cluster=found.id, shards=found.shards, members=tuple(shown), owners=owners)


async def _ask_all(conn: Connection, root: str, nodes: list[str]) -> dict[str, dict[str, Any]]:
    async def ask(node: str) -> tuple[str, dict[str, Any] | None]:
        try:
            msg = await conn.client.request(f"{root}.node.{node}", b"", timeout=ASK_TIMEOUT)
            return node, orjson.loads(msg.data)
        except Exception:  # it did not answer in time (or is gone): shown without
            return node, None

    found = await asyncio.gather(*(ask(n) for n in nodes))
    return {node: said for node, said in found if said is not None}
