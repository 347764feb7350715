"""Cluster sharding: the aggregates of one service spread over the nodes that share its
PostgreSQL journal, each live on exactly one (`Runtime(url, cluster="nats://...",
node="n1", shards=64)`).

`config` checks the options, `shards` hashes streams to shards and shards to nodes,
`identity` is the cluster's record in the journal, `ownership` keeps membership and shard
leases, `route` takes each command to its shard's owner, `wire` encodes what travels,
`node` ties them together, `status` shows it. `node`, `route` and `status` need nats-py
(the extra `reactor-actors[nats]`) and are imported only when a node starts.
"""

from reactor.cluster.config import ClusterConfig, cluster_config
from reactor.cluster.identity import ClusterError
from reactor.cluster.status import ClusterStatus, Member

__all__ = ["ClusterConfig", "ClusterError", "ClusterStatus", "Member", "cluster_config"]
