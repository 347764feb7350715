"""What observability costs the running runtime, each next to the same runtime without it,
measured in the same run, interleaved (on, off, on, off, ...: the best of each): always-on
metrics against none recorded, and tracing (an SDK provider and no exporter, every trace
or 1% sampled) against none. Throughput (wall clock) and the process's CPU time per
command (steadier when other processes share the machine); with `--instructions`, the
instructions per blocking command counted by valgrind (callgrind), which no other process
disturbs: each variant runs twice, with N and 3N deposits, and the difference counts.

    python -m perf observed [--quick]       (also the end of `python -m perf runtime`)
    python -m perf.observed [--quick] --instructions
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from perf.runtime import Account, Counter, Deposit, Open, registry
from reactor import Runtime
from reactor.actors.instruments import NO_METRICS
from reactor.actors.messages import Reply

VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
ROUNDS = 5  # interleaved runs of each variant; the best counts (the machine is shared)


def workload(accounts: int, deposits: int) -> list[Any]:
    return [Open(f"acc-{i}") for i in range(accounts)] + [
        Deposit(f"acc-{i}", r + 1) for r in range(deposits) for i in range(accounts)
    ]


Rate = tuple[float, float]  # commands per second, CPU microseconds per command


def timed(commands: list[Any], run: Callable[[], None]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(commands) / wall, cpu / len(commands) * 1e6


def blocking(rt: Runtime, commands: list[Any]) -> Rate:
    def run() -> None:
        for c in commands:
            rt.send(c)

    return timed(commands, run)


def pipelined(rt: Runtime, commands: list[Any], window: int = 256) -> Rate:
    def run() -> None:
        inflight: collections.deque[Reply] = collections.deque()
        for c in commands:
            if len(inflight) >= window:
                inflight.popleft().get(60)
            inflight.append(rt.submit(c))
        for f in inflight:
            f.get(60)

    return timed(commands, run)


Variant = Callable[[str], Runtime]  # a store URL -> a Runtime, not started


def measure(
    url: Callable[[str], str], variants: dict[str, Variant], run: Any, commands: list[Any]
) -> dict[str, Rate]:
    """Commands per second and CPU us per command of each variant (one projection
    consumes every deposit): the best of ROUNDS interleaved runs, each on a fresh journal."""
    best = {name: (0.0, float("inf")) for name in variants}
    for n in range(ROUNDS):
        for name, make in variants.items():
            rt = make(url(f"{name}-{n}"))
            rt.register(Account, Counter)
            with rt:
                rate, cpu = run(rt, commands)
            best[name] = (max(best[name][0], rate), min(best[name][1], cpu))
    return best


def metrics_off(url: str) -> Runtime:
    """A runtime whose actors record nothing: the baseline of always-on metrics."""
    rt = Runtime(url, registry=registry)
    rt._observe.metrics = NO_METRICS  # type: ignore[assignment]
    return rt


def traced(sampled: float | None) -> Variant:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampler = None if sampled is None else ParentBased(TraceIdRatioBased(sampled))
    provider = TracerProvider(sampler=sampler)  # no span processor: nothing is exported
    return lambda url: Runtime(url, registry=registry, tracer_provider=provider)


def cost(label: str, on: Rate, off: Rate) -> None:
    print(
        f"   {label:<30} {on[0]:>8,.0f} cmd/s vs {off[0]:>8,.0f}: ratio {on[0] / off[0]:5.3f}"
        f"   CPU {on[1]:>5,.0f} us/cmd vs {off[1]:>5,.0f}: ratio {on[1] / off[1]:5.3f}"
    )


VARIANTS: dict[str, Callable[[], Variant]] = {
    "off": lambda: metrics_off,
    "on": lambda: lambda u: Runtime(u, registry=registry),
    "sdk": lambda: traced(None),
    "sdk1": lambda: traced(0.01),
}


def probe(variant: str, deposits: int) -> None:
    """In a child process (under valgrind): 100 accounts opened, then `deposits` deposits,
    blocking, on memory:// with one projection."""
    rt = VARIANTS[variant]()("memory://")
    rt.register(Account, Counter)
    with rt:
        blocking(rt, workload(100, deposits // 100))


def instructions(variant: str, deposits: int) -> int:
    """Instructions the whole child process executed (callgrind's count)."""
    out = subprocess.run(
        [*VALGRIND, sys.executable, "-m", "perf.observed", "--probe", variant, str(deposits)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {out.stderr[-500:]}")
    return int(found.group(1))


def per_command(quick: bool) -> None:
    """Instructions per blocking command of each variant (two runs each, two at a time)."""
    n = 500 if quick else 2000
    runs = [(v, d) for v in VARIANTS for d in (n, 3 * n)]
    with ThreadPoolExecutor(2) as pool:
        counts = dict(zip(runs, pool.map(lambda r: instructions(*r), runs), strict=True))
    each = {v: (counts[(v, 3 * n)] - counts[(v, n)]) / (2 * n) for v in VARIANTS}
    print(
        f"\n   instructions per blocking command (memory://, one projection; valgrind, {n:,}"
        f" and {3 * n:,} deposits)"
    )
    for label, v, base in (
        ("metrics off", "off", "off"),
        ("metrics on", "on", "off"),
        ("traced (SDK, no exporter)", "sdk", "on"),
        ("traced, 1% sampled", "sdk1", "on"),
    ):
        print(f"   {label:<30} {each[v]:>12,.0f}   ratio {each[v] / each[base]:5.3f} vs {base}")


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))

    accounts, deposits = (100, 5) if quick else (500, 10)
    commands = workload(accounts, deposits)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "memory://": lambda name: "memory://",
            "SQLite FULL": lambda name: f"sqlite:///{Path(tmp) / name}.db",
        }
        print(f"\n6. observability: {len(commands):,} commands, best of {ROUNDS} interleaved")
        print(
            "   (with the otel extra installed and no tracer provider set, a runtime does not "
            "trace:\n   it is the `metrics on` one, one `if tracing.enabled` per call site)"
        )
        for store, url in stores.items():
            for mode, run in (("blocking send", blocking), ("submit, 256 in flight", pipelined)):
                variants = {name: make() for name, make in VARIANTS.items()}
                rates = measure(url, variants, run, commands)
                print(f"{store}, {mode}")
                cost("metrics on vs off", rates["on"], rates["off"])
                cost("traced (SDK, no exporter)", rates["sdk"], rates["on"])
                cost("traced, 1% sampled", rates["sdk1"], rates["on"])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        probe(sys.argv[2], int(sys.argv[3]))
    else:
        main(quick="--quick" in sys.argv)
        if "--instructions" in sys.argv:
            per_command(quick="--quick" in sys.argv)
