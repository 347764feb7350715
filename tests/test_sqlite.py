"""SQLite specifics: opening files (missing, foreign, newer schema, not a database),
URL options and the settings it applies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reactor import StorageError
from reactor.store import NewRecord, SQLiteStorage, open_storage


def test_missing_file_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"no journal at .*missing.db: the file does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(StorageError, match=r"is not a reactor journal \(it has tables users"):
        open_storage(f"sqlite:///{path}")


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just some text, certainly not a database " * 50)
    with pytest.raises(StorageError, match="is not a reactor journal: file is not a database"):
        open_storage(f"sqlite:///{path}")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reactor_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match="has journal schema 99, newer than this reactor's 4"):
        SQLiteStorage(path)


def test_schema_version_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = open_storage(f"sqlite:///{path}?synchronous=normal&busy_timeout=2")
    assert isinstance(store, SQLiteStorage) and store.synchronous == "NORMAL"
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        meta = dict(db.execute("SELECT key, value FROM reactor_meta"))
    assert meta == {"application": "reactor", "schema_version": "4"}
    assert SQLiteStorage(path).synchronous == "FULL"  # the default


def test_relative_paths_and_reopening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_storage("sqlite:///rel.db")
    store.append("A", [NewRecord("e1", "t.X", 1, b"{}", 0.0)], 0)
    store.close()
    again = open_storage("sqlite:///rel.db", create=False)
    assert [e.event_id for e in again.read_all()] == ["e1"]
    again.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://x",
            r"unknown store URL 'mysql://x': expected one of .*memory://, postgres://, "
            r"postgresql://, sqlite://",
        ),
        ("bank.db", "unknown store URL 'bank.db'"),
        ("sqlite://bank.db", "sqlite URL needs three slashes and a path"),
        ("sqlite:///x.db?synchronus=FULL", r"unknown sqlite option\(s\) \['synchronus'\]"),
        ("sqlite:///x.db?synchronous=SOMETIMES", "synchronous must be one of OFF, NORMAL, FULL"),
        (
            "sqlite:///x.db?busy_timeout=soon",
            "busy_timeout must be a finite number of seconds >= 0, got 'soon'",
        ),
        ("memory://somewhere", "memory:// takes no path or options"),
    ],
)
def test_bad_urls_are_loud(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=message):
        open_storage(url)
