"""The governance verbs of `EventStore`: personal data sealed and forgotten with a key ring,
sealed snapshots, data keys, the audit trail and the hash chain."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import attrs

import reactor.security.snapshots as snapshots
from reactor.codec import Codec
from reactor.errors import StorageError
from reactor.security.chain import verify_storage
from reactor.store.base import AuditRecord, Snapshot, Storage

if TYPE_CHECKING:
    from reactor.security.crypto import KeyRing


class Governed:
    """What `EventStore` does for governance, over its `storage` and `codec`."""

    storage: Storage
    codec: Codec

    @property
    def url(self) -> str:
        return self.storage.url

    def unlock(self, master_key: bytes) -> KeyRing:
        """Seal and open personal data with data keys kept in this journal, wrapped by
        `master_key`; `MasterKeyError` if it is not the key they were wrapped with."""
        from reactor.security.crypto import KeyRing

        ring = self.codec.ring = KeyRing(master_key, self)
        return ring

    def forget(self, subject: str) -> bool:
        """Destroy the subject's data key: its personal values read as masked from now on
        (the events stay); False if it had none. `StorageError` without a key ring."""
        if self.codec.ring is None:
            raise StorageError(f"{self.url}: forget() needs the master key (unlock() first)")
        return self.codec.ring.forget(subject)

    def subjects(self, event: object) -> tuple[str, ...]:
        """The subjects whose personal values `event` holds (none for most events)."""
        fields = self.codec.plan(type(event)).personal
        return snapshots.subjects(fields, event) if fields else ()

    def seal_snapshot(self, snapshot: Snapshot, owners: Collection[str]) -> Snapshot:
        """`snapshot` with its state sealed under each of `owners` (as it is for none)."""
        if not owners or self.codec.ring is None:
            return snapshot
        state = snapshots.seal_state(self.codec.ring, snapshot.state, owners, snapshot.stream_id)
        return attrs.evolve(snapshot, state=state)

    def open_snapshot(self, snapshot: Snapshot) -> tuple[bytes, tuple[str, ...]] | None:
        """A snapshot's state and owners (see `seal_snapshot`); None if it cannot be opened
        any more (an owner was forgotten): rebuild from the events instead."""
        try:
            return snapshots.open_state(self.codec.ring, snapshot.state, snapshot.stream_id)
        except LookupError:
            return None

    def save_key(self, subject: str, wrapped: bytes) -> bytes:
        return self.storage.save_key(subject, wrapped)

    def load_key(self, subject: str) -> bytes | None:
        return self.storage.load_key(subject)

    def load_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        return self.storage.load_keys(subjects)

    def delete_key(self, subject: str) -> bool:
        return self.storage.delete_key(subject)

    def append_audit(self, entries: Sequence[AuditRecord]) -> None:
        self.storage.append_audit(entries)

    def audit(
        self, since: float | None = None, principal: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        return self.storage.audit(since, principal, limit)

    def verify(self) -> int:
        """Walk the hash chain: the number of events checked, or `TamperedError`."""
        return verify_storage(self.storage)
