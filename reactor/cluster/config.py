"""`ClusterConfig`: a runtime's place in a cluster (the NATS URL its nodes talk over, its
node name, the number of shards), checked when the Runtime is made.

`Runtime(url, cluster="nats://host:4222", node="n1", shards=64)`: the node name defaults to
`<host name>-<pid>`; the shard count is fixed per journal (recorded at the first start).
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
from urllib.parse import urlsplit

import attrs

NODE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a NATS subject token, and a readable lease name
MAX_SHARDS = 4096
SCHEMES = ("nats", "tls")


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """This runtime's node: its `node` name, the NATS `url` as given and its `servers`,
    and the number of `shards` the aggregates are spread over."""

    url: str
    servers: tuple[str, ...]
    node: str
    shards: int = 64


def default_node() -> str:
    """`<host name>-<pid>`, with what a node name may not hold replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{socket.gethostname()}-{os.getpid()}")[-64:]


def cluster_config(cluster: str | None, node: str | None, shards: int) -> ClusterConfig | None:
    """The configuration of `Runtime(cluster=..., node=..., shards=...)`, or None without a
    cluster. Raises `ValueError` naming the option for a wrong value."""
    if cluster is None:
        if node is not None:
            raise ValueError(
                f"Runtime(node={node!r}) names a node of a cluster: give "
                "cluster='nats://host:4222' too"
            )
        return None
    if node is not None and (not isinstance(node, str) or not NODE.fullmatch(node)):
        raise ValueError(
            f"Runtime(node=...) must be 1 to 64 letters, digits, '_' or '-' (it names the "
            f"node's leases and NATS subjects), got {node!r}"
        )
    if type(shards) is not int or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(
            f"Runtime(shards=...) must be an int from 1 to {MAX_SHARDS}, got {shards!r}"
        )
    if importlib.util.find_spec("nats") is None:
        raise ValueError("Runtime(cluster=...) needs nats-py: pip install 'reactor-actors[nats]'")
    return ClusterConfig(
        url=cluster, servers=servers_of(cluster), node=node or default_node(), shards=shards
    )


def servers_of(cluster: object) -> tuple[str, ...]:
    """The server URLs of a NATS URL (several separated by commas), without their path;
    `ValueError` for one that is not a NATS URL."""
    if not isinstance(cluster, str):
        raise ValueError(f"Runtime(cluster=...) must be a NATS URL string, got {cluster!r}")
    servers = []
    for server in cluster.split(","):
        try:
            parts = urlsplit(server.strip())
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError as e:
            raise ValueError(
                f"Runtime(cluster={cluster!r}): {server!r} is not a URL: {e}"
            ) from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(
                f"Runtime(cluster={cluster!r}): {server.strip()!r} is not a NATS URL; write it "
                "as nats://host:4222 (or tls://host:4222; several separated by commas)"
            )
        servers.append(parts._replace(path="", query="", fragment="").geturl())
    return tuple(servers)
