"""Which shard a stream belongs to, and which live node should own a shard: stable hashes
(the same in every process and Python version, unlike `hash()`), and rendezvous hashing
so that a node joining or leaving moves only the shards it gains or held (~1/N of them).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Collection

MEMBER = "cluster:member:"  # + node: a live node renews it (its heartbeat)
SHARD = "cluster:shard:"  # + shard number: held by the shard's owner, its epoch fences writes


def shard_of(stream_id: str, shards: int) -> int:
    """The shard of `stream_id` among `shards` (CRC-32 of its UTF-8 bytes, mod `shards`)."""
    return zlib.crc32(stream_id.encode()) % shards


def score(key: str, node: str) -> int:
    """The rendezvous weight of `node` for `key`."""
    digest = hashlib.blake2b(f"{key}\x00{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose(key: str, nodes: Collection[str]) -> str | None:
    """The node that should hold `key` among `nodes` (highest rendezvous weight; ties by
    name), None when there is none."""
    return max(nodes, key=lambda n: (score(key, n), n), default=None)


def shard_lease(shard: int) -> str:
    return f"{SHARD}{shard}"


def member_lease(node: str) -> str:
    return f"{MEMBER}{node}"


def node_of(owner: str) -> str:
    """The node name of a lease owner `<node>#<incarnation>`."""
    return owner.split("#", 1)[0]
