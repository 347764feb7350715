"""`reactor cluster status`: the nodes of the cluster sharing a journal, their last
heartbeat, the shards each owns and its live aggregates (asked over NATS)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from reactor.cli.common import Parents, on_store, print_table, when
from reactor.cluster.identity import recorded
from reactor.cluster.status import ClusterStatus, cluster_status
from reactor.errors import ReactorError
from reactor.store import Storage

NATS_WAIT = 2.0  # seconds to reach NATS before showing what the journal says alone


def add_commands(commands: Any, parents: Parents) -> None:
    cluster = commands.add_parser("cluster", help="the nodes sharding a journal's aggregates")
    sub = cluster.add_subparsers(title="cluster commands")
    status = sub.add_parser(
        "status", parents=[parents.store], help="members, shard owners, live aggregates"
    )
    status.add_argument(
        "--nats", metavar="URL", help="where to ask the nodes (default: the URL they recorded)"
    )
    status.add_argument("--json", action="store_true", help="print it as one JSON object")
    status.set_defaults(run=on_store(_status))


def _status(storage: Storage, args: argparse.Namespace) -> None:
    found = recorded(storage)
    if found is None:
        raise ReactorError(
            f"{storage.url}: no cluster is recorded here (no node started with "
            "Runtime(..., cluster='nats://...'))"
        )
    shown = cluster_status(storage, found, None)
    if any(m.alive for m in shown.members):
        shown = _asked(storage, found, args.nats or found.nats) or shown
    if args.json:
        print(orjson.dumps(shown.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    _print(shown)


def _asked(storage: Storage, found: Any, url: str) -> ClusterStatus | None:
    """The status with each live node's aggregates, or None if NATS is out of reach."""
    try:
        from reactor.bus.connection import Connection
        from reactor.cluster.config import servers_of
    except ImportError:  # no nats-py: what the journal says only
        return None
    try:
        conn = Connection(servers_of(url), "cli")
    except ValueError as e:
        raise ReactorError(f"--nats: {e}") from None
    try:
        return cluster_status(storage, found, conn) if conn.start(NATS_WAIT) else None
    finally:
        conn.stop(NATS_WAIT)


def _print(status: ClusterStatus) -> None:
    print(f"cluster {status.cluster}: {status.shards} shards")
    rows = [
        (
            m.node,
            "yes" if m.alive else "no",
            when(m.heartbeat),
            str(len(m.shards)),
            "?" if m.aggregates is None else str(m.aggregates),
        )
        for m in status.members
    ]
    print_table(("node", "alive", "heartbeat", "shards", "aggregates"), rows)
    free = [str(s) for s, owner in sorted(status.owners.items()) if owner is None]
    print(f"shards with no owner: {', '.join(free) if free else 'none'}")
