"""The conformance kit fails broken backends: one that skips a position in `read_all`, one
that accepts a stale expected version, one that stores half of a multi-event append, one
whose lineage reads lose the order."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BROKEN = textwrap.dedent(
    """
    import pytest
    from reactor.store import Append, MemoryStorage
    from reactor.testing.storage import StorageContract

    class Skipping(MemoryStorage):
        def read_all(self, after=0, types=None, limit=None):
            return (e for e in super().read_all(after, types, limit) if e.position != 2)

    class Stale(MemoryStorage):
        def append_batch(self, appends):
            return super().append_batch([a._replace(expected_version=None) for a in appends])

    class Half(MemoryStorage):
        def append_batch(self, appends):
            return super().append_batch([a._replace(records=a.records[:1]) for a in appends])

    class Unordered(MemoryStorage):
        def correlated(self, correlation_id):
            return sorted(super().correlated(correlation_id), key=lambda e: e.event_id)[::-1]

    class TestBroken(StorageContract):
        @pytest.fixture
        def storage(self):
            s = {backend}()
            yield s
            s.close()
    """
)


@pytest.mark.parametrize(
    ("backend", "caught_by"),
    [
        ("Skipping", "test_append_assigns_seq_and_position"),
        ("Stale", "test_wrong_expected_version_raises_and_changes_nothing"),
        ("Half", "test_append_assigns_seq_and_position"),
        ("Unordered", "test_events_are_found_by_correlation_and_cause_in_position_order"),
    ],
)
def test_the_kit_fails_a_broken_backend(tmp_path: Path, backend: str, caught_by: str) -> None:
    """The case named catches it (run alone: the whole kit catches it too, and its model
    test would then shrink its counterexample for a long while)."""
    module = tmp_path / f"test_{backend.lower()}.py"
    module.write_text(BROKEN.format(backend=backend))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            caught_by,
            str(module),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert f"FAILED {module.name}::TestBroken::{caught_by}" in run.stdout, run.stdout[-3000:]


def test_the_kit_passes_a_sound_backend(tmp_path: Path) -> None:
    module = tmp_path / "test_memory.py"
    module.write_text(BROKEN.format(backend="MemoryStorage"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
