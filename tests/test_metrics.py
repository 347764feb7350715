"""Metrics: what the runtime records comes back in `snapshot()` and over HTTP in the
Prometheus format (parsed with prometheus-client's own parser); histogram quantiles stay in
the right bucket; recording loses nothing across threads; the server leaves no thread."""

from __future__ import annotations

import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from reactor.errors import ReactorError, Rejected, Timeout
from reactor.metrics import (
    FAMILIES,
    LATENCY_BUCKETS,
    Histogram,
    Metrics,
    _Buckets,
    outcome_of,
)
from reactor.prometheus import PortInUse, exposition, parse_exposition, serve

SECONDS = st.floats(min_value=0.0, max_value=30.0, allow_nan=False)


def recorded() -> Metrics:
    m = Metrics()
    for seconds in (0.0002, 0.0003, 0.004):
        m.record_command("Deposit", "ok", seconds)
    m.record_command("Deposit", "rejected", 0.0001)
    m.record_command("Withdraw", "failed", 0.02)
    m.record_commit(3, 5, 0.0004)
    m.record_commit(1, 1, 0.0002)
    m.record_retry("Balances")
    m.record_retry("Balances")
    m.record_dead_letter("Balances")
    m.record_restart("projections")
    m.record_snapshot("Account")
    return m


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as body:
        text: str = body.read().decode()
        return text


@pytest.fixture
def metrics() -> Metrics:
    return recorded()


def test_snapshot_has_each_recorded_value(metrics: Metrics) -> None:
    """Counters by label set, histograms with their count and sum, events appended."""
    snap = metrics.snapshot()
    commands = snap["reactor_commands_total"]
    assert commands[("Deposit", "ok")] == 3 and commands[("Deposit", "rejected")] == 1
    assert commands[("Deposit", "failed")] == 0 and commands[("Withdraw", "failed")] == 1
    deposit = snap["reactor_command_seconds"]["Deposit"]
    assert deposit.count == 4 and deposit.sum == pytest.approx(0.0046)
    assert snap["reactor_events_appended_total"] == 6
    assert snap["reactor_commit_batch_size"].count == 2
    assert snap["reactor_commit_batch_size"].sum == 4
    assert snap["reactor_commit_seconds"].sum == pytest.approx(0.0006)
    assert snap["reactor_retries_total"] == {"Balances": 2}
    assert snap["reactor_dead_letters_total"] == {"Balances": 1}
    assert snap["reactor_restarts_total"] == {"projections": 1}
    assert snap["reactor_snapshots_total"] == {"Account": 1}


def test_an_unknown_outcome_is_refused() -> None:
    """Outcomes are a closed set: a typo is a KeyError, not a new label value."""
    with pytest.raises(KeyError):
        Metrics().record_command("Deposit", "okay", 0.1)


@pytest.mark.parametrize(
    ("error", "abandoned", "outcome"),
    [
        (None, False, "ok"),
        (Rejected("no"), False, "rejected"),
        (ValueError("bug"), False, "failed"),
        (Timeout("late"), False, "timed_out"),
        (None, True, "timed_out"),
    ],
)
def test_outcome_of(error: BaseException | None, abandoned: bool, outcome: str) -> None:
    """The outcome label of an answer: the caller giving up wins over the answer."""
    assert outcome_of(error, abandoned=abandoned) == outcome


def test_values_read_at_snapshot_time_and_the_lag_derived_from_them() -> None:
    """Callbacks are called at each snapshot; the lag is the head minus each position."""
    m = Metrics()
    head = [10]
    m.on_scrape("reactor_journal_head", lambda: head[0])
    m.on_scrape("reactor_consumer_position", lambda: {"Balances": 7, "Audit": 10})
    m.on_scrape("reactor_aggregates_live", lambda: 3)
    assert m.snapshot()["reactor_consumer_lag"] == {"Balances": 3, "Audit": 0}
    head[0] = 12
    snap = m.snapshot()
    assert snap["reactor_journal_head"] == 12 and snap["reactor_aggregates_live"] == 3
    assert snap["reactor_consumer_lag"] == {"Balances": 5, "Audit": 2}


