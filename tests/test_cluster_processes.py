"""Cluster nodes in processes of their own on PostgreSQL and NATS: three nodes send
commands for shared keys, one is killed with kill -9 mid-load, one joins mid-load and one
stalls (SIGSTOP) past its leases, then goes on;
the dead node's shards move within the lease bound and the new node gets some;
afterwards every acknowledged command is stored once, no stream has a gap, the balances
add up, and no aggregate was live on two nodes at once (each event records the node and
the shard lease's epoch it was written under: along a stream the epochs never go back,
and each epoch of a shard belongs to one node)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import psycopg
import pytest

from reactor import Rejected, Runtime
from tests.bank import Account, Balances, Withdraw
from tests.cluster_support import needs_servers
from tests.helpers import wait_for
from tests.pg import SERVER, fresh_schema, url

pytestmark = needs_servers
KEYS = 6
SHARDS = 64
TTL = 1.0  # the nodes' lease_ttl


class Node:
    """A node process and the lines it printed so far."""

    def __init__(self, journal: str, name: str, count: int) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster_node", journal, name, str(KEYS), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def said(self, prefix: str) -> list[str]:
        return [line for line in list(self.lines) if line.startswith(prefix)]

    def acked(self) -> set[str]:
        return {line.split()[1] for line in self.said("ack ")}

    def finish(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(60) == 0
        self._reader.join(10)

    def stall(self, seconds: float) -> None:
        """Stop the process (SIGSTOP) for `seconds`, then let it go on (SIGCONT)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        time.sleep(seconds)  # the stall itself is what is tested: not a wait for a condition
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


def _run(journal: str, count: int) -> None:
    nodes = [Node(journal, f"n{i}", count) for i in (1, 2, 3)]
    try:
        assert wait_for(lambda: all(n.said("ready") for n in nodes), 60)
        n1, n2, n3 = nodes
        assert wait_for(lambda: len(n2.acked()) >= count // 3, 60)
        assert _owners(journal)["n2"] > 0
        n2.kill()
        killed = time.monotonic()
        assert wait_for(lambda: set(_owners(journal)) == {"n1", "n3"}, 30)
        took = time.monotonic() - killed
        print(f"n2 killed: its shards served by n1 and n3 after {took:.2f}s")
        assert took < 10.0, f"n2's shards moved in {took:.1f}s (lease ttl {TTL:g}s)"
        assert wait_for(lambda: len(n1.acked()) >= count // 2, 60)
        n4 = Node(journal, "n4", count)
        nodes.append(n4)
        survivors = [n1, n3, n4]
        assert wait_for(lambda: _owners(journal).get("n4", 0) > 0, 30)
        n3.stall(3 * TTL)  # its leases expire and move while it sleeps; then it writes on
        assert wait_for(lambda: all(n.said("done") for n in survivors), 120)
        for n in survivors:
            assert not n.said("err "), n.said("err ")
            n.finish()
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.kill()
    acked = set().union(*(n.acked() for n in nodes))
    assert len(acked) >= 3 * count + len(n2.acked())
    _check_journal(journal, acked)


def _owners(journal: str) -> dict[str, int]:
    """How many shards each node holding some has a live lease of (those with no live
    owner are counted under "")."""
    schema = journal.rsplit("schema=", 1)[1]
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT split_part(owner, '#', 1) FROM \"{schema}\".leases "
            "WHERE name LIKE 'cluster:shard:%%' AND expires > extract(epoch FROM clock_timestamp())"
        ).fetchall()
    found = Counter(node for (node,) in rows)
    if sum(found.values()) < SHARDS:
        found[""] = SHARDS - sum(found.values())
    return dict(found)


def _check_journal(journal: str, acked: set[str]) -> None:
    """Every acknowledged command stored once, no gap, one node per shard epoch, epochs
    never back along a stream; each account's balance (its projection over the whole
    journal, and its aggregate rebuilt) is the count of the deposits stored for it."""
    with Runtime(journal) as rt:
        rt.register(Account, Balances)
        stored: Counter[str] = Counter()
        epochs: dict[tuple[int, int], set[str]] = defaultdict(set)
        total = 0
        balances = rt.query(Balances, after=rt.store.last_position(), timeout=30)
        for k in range(KEYS):
            stream = rt.read_stream(f"Account-k{k}")
            assert balances.balance(f"k{k}") == len(stream)
            with pytest.raises(Rejected, match=f"balance {len(stream)},"):
                rt.send(Withdraw(f"k{k}", len(stream) + 1))
            assert [e.seq for e in stream] == list(range(1, len(stream) + 1)), "a gap"
            last = 0
            for env in stream:
                stored[env.correlation_id or ""] += 1
                where = env.metadata["cluster"]
                assert where["epoch"] >= last, f"{env.stream_id} seq {env.seq}: epoch went back"
                last = where["epoch"]
                epochs[(where["shard"], where["epoch"])].add(where["node"])
                total += env.event.amount
        assert not [c for c, n in stored.items() if n > 1], "a command stored twice"
        assert acked <= set(stored), f"acknowledged, not stored: {sorted(acked - set(stored))}"
        assert total == sum(stored.values())
        assert all(len(nodes) == 1 for nodes in epochs.values()), epochs


def test_a_node_killed_and_one_added_mid_load_lose_nothing(journal: str) -> None:
    _run(journal, 150)


@pytest.mark.slow
def test_a_node_killed_and_one_added_under_a_longer_load(journal: str) -> None:
    _run(journal, 1500)
