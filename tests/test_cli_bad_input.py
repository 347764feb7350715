"""The `reactor` command given bad or hostile input: strings that look like SQL or shell,
odd unicode, negative limits, text where bytes were stored, a journal in use by a runtime,
a journal on a read-only file system. One line on stderr and exit 2 for what is wrong;
the journal is never changed by a look."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reactor import Envelope, Projection, RetryPolicy, Runtime, on
from reactor.cli import main
from reactor.store import NewRecord, open_storage
from tests.bank import Account, Deposit, Deposited
from tests.helpers import wait_for

HOSTILE = [
    "'; DROP TABLE events; --",
    'Account-a1" OR 1=1 --',
    "$(rm -rf /)",
    "名前-ü-\u202e-é",
    "x" * 5000,
    "%s %d {0} \\x00",
]


@pytest.fixture
def journal(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    store = open_storage(url)
    store.append("Account-a1", [NewRecord("e1", "bank.Opened", 1, b'{"a": 1}', 1.7e9)], 0)
    store.close()
    return url


def digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_are_data_not_commands(
    journal: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(journal)
    status, _, err = run(capsys, "journal", "show", text, "--store", journal)
    assert status == 2 and err.startswith("reactor: stream ") and "has no events" in err
    status, out, _ = run(capsys, "journal", "tail", "--types", text, "--store", journal)
    assert status == 0 and out.strip().split() == [
        "position",
        "stream",
        "seq",
        "type",
        "version",
        "time",
        "data",
    ]
    status, _, err = run(capsys, "dlq", "show", text, "--store", journal)
    assert status == 2 and "no dead letter" in err
    status, _, err = run(capsys, "dlq", "redrive", text, "--store", journal)
    assert status == 2 and "no dead letter" in err
    assert digest(journal) == before  # nothing was written, not even by the orders
    storage = open_storage(journal, create=False)
    assert [e.event_id for e in storage.read_all()] == ["e1"]
    storage.close()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["journal", "tail", "--limit", "-1"], "expected a whole number >= 0, got '-1'"),
        (["journal", "tail", "--after", "-5"], "expected a whole number >= 0, got '-5'"),
        (["journal", "tail", "--limit", "many"], "expected a whole number >= 0, got 'many'"),
    ],
)
def test_bad_numbers_are_refused(
    journal: str, argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--store", journal])
    assert info.value.code == 2 and says in capsys.readouterr().err


def test_text_data_and_a_timestamp_that_is_not_one_still_print(
    journal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = journal.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET data = '{\"as\": \"text\"}', timestamp = 'noon'")
    for argv in (["journal", "show", "Account-a1"], ["journal", "tail"], ["journal", "info"]):
        status, out, err = run(capsys, *argv, "--store", journal)
        assert status == 0, err
    _, out, _ = run(capsys, "journal", "tail", "--full", "--store", journal)
    assert '{"as": "text"}' in out and "'noon' (not a time)" in out


class Ledger(Projection):
    retry = RetryPolicy(max_attempts=1)
    broken = True

    def __init__(self) -> None:
        self.booked: list[int] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        if Ledger.broken and e.amount == 13:
            raise ValueError("cannot book 13")
        self.booked.append(e.amount)

    def amounts(self) -> list[int]:
        return list(self.booked)


def test_an_order_given_while_the_runtime_runs_is_kept_and_carried_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reactor dlq redrive` on a file a runtime holds: the order is not erased when the
    handler parks the next event of that stream, and the running handler carries it out."""
    url = f"sqlite:///{tmp_path / 'held.db'}"
    Ledger.broken = True
    with Runtime(url) as rt:
        rt.register(Account, Ledger)
        rt.send(Deposit("a", 13))
        assert wait_for(lambda: rt.dead_letters() != [])
        (letter,) = rt.dead_letters()
        Ledger.broken = False  # the fix is deployed...
        status, out, _ = run(capsys, "dlq", "redrive", letter.id, "--store", url)
        assert status == 0 and "redrive ordered" in out
        last = rt.send(Deposit("a", 5)).position  # parked behind the letter meanwhile
        assert wait_for(lambda: rt.query(Ledger, after=last).amounts() == [13, 5])
        assert rt.dead_letters() == []
    Ledger.broken = True


def test_a_journal_on_a_read_only_file_system_can_be_looked_at(tmp_path: Path) -> None:
    """Mounted read-only (in a private mount namespace): the looks open it read-only and
    print it; nothing tries to write."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to mount a read-only file system")
    mount = tmp_path / "ro"
    mount.mkdir()
    script = f"""
set -e
mount -t tmpfs tmpfs {mount}
{sys.executable} -c "
from reactor.store import NewRecord, open_storage
s = open_storage('sqlite:///{mount}/j.db')
s.append('Account-a1', [NewRecord('e1', 'bank.Opened', 1, b'{{}}', 1.7e9)], 0)
s.close()"
mount -o remount,ro {mount}
{sys.executable} -m reactor journal info --store sqlite:///{mount}/j.db
{sys.executable} -m reactor journal tail --store sqlite:///{mount}/j.db
"""
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"no user namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "events      1" in done.stdout and "Account-a1" in done.stdout
