"""The SQLite backend passes the storage conformance kit, reopening its file in the model
test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.store import SQLiteStorage, Storage
from reactor.testing.storage import StorageContract


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        s = SQLiteStorage(tmp_path / "journal.db")
        yield s
        s.close()

    def reopen(self, storage: Storage) -> Storage | None:
        assert isinstance(storage, SQLiteStorage)
        storage.close()
        return SQLiteStorage(storage.path)
