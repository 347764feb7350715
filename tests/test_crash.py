"""Crash tests: a runtime under load in a real subprocess is killed with SIGKILL at random
moments, several rounds on the same SQLite file. Every acknowledged command is in the
journal, streams are gapless, the durable projection equals a clean replay and the named
subscriber has seen every event (at least once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=max(3, settings().max_examples // 20), deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_sigkill_under_load_loses_nothing_acknowledged(kills: list[int]) -> None:
    """Guarantees 3 and 5 under SIGKILL, the kill moments drawn by hypothesis."""
    with tempfile.TemporaryDirectory(prefix="reactor-crash-") as tmp:
        check_kills(Path(tmp), kills)


def check_kills(tmp: Path, kills: list[int]) -> None:
    url = f"sqlite:///{tmp / 'crash.db'}"
    audit = tmp / "audit.txt"
    acked: list[tuple[str, int]] = []
    for round_, acks in enumerate(kills):
        acked += kill_after(url, round_, audit, acks)
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
