"""The storage conformance kit, part one: appends, reads and idempotent commands.

`StorageContract` (in reactor/testing/storage.py) gathers every part.
"""

from __future__ import annotations

import pytest

from reactor.errors import ConcurrencyError, DuplicateEventId
from reactor.store.base import (
    Append,
    Checkpoint,
    CommandRecord,
    DeadLetterRecord,
    NewRecord,
    Storage,
    StreamInfo,
)


def rec(event_id: str, type_: str = "t.Happened", data: bytes = b"{}") -> NewRecord:
    """A record with this event id (type, data and a fixed timestamp)."""
    return NewRecord(event_id, type_, 1, data, 1.7e9)


def ids(events: object) -> list[str]:
    return [e.event_id for e in events]  # type: ignore[attr-defined]


def letter(
    letter_id: str,
    handler: str,
    position: int,
    stream_id: str,
    *,
    parked: tuple[int, ...] = (),
    attempts: int = 1,
) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=letter_id,
        handler=handler,
        position=position,
        stream_id=stream_id,
        error="ValueError: boom",
        attempts=attempts,
        parked=parked,
    )


class EventsContract:
    """Appends at expected versions, gapless seqs and positions, idempotent re-appends by
    event id and by command id, batches, and reads."""

    def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)

    def test_empty_store(self, storage: Storage) -> None:
        assert storage.last_position() == 0
        assert storage.stream_version("S") == 0
        assert list(storage.read_all()) == [] and list(storage.read_stream("S")) == []
        assert list(storage.streams()) == []
        assert storage.load_snapshot("S") is None and storage.load_checkpoint("c") is None

    def test_append_assigns_seq_and_position(self, storage: Storage) -> None:
        a = storage.append("A", [rec("a1"), rec("a2")], 0)
        b = storage.append("B", [rec("b1")], 0)
        c = storage.append("A", [rec("a3")], 2)
        assert [(e.stream_id, e.seq, e.position) for e in a + b + c] == [
            ("A", 1, 1),
            ("A", 2, 2),
            ("B", 1, 3),
            ("A", 3, 4),
        ]
        assert ids(storage.read_stream("A")) == ["a1", "a2", "a3"]
        assert ids(storage.read_all()) == ["a1", "a2", "b1", "a3"]
        assert storage.last_position() == 4 and storage.stream_version("A") == 3
        assert list(storage.streams()) == [StreamInfo("A", 3, 4), StreamInfo("B", 1, 3)]

    def test_stored_events_keep_every_field(self, storage: Storage) -> None:
        r = NewRecord(
            "e1", "t.X", 3, b'{"a": 1}', 1700000000.25, b'{"user": "ann"}', "corr", "cause"
        )
        (stored,) = storage.append("S", [r], None)
        (read,) = storage.read_all()
        assert stored == read
        assert (read.event_id, read.stream_id, read.seq, read.position) == ("e1", "S", 1, 1)
        assert (read.type, read.version, read.data, read.timestamp) == (
            "t.X",
            3,
            b'{"a": 1}',
            1700000000.25,
        )
        assert (read.metadata, read.correlation_id, read.causation_id) == (
            b'{"user": "ann"}',
            "corr",
            "cause",
        )

    def test_wrong_expected_version_raises_and_changes_nothing(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        for expected in (0, 2, 5):
            with pytest.raises(ConcurrencyError) as info:
                storage.append("A", [rec(f"x{expected}")], expected)
            assert (info.value.stream_id, info.value.expected, info.value.actual) == (
                "A",
                expected,
                1,
            )
            assert str(info.value) == f"stream 'A': expected version {expected}, but it is at 1"
        with pytest.raises(ConcurrencyError, match="expected version 3, but it is at 0"):
            storage.append("New", [rec("n1")], 3)
        assert ids(storage.read_all()) == ["a1"] and storage.stream_version("New") == 0

    def test_none_expected_version_skips_the_check(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], None)
        storage.append("A", [rec("a2")], None)
        assert [e.seq for e in storage.read_stream("A")] == [1, 2]

    def test_empty_append_checks_the_version_and_writes_nothing(self, storage: Storage) -> None:
        assert storage.append("A", [], 0) == []
        with pytest.raises(ConcurrencyError):
            storage.append("A", [], 1)
        assert list(storage.streams()) == [] and storage.last_position() == 0

    def test_reappending_the_same_event_ids_is_idempotent(self, storage: Storage) -> None:
        first = storage.append("A", [rec("a1"), rec("a2")], 0)
        storage.append("A", [rec("a3")], 2)
        assert storage.append("A", [rec("a1"), rec("a2")], 0) == first  # same place: stored ones
        assert storage.append("A", [rec("a1"), rec("a2")], None) == first
        assert storage.append("A", [rec("a3")], None)[0].seq == 3
        assert storage.last_position() == 3

    def test_event_ids_stored_elsewhere_are_refused(self, storage: Storage) -> None:
        storage.append("A", [rec("a1"), rec("a2")], 0)
        cases = [
            ("B", [rec("a1")], 0),  # another stream
            ("A", [rec("a2")], 0),  # another place in the stream
            ("A", [rec("a1"), rec("zz")], 0),  # partly stored
            ("A", [rec("a2"), rec("a1")], None),  # out of order
        ]
        for stream, records, expected in cases:
            with pytest.raises(DuplicateEventId) as info:
                storage.append(stream, records, expected)
            assert info.value.stream_id == "A" and info.value.seq in (1, 2)
            assert "is already used by stream 'A' at seq" in str(info.value)
        with pytest.raises(DuplicateEventId, match="'d' is already used by the same append"):
            storage.append("C", [rec("d"), rec("d")], 0)
        assert storage.last_position() == 2

    def test_append_batch_has_an_outcome_per_append(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        outcomes = storage.append_batch(
            [
                Append("A", [rec("a2")], 1),
                Append("B", [rec("b1")], 5),  # stale: refused alone
                Append("A", [rec("a3")], 2),  # sees the batch's own earlier append
                Append("C", [rec("a1")], 0),  # duplicate id
                Append("C", [rec("c1"), rec("c2")], None),
            ]
        )
        assert [type(o.error).__name__ if o.error else None for o in outcomes] == [
            None,
            "ConcurrencyError",
            None,
            "DuplicateEventId",
            None,
        ]
        assert [ids(o.events) for o in outcomes] == [["a2"], [], ["a3"], [], ["c1", "c2"]]
        assert ids(storage.read_all()) == ["a1", "a2", "a3", "c1", "c2"]
        assert [e.position for e in storage.read_all()] == [1, 2, 3, 4, 5]
        with pytest.raises(ConcurrencyError):
            outcomes[1].result()

    def test_checkpoint_is_saved_with_its_append_only(self, storage: Storage) -> None:
        outcomes = storage.append_batch(
            [
                Append("A", [rec("a1")], 0, Checkpoint(name="proj", position=10, state=b"state-1")),
                Append(
                    "B", [rec("b1")], 3, Checkpoint(name="other", position=11)
                ),  # refused: no checkpoint
                Append(
                    "none", [], None, Checkpoint(name="alone", position=12, state=b"x")
                ),  # a checkpoint with no events
            ]
        )
        assert [o.error is None for o in outcomes] == [True, False, True]
        assert storage.load_checkpoint("proj") == Checkpoint(
            name="proj", position=10, state=b"state-1"
        )
        assert storage.load_checkpoint("other") is None
        assert storage.load_checkpoint("alone") == Checkpoint(name="alone", position=12, state=b"x")

    def test_read_stream_ranges(self, storage: Storage) -> None:
        storage.append("A", [rec(f"a{i}") for i in range(1, 6)], 0)
        assert [e.seq for e in storage.read_stream("A", 2, 4)] == [2, 3, 4]
        assert [e.seq for e in storage.read_stream("A", 4)] == [4, 5]
        assert [e.seq for e in storage.read_stream("A", 0, 1)] == [1]
        assert (
            list(storage.read_stream("A", 6)) == [] and list(storage.read_stream("A", 3, 2)) == []
        )

    def test_read_all_after_types_and_limit(self, storage: Storage) -> None:
        storage.append("A", [rec("a1", "t.Open"), rec("a2", "t.Pay"), rec("a3", "t.Shut")], 0)
        storage.append("B", [rec("b1", "t.Pay"), rec("b2", "t.Open")], 0)
        assert ids(storage.read_all(after=3)) == ["b1", "b2"]
        assert ids(storage.read_all(types=["t.Pay"])) == ["a2", "b1"]
        assert ids(storage.read_all(types=["t.Open", "t.Shut"], after=1)) == ["a3", "b2"]
        assert ids(storage.read_all(types=[])) == []
        assert ids(storage.read_all(limit=2)) == ["a1", "a2"]
        assert ids(storage.read_all(types=["t.Pay", "t.Open"], limit=2, after=1)) == ["a2", "b1"]
        assert ids(storage.read_all(after=99)) == []

    def test_reads_are_lazy_and_span_pages(self, storage: Storage) -> None:
        """More events than one page (1000) are read in order; an append during iteration may
        or may not be seen, but never out of order."""
        storage.append("A", [rec(f"a{i}") for i in range(2500)], 0)
        it = storage.read_all(after=1000)
        assert next(it).position == 1001
        storage.append("B", [rec("late")], 0)
        rest = [e.position for e in it]
        assert rest in (list(range(1002, 2501)), list(range(1002, 2502)))
        assert [e.seq for e in storage.read_stream("A", 999, 1003)] == [999, 1000, 1001, 1002, 1003]
        assert len(list(storage.read_all(limit=1500))) == 1500
        assert len(list(storage.read_stream("A"))) == 2500

    def test_a_command_id_is_applied_once(self, storage: Storage) -> None:
        """Appending again under a recorded command id writes nothing and returns the first."""
        first = storage.append_batch([Append("A", [rec("a1"), rec("a2")], 0, command_id="cmd-1")])[
            0
        ]
        assert first.command == CommandRecord(
            command_id="cmd-1", stream_id="A", version=2, count=2, position=2
        )
        storage.append("A", [rec("a3")], 2)
        again = storage.append_batch([Append("A", [rec("other")], 3, command_id="cmd-1")])[0]
        assert again.error is None and again.command == first.command
        assert ids(again.events) == ["a1", "a2"] and storage.last_position() == 3
        assert storage.find_command("cmd-1") == first.command
        assert storage.find_command("cmd-2") is None

    def test_a_command_with_no_events_is_remembered(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        (out,) = storage.append_batch([Append("A", [], None, command_id="noop")])
        assert (
            out.command
            == CommandRecord(command_id="noop", stream_id="A", version=1, count=0, position=0)
            and out.events == ()
        )
        (again,) = storage.append_batch([Append("A", [rec("x")], None, command_id="noop")])
        assert again.command == out.command and again.events == () and storage.last_position() == 1

    def test_a_command_id_twice_in_one_batch(self, storage: Storage) -> None:
        out = storage.append_batch(
            [
                Append("A", [rec("a1")], 0, command_id="c"),
                Append("A", [rec("a2")], 1, command_id="c"),
            ]
        )
        assert [ids(o.events) for o in out] == [["a1"], ["a1"]] and storage.last_position() == 1
