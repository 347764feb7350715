"""Durability: a subprocess appends to a SQLite journal and is killed with SIGKILL; on
reopening, every acknowledged event is there and no append is half written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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


def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    all_acked: list[list[str]] = []
    for round_ in range(3):  # several rounds on the same file
        all_acked += run_and_kill(url, 150 + 50 * round_)
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
