"""A running runtime's metrics: `rt.metrics()` and its `/metrics` endpoint (parsed with
prometheus-client's own parser) count commands by outcome (ok, rejected, failed, timed
out), appends and commits, consumer lag, retries, dead letters, restarts, live and
passivated aggregates, snapshots and mailboxes; a metrics port in use is one clear error;
the endpoint stops with the runtime."""

from __future__ import annotations

import socket
import threading
import urllib.request
from typing import Any

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reactor import Aggregate, Envelope, RetryPolicy, Runtime, Timeout, command, handles
from reactor.errors import ReactorError, Rejected
from reactor.prometheus import PortInUse
from tests.bank import Account, Balances, Deposit, Deposited, Explode, Open
from tests.faulty import FaultyStorage
from tests.helpers import wait_for

QUICK = RetryPolicy(max_attempts=2, first_delay=0.001, max_delay=0.002, jitter=0.0)


@command
@attrs.frozen
class Stall:
    """A command whose handler waits for the test to let it go."""

    gate_id: str


GATE = threading.Event()


class Gate(Aggregate, key="gate_id"):
    @handles(Stall)
    def stall(self, cmd: Stall) -> None:
        GATE.wait(10)


def scrape(rt: Runtime) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The endpoint's samples by name and label set, read by prometheus-client's parser."""
    url = f"http://127.0.0.1:{rt.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def commands(samples: dict[str, Any], kind: str, outcome: str) -> float:
    by_labels = samples["reactor_commands_total"]
    return float(by_labels.get((("outcome", outcome), ("type", kind)), 0))


def test_commands_by_outcome_over_the_endpoint() -> None:
    """ok, rejected, failed and timed out each counted by type; latency, appends and
    commits recorded; the scrape's names follow Prometheus' conventions."""
    GATE.clear()
    with Runtime("memory://", metrics_port=0) as rt:
        rt.register(Account, Gate)
        rt.send(Open("a1"))
        rt.send(Deposit("a1", 5))
        with pytest.raises(Rejected):
            rt.send(Deposit("a1", 0))
        with pytest.raises(ZeroDivisionError):
            rt.send(Explode("a1"))
        with pytest.raises(Timeout):
            rt.send(Stall("g1"), timeout=0.05)
        GATE.set()  # it completes later: still counted once, as timed out
        rt.send(Stall("g1"))  # handled after it: the first is done
        rt.send(Deposit("a1", 1))
        samples = scrape(rt)
        assert commands(samples, "Deposit", "ok") == 2
        assert commands(samples, "Open", "ok") == 1
        assert commands(samples, "Deposit", "rejected") == 1
        assert commands(samples, "Explode", "failed") == 1
        assert commands(samples, "Stall", "timed_out") == 1
        assert commands(samples, "Stall", "ok") == 1  # the second one only
        count = samples["reactor_command_seconds_count"]
        assert count[(("type", "Deposit"),)] == 3
        assert samples["reactor_events_appended_total"][()] == 3
        assert samples["reactor_commit_batch_size_count"][()] >= 1
        assert samples["reactor_commit_seconds_sum"][()] > 0
        snapshot = rt.metrics()
        assert snapshot["reactor_commands_total"][("Deposit", "ok")] == 2
        assert snapshot["reactor_journal_head"] == 3


def test_consumer_lag_mailboxes_retries_and_dead_letters() -> None:
    """A blocked subscriber lags until it is let go (then its lag returns to 0); a failing
    one retries, then dead-letters."""
    gate, seen = threading.Event(), threading.Event()

    def slow(event: Any, env: Envelope) -> None:
        seen.set()
        gate.wait(10)

    def broken(event: Any, env: Envelope) -> None:
        raise ValueError("bug")

    with Runtime("memory://", metrics_port=0) as rt:
        rt.register(Account)
        rt.subscribe(slow, types=[Deposited], name="slow")
        rt.subscribe(broken, types=[Deposited], name="broken", retry=QUICK)
        rt.send(Deposit("a1", 1))
        assert seen.wait(10)
        for n in range(2, 5):
            rt.send(Deposit("a1", n))
        assert wait_for(lambda: scrape(rt)["reactor_consumer_lag"][(("consumer", "slow"),)] == 3)
        assert scrape(rt)["reactor_journal_head"][()] == 4
        gate.set()
        assert wait_for(lambda: scrape(rt)["reactor_consumer_lag"][(("consumer", "slow"),)] == 0)
        # one stream: its later events park behind the dead letter (no retry, no letter)
        assert wait_for(lambda: rt.metrics()["reactor_dead_letters_total"].get("broken") == 1)
        samples = scrape(rt)
        assert samples["reactor_retries_total"][(("handler", "broken"),)] == 1
        assert samples["reactor_dead_letters_total"][(("handler", "broken"),)] == 1
        assert wait_for(lambda: rt.metrics()["reactor_dead_letters_stored"] == {"broken": 1})


def test_mailbox_depths_by_kind_and_the_deepest() -> None:
    """Commands queued behind a blocked aggregate: its kind's depth, and the deepest
    mailbox by name in rt.metrics() (not on the endpoint: a stream id is no label)."""
    GATE.clear()
    with Runtime("memory://", metrics_port=0).register(Gate) as rt:
        replies = [rt.submit(Stall("g1")) for _ in range(4)]
        depth = (("kind", "aggregate"),)
        assert wait_for(lambda: scrape(rt)["reactor_mailbox_depth"].get(depth) == 3)
        samples = scrape(rt)
        assert samples["reactor_mailbox_depth_max"][depth] == 3
        assert samples["reactor_mailbox_depth"][(("kind", "journal"),)] == 0
        assert rt.metrics()["reactor_mailbox_deepest"] == {"Gate-g1": 3}
        GATE.set()
        for reply in replies:
            reply.get(10)
        assert scrape(rt)["reactor_mailbox_depth"][depth] == 0


def test_restarts_aggregates_and_snapshots() -> None:
    """Supervisor restarts by supervisor; aggregates started, live and passivated;
    snapshots taken by aggregate."""

    class Snapshotting(Account, name="Snap"):
        snapshot_every = 2

    with Runtime("faulty://", max_live=1, metrics_port=0) as rt:
        rt.register(Snapshotting)
        store = FaultyStorage.last
        assert store is not None
        store.fail("load_checkpoint", times=2)

        class Durable(Balances):
            durable = True

        rt.register(Durable)
        for account in ("a1", "a2", "a1"):
            rt.send(Deposit(account, 1))
            rt.send(Deposit(account, 1))
        assert wait_for(lambda: rt.health().passivated == 2)
        assert wait_for(lambda: rt.metrics()["reactor_restarts_total"].get("projections") == 2)
        samples = scrape(rt)
        assert samples["reactor_restarts_total"][(("supervisor", "projections"),)] == 2
        assert samples["reactor_aggregates_started_total"][()] == 3
        assert samples["reactor_aggregates_passivated_total"][()] == 2
        assert samples["reactor_aggregates_live"][()] == 1
        assert samples["reactor_snapshots_total"][(("aggregate", "Snap"),)] == 3


def test_no_stream_or_command_id_is_a_label() -> None:
    """Labels have bounded cardinality: a hundred streams add no label value."""
    with Runtime("memory://", metrics_port=0) as rt:
        rt.register(Account)
        for i in range(100):
            rt.send(Deposit(f"acc-{i}", 1))
        values = {v for by in scrape(rt).values() for labels in by for _, v in labels}
        assert not any(v.startswith(("acc-", "Account-")) for v in values)


def test_a_metrics_port_in_use_is_one_clear_error() -> None:
    """The start fails naming the port; nothing of the runtime is left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rt = Runtime("memory://", metrics_port=port)
        with pytest.raises(PortInUse, match=f"metrics port {port} on 127.0.0.1 is already in use"):
            rt.start()
    assert rt.health().state == "new"


