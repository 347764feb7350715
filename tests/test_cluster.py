"""Two cluster nodes in this process on a PostgreSQL journal and NATS: a command sent on
either node is handled by its shard's owner (locally with no hop when it is this node),
errors come back with their type, a repeated command id is handled once, shards rebalance
as nodes join and leave, and a node whose shard was taken over cannot write to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import attrs
import orjson
import psycopg
import pytest

from reactor import (
    Aggregate,
    ConcurrencyError,
    ReactorError,
    Rejected,
    Runtime,
    Timeout,
    handles,
)
from reactor.cli import main
from reactor.cluster import ClusterError
from reactor.cluster.shards import shard_lease, shard_of
from tests.bank import Account, Deposit, Explode, Open, Withdraw
from tests.cluster_support import NATS, key_on, needs_servers, node, settled
from tests.helpers import wait_for
from tests.pg import SERVER, fresh_schema, url

pytestmark = needs_servers


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


@pytest.fixture
def pair(journal: str) -> Iterator[tuple[Runtime, Runtime]]:
    a = node(journal, "a")
    b = node(journal, "b")
    try:
        a.register(Account, Gate)
        b.register(Account, Gate)
        yield a, b
    finally:
        b.stop()
        a.stop()


def _where(rt: Runtime, stream: str) -> list[str]:
    return [env.metadata["cluster"]["node"] for env in rt.read_stream(stream)]


def test_a_command_is_handled_by_its_shards_owner(pair: tuple[Runtime, Runtime]) -> None:
    """Sent on a (by send, submit or send_async), a command for one of b's shards is
    handled by b, and the other way round; a command for a shard of the sending node takes
    the local path."""
    a, b = pair
    shards = settled(a, {"a", "b"})
    on_b, on_a = next(key_on(shards, "b")), next(key_on(shards, "a"))
    result = a.send(Deposit(on_b, 5), command_id="to-b")
    assert result.version == 1 and result.events[0].event.amount == 5
    assert result.events[0].metadata["cluster"]["node"] == "b"
    b.send(Deposit(on_a, 7))
    a.send(Deposit(on_a, 1))
    assert a.submit(Deposit(on_b, 1)).get(10).version == 2
    assert asyncio.run(a.send_async(Deposit(on_b, 1))).version == 3
    assert _where(a, f"Account-{on_b}") == ["b", "b", "b"]
    assert _where(b, f"Account-{on_a}") == ["a", "a"]
    route = a._cluster.route  # type: ignore[union-attr]
    assert route is not None and route.local >= 1 and route.remote >= 1


def test_errors_come_back_with_their_type(pair: tuple[Runtime, Runtime]) -> None:
    """Rejected, the handler's own error (by name and message), a ConcurrencyError with
    its fields and a Timeout reach the sender as if handled in its process; a command the
    owner does not know is an error naming the fix."""
    a, _ = pair
    shards = settled(a, {"a", "b"})
    key = next(key_on(shards, "b"))
    a.send(Open(key))
    with pytest.raises(Rejected, match="already open"):
        a.send(Open(key))
    with pytest.raises(Rejected, match="insufficient funds"):
        a.send(Withdraw(key, 10))
    with pytest.raises(ZeroDivisionError, match="a bug in the handler"):
        a.send(Explode(key))
    gate = next(key_on(shards, "b", "Gate"))
    with pytest.raises(ConcurrencyError) as raised:
        a.send(Conflict(gate))
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == ("s", 1, 2)
    with pytest.raises(Timeout):
        a.send(Slow(gate), timeout=0.3)
    a.register(Lonely)
    with pytest.raises(ReactorError, match="no aggregate registered on this node"):
        a.send(Ping(next(key_on(shards, "b", "Lonely"))))


@attrs.frozen
class Conflict:
    gate_id: str


@attrs.frozen
class Slow:
    gate_id: str


@attrs.frozen
class Ping:
    lonely_id: str


class Lonely(Aggregate, key="lonely_id"):
    """Registered on one node only."""

    @handles(Ping)
    def ping(self, cmd: Ping) -> None:
        return None


class Gate(Aggregate, key="gate_id"):
    """Handlers that raise a ConcurrencyError of their own, or take a while."""

    @handles(Conflict)
    def conflict(self, cmd: Conflict) -> None:
        raise ConcurrencyError("s", 1, 2)

    @handles(Slow)
    def slow(self, cmd: Slow) -> None:
        time.sleep(1.0)


def test_a_repeated_command_id_is_handled_once_on_any_node(pair: tuple[Runtime, Runtime]) -> None:
    """The same command id sent on both nodes stores its events once; both get the first
    result."""
    a, b = pair
    shards = settled(a, {"a", "b"})
    for owner in ("a", "b"):
        key = next(key_on(shards, owner))
        first = a.send(Deposit(key, 3), command_id=f"once-{owner}")
        again = b.send(Deposit(key, 3), command_id=f"once-{owner}")
        assert (again.version, again.position) == (first.version, first.position)
        assert len(a.read_stream(f"Account-{key}")) == 1


def test_shards_rebalance_as_nodes_join_and_leave(journal: str) -> None:
    """A lone node owns every shard; a second one gets about half of them; when it stops,
    its shards come back; commands go through all along."""
    with node(journal, "a", shards=16) as a:
        a.register(Account)
        assert set(settled(a, {"a"}).values()) == {"a"}
        a.send(Deposit("x", 1))
        with node(journal, "b", shards=16) as b:
            b.register(Account)
            shards = settled(a, {"a", "b"})
            assert 2 <= list(shards.values()).count("b") <= 14
            for i in range(20):
                (a if i % 2 else b).send(Deposit(f"k{i % 5}", 1))
        assert set(settled(a, {"a"}).values()) == {"a"}
        a.send(Deposit("x", 1))
        assert sum(len(a.read_stream(f"Account-k{i}")) for i in range(5)) == 20


def test_a_node_that_lost_its_shard_cannot_write_to_it(journal: str) -> None:
    """Once another owner took a shard's lease over, the old owner's appends to it are
    fenced: the command is sent on (to nobody here, so it times out) and nothing is
    stored; the owner takes the shard back when the lease is free again."""
    with node(journal, "a", shards=4, lease_ttl=3.0) as a:
        a.register(Account)
        settled(a, {"a"})
        a.send(Deposit("k", 1))
        lease = shard_lease(shard_of("Account-k", 4))
        schema = journal.rsplit("schema=", 1)[1]
        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{schema}".leases SET owner = %s, epoch = epoch + 1, '
                "expires = extract(epoch FROM clock_timestamp()) + 30 WHERE name = %s",
                ["thief#0#30", lease],
            )
        with pytest.raises(Timeout):
            a.send(Deposit("k", 1), timeout=1.0)
        assert len(a.read_stream("Account-k")) == 1
        assert a.store.release_lease(lease, "thief#0#30")

        def deposited() -> bool:
            try:
                return a.send(Deposit("k", 2), command_id="after", timeout=1.0).version >= 2
            except Timeout:
                return False

        assert wait_for(deposited, 30)
        epochs = [env.metadata["cluster"]["epoch"] for env in a.read_stream("Account-k")]
        assert epochs[0] < epochs[-1]


def test_a_wrong_configuration_is_a_clear_error(journal: str) -> None:
    """A shard count other than the journal's, a node name live elsewhere, a journal that
    is not shared, a node without a cluster: each is an error naming the fix."""
    with node(journal, "a", shards=8):
        with pytest.raises(ClusterError, match=r"shards=16.*shards=8"):
            node(journal, "b", shards=16)
        with pytest.raises(ClusterError, match="node a is a live member"):
            node(journal, "a", shards=8, lease_ttl=0.2)
    with pytest.raises(ClusterError, match="needs a journal its nodes share"):
        Runtime("memory://", cluster=NATS).start()
    with pytest.raises(ValueError, match="cluster="):
        Runtime("memory://", node="n1")
    with pytest.raises(ValueError, match="node="):
        Runtime("memory://", cluster=NATS, node="no spaces")
    with pytest.raises(ValueError, match="shards="):
        Runtime("memory://", cluster=NATS, shards=0)
    with pytest.raises(ValueError, match="not a NATS URL"):
        Runtime("memory://", cluster="http://x")


def test_cluster_status_shows_members_shards_and_live_aggregates(
    pair: tuple[Runtime, Runtime], journal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rt.cluster()` and `reactor cluster status` show both nodes, every shard's owner and
    each node's live aggregates; an unreachable store is one line and exit status 2."""
    a, _ = pair
    shards = settled(a, {"a", "b"})
    key = next(key_on(shards, "b"))
    a.send(Deposit(key, 1))
    status = a.cluster()
    assert status is not None and status.shards == 64
    by_node = {m.node: m for m in status.members}
    assert set(by_node) == {"a", "b"} and all(m.alive for m in by_node.values())
    assert f"Account-{key}" in by_node["b"].live and by_node["b"].aggregates == 1
    assert sorted(by_node["a"].shards + by_node["b"].shards) == list(range(64))
    assert main(["cluster", "status", "--store", journal]) == 0
    out = capsys.readouterr().out
    assert f"cluster {status.cluster}: 64 shards" in out and "shards with no owner: none" in out
    assert main(["cluster", "status", "--store", journal, "--json"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert {m["node"] for m in shown["members"]} == {"a", "b"}
    assert main(["cluster", "status", "--store", "postgresql://127.0.0.1:1/nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reactor: ") and err.count("\n") == 1


def test_a_node_restarted_under_its_name_waits_for_its_old_lease(journal: str) -> None:
    """A node started again under the name of one killed a moment ago joins once the dead
    incarnation's membership expires (within a lease ttl), then serves every shard."""
    with Runtime(journal) as plain:
        plain.store.acquire_lease("cluster:member:a", "a#dead#1", 1.0)
        started = time.monotonic()
        with node(journal, "a", shards=8) as a:
            assert time.monotonic() - started > 0.3
            a.register(Account)
            assert set(settled(a, {"a"}).values()) == {"a"}


def test_cluster_status_of_a_journal_with_no_cluster_says_so(
    journal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal no node has started on: one line naming the journal, exit status 2."""
    with Runtime(journal):
        pass
    assert main(["cluster", "status", "--store", journal]) == 2
    assert "no cluster is recorded here" in capsys.readouterr().err
