"""Runtime benchmarks, each next to its baseline measured in the same run:
durable command throughput (SQLite, synchronous=FULL) against the eventsourcing library and
raw sqlite3, fan-out to 4 projections against raw pykka, command latency, rehydration,
scale (passivation; memory per live aggregate actor), and what metrics and tracing cost
(perf/observed.py).

    python -m perf runtime [--quick]
"""

from __future__ import annotations

import collections
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pykka

from perf.journal import RawWriter, _raw
from perf.report import row
from reactor import (
    Aggregate,
    Envelope,
    Projection,
    Registry,
    Runtime,
    applies,
    command,
    event,
    handles,
    on,
)
from reactor.actors.dispatch import Dispatcher
from reactor.actors.messages import Publish, Reply
from reactor.actors.pooled import start
from reactor.events import CommandResult, decided_events, new_id
from reactor.store import open_store
from reactor.store.base import Append

registry = Registry()


@event("perf.Opened", registry=registry)
@attrs.frozen
class Opened:
    account_id: str


@event("perf.Deposited", registry=registry)
@attrs.frozen
class Deposited:
    account_id: str
    amount: int


@command(registry=registry)
@attrs.frozen
class Open:
    account_id: str


@command(registry=registry)
@attrs.frozen
class Deposit:
    account_id: str
    amount: int


@command(registry=registry)
@attrs.frozen
class Ping:
    account_id: str


class Account(Aggregate, key="account_id"):
    balance: int

    def __init__(self) -> None:
        self.balance = 0

    @handles(Open)
    def open(self, cmd: Open) -> Opened:
        return Opened(cmd.account_id)

    @handles(Deposit)
    def deposit(self, cmd: Deposit) -> Deposited:
        return Deposited(cmd.account_id, cmd.amount)

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount


class Trivial(Aggregate, key="account_id"):
    @handles(Ping)
    def ping(self, cmd: Ping) -> None:
        return None


class Counter(Projection):
    def __init__(self) -> None:
        self.count = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.count += 1

    def total(self) -> int:
        return self.count


def _counters() -> list[type[Counter]]:
    return [type(f"Counter{i}", (Counter,), {}) for i in range(4)]


def workload(accounts: int, deposits: int) -> list[Any]:
    """1,000 accounts opened, then 20 deposits each, round-robin."""
    opens: list[Any] = [Open(f"acc-{i}") for i in range(accounts)]
    return opens + [Deposit(f"acc-{i}", r + 1) for r in range(deposits) for i in range(accounts)]


def run_blocking(url: str, commands: list[Any]) -> float:
    with Runtime(url, registry=registry) as rt:
        rt.register(Account)
        start = time.perf_counter()
        for c in commands:
            rt.send(c)
        return len(commands) / (time.perf_counter() - start)


def run_pipelined(url: str, commands: list[Any], window: int = 256) -> float:
    with Runtime(url, registry=registry) as rt:
        rt.register(Account)
        inflight: collections.deque[Reply] = collections.deque()
        start = time.perf_counter()
        for c in commands:
            if len(inflight) >= window:
                inflight.popleft().get(60)
            inflight.append(rt.submit(c))
        for f in inflight:
            f.get(60)
        return len(commands) / (time.perf_counter() - start)


def run_eventsourcing(path: str, accounts: int, deposits: int) -> float:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
    return eventsourcing_rate(env, accounts, deposits)