@pytest.mark.parametrize("port", [-1, 65536, "9464", 1.5])
def test_a_wrong_metrics_port_is_refused_when_made(port: Any) -> None:
    with pytest.raises(ValueError, match=r"Runtime\(metrics_port=...\) must be a TCP port"):
        Runtime("memory://", metrics_port=port)


def test_the_endpoint_stops_with_the_runtime() -> None:
    """After stop the port is closed (the conftest guard checks its thread is gone);
    without metrics_port nothing is served, yet rt.metrics() counts."""
    with Runtime("memory://", metrics_port=0) as rt:
        port = rt.metrics_port
        assert port
        scrape(rt)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with Runtime("memory://").register(Account) as rt:
        rt.send(Deposit("a1", 1))
        assert rt.metrics_port is None
        assert rt.metrics()["reactor_commands_total"][("Deposit", "ok")] == 1


def test_a_consumer_of_other_types_is_not_shown_lagging() -> None:
    """Events a projection does not handle, appended after its last one, are no lag of its:
    live with nothing waiting, it is at the head."""
    with Runtime("memory://").register(Account, Balances) as rt:
        position = rt.send(Deposit("a1", 5)).position
        assert rt.query(Balances, after=position).balance("a1") == 5
        for i in range(3):
            rt.send(Open(f"b{i}"))  # not Balances' types
        assert wait_for(lambda: rt.metrics()["reactor_consumer_lag"] == {"Balances": 0})
        assert rt.metrics()["reactor_consumer_position"] == {"Balances": 4}


def test_a_runtime_that_cannot_start_leaves_no_endpoint() -> None:
    """The journal cannot be opened: the endpoint already serving is stopped (the conftest
    guard checks its thread is gone)."""
    rt = Runtime("nosuchscheme://x", metrics_port=0)
    with pytest.raises(ReactorError):
        rt.start()
