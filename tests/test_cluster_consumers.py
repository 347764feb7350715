"""Single-active consumers in a cluster: each durable projection runs on the node that is
its lease's rendezvous choice among the live members (so they spread over the nodes), and
on another node when its choice does not run it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor import Envelope, Projection, Runtime, on
from reactor.cluster.shards import choose
from tests.bank import Account, Deposit, Deposited
from tests.cluster_support import needs_servers, node, settled
from tests.helpers import wait_for
from tests.pg import fresh_schema, url

pytestmark = needs_servers


class Counted(Projection):
    durable = True
    count: int

    def __init__(self) -> None:
        self.count = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.count += 1

    def total(self) -> int:
        return self.count


class Tally(Counted):
    pass


class Ledger(Counted):
    pass


class Totals(Counted):
    pass


class Summary(Counted):
    pass


PROJECTIONS = (Tally, Ledger, Totals, Summary)  # their rendezvous choices: b, b, a, a


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


def _runs(rt: Runtime, cls: type) -> bool:
    return cls.__name__ not in rt.health().standby


def test_durable_projections_spread_over_the_nodes(journal: str) -> None:
    """Each projection runs on its rendezvous choice between a and b (both get some)."""
    with node(journal, "a") as a, node(journal, "b") as b:
        settled(a, {"a", "b"})
        settled(b, {"a", "b"})
        for rt in (a, b):
            rt.register(Account, *PROJECTIONS)
        chosen = {
            cls: choose(f"consumer:{a._consumers.registered[cls].name}", {"a", "b"})
            for cls in PROJECTIONS
        }
        assert set(chosen.values()) == {"a", "b"}
        runtimes = {"a": a, "b": b}
        for cls, name in chosen.items():
            other = b if name == "a" else a
            assert wait_for(lambda c=cls, n=name: _runs(runtimes[n], c), 15), cls
            assert not _runs(other, cls)
        a.send(Deposit("x", 1))


def test_a_projection_its_choice_does_not_run_runs_elsewhere(journal: str) -> None:
    """A projection registered on one node only runs there within a lease ttl or so, even
    when the other node is its rendezvous choice."""
    with node(journal, "a") as a, node(journal, "b") as b:
        settled(a, {"a", "b"})
        b.register(Account)
        elsewhere = [
            c for c in PROJECTIONS if choose(f"consumer:projection:{c.__name__}", {"a", "b"}) == "b"
        ]
        a.register(Account, *elsewhere)
        for cls in elsewhere:
            assert wait_for(lambda c=cls: _runs(a, c), 15), cls
        position = a.send(Deposit("x", 1)).position
        assert a.query(elsewhere[0], after=position, timeout=5).total() == 1
