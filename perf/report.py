"""Timing and printing helpers shared by the perf scenarios."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence


def rate(count: int, fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` runs of `fn`, as `count` operations per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def row(label: str, ours: float, baseline: float, baseline_label: str, unit: str = "/s") -> None:
    """One line: our figure, the baseline's, and the ratio."""
    print(
        f"{label:<44} {ours:>12,.0f} {unit:<9} {baseline_label:<26} {baseline:>12,.0f} {unit:<9}"
        f" ratio {ours / baseline:5.2f}x"
    )


def start_together(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Wait until each process printed "ready", then tell them all to go (a line on stdin)."""
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
