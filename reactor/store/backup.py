"""Backups: a consistent copy of a journal, taken while runtimes write, in one portable
format (a SQLite journal file, readable by its owner only), and its restore into an empty
store of any backend. Stored hashes are copied as they are: `verify` passes on the copy
exactly when it passes on the original.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from reactor.errors import StorageError
from reactor.store.base import Progress, Storage
from reactor.store.sqlite import SQLiteStorage


def backup(storage: Storage, path: str | Path, progress: Progress | None = None) -> int:
    """Copy `storage` to a new file at `path`; the last position copied. A SQLite journal
    is copied with SQLite's online backup, any other through its `dump()` (one snapshot).
    `StorageError` if `path` exists; a copy that fails half-way is removed."""
    target = Path(path)
    if target.exists():
        raise StorageError(f"the backup {target} exists already: choose a new file")
    try:
        if isinstance(storage, SQLiteStorage):
            return storage.backup_to(target, progress)
        copy = SQLiteStorage(target)
        try:
            with storage.dump() as dump:
                copy.load(dump, progress)
                return dump.head[0]
        finally:
            copy.close()
    except BaseException:
        for leftover in (target, *(Path(f"{target}{end}") for end in ("-wal", "-shm"))):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise


def restore(path: str | Path, storage: Storage, progress: Progress | None = None) -> int:
    """Fill the empty `storage` with the backup at `path`, as it was; the number of events.
    `StorageError` if there is no backup there, or `storage` is not empty."""
    source_path = Path(path)
    if not source_path.is_file():
        raise StorageError(f"no backup at {source_path}: the file does not exist")
    source = SQLiteStorage(source_path, create=False, readonly=True)
    try:
        with source.dump() as dump:
            return storage.load(dump, progress)
    finally:
        source.close()
