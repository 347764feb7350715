"""The PostgreSQL backend passes the storage conformance kit, each test in a schema of its
own (dropped after), reopening it in the model test.

Needs a server on 127.0.0.1:5432 (database `test`, trust auth); the PostgreSQL tests are
skipped without one, except under CI=true, where they run (and fail).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor.store import Storage
from reactor.store.postgres import PostgresStorage
from reactor.testing.storage import StorageContract
from tests.pg import fresh_schema, needs_server, url

pytestmark = needs_server


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
