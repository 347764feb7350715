"""Shared helpers of the PostgreSQL tests: the test server, a fresh schema per test, and a
skip (except under CI=true) when no server answers."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
