"""Durability: a subprocess appends to a SQLite journal and is killed with SIGKILL; on
reopening, every acknowledged event is there and no append is half written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.store import open_storage
from tests.durability_writer import BATCH

ROOT = Path(__file__).resolve().parent.parent


def run_and_kill(url: str, acks_before_kill: int) -> list[list[str]]:
    """Start the writer, read `acks_before_kill` acknowledgements, SIGKILL it mid-stream."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.durability_writer", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(line.split())
            if len(acked) >= acks_before_kill:
                break
        assert len(acked) >= acks_before_kill, proc.stderr.read() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return acked


@settings(max_examples=max(3, settings().max_examples // 20), deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_acknowledged_appends_survive_sigkill(kills: list[int]) -> None:
    """Guarantee 3, with the kill moments drawn by hypothesis: after each SIGKILL (several
    rounds on one file) every acknowledged append is where it was acknowledged, and every
    append is whole."""
    with tempfile.TemporaryDirectory(prefix="reactor-kill-") as tmp:
        check_rounds(f"sqlite:///{Path(tmp) / 'crash.db'}", kills)


def check_rounds(url: str, kills: list[int]) -> None:
    all_acked: list[list[str]] = []
    for acks in kills:
        all_acked += run_and_kill(url, acks)
        store = open_storage(url)
        try:
            by_id = {e.event_id: e for e in store.read_all()}
            for event_id, stream, seq, position in all_acked:
                e = by_id[event_id]
                assert (e.stream_id, e.seq, e.position) == (stream, int(seq), int(position))
            for info in store.streams():
                assert info.version % BATCH == 0, f"half-written append in {info}"
                seqs = [e.seq for e in store.read_stream(info.stream_id)]
                assert seqs == list(range(1, info.version + 1))
            positions = [e.position for e in store.read_all()]
            assert positions == list(range(1, len(positions) + 1))
        finally:
            store.close()
