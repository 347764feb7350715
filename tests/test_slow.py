"""Deeper property runs, deselected by default (`pytest -m slow` runs them): the storage
state machines and the runtime's concurrency model test with many more examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from reactor.store import MemoryStorage, SQLiteStorage
from reactor.testing.storage import run_model
from tests.test_runtime_properties import CLIENTS, check_concurrent_commands
from tests.test_store_sqlite import TestSQLiteStorage

pytestmark = pytest.mark.slow
DEEP = settings(max_examples=400, stateful_step_count=60, deadline=None)


def test_memory_storage_model_deeply() -> None:
    storage = MemoryStorage()
    try:
        run_model(storage, run_settings=DEEP)
    finally:
        storage.close()


def test_sqlite_storage_model_deeply(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "deep.db")
    try:
        run_model(storage, TestSQLiteStorage().reopen, DEEP)
    finally:
        storage.close()


@settings(max_examples=200, deadline=None)
@given(CLIENTS)
def test_concurrent_commands_deeply(per_thread: list[list[tuple[str, str, int]]]) -> None:
    check_concurrent_commands(per_thread)
