"""The memory backend passes the storage conformance kit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor.store import MemoryStorage, Storage
from reactor.testing.storage import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        s = MemoryStorage()
        yield s
        s.close()
