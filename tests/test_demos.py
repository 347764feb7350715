"""The demos run to completion, as the README's first command runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_demo(name: str, cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "demos" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_journal_demo_twice_on_one_file(tmp_path: Path) -> None:
    """The first run writes release-1 events; both runs read them upcast to version 2."""
    first = run_demo("journal.py", tmp_path)
    assert "release 1 wrote 3 events" in first
    assert "seq  2  v2  Deposited(account_id='ann', amount=Decimal('100'), currency='EUR')" in first
    assert "balance: 125.5 EUR, 40.00 USD" in first
    second = run_demo("journal.py", tmp_path)
    assert "release 1 wrote" not in second and "balance: 125.5 EUR, 80.00 USD" in second
    assert "expected version 4, but it is at 5" in second