def eventsourcing_rate(env: dict[str, str], accounts: int, deposits: int) -> float:
    """Commands per second of the eventsourcing library's application on the persistence
    `env` names (aggregate cache on): open `accounts`, then `deposits` rounds of one each."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate as ESAggregate
    from eventsourcing.domain import event as es_event

    class ESAccount(ESAggregate):
        @es_event("Opened")
        def __init__(self, account_id: str) -> None:
            self.balance = 0

        @es_event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

    app: Application[Any] = Application(env={**env, "AGGREGATE_CACHE_MAXSIZE": str(accounts)})
    start = time.perf_counter()
    ids = []
    for i in range(accounts):
        acc = ESAccount(f"acc-{i}")
        app.save(acc)
        ids.append(acc.id)
    for r in range(deposits):
        for acc_id in ids:
            acc = app.repository.get(acc_id)
            acc.deposit(r + 1)
            app.save(acc)
    took = time.perf_counter() - start
    app.close()
    return accounts * (deposits + 1) / took


def run_raw(path: Path, total: int, per_commit: int = 256) -> float:
    raw = RawWriter(_raw(path))
    start = time.perf_counter()
    while raw.n < total:
        raw.commit(min(per_commit, total - raw.n))
    return total / (time.perf_counter() - start)


def run_core(url: str, commands: list[Any], group: int = 256) -> float:
    """reactor's command path with no actor, no thread and no message: decide, encode,
    append `group` commands per transaction, build the envelopes, apply. What the actors
    add is the difference to the pipelined figure."""
    store = open_store(url, registry=registry)
    spec = Account.__reactor_type__(None)
    states: dict[str, tuple[Account, list[int]]] = {}
    start = time.perf_counter()
    i = 0
    while i < len(commands):
        decided, pending = [], set()
        # A batch holds one command per aggregate, as the actors hold one at a time.
        while i < len(commands) and len(decided) < group:
            cmd = commands[i]
            stream_id = spec.stream_id(cmd.account_id)
            if stream_id in pending:
                break
            pending.add(stream_id)
            i += 1
            state, version = states.setdefault(stream_id, (Account(), [0]))
            cid = new_id()
            events = decided_events(spec.handlers[type(cmd)](state, cmd))
            records = [store.new_record(e, cid, cid) for e in events]
            decided.append((stream_id, state, version, events, records))
        outcomes = store.commit(
            [Append(sid, records, version[0]) for sid, _, version, _, records in decided]
        )
        for (sid, state, version, events, _), outcome in zip(decided, outcomes, strict=True):
            envelopes = tuple(map(store.envelope, outcome.result(), events))
            for env in envelopes:
                applier = spec.appliers.get(type(env.event))
                if applier is not None:
                    applier(state, env.event)
                version[0] = env.seq
            CommandResult(sid, envelopes[-1].seq, envelopes[-1].position, envelopes)
    took = time.perf_counter() - start
    store.close()
    return len(commands) / took


def throughput(tmp: Path, accounts: int, deposits: int) -> None:
    commands = workload(accounts, deposits)
    n = len(commands)
    es = run_eventsourcing(str(tmp / "es.db"), accounts, deposits)
    raw = run_raw(tmp / "raw.db", n)
    raw_single = run_raw(tmp / "raw-single.db", min(n, 5000), per_commit=1)
    core = run_core(f"sqlite:///{tmp / 'core.db'}", commands)
    core_single = run_core(f"sqlite:///{tmp / 'core-single.db'}", commands[: min(n, 5000)], 1)
    blocking = run_blocking(f"sqlite:///{tmp / 'blocking.db'}", commands)
    pipelined = run_pipelined(f"sqlite:///{tmp / 'pipelined.db'}", commands)
    print(f"\n1. durable commands: {accounts} accounts, then {deposits} deposits each, round-robin")
    row("blocking send, one thread", blocking, es, "eventsourcing (cache on)", "cmd/s")
    row("blocking send, one thread", blocking, raw_single, "raw sqlite3, 1 row/commit", "cmd/s")
    row("blocking send, one thread", blocking, core_single, "same path, no actors", "cmd/s")
    row("submit, 256 in flight", pipelined, es, "eventsourcing (cache on)", "cmd/s")
    row("submit, 256 in flight", pipelined, raw, "raw sqlite3, 256 rows/commit", "cmd/s")
    row("submit, 256 in flight", pipelined, core, "same path, no actors", "cmd/s")
    print(
        "   ceilings: one fsync per blocking command (eventsourcing fsyncs once per command too)."
        "\n   The same path with no actors (deciding, encoding, storing, applying alone) reaches"
        f"\n   {core_single / es:.2f}x eventsourcing with one command per commit, and "
        f"{core / es:.1f}x eventsourcing = {core / raw:.2f}x raw sqlite3 with 256 per commit."
    )


def fan_out(events: int) -> None:
    """Envelopes published to the router, handled by 4 projections; vs raw pykka tells.
    (They are not in the journal, so the consumers' backlog must hold them all: a consumer
    that falls behind reads the journal instead.)"""
    with Runtime("memory://", registry=registry, backlog=events + 1) as rt:
        counters = _counters()
        rt.register(*counters)
        for c in counters:
            rt.query(c).total()  # started and live
        now = datetime.now(UTC)
        envs = [
            Envelope(
                event_id=f"e{i}",
                stream_id="Account-x",
                seq=i,
                position=i,
                type="perf.Deposited",
                version=1,
                event=Deposited("x", 1),
                timestamp=now,
                correlation_id=None,
                causation_id=None,
                metadata={},
            )
            for i in range(1, events + 1)
        ]
        start = time.perf_counter()
        for i in range(0, events, 100):
            rt._parts.tree.router.tell(Publish(tuple(envs[i : i + 100])))
        for c in counters:
            assert rt.query(c, after=events).total() == events
        ours = 4 * events / (time.perf_counter() - start)

    class Raw(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            self.count += 1
            return self.count

    refs = [Raw.start() for _ in range(4)]
    start = time.perf_counter()
    for _ in range(events):
        for ref in refs:
            ref.tell(1)
    for ref in refs:
        ref.ask(0)
    raw = 4 * events / (time.perf_counter() - start)
    for ref in refs:
        ref.stop()
    print("\n2. fan-out to 4 projections (router -> 4 projection actors)")
    row("deliveries handled", ours, raw, "raw pykka tell to 4 actors", "msg/s")


def latency(tmp: Path, count: int) -> None:
    import sqlite3

    with Runtime(f"sqlite:///{tmp / 'latency.db'}", registry=registry) as rt:
        rt.register(Account)
        rt.send(Open("lat"))
        times = []
        for i in range(count):
            start = time.perf_counter()
            rt.send(Deposit("lat", i))
            times.append(time.perf_counter() - start)
    db = sqlite3.connect(tmp / "latency-raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (a, b)")
    raw = []
    for i in range(count):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, b"{}"))
        db.execute("COMMIT")
        raw.append(time.perf_counter() - start)
    db.close()
    q = statistics.quantiles(times, n=100)
    r = statistics.quantiles(raw, n=100)
    print("\n3. command latency at low load (blocking send, one thread, SQLite FULL)")
    print(
        f"{'p50 / p99':<44} {q[49] * 1e3:>8.3f} / {q[98] * 1e3:.3f} ms   "
        f"raw sqlite3 commit of one row {r[49] * 1e3:.3f} / {r[98] * 1e3:.3f} ms"
    )


def rehydrate(tmp: Path, events: int) -> None:
    print(f"\n4. rehydrating one aggregate of {events:,} events (first command after start)")
    for label, every in (("without snapshot", None), ("with snapshots every 1,000", 1000)):
        url = f"sqlite:///{tmp / f'rehydrate-{every}.db'}"
        with Runtime(url, registry=registry, snapshot_every=every) as rt:
            rt.register(Account)
            window: collections.deque[Reply] = collections.deque()
            for _ in range(events):
                window.append(rt.submit(Deposit("big", 1)))
                if len(window) > 256:
                    window.popleft().get(60)
            for f in window:
                f.get(60)
        with Runtime(url, registry=registry) as rt:
            rt.register(Account)
            start = time.perf_counter()
            rt.send(Deposit("big", 1))
            took = time.perf_counter() - start
        with Runtime(url, registry=registry) as rt:
            start = time.perf_counter()
            decoded = sum(1 for _ in rt.read_stream("Account-big"))
            read = time.perf_counter() - start
        print(
            f"{label:<44} {took * 1e3:>10.1f} ms     read_stream + decode alone  "
            f"{read * 1e3:8.1f} ms ({decoded:,} events)"
        )


def scale(touched: int, live: int) -> None:
    print(f"\n5. scale: {touched:,} aggregates touched once, max_live=1,000")
    before = threading.active_count()
    with Runtime("memory://", registry=registry, max_live=1000, workers=2) as rt:
        rt.register(Trivial)
        during = threading.active_count()
        start = time.perf_counter()
        window: collections.deque[Reply] = collections.deque()
        for i in range(touched):
            window.append(rt.submit(Ping(f"t{i}")))
            if len(window) > 1000:
                window.popleft().get(60)
        for f in window:
            f.get(60)
        took = time.perf_counter() - start
        print(
            f"{'commands/s, each to a new aggregate':<44} {touched / took:>12,.0f} cmd/s    "
            f"threads: {before} before, {during} running (2 pool + journal + subscribers + timer), "
            f"{threading.active_count()} after; live actors {rt.health().live_aggregates}"
        )
    out = subprocess.run(
        [sys.executable, "-m", "perf.runtime", "--probe-memory", str(live)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    per_actor, per_raw = float(out[0]), float(out[1])
    print(f"\n   {live:,} live aggregate actors of a trivial class (no passivation)")
    row(
        "RSS per aggregate actor (bytes)",
        per_actor,
        per_raw,
        "one raw pykka ThreadingActor, no thread",
        "B",
    )


def probe_memory(count: int) -> None:
    """In a fresh process: RSS per live AggregateActor, and per bare pykka actor object."""
    from reactor.actors.aggregate import AggregateActor
    from reactor.actors.host import AggregateHost

    store = open_store("memory://", registry=registry)
    pool = Dispatcher(2, 100, "probe")
    host = AggregateHost(pool, store, None)  # type: ignore[arg-type]
    spec = Trivial.__reactor_type__(None)

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    base = rss()
    actors = []
    for i in range(count):
        actor = AggregateActor(pool, host, spec, f"Trivial-{i}")
        start(actor, registered=False)
        actors.append(actor)
    tick = threading.Event()
    while not (actors[-1]._began and pool._run_queue.empty()):  # every on_start has run
        tick.wait(0.01)
    per_actor = (rss() - base) / count
    sample = 20_000
    base = rss()
    raw = [
        pykka.ThreadingActor() for _ in range(sample)
    ]  # objects only: a thread each would not fit
    per_raw = (rss() - base) / sample
    print(per_actor, per_raw, len(raw))
    os._exit(0)


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    accounts, deposits = (200, 5) if quick else (1000, 20)
    with tempfile.TemporaryDirectory() as tmp:
        throughput(Path(tmp), accounts, deposits)
        fan_out(20_000 if quick else 200_000)
        latency(Path(tmp), 500 if quick else 3000)
        rehydrate(Path(tmp), 2000 if quick else 10_000)
    scale(10_000 if quick else 100_000, 100_000 if quick else 1_000_000)
    from perf import observed  # (it imports this module's domain)

    observed.main(quick)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-memory":
        probe_memory(int(sys.argv[2]))
    else:
        main(quick="--quick" in sys.argv)
