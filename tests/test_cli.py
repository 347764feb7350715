"""The `reactor` command: journal info, streams, show and tail print readable tables;
a missing file, a foreign database or a bad URL is one line on stderr and exit status 2."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import reactor
from reactor.cli import main
from reactor.store import NewRecord, open_storage


@pytest.fixture
def journal(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    store = open_storage(url)
    store.append(
        "Account-a1",
        [
            NewRecord("e1", "bank.Opened", 1, b'{"account_id": "a1"}', 1700000000.0),
            NewRecord(
                "e2", "bank.Deposited", 2, b'{"account_id": "a1", "amount": 10}', 1700000001.5
            ),
        ],
        0,
    )
    store.append(
        "Account-b2",
        [
            NewRecord(
                "e3",
                "bank.Opened",
                1,
                b'{"account_id": "b2"' + b', "x": 1' * 20 + b"}",
                1700000002.0,
            )
        ],
        0,
    )
    store.close()
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert (
        info.value.code == 0 and capsys.readouterr().out.strip() == f"reactor {reactor.__version__}"
    )


def test_info(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "journal", "info", "--store", journal)
    assert status == 0
    assert lines[1:] == ["events      3", "streams     2", "last event  2023-11-14 22:13:22.000"]


def test_streams(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "journal", "streams", "--store", journal)
    assert (status, lines) == (
        0,
        [
            "stream      version  last position",
            "Account-a1        2              2",
            "Account-b2        1              3",
        ],
    )


def test_show(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "journal", "show", "Account-a1", "--store", journal)
    assert status == 0
    assert lines[0].split() == ["seq", "position", "type", "version", "time", "data"]
    assert lines[2].split()[:5] == ["2", "2", "bank.Deposited", "2", "2023-11-14"]
    assert lines[2].endswith('{"account_id": "a1", "amount": 10}')


def test_tail_after_types_and_cut_data(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(
        capsys, "journal", "tail", "--after", "1", "--types", "bank.Opened", "--store", journal
    )
    assert status == 0 and len(lines) == 2
    assert lines[1].split()[:3] == ["3", "Account-b2", "1"] and lines[1].endswith("...")
    _, full, _ = run(
        capsys, "journal", "tail", "--full", "--limit", "1", "--after", "2", "--store", journal
    )
    assert full[1].endswith('"x": 1}')


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["journal", "info", "--store", "sqlite:///{dir}/missing.db"], "no journal at"),
        (
            ["journal", "streams", "--store", "sqlite:///{dir}/foreign.db"],
            "is not a reactor journal",
        ),
        (["journal", "show", "Nope-1", "--store", "{journal}"], "stream 'Nope-1' has no events"),
        (["journal", "tail", "--store", "mysql://x"], "unknown store URL 'mysql://x'"),
    ],
)
def test_errors_are_one_line(
    argv: list[str], message: str, journal: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(tmp_path / "foreign.db") as db:
        db.execute("CREATE TABLE t (a)")
    argv = [a.format(dir=tmp_path, journal=journal) for a in argv]
    status, lines, err = run(capsys, *argv)
    assert status == 2 and lines == []
    assert err.count("\n") == 1 and err.startswith("reactor: ") and message in err


def test_console_script_runs(journal: str) -> None:
    """`python -m reactor` is the same command as the `reactor` script."""
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "journal", "streams", "--store", journal],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Account-a1" in done.stdout
