"""Backup and restore: a backup taken while a writer appends is the source as it stood at
one position (SQLite and PostgreSQL); restored into an empty store of any backend it
equals that and verifies; a runtime on it replays to the same state; files are readable
by their owner only; the CLI does both (with progress, in the audit trail)."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor import Runtime, StorageError, TamperedError
from reactor.cli import main
from reactor.security.chain import verify_storage
from reactor.store import Append, MemoryStorage, SQLiteStorage, Storage, open_storage
from reactor.store.backup import backup, restore
from reactor.testing.storage_events import rec
from reactor.testing.storage_governance import dumped, fill
from tests.customers import KEY, Customer, Directory, Echo, Move, Register, registry
from tests.pg import fresh_schema, needs_server, url


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def at(storage: Storage, position: int) -> dict[str, Any]:
    """What a dump of `storage` holds, its events cut at `position` (its other records are
    not written while the tests' writers append)."""
    found = dumped(storage)
    found["events"] = [(e, h) for e, h in found["events"] if e.position <= position]
    found["head"] = (position, found["events"][-1][1] if found["events"] else b"")
    return found


def under_writes(storage: Storage, take: Callable[[], int]) -> int:
    """Run `take()` while a thread appends to `storage` (before, during and after it);
    what it returned."""
    stop, appended = threading.Event(), threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set() or n < 40:
            storage.append("W", [rec(f"w{n}-{i}") for i in range(5)], None)
            n += 1
            if n == 20:
                appended.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert appended.wait(30)
        return take()
    finally:
        stop.set()
        writer.join(60)


def check_backup_under_writes(source: Storage, tmp_path: Path, targets: list[Storage]) -> None:
    fill(source)
    path = tmp_path / "copy.bak"
    position = under_writes(source, lambda: backup(source, path))
    assert source.last_position() > position > 100  # it was written before, during, after
    assert private(path)
    for target in targets:
        assert restore(path, target) == position
        assert dumped(target) == at(source, position)
        assert verify_storage(target) == position


def test_a_sqlite_backup_under_writes_restores_to_its_position(tmp_path: Path) -> None:
    source = SQLiteStorage(tmp_path / "src.db")
    targets = [SQLiteStorage(tmp_path / "restored.db"), MemoryStorage()]
    try:
        check_backup_under_writes(source, tmp_path, targets)
    finally:
        for s in (source, *targets):
            s.close()
    assert private(tmp_path / "restored.db") and private(tmp_path / "src.db")


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    for first in fresh_schema():
        for second in fresh_schema():
            yield first, second


@needs_server
def test_a_postgres_backup_under_writes_restores_to_its_position(
    tmp_path: Path, schemas: tuple[str, str]
) -> None:
    """From one REPEATABLE READ snapshot into the portable file; restored into SQLite and
    into another PostgreSQL schema."""
    source, target = (open_storage(url(s)) for s in schemas)
    local = SQLiteStorage(tmp_path / "restored.db")
    try:
        check_backup_under_writes(source, tmp_path, [target, local])
    finally:
        for s in (source, target, local):
            s.close()


def test_restore_refuses_a_store_that_is_not_empty_and_backup_an_existing_file(
    tmp_path: Path,
) -> None:
    source = MemoryStorage()
    fill(source)
    path = tmp_path / "copy.bak"
    backup(source, path)
    with pytest.raises(StorageError, match="exists already"):
        backup(source, path)
    target = MemoryStorage()
    target.append("X", [rec("x1")], 0)
    with pytest.raises(StorageError, match="not empty"):
        restore(path, target)
    with pytest.raises(StorageError, match="no backup at"):
        restore(tmp_path / "none.bak", MemoryStorage())


def test_a_copy_of_a_tampered_journal_fails_verify_the_same_way(tmp_path: Path) -> None:
    """Hashes are copied as they are: a backup launders nothing."""
    source = SQLiteStorage(tmp_path / "src.db")
    fill(source)
    source.close()
    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("UPDATE events SET data = x'7b7d' WHERE position = 2")
    source = SQLiteStorage(tmp_path / "src.db", create=False)
    backup(source, tmp_path / "copy.bak")
    source.close()
    copy = MemoryStorage()
    restore(tmp_path / "copy.bak", copy)
    with pytest.raises(TamperedError) as info:
        verify_storage(copy)
    assert (info.value.what, info.value.position) == ("edited", 2)


def test_a_runtime_on_the_restored_store_replays_to_the_same_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reactor journal backup` while the runtime runs, then `restore` and `verify`; the
    backup is in the source's audit trail, the restore in the copy's; a runtime with the
    same master key reads the same state, personal data included."""
    src, dest = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'new.db'}"
    bak = str(tmp_path / "copy.bak")
    with Runtime(src, registry=registry, master_key=KEY, snapshot_every=2) as rt:
        rt.register(Customer, Directory)
        for n in range(6):
            rt.send(Register(f"c{n}", f"user{n}@example.com"))
            rt.send(Move(f"c{n}", f"{n} Main St"))
        assert main(["journal", "backup", bak, "--store", src]) == 0
        state = rt.query(Directory, after=12).everything()
        emails = [rt.send(Echo(f"c{n}")).events[0].event.email for n in range(6)]
    assert "up to position 12" in capsys.readouterr().out
    assert main(["journal", "restore", bak, "--store", dest]) == 0
    out, err = capsys.readouterr()
    assert "restored 12 events" in out and "restore: 12 of 12 (100%)" in err
    assert main(["journal", "verify", "--store", dest]) == 0
    with Runtime(dest, registry=registry, master_key=KEY) as rt:
        rt.register(Customer, Directory)
        assert rt.query(Directory, after=12).everything() == state
        assert [rt.send(Echo(f"c{n}")).events[0].event.email for n in range(6)] == emails
        assert [e.action for e in rt.audit()] == ["restore"]  # the backup: written after
    stored = open_storage(src, readonly=True)
    assert [(e.action, e.outcome) for e in stored.audit()] == [("backup", "done")]
    stored.close()
    assert private(Path(bak)) and private(tmp_path / "new.db")


def test_the_plain_progress_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a terminal, progress is a line on stderr at each tenth of the work."""
    source = SQLiteStorage(tmp_path / "src.db")
    pad = b'{"pad": "%s"}' % (b"x" * 300)
    for n in range(30):
        source.append_batch(
            [Append(f"S{k}", [rec(f"e{k}", data=pad)], 0) for k in range(n * 100, n * 100 + 100)]
        )
    source.close()
    bak, store = str(tmp_path / "copy.bak"), f"sqlite:///{tmp_path / 'src.db'}"
    assert main(["journal", "backup", bak, "--store", store]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 3 and all(line.startswith("backup: ") for line in lines)
    assert lines[-1].endswith("(100%)")
