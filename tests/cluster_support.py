"""Shared helpers of the cluster tests: a skip unless PostgreSQL and NATS answer (except
under CI=true), nodes of one cluster on a fresh schema, and keys that land on a node."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from reactor import Runtime
from reactor.cluster.shards import shard_of
from tests.helpers import wait_for

NATS = "nats://127.0.0.1:4222"
TTL = 1.0  # lease ttl of the test nodes: a dead node's shards move within ~1.5 s


def _up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


needs_servers = pytest.mark.skipif(
    os.environ.get("CI") != "true" and not (_up(5432) and _up(4222)),
    reason="needs PostgreSQL on 127.0.0.1:5432 and NATS on 127.0.0.1:4222 (CI=true runs them)",
)


def node(journal: str, name: str, **options: object) -> Runtime:
    """A started cluster node on `journal`."""
    options = {"lease_ttl": TTL, "timeout": 15.0, **options}
    return Runtime(journal, cluster=NATS, node=name, **options).start()  # type: ignore[arg-type]


def owners(rt: Runtime) -> dict[int, str | None]:
    status = rt.cluster()
    assert status is not None
    return dict(status.owners)


def settled(rt: Runtime, nodes: set[str], timeout: float = 20.0) -> dict[int, str | None]:
    """Wait until every shard has an owner and each of `nodes` owns some; the owners."""
    found: dict[int, str | None] = {}

    def done() -> bool:
        found.update(owners(rt))
        return None not in found.values() and set(found.values()) == nodes

    assert wait_for(done, timeout), f"shards not settled over {sorted(nodes)}: {found}"
    return found


def key_on(shards: dict[int, str | None], name: str, aggregate: str = "Account") -> Iterator[str]:
    """Keys of `aggregate` whose stream's shard `name` owns."""
    i = 0
    while True:
        key = f"k{i}"
        if shards[shard_of(f"{aggregate}-{key}", len(shards))] == name:
            yield key
        i += 1
