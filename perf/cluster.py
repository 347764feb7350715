"""Cluster sharding on the local PostgreSQL and NATS servers, each figure next to its
baseline measured in the same run: command throughput of 1, 2 and 3 node processes on
the SAME accounts, sharded (`Runtime(cluster=...)`: each account live on one node) against
as many unsharded runtimes on one journal (every process loads every account and they
fight over expected versions); then the latency of a command sent to another node against
one taking the local path, and against a raw nats-py request/reply round trip.

    python -m perf cluster [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from perf.postgres import schema, url
from perf.report import row, start_together
from perf.runtime import Account, Deposit, registry
from reactor import Runtime
from reactor.actors.aggregate import CONFLICT_RETRIES
from reactor.cluster.shards import shard_of

NATS = "nats://127.0.0.1:4222"
ACCOUNTS = 30  # shared by every process
WINDOW = 64  # commands in flight per process

NODE = """
import sys, time, collections
from reactor import ReactorError, Runtime
from perf.runtime import Account, Deposit, registry
journal, name, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
window, accounts, sharded = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7] == "1"
options = dict(cluster="nats://127.0.0.1:4222", node=name, lease_ttl=2.0) if sharded else {}
with Runtime(journal, registry=registry, timeout=60, **options) as rt:
    rt.register(Account)
    while sharded:  # until every node is in and every shard owned
        status = rt.cluster()
        alive = [m for m in status.members if m.alive]
        if len(alive) == count and None not in status.owners.values():
            break
        time.sleep(0.1)
    print("ready", flush=True)
    sys.stdin.readline()
    inflight, n, failed = collections.deque(), 0, 0
    end = time.monotonic() + seconds
    def settle(future):
        global failed
        try:
            future.get(60)
        except ReactorError:  # a ConcurrencyError after its retries: other writers won
            failed += 1
    while time.monotonic() < end:
        if len(inflight) >= window:
            settle(inflight.popleft())
        inflight.append(rt.submit(Deposit(f"acc-{n % accounts}", 1)))
        n += 1
    for f in inflight:
        settle(f)
    print(n - failed, failed, flush=True)
    sys.stdin.readline()  # stay a node until every other is done
"""


def _throughput(count: int, seconds: float, sharded: bool) -> tuple[float, int]:
    """Acknowledged commands per second of `count` processes, and how many failed."""
    options = [str(count), str(seconds), str(WINDOW), str(ACCOUNTS), "1" if sharded else "0"]
    with schema() as name:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", NODE, url(name), f"p{k}", *options],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(count)
        ]
        start_together(procs)
        total = failed = 0
        for p in procs:
            assert p.stdout is not None
            acked, lost = p.stdout.readline().split()
            total, failed = total + int(acked), failed + int(lost)
        for p in procs:
            p.communicate("\n", timeout=60)
        return total / seconds, failed


def throughput(quick: bool) -> None:
    seconds = 1.5 if quick else 3.0
    print(
        f"\n1. processes submitting deposits to the same {ACCOUNTS} accounts ({WINDOW} in "
        f"flight each), {seconds:g} s"
    )
    for count in (1, 2, 3):
        sharded, sharded_failed = _throughput(count, seconds, True)
        unsharded, unsharded_failed = _throughput(count, seconds, False)
        row(f"{count} node(s), sharded", sharded, unsharded, f"{count} unsharded", "cmd/s")
        print(
            f"{'':<4}commands failed on conflicts: sharded {sharded_failed}, unsharded "
            f"{unsharded_failed} (after {CONFLICT_RETRIES} reloads each)"
        )


def _latencies(send: Callable[[int], object], rounds: int) -> tuple[float, float]:
    waits = []
    for n in range(rounds):
        start = time.perf_counter()
        send(n)
        waits.append((time.perf_counter() - start) * 1000)
    waits.sort()
    return statistics.median(waits), waits[int(len(waits) * 0.99) - 1]


def _raw_nats(rounds: int) -> tuple[float, float]:
    """A nats-py request/reply round trip (an echo responder on a second connection)."""
    import nats

    async def run() -> tuple[float, float]:
        server, client = await nats.connect(NATS), await nats.connect(NATS)

        async def echo(msg: object) -> None:
            await msg.respond(b'{"ok": true}')  # type: ignore[attr-defined]

        await server.subscribe("perf-cluster.echo", cb=echo)
        await server.flush()
        waits = []
        for _ in range(rounds):
            start = time.perf_counter()
            await client.request("perf-cluster.echo", b'{"command": "x"}', timeout=5)
            waits.append((time.perf_counter() - start) * 1000)
        await client.close()
        await server.close()
        waits.sort()
        return statistics.median(waits), waits[int(len(waits) * 0.99) - 1]

    return asyncio.run(run())


def latency(quick: bool) -> None:
    rounds = 200 if quick else 1000
    print(f"\n2. latency of one blocking send, {rounds} commands (p50 / p99)")
    with schema() as name:
        options = {"registry": registry, "cluster": NATS, "lease_ttl": 2.0}
        with (
            Runtime(url(name), node="a", **options) as a,
            Runtime(url(name), node="b", **options) as b,
        ):  # type: ignore[arg-type]
            for rt in (a, b):
                rt.register(Account)
            while True:
                status = a.cluster()
                assert status is not None
                owners = dict(status.owners)
                if set(owners.values()) == {"a", "b"}:
                    break
                time.sleep(0.1)
            keys = {"a": [], "b": []}  # type: dict[str, list[str]]
            for i in range(400):
                key = f"acc-{i}"
                keys[owners[shard_of(f"Account-{key}", status.shards)] or "a"].append(key)
            on_a, on_b = keys["a"][:20], keys["b"][:20]
            local = _latencies(lambda n: a.send(Deposit(on_a[n % 20], 1)), rounds)
            remote = _latencies(lambda n: a.send(Deposit(on_b[n % 20], 1)), rounds)
    raw = _raw_nats(rounds)
    for label, (p50, p99) in (("local path", local), ("raw nats-py request/reply", raw)):
        print(
            f"{'to another node, p50 / p99':<34} {remote[0]:6.2f} / {remote[1]:6.2f} ms   "
            f"{label:<26} {p50:6.2f} / {p99:6.2f} ms   ratio p50 {remote[0] / p50:5.2f}x"
        )


def main(quick: bool = False) -> None:
    throughput(quick)
    latency(quick)
