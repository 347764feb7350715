"""Runtimes on the local PostgreSQL server, each figure next to its baseline measured in the
same run: blocking `send` and pipelined `submit` against the eventsourcing library's
PostgreSQL application (aggregate cache on) and raw psycopg inserting the same rows (one per
commit, and 256 per commit); command throughput with 1, 2 and 4 runtime processes on one
journal; the latency from a commit in one process to its handling in another.

    (part of `python -m perf postgres [--quick]`)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import psycopg

from perf.postgres import SERVER, Raw, schema, url
from perf.report import row, start_together
from perf.runtime import (
    Account,
    Deposited,
    eventsourcing_rate,
    registry,
    run_blocking,
    run_pipelined,
    workload,
)
from reactor import Runtime

LATENCY_NODE = """
import sys, time, json
from reactor import Runtime
from perf.runtime import Account, Deposit, Deposited, registry
with Runtime(sys.argv[1], registry=registry) as rt:
    rt.register(Account)
    print("ready", flush=True)
    sys.stdin.readline()
    sent = []
    for n in range(int(sys.argv[2])):
        rt.send(Deposit(f"acc-{n % 50}", 1))
        sent.append(time.time())  # acknowledged: committed
        time.sleep(0.005)  # a low, steady load
    print(json.dumps(sent), flush=True)
"""

WRITER_NODE = """
import sys, time, collections
from reactor import Runtime
from perf.runtime import Account, Deposit, Open, registry
with Runtime(sys.argv[1], registry=registry) as rt:
    rt.register(Account)
    tag, seconds = sys.argv[2], float(sys.argv[3])
    for i in range(50):
        rt.send(Open(f"{tag}-{i}"))
    print("ready", flush=True)
    sys.stdin.readline()
    inflight, n, end = collections.deque(), 0, time.monotonic() + seconds
    while time.monotonic() < end:
        if len(inflight) >= 256:
            inflight.popleft().get(60)
        inflight.append(rt.submit(Deposit(f"{tag}-{n % 50}", 1)))
        n += 1
    for f in inflight:
        f.get(60)
    print(n, flush=True)
"""


def run_eventsourcing(name: str, accounts: int, deposits: int) -> float:
    """The eventsourcing library's application on PostgreSQL, the same workload."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "test",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_SCHEMA": name,
    }
    return eventsourcing_rate(env, accounts, deposits)


def raw_rate(per_commit: int, total: int) -> float:
    with schema() as name:
        raw = Raw(name)
        start = time.perf_counter()
        done = 0
        while done < total:
            raw.batch(min(per_commit, total - done))  # a batch of 1: one row per commit
            done += per_commit
        return total / (time.perf_counter() - start)


def commands(quick: bool) -> None:
    accounts, deposits = (100, 5) if quick else (300, 6)
    cmds = workload(accounts, deposits)
    print(f"\n4. runtime commands: {accounts} accounts, then {deposits} deposits each")
    with schema() as name:
        es = run_eventsourcing(name, accounts, deposits)
    with schema() as name:
        blocking = run_blocking(url(name), cmds)
    with schema() as name:
        pipelined = run_pipelined(url(name), cmds)
    one, batched = raw_rate(1, min(len(cmds), 1000)), raw_rate(256, len(cmds))
    row("blocking send", blocking, es, "eventsourcing (cache on)", "cmd/s")
    row("blocking send", blocking, one, "raw psycopg, 1 row/commit", "cmd/s")
    row("submit, 256 in flight", pipelined, es, "eventsourcing (cache on)", "cmd/s")
    row("submit, 256 in flight", pipelined, batched, "raw psycopg, 256/commit", "cmd/s")


def node(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def writers(quick: bool) -> None:
    seconds = 2.0 if quick else 5.0
    print(
        f"\n5. runtime processes on one journal, each submitting to its own accounts, {seconds:g} s"
    )
    rates = {}
    for count in (1, 2, 4):
        with schema() as name:
            procs = [node(WRITER_NODE, url(name), f"p{k}", str(seconds)) for k in range(count)]
            start_together(procs)
            total = sum(int(p.communicate(timeout=120)[0].strip()) for p in procs)
            rates[count] = total / seconds
        if count > 1:
            row(f"{count} processes", rates[count], rates[1], "1 process", "cmd/s")


def latency(quick: bool) -> None:
    count = 100 if quick else 400
    print(f"\n6. from a commit in process A to its handling in process B ({count} commands)")
    with schema() as name:
        handled: list[float] = []
        with Runtime(url(name), registry=registry) as b:
            b.register(Account)
            b.subscribe(lambda e, env: handled.append(time.time()), types=[Deposited])
            a = node(LATENCY_NODE, url(name), str(count))
            start_together([a])
            sent = json.loads(a.communicate(timeout=120)[0].strip().splitlines()[-1])
            deadline = time.monotonic() + 30
            while len(handled) < count and time.monotonic() < deadline:
                time.sleep(0.01)
    waits = sorted((h - s) * 1000 for s, h in zip(sent, handled, strict=False))
    p50, p99 = statistics.median(waits), waits[int(len(waits) * 0.99) - 1]
    print(f"{'commit in A -> handled in B, p50 / p99':<44} {p50:.2f} / {p99:.2f} ms")


def main(quick: bool = False) -> None:
    commands(quick)
    writers(quick)
    latency(quick)
