"""The storage conformance kit, part five: lineage (events by id, by correlation id and by
causation id; the notes of commands) and deleting a checkpoint (a rebuild's shadow).

`StorageContract` (in reactor/testing/storage.py) gathers every part.
"""

from __future__ import annotations

from reactor.store.base import Checkpoint, CommandNote, NewRecord, Storage
from reactor.testing.storage_events import ids


def traced(event_id: str, correlation: str | None, causation: str | None) -> NewRecord:
    """A record with these ids."""
    return NewRecord(event_id, "t.Happened", 1, b"{}", 1.7e9, None, correlation, causation)


def note(command_id: str, correlation: str | None, outcome: str = "rejected") -> CommandNote:
    return CommandNote(
        command_id=command_id,
        stream_id="Order-1",
        type="shop.Ship",
        outcome=outcome,
        error="Rejected: out of stock",
        correlation_id=correlation,
        causation_id="e1",
        by="Checkout",
        timestamp=1.7e9,
    )


class LineageContract:
    """Events found by id, correlation and causation (in position order, across streams);
    notes kept, replaced and found by command id and correlation."""

    def test_events_are_found_by_id(self, storage: Storage) -> None:
        storage.append("A", [traced("a1", "k", "c1"), traced("a2", "k", "c1")], 0)
        found = storage.find_event("a2")
        assert found is not None
        assert (found.stream_id, found.seq, found.position, found.correlation_id) == (
            "A",
            2,
            2,
            "k",
        )
        assert storage.find_event("nope") is None

    def test_events_are_found_by_correlation_and_cause_in_position_order(
        self, storage: Storage
    ) -> None:
        storage.append("A", [traced("a1", "k", "c1"), traced("a2", "other", "c2")], 0)
        storage.append("B", [traced("b1", "k", "c3"), traced("b2", None, None)], 0)
        storage.append("A", [traced("a3", "k", "c1")], 2)
        assert ids(storage.correlated("k")) == ["a1", "b1", "a3"]
        assert ids(storage.caused_by("c1")) == ["a1", "a3"]
        assert ids(storage.caused_by("c3")) == ["b1"]
        assert storage.correlated("none") == []
        assert storage.caused_by("none") == []

    def test_a_checkpoint_is_deleted_with_its_keyed_rows(self, storage: Storage) -> None:
        keyed = (("k1", b"v1"),)
        storage.save_checkpoint(Checkpoint(name="p~rebuild", position=4, state=b"s", keyed=keyed))
        storage.save_checkpoint(Checkpoint(name="p", position=9, state=b"t", keyed=keyed))
        assert storage.delete_checkpoint("p~rebuild") is True
        assert storage.load_checkpoint("p~rebuild") is None
        assert storage.load_keyed("p~rebuild") == {}
        assert [c.name for c in storage.checkpoints()] == ["p"]
        assert storage.load_keyed("p") == {"k1": b"v1"}
        assert storage.delete_checkpoint("p~rebuild") is False

    def test_notes_are_kept_replaced_and_found(self, storage: Storage) -> None:
        storage.save_note(note("n1", "k"))
        storage.save_note(note("n2", "k", outcome="failed"))
        storage.save_note(note("n3", "other"))
        storage.save_note(note("n1", "k", outcome="accepted"))
        assert storage.find_note("n1") == note("n1", "k", outcome="accepted")
        assert storage.find_note("none") is None
        assert sorted((n.command_id, n.outcome) for n in storage.notes("k")) == [
            ("n1", "accepted"),
            ("n2", "failed"),
        ]
        assert storage.notes("none") == []