def test_a_failing_callback_leaves_its_family_out(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises costs its own family, logged; the rest is still reported."""
    m = Metrics()
    m.on_scrape("reactor_journal_head", lambda: 1 // 0)
    m.on_scrape_mailboxes(lambda: 1 // 0)
    m.record_retry("Balances")
    snap = m.snapshot()
    assert "reactor_journal_head" not in snap and "reactor_mailbox_depth" not in snap
    assert snap["reactor_retries_total"] == {"Balances": 1}
    assert "reactor_journal_head failed" in caplog.text and "mailbox" in caplog.text


def test_only_read_families_take_a_callback() -> None:
    """A recorded or derived family, or a misspelt name, is refused with the valid names."""
    for name in ("reactor_commands_total", "reactor_consumer_lag", "reactor_head"):
        with pytest.raises(ReactorError, match="reactor_journal_head"):
            Metrics().on_scrape(name, lambda: 0)


def test_mailbox_depths_by_kind_and_the_deepest_by_name() -> None:
    """Sums and maxima by kind; the deepest few by actor name, in snapshot() only."""
    m = Metrics()
    boxes = [("aggregate", f"Account-{i}", i) for i in range(10)] + [("journal", "journal", 4)]
    m.on_scrape_mailboxes(lambda: iter(boxes))
    snap = m.snapshot()
    assert snap["reactor_mailbox_depth"] == {"aggregate": 45, "journal": 4}
    assert snap["reactor_mailbox_depth_max"] == {"aggregate": 9, "journal": 4}
    assert snap["reactor_mailbox_deepest"] == {
        "Account-9": 9,
        "Account-8": 8,
        "Account-7": 7,
        "Account-6": 6,
        "Account-5": 5,
    }
    assert "reactor_mailbox_deepest" not in exposition(m) and "reactor_mailbox_depth" in (
        exposition(m)
    )


@given(st.lists(SECONDS, min_size=1, max_size=200), st.floats(min_value=0.01, max_value=1.0))
def test_a_quantile_estimate_lies_in_the_bucket_of_the_true_quantile(
    samples: list[float], q: float
) -> None:
    """The estimate is within the bounds of the bucket holding the exact q-quantile."""
    buckets = _Buckets(LATENCY_BUCKETS)
    for s in samples:
        buckets.observe(s)
    estimate = buckets.value().quantile(q)
    assert estimate is not None
    rank = -(-q * len(samples) // 1)  # the ceil(q * n)-th smallest sample
    exact = sorted(samples)[max(int(rank), 1) - 1]
    bounds = (0.0, *LATENCY_BUCKETS)
    i = next((i for i, b in enumerate(LATENCY_BUCKETS) if exact <= b), None)
    if i is None:  # above every bound
        assert estimate == LATENCY_BUCKETS[-1]
    else:
        assert bounds[i] <= estimate <= LATENCY_BUCKETS[i]


@given(st.lists(SECONDS, max_size=50), st.lists(SECONDS, max_size=50))
def test_histograms_subtract_to_what_happened_between(a: list[float], b: list[float]) -> None:
    """(first + later) - first has the counts of `later` alone, and adds back."""
    first, both = _Buckets(LATENCY_BUCKETS), _Buckets(LATENCY_BUCKETS)
    later = _Buckets(LATENCY_BUCKETS)
    for s in a:
        first.observe(s)
        both.observe(s)
    for s in b:
        both.observe(s)
        later.observe(s)
    delta = both.value() - first.value()
    assert delta.counts == later.value().counts
    assert (first.value() + delta).counts == both.value().counts


def test_a_value_on_a_bound_counts_in_that_bound_bucket() -> None:
    """Prometheus buckets are `le`: an observation equal to a bound is inside it."""
    buckets = _Buckets((1.0, 2.0))
    buckets.observe(1.0)
    assert buckets.value().cumulative() == [(1.0, 1), (2.0, 1), (float("inf"), 1)]
    assert Histogram((1.0,), (0, 0)).quantile(0.5) is None


def test_recording_from_threads_loses_nothing() -> None:
    """8 threads record at once with a 1 us switch interval: every update counts (the GIL
    argument of `Metrics`)."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        pytest.skip("free-threaded build: recording is documented as approximate")
    interval = sys.getswitchinterval()
    m, threads, rounds = Metrics(), 8, 5000
    go = threading.Barrier(threads)

    def work() -> None:
        go.wait()
        for _ in range(rounds):
            m.record_command("Deposit", "ok", 0.0002)
            m.record_commit(1, 2, 0.0001)
            m.record_retry("Balances")

    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    snap, total = m.snapshot(), threads * rounds
    assert snap["reactor_commands_total"][("Deposit", "ok")] == total
    assert snap["reactor_command_seconds"]["Deposit"].count == total
    assert snap["reactor_command_seconds"]["Deposit"].sum == pytest.approx(total * 0.0002)
    assert snap["reactor_events_appended_total"] == 2 * total
    assert snap["reactor_retries_total"] == {"Balances": total}


# -- Prometheus ------------------------------------------------------------------------------


@pytest.fixture
def served(metrics: Metrics) -> Iterator[str]:
    server = serve(metrics, 0)
    yield server.url
    server.stop()


def test_the_endpoint_serves_prometheus_names_and_values(served: str) -> None:
    """A scrape parses with prometheus-client's parser and has the recorded values."""
    families = {f.name: f for f in text_string_to_metric_families(scrape(served))}
    commands = {
        (s.labels["type"], s.labels["outcome"]): s.value
        for s in families["reactor_commands"].samples
    }
    assert families["reactor_commands"].type == "counter"
    assert commands[("Deposit", "ok")] == 3 and commands[("Withdraw", "failed")] == 1
    latency = families["reactor_command_seconds"]
    assert latency.type == "histogram"
    count = next(
        s.value
        for s in latency.samples
        if s.name == "reactor_command_seconds_count" and s.labels["type"] == "Deposit"
    )
    assert count == 4
    appended = families["reactor_events_appended"].samples[0]
    assert appended.name == "reactor_events_appended_total" and appended.value == 6
    assert "process_resident_memory_bytes" in families  # the process collector


def test_parsing_a_scrape_gives_back_the_snapshot(metrics: Metrics, served: str) -> None:
    """What `reactor top` reads over HTTP equals `snapshot()` for every exported family."""
    metrics.on_scrape("reactor_journal_head", lambda: 9)
    metrics.on_scrape("reactor_consumer_position", lambda: {"Balances": 4})
    parsed = parse_exposition(scrape(served))
    snap = metrics.snapshot()
    exported = {n for n, f in FAMILIES.items() if f.exported and n in snap}
    assert set(parsed) == exported
    assert parsed == {n: snap[n] for n in exported}


def test_labels_have_bounded_cardinality() -> None:
    """No exported family is labelled by an id or a stream (only kinds, types, names)."""
    allowed = {"type", "outcome", "handler", "supervisor", "aggregate", "consumer", "kind"}
    for family in FAMILIES.values():
        if family.exported:
            assert set(family.labels) <= allowed, family


def test_two_metrics_serve_at_once_each_its_own() -> None:
    """Two runtimes in one process: two registries, two ports, no clash."""
    a, b = Metrics(), Metrics()
    a.record_command("Deposit", "ok", 0.001)
    b.record_command("Open", "ok", 0.001)
    servers = [serve(a, 0), serve(b, 0)]
    try:
        first, second = (parse_exposition(scrape(s.url)) for s in servers)
    finally:
        for s in servers:
            s.stop()
    assert set(first["reactor_commands_total"]) == {
        ("Deposit", o) for o in ("ok", "rejected", "failed", "timed_out")
    }
    assert {t for t, _ in second["reactor_commands_total"]} == {"Open"}


def test_stop_joins_the_thread_and_frees_the_port(metrics: Metrics) -> None:
    """After stop() no server thread is left and the port can be bound again."""
    server = serve(metrics, 0)
    scrape(server.url)
    thread = server._thread
    server.stop()
    server.stop()  # idempotent
    assert not thread.is_alive()
    serve(metrics, server.port).stop()


def test_a_port_in_use_is_one_clear_error(metrics: Metrics) -> None:
    """The error names the port and what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"metrics port {port} on 127.0.0.1 is already in use"):
            serve(metrics, port)
    assert "choose another metrics_port, or 0" in str(PortInUse("127.0.0.1", port))


def test_an_ipv6_host_is_served(metrics: Metrics) -> None:
    """A host with a colon is an IPv6 address: bound as such, bracketed in the URL."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = serve(metrics, 0, "::1")
    except ReactorError as e:
        pytest.skip(f"IPv6 loopback unavailable: {e}")
    try:
        assert server.url.startswith("http://[::1]:")
        assert "reactor_commands_total" in scrape(server.url)
    finally:
        server.stop()
