"""The cost of observability on the command path: the Metrics calls the runtime makes per
command, and the tracing calls disabled and enabled (an SDK provider without exporter,
every trace or 1% sampled), each in ns next to an empty function call or a null context
manager, as a ratio and as a share of a ~220 us durable command. Then what a scrape costs.

    python -m perf metrics [--quick]
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime

import attrs

from reactor.events import Envelope
from reactor.metrics import Metrics
from reactor.tracing import NO_TRACING, NoTracing, Tracing, configure

COMMAND_NS = 220_000  # one durable command on the runtime (perf/runtime.py, latency)


def ns(fn: Callable[[], object], number: int) -> float:
    """Best of 5 runs of `fn`, in ns per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def line(label: str, cost: float, baseline: float, baseline_label: str) -> None:
    print(
        f"{label:<46} {cost:>9,.0f} ns   {baseline_label:<20} {baseline:>6,.0f} ns"
        f"   ratio {cost / baseline:6.1f}x   {cost / COMMAND_NS:7.3%} of a command"
    )


def empty(a: object = None, b: object = None, c: object = None) -> None:
    """The baseline: a call that does nothing."""


def metrics_per_command(m: Metrics) -> None:
    """What the runtime adds to one command: two clock reads, the outcome, the command and
    (a commit of one, the worst case of group commit) the commit."""
    start = time.perf_counter()
    m.record_answer("Deposit", None, time.perf_counter() - start)
    m.record_commit(1, 1, 0.0002)


def tracing_per_command(t: Tracing | NoTracing, env: Envelope) -> None:
    """What the runtime adds to one command with one consumer: capture where it is sent,
    the command span (active while the handler runs), the carrier for its event's
    metadata, the commit, one consumer's span."""
    parent = t.capture()
    span = t.start_command(
        aggregate="Account", command="Deposit", stream_id="Account-1", command_id="c", parent=parent
    )
    with t.activate(span):
        t.carrier(span)
    with t.commit(appends=1, events=1, parents=(span,)):
        pass
    t.end_command(span)
    with t.consume("Balances", env):
        pass


def null_context() -> None:
    with nullcontext():
        pass


def metrics_costs(n: int) -> Metrics:
    """Each Metrics call, and all of them per command, next to an empty call."""
    base = ns(lambda: empty("Deposit", "ok", 2e-4), n)
    line("empty function call (3 arguments)", base, base, "empty call")
    m = Metrics()
    line("time.perf_counter()", ns(lambda: time.perf_counter(), n), base, "empty call")
    for label, fn in (
        ("Metrics.record_answer", lambda: m.record_answer("Deposit", None, 2e-4)),
        ("Metrics.record_commit", lambda: m.record_commit(1, 1, 2e-4)),
        ("metrics per command (all of the above)", lambda: metrics_per_command(m)),
    ):
        line(label, ns(fn, n), base, "empty call")
    return m


def tracing_costs(n: int) -> None:
    """The tracing calls of one command, off and on, next to a null context manager."""
    from opentelemetry.sdk.trace import TracerProvider  # the dev extra: tests and perf
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    env = Envelope(
        event_id="e1",
        stream_id="Account-1",
        seq=1,
        position=1,
        type="bank.Deposited",
        version=1,
        event=None,
        timestamp=datetime.now(UTC),
        correlation_id=None,
        causation_id=None,
        metadata={},
    )
    null = ns(null_context, n)
    line("null context manager (with nullcontext())", null, null, "null context")
    off = ns(lambda: tracing_per_command(NO_TRACING, env), n)
    line("tracing off, per command", off, null, "null context")
    line(
        "tracing off, skipped by `if .enabled`",
        ns(lambda: NO_TRACING.enabled, n),
        null,
        "null context",
    )
    for label, sampler in (
        ("tracing on, no exporter, per command", None),
        ("tracing on, 1% sampled, per command", ParentBased(TraceIdRatioBased(0.01))),
    ):
        provider = TracerProvider(sampler=sampler)  # no span processor: spans are dropped
        traced = configure(provider)
        cause = traced.start_command(
            aggregate="Account", command="Open", stream_id="Account-1", command_id="c", parent=None
        )
        env = attrs.evolve(env, metadata=traced.carrier(cause))  # the consumer continues it
        cost = ns(lambda t=traced, e=env: tracing_per_command(t, e), max(n // 10, 1000))
        line(label, cost, null, "null context")
        provider.shutdown()


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    n = 20_000 if quick else 200_000
    m = metrics_costs(n)
    tracing_costs(n)
    scrape(m)


def scrape(m: Metrics) -> None:
    """A scrape with 20 command types and 5000 mailboxes: snapshot() and the exposition."""
    from reactor.prometheus import exposition

    for i in range(20):
        m.record_command(f"Command{i}", "ok", 1e-3)
    boxes = [("aggregate", f"Account-{i}", i % 3) for i in range(5000)]
    m.on_scrape_mailboxes(lambda: boxes)
    snap = ns(m.snapshot, 200) / 1000
    text = ns(lambda: exposition(m), 50) / 1000
    print(f"{'snapshot(), 20 types, 5000 mailboxes':<46} {snap:>9,.0f} us")
    print(f"{'Prometheus exposition of the same':<46} {text:>9,.0f} us")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
