"""The PostgreSQL backend passes the storage conformance kit, each test in a schema of its
own (dropped after), reopening it in the model test.

Needs a server on 127.0.0.1:5432 (database `test`, trust auth); the PostgreSQL tests are
skipped without one, except under CI=true, where they run (and fail).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reactor.store import Storage
from reactor.store.postgres import PostgresStorage
from reactor.testing.storage import StorageContract

SERVER = "127.0.0.1:5432/test"


def _server_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


needs_server = pytest.mark.skipif(
    os.environ.get("CI") != "true" and not _server_up(),
    reason="no PostgreSQL server on 127.0.0.1:5432 (CI=true runs these tests anyway)",
)
pytestmark = needs_server


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:12]}"


def url(schema: str, **options: object) -> str:
    """The URL of `schema` in the test database."""
    query = "".join(f"&{k}={v}" for k, v in options.items())
    return f"postgresql://{SERVER}?schema={schema}{query}"


def drop(schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg

    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fresh_schema() -> Iterator[str]:
    """A fresh schema name, dropped after the test (the body of a fixture)."""
    name = new_schema()
    yield name
    drop(name)


def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Wait for `condition()` to be true (its value), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema()


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage(self, schema: str) -> Iterator[Storage]:
        s = PostgresStorage(url(schema))
        yield s
        s.close()

    def reopen(self, storage: Storage) -> Storage | None:
        assert isinstance(storage, PostgresStorage)
        storage.close()
        return PostgresStorage(url(storage.target.schema), create=False)
