"""Crash tests: a runtime under load in a real subprocess is killed with SIGKILL at random
moments, several rounds on the same SQLite file. Every acknowledged command is in the
journal, streams are gapless, the durable projection equals a clean replay and the named
subscriber has seen every event (at least once)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from reactor import Runtime
from tests.bank import Account, Deposited
from tests.crash_app import Totals

ROOT = Path(__file__).resolve().parent.parent


def kill_after(url: str, round_: int, outfile: Path, acks: int) -> list[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_app", url, str(round_), str(outfile)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[str, int]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            cid, position = line.split()
            acked.append((cid, int(position)))
            if len(acked) >= acks:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert len(acked) >= acks, err
    return acked


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    audit = tmp_path / "audit.txt"
    rng = random.Random(7)
    acked: list[tuple[str, int]] = []
    for round_ in range(3):
        acked += kill_after(url, round_, audit, rng.randint(50, 400))
    with Runtime(url) as rt:
        rt.register(Account, Totals)
        storage = rt.store.storage
        for cid, position in acked:  # every acknowledged command is there, where it said
            record = storage.find_command(cid)
            assert record is not None and record.position == position, cid
        for info in storage.streams():
            assert [e.seq for e in rt.read_stream(info.stream_id)] == list(
                range(1, info.version + 1)
            )
        events = list(rt.read_all(types=[Deposited]))
        expected: dict[str, int] = {}
        for env in events:
            expected[env.event.account_id] = (
                expected.get(env.event.account_id, 0) + env.event.amount
            )
        totals, count = rt.query(Totals, after=rt.store.last_position()).state()
        assert (totals, count) == (expected, len(events))  # exactly once, across the kills
        checkpoint = storage.load_checkpoint("subscriber:audit")
        assert checkpoint is not None
    seen = set(audit.read_text().split())
    assert {e.event_id for e in events if e.position <= checkpoint.position} <= seen
