"""What observability costs the running runtime, each next to the same runtime without it,
measured in the same run, interleaved (on, off, on, off, ...: the best of each): always-on
metrics against none recorded, and tracing (an SDK provider and no exporter, every trace
or 1% sampled; the `otel` extra installed and no provider) against none.

    python -m perf observed [--quick]      (also the last part of `python -m perf runtime`)
"""

from __future__ import annotations

import collections
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf.runtime import Account, Counter, Deposit, Open, registry
from reactor import Runtime
from reactor.actors.instruments import NO_METRICS
from reactor.actors.messages import Reply

ROUNDS = 5  # interleaved runs of each variant; the best counts (the machine is shared)


def workload(accounts: int, deposits: int) -> list[Any]:
    return [Open(f"acc-{i}") for i in range(accounts)] + [
        Deposit(f"acc-{i}", r + 1) for r in range(deposits) for i in range(accounts)
    ]


def blocking(rt: Runtime, commands: list[Any]) -> float:
    start = time.perf_counter()
    for c in commands:
        rt.send(c)
    return len(commands) / (time.perf_counter() - start)


def pipelined(rt: Runtime, commands: list[Any], window: int = 256) -> float:
    inflight: collections.deque[Reply] = collections.deque()
    start = time.perf_counter()
    for c in commands:
        if len(inflight) >= window:
            inflight.popleft().get(60)
        inflight.append(rt.submit(c))
    for f in inflight:
        f.get(60)
    return len(commands) / (time.perf_counter() - start)


Variant = Callable[[str], Runtime]  # a store URL -> a Runtime, not started


def measure(
    url: Callable[[str], str], variants: dict[str, Variant], run: Any, commands: list[Any]
) -> dict[str, float]:
    """Commands per second of each variant (one projection consumes every deposit): the
    best of ROUNDS interleaved runs, each on a fresh journal."""
    best = dict.fromkeys(variants, 0.0)
    for n in range(ROUNDS):
        for name, make in variants.items():
            rt = make(url(f"{name}-{n}"))
            rt.register(Account, Counter)
            with rt:
                best[name] = max(best[name], run(rt, commands))
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


def cost(label: str, on: float, off: float) -> None:
    print(
        f"{label:<50} {on:>10,.0f} cmd/s   off {off:>10,.0f} cmd/s   "
        f"ratio {on / off:5.3f}   cost {1 - on / off:+6.1%}"
    )


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    import opentelemetry.trace  # noqa: F401  (installed, no provider set: tracing stays off)

    accounts, deposits = (100, 5) if quick else (200, 10)
    commands = workload(accounts, deposits)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "memory://": lambda name: "memory://",
            "SQLite FULL": lambda name: f"sqlite:///{Path(tmp) / name}.db",
        }
        print(f"\n6. observability: {len(commands):,} commands, best of {ROUNDS} interleaved")
        print(
            "   (the otel extra installed and no provider set is the `metrics on` runtime: "
            "tracing is NO_TRACING,\n   one `if tracing.enabled` per call site; tracing is "
            "compared with it)"
        )
        for store, url in stores.items():
            for mode, run in (("blocking send", blocking), ("submit, 256 in flight", pipelined)):
                rates = measure(
                    url,
                    {
                        "on": lambda u: Runtime(u, registry=registry),
                        "off": metrics_off,
                        "sdk": traced(None),
                        "sdk1": traced(0.01),
                    },
                    run,
                    commands,
                )
                where = f"{store}, {mode}"
                cost(f"metrics on ({where})", rates["on"], rates["off"])
                cost(f"tracing: SDK, no exporter ({where})", rates["sdk"], rates["on"])
                cost(f"tracing: SDK, 1% sampled ({where})", rates["sdk1"], rates["on"])


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
