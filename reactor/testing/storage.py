"""The storage conformance kit: every promise of the `Storage` protocol, as a pytest class.

A backend's test module subclasses `StorageContract` and defines one fixture, `storage`,
yielding a fresh, empty `Storage` (closed after). Durable backends may also override
`reopen` so that the model test closes and reopens the journal between steps:

    class TestMyBackend(StorageContract):
        @pytest.fixture
        def storage(self):
            s = MyStorage(...)
            yield s
            s.close()

Needs pytest and hypothesis (the `test` extra). The parts live in `storage_events`
(appends, reads, commands), `storage_records` (snapshots, checkpoints, dead letters, leases),
`storage_governance` (the hash chain, the audit trail, data keys, dump and load),
`storage_lineage` (events by id, correlation and cause; notes of commands) and
`storage_model` (concurrency and the model state machine).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reactor.store.base import Storage
from reactor.testing.storage_events import EventsContract
from reactor.testing.storage_governance import GovernanceContract
from reactor.testing.storage_lineage import LineageContract
from reactor.testing.storage_model import ConcurrencyContract, run_model
from reactor.testing.storage_records import RecordsContract

__all__ = ["StorageContract", "run_model"]


class StorageContract(
    EventsContract, RecordsContract, GovernanceContract, LineageContract, ConcurrencyContract
):
    """Every promise of the `Storage` protocol; subclass it and define `storage`."""

    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        raise NotImplementedError("define a `storage` fixture yielding a fresh, empty Storage")

    def reopen(self, storage: Storage) -> Storage | None:
        """Close `storage` and open the same journal again (None: the backend cannot)."""
        return None

    def test_matches_a_model(self, storage: Storage) -> None:
        """Random appends (right, wrong and no expected versions, re-appends, batches),
        snapshots, checkpoints and (where the backend can) reopening, against a model."""
        run_model(storage, self.reopen)
