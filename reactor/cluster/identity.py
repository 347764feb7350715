"""The cluster's record in its journal: an id (which scopes its NATS subjects, so that
clusters on separate journals never hear each other), the shard count, fixed at the first
start, and the NATS URL (for `reactor cluster status`).

Kept as the owner of the lease `cluster:config`, taken once for ten years: taking a lease is
atomic, so of nodes starting together on a new journal exactly one writes the record.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import attrs
import orjson

from reactor.errors import ReactorError
from reactor.store.base import Lease

CONFIG = "cluster:config"
FOREVER = 10 * 365 * 86400.0  # seconds


class ClusterError(ReactorError, ValueError):
    """A node cannot join its cluster as configured (a shard count that differs from the
    journal's, a node name that is live already, a journal nodes cannot share)."""


class Journal(Protocol):
    """The leases of a journal (an `EventStore`, or a `Storage` for the CLI)."""

    @property
    def url(self) -> str: ...

    def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None: ...

    def leases(self, prefix: str = "") -> list[Lease]: ...


@attrs.frozen(kw_only=True)
class Identity:
    """What the journal records of its cluster."""

    id: str
    shards: int
    nats: str


def recorded(store: Journal) -> Identity | None:
    """The cluster recorded in the journal, or None (no node has started on it)."""
    lease = next((x for x in store.leases(CONFIG) if x.name == CONFIG), None)
    if lease is None:
        return None
    try:
        return Identity(**orjson.loads(lease.owner))
    except (orjson.JSONDecodeError, TypeError) as e:
        raise ClusterError(f"{store.url}: the lease {CONFIG} holds {lease.owner!r}: {e}") from e


def identity(store: Journal, shards: int, nats: str) -> Identity:
    """The journal's cluster, recorded now if this is its first node; `ClusterError` if it
    was recorded with another shard count."""
    mine = Identity(id=uuid.uuid4().hex[:12], shards=shards, nats=nats)
    if recorded(store) is None:
        store.acquire_lease(CONFIG, orjson.dumps(attrs.asdict(mine)).decode(), FOREVER)
    found = recorded(store)
    if found is None:
        raise ClusterError(f"{store.url}: the cluster record {CONFIG} could not be written")
    if found.shards != shards:
        raise ClusterError(
            f"Runtime(shards={shards}) but the cluster of {store.url} was started with "
            f"shards={found.shards}: the shard count is fixed per journal; start this node "
            f"with shards={found.shards}"
        )
    return found
