"""Memory under a slow consumer: a subscriber taking 2 ms per event while commands flow
at full speed. With bounded mailboxes (the default `backlog`) its lag lives in the journal
and RSS stays flat; the baseline is the same run with the bound lifted (`backlog` larger
than the run), where the lag piles up in its mailbox.

    python -m perf backpressure [--quick]
"""

from __future__ import annotations

import collections
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from perf.report import row
from perf.runtime import Account, Deposited, registry, workload
from reactor import Runtime
from reactor.actors.messages import Reply

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """The resident set size now (not the peak), in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def run(url: str, commands: list[Any], backlog: int) -> tuple[list[int], int]:
    """RSS after each quarter of the commands, and how far behind the subscriber was."""
    work = [0.002]  # seconds per event; 0 once measured, so that stopping is quick

    def slow(e: Any, env: Any) -> None:
        time.sleep(work[0])

    with Runtime(url, registry=registry, backlog=backlog) as rt:
        rt.register(Account)
        rt.subscribe(slow, types=[Deposited], name="slow")
        inflight: collections.deque[Reply] = collections.deque()
        samples, quarter = [], len(commands) // 4
        for n, c in enumerate(commands, 1):
            if len(inflight) >= 256:
                inflight.popleft().get(60)
            inflight.append(rt.submit(c))
            if n % quarter == 0:
                gc.collect()
                samples.append(rss())
        for f in inflight:
            f.get(60)
        lag = rt.health().lag()["slow"]
        work[0] = 0.0
        return samples, lag


def main(quick: bool = False) -> None:
    commands = workload(500 if quick else 1000, 20 if quick else 80)
    print(__doc__.splitlines()[0])
    print(f"\n{len(commands):,} commands, a subscriber at 2 ms per event")
    with tempfile.TemporaryDirectory() as tmp:
        bounded, lag = run(f"sqlite:///{Path(tmp) / 'b.db'}", commands, 10_000)
        lifted, lag_lifted = run(f"sqlite:///{Path(tmp) / 'u.db'}", commands, len(commands) * 2)
    label = "RSS growth, 1st to 4th quarter, backlog 10k"
    row(
        label,
        (bounded[-1] - bounded[0]) / 1e6,
        (lifted[-1] - lifted[0]) / 1e6,
        "bound lifted",
        "MB",
    )
    print(
        "   RSS by quarter (MB): bounded "
        + " / ".join(f"{b / 1e6:.0f}" for b in bounded)
        + "; bound lifted "
        + " / ".join(f"{b / 1e6:.0f}" for b in lifted)
        + f"\n   lag at the end: {lag:,} events (bounded: read from the journal), "
        f"{lag_lifted:,} (bound lifted: held in the mailbox)"
    )
