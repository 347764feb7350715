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

Needs pytest and hypothesis (the `test` extra).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from reactor.errors import ConcurrencyError, DuplicateEventId, FencedError, StorageError
from reactor.store.base import (
    Append,
    Checkpoint,
    CommandRecord,
    DeadLetterRecord,
    Fence,
    NewRecord,
    Snapshot,
    Storage,
    StreamInfo,
)

THREADS, VERSIONS = 6, 40  # the concurrency tests: writer threads, versions raced for


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


class StorageContract:
    """Every promise of the `Storage` protocol; subclass it and define `storage`."""

    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        raise NotImplementedError("define a `storage` fixture yielding a fresh, empty Storage")

    def reopen(self, storage: Storage) -> Storage | None:
        """Close `storage` and open the same journal again (None: the backend cannot)."""
        return None

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
                Append("A", [rec("a1")], 0, Checkpoint("proj", 10, b"state-1")),
                Append("B", [rec("b1")], 3, Checkpoint("other", 11)),  # refused: no checkpoint
                Append(
                    "none", [], None, Checkpoint("alone", 12, b"x")
                ),  # a checkpoint with no events
            ]
        )
        assert [o.error is None for o in outcomes] == [True, False, True]
        assert storage.load_checkpoint("proj") == Checkpoint("proj", 10, b"state-1")
        assert storage.load_checkpoint("other") is None
        assert storage.load_checkpoint("alone") == Checkpoint("alone", 12, b"x")

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

    def test_snapshots_keep_the_latest(self, storage: Storage) -> None:
        storage.append("A", [rec(f"a{i}") for i in range(4)], 0)
        storage.save_snapshot(Snapshot("A", 2, "Account", 1, b"two"))
        storage.save_snapshot(Snapshot("A", 4, "Account", 1, b"four"))
        assert storage.load_snapshot("A") == Snapshot("A", 4, "Account", 1, b"four")
        assert storage.load_snapshot("B") is None

    def test_checkpoints_are_replaced(self, storage: Storage) -> None:
        storage.save_checkpoint(Checkpoint("p", 5, b"s5"))
        storage.save_checkpoint(Checkpoint("p", 9, None))
        assert storage.load_checkpoint("p") == Checkpoint("p", 9, None)

    def test_closed_store_refuses_calls(self, storage: Storage) -> None:
        storage.close()
        storage.close()  # idempotent
        for call in (
            lambda: storage.append("A", [rec("a")], 0),
            lambda: list(storage.read_all()),
            lambda: list(storage.read_stream("A")),
            lambda: storage.last_position(),
            lambda: storage.save_checkpoint(Checkpoint("p", 1)),
            lambda: storage.acquire_lease("l", "me", 1.0),
            lambda: storage.dead_letters(),
        ):
            with pytest.raises(StorageError, match="closed"):
                call()

    def test_a_command_id_is_applied_once(self, storage: Storage) -> None:
        """Appending again under a recorded command id writes nothing and returns the first."""
        first = storage.append_batch([Append("A", [rec("a1"), rec("a2")], 0, command_id="cmd-1")])[
            0
        ]
        assert first.command == CommandRecord("cmd-1", "A", 2, 2, 2)
        storage.append("A", [rec("a3")], 2)
        again = storage.append_batch([Append("A", [rec("other")], 3, command_id="cmd-1")])[0]
        assert again.error is None and again.command == first.command
        assert ids(again.events) == ["a1", "a2"] and storage.last_position() == 3
        assert storage.find_command("cmd-1") == first.command
        assert storage.find_command("cmd-2") is None

    def test_a_command_with_no_events_is_remembered(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        (out,) = storage.append_batch([Append("A", [], None, command_id="noop")])
        assert out.command == CommandRecord("noop", "A", 1, 0, 0) and out.events == ()
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

    def test_dead_letters_are_kept_replaced_and_deleted(self, storage: Storage) -> None:
        a = letter("d1", "Balances", 7, "A", parked=(9, 12), attempts=5)
        b = letter("d2", "mailer", 3, "B")
        storage.save_dead_letter(a)
        storage.save_dead_letter(b)
        assert storage.dead_letters() == [b, a]
        assert storage.dead_letters("Balances") == [a]
        more = attrs.evolve(a, parked=(9, 12, 15), attempts=6)
        storage.save_dead_letter(more)
        assert storage.dead_letters("Balances") == [more]
        assert storage.delete_dead_letter("d1") and not storage.delete_dead_letter("d1")
        assert storage.dead_letters() == [b]

    def test_an_order_and_the_handlers_updates_do_not_overwrite_each_other(
        self, storage: Storage
    ) -> None:
        """The operator owns `request`, the handler every other field."""
        a = letter("d1", "Balances", 7, "A", parked=(9,))
        storage.save_dead_letter(a)
        assert storage.order_dead_letter("d1", "redrive")
        storage.save_dead_letter(attrs.evolve(a, parked=(9, 12)))  # the handler parks one more
        assert storage.dead_letters() == [attrs.evolve(a, parked=(9, 12), request="redrive")]
        assert not storage.order_dead_letter("d1", "", replacing="discard")  # not that order
        assert storage.order_dead_letter("d1", "", replacing="redrive")
        assert storage.dead_letters()[0].request == ""
        assert not storage.order_dead_letter("nope", "redrive")

    def test_one_dead_letter_per_handler_and_position(self, storage: Storage) -> None:
        storage.save_dead_letter(letter("d1", "Balances", 7, "A"))
        storage.save_dead_letter(letter("d2", "Balances", 7, "A", attempts=3))  # same place
        storage.save_dead_letter(letter("d3", "mailer", 7, "A"))  # another handler
        assert [(d.id, d.handler) for d in storage.dead_letters()] == [
            ("d2", "Balances"),
            ("d3", "mailer"),
        ]

    def test_keyed_rows_are_saved_with_their_checkpoint(self, storage: Storage) -> None:
        storage.save_checkpoint(
            Checkpoint("saga:S", 3, b"blob", keyed=(("k1", b"a"), ("k2", b"b")))
        )
        storage.append_batch(
            [
                Append(
                    "A",
                    [rec("a1")],
                    0,
                    Checkpoint("saga:S", 5, None, keyed=(("k1", None), ("k3", b"c"))),
                ),
                Append(
                    "B", [rec("b1")], 7, Checkpoint("saga:S", 6, None, keyed=(("k2", None),))
                ),  # refused
            ]
        )
        assert storage.load_checkpoint("saga:S") == Checkpoint("saga:S", 5, None)
        assert storage.load_keyed("saga:S") == {"k2": b"b", "k3": b"c"}
        assert storage.load_keyed("other") == {}

    # -- leases and fences --------------------------------------------------------------------

    def test_a_lease_has_one_owner_and_renews_at_its_epoch(self, storage: Storage) -> None:
        first = storage.acquire_lease("projection:P", "a", 30.0)
        assert first is not None and (first.owner, first.epoch) == ("a", 1)
        assert storage.acquire_lease("projection:P", "b", 30.0) is None  # held by a
        again = storage.acquire_lease("projection:P", "a", 30.0)
        assert again is not None and again.epoch == 1 and again.expires >= first.expires
        assert storage.acquire_lease("other", "b", 30.0) is not None  # another name
        assert [lease.name for lease in storage.leases()] == ["other", "projection:P"]
        assert [lease.name for lease in storage.leases("proj")] == ["projection:P"]

    def test_a_released_or_expired_lease_is_taken_over_at_the_next_epoch(
        self, storage: Storage
    ) -> None:
        storage.acquire_lease("L", "a", 30.0)
        assert not storage.release_lease("L", "b")  # not b's
        assert storage.release_lease("L", "a")
        taken = storage.acquire_lease("L", "b", 0.05)
        assert taken is not None and (taken.owner, taken.epoch) == ("b", 2)
        deadline = time.monotonic() + 10
        while (after := storage.acquire_lease("L", "c", 30.0)) is None:
            assert time.monotonic() < deadline, "an expired lease was never granted"
            time.sleep(0.01)
        assert (after.owner, after.epoch) == ("c", 3)
        assert not storage.release_lease("L", "b")  # b lost it: nothing to release

    def test_fenced_writes_are_refused_after_a_takeover(self, storage: Storage) -> None:
        lease = storage.acquire_lease("L", "a", 30.0)
        assert lease is not None
        fence = Fence("L", lease.epoch)
        (ok,) = storage.append_batch([Append("S", [rec("s1")], 0, fence=fence)])
        assert ok.error is None
        storage.save_checkpoint(Checkpoint("c", 1, b"x", fence=fence))
        storage.release_lease("L", "a")
        assert storage.acquire_lease("L", "b", 30.0) is not None  # epoch 2 now
        stale_cp = Checkpoint("c", 2, b"stale", fence=fence)
        refused = storage.append_batch(
            [
                Append("S", [rec("s2")], 1, fence=fence),
                Append("", [], None, stale_cp),
                Append("T", [rec("t1")], 0),  # not fenced: goes on
            ]
        )
        assert [type(o.error) for o in refused] == [FencedError, FencedError, type(None)]
        err = refused[0].error
        assert isinstance(err, FencedError) and (err.lease, err.epoch, err.actual) == ("L", 1, 2)
        with pytest.raises(FencedError, match="'L'"):
            storage.save_checkpoint(stale_cp)
        assert storage.load_checkpoint("c") == Checkpoint("c", 1, b"x")
        assert ids(storage.read_all()) == ["s1", "t1"]
        with pytest.raises(FencedError):  # a lease never taken: epoch 0
            storage.save_checkpoint(Checkpoint("d", 1, fence=Fence("never", 1)))

    # -- waiting and claims -------------------------------------------------------------------

    def test_wait_for_append_wakes_on_an_append(self, storage: Storage) -> None:
        assert storage.wait_for_append(0, 0.01) == 0  # nothing: times out
        storage.append("A", [rec("a1")], 0)
        assert storage.wait_for_append(0, 5.0) == 1  # already there
        appender = threading.Timer(0.05, lambda: storage.append("A", [rec("a2")], 1))
        appender.start()
        try:
            began = time.monotonic()
            assert storage.wait_for_append(1, 30.0) == 2
            assert time.monotonic() - began < 20
        finally:
            appender.join()

    def test_claim_is_idempotent_in_its_store(self, storage: Storage) -> None:
        storage.claim("test runtime")
        storage.claim("test runtime")
        storage.append("A", [rec("a1")], 0)
        assert storage.last_position() == 1
        assert isinstance(storage.shared, bool)

    # -- concurrency --------------------------------------------------------------------------

    def test_exactly_one_writer_wins_each_version(self, storage: Storage) -> None:
        """Threads racing to append to one stream: one wins each version, no gap."""
        wins: list[tuple[int, int]] = []  # (version taken, thread)

        def writer(n: int) -> None:
            version = 0
            while version < VERSIONS:
                record = NewRecord(f"t{n}-v{version}", "t.Won", 1, b"{}", 0.0)
                try:
                    storage.append("Race", [record], version)
                    wins.append((version, n))
                except ConcurrencyError as e:
                    assert e.actual > version
                version = storage.stream_version("Race")

        _run_threads(writer, THREADS)
        counts = Counter(version for version, _ in wins)
        assert sorted(counts) == list(range(VERSIONS)) and set(counts.values()) == {1}
        stored = list(storage.read_stream("Race"))
        assert [e.seq for e in stored] == list(range(1, VERSIONS + 1))
        winners = dict(wins)
        assert [e.event_id for e in stored] == [f"t{winners[v]}-v{v}" for v in range(VERSIONS)]

    def test_tailing_readers_see_every_append_once_in_order(self, storage: Storage) -> None:
        """Writers append while readers tail `read_all(after=last seen)`: each reader sees
        positions 1..n with no gap and no duplicate, the same events in the same order."""
        per_writer, readers = 30, 3
        total = THREADS * per_writer
        seen: list[list[tuple[int, str]]] = [[] for _ in range(readers)]

        def work(n: int) -> None:
            if n < THREADS:  # a writer: its own stream, some batches of two
                i = 0
                while i < per_writer:
                    count = 2 if i % 3 == 0 and i + 1 < per_writer else 1
                    records = [rec(f"w{n}-{i + k}") for k in range(count)]
                    storage.append(f"S-{n}", records, i)
                    i += count
                return
            mine = seen[n - THREADS]
            deadline = time.monotonic() + 60
            while len(mine) < total and time.monotonic() < deadline:
                after = mine[-1][0] if mine else 0
                mine.extend((e.position, e.event_id) for e in storage.read_all(after))

        _run_threads(work, THREADS + readers)
        for mine in seen:
            assert [p for p, _ in mine] == list(range(1, total + 1))
            assert mine == seen[0]
        for n in range(THREADS):
            assert [e.seq for e in storage.read_stream(f"S-{n}")] == list(range(1, per_writer + 1))

    # -- the model ----------------------------------------------------------------------------

    def test_matches_a_model(self, storage: Storage) -> None:
        """Random appends (right, wrong and no expected versions, re-appends, batches),
        snapshots, checkpoints and (where the backend can) reopening, against a model."""
        run_model(storage, self.reopen)


def run_model(
    storage: Storage,
    reopen: Callable[[Storage], Storage | None] = lambda s: None,
    run_settings: settings | None = None,
) -> None:
    """Run the model state machine on `storage` (with `run_settings`, for deeper runs)."""
    holder = [storage]

    class Machine(_ModelMachine):
        def __init__(self) -> None:
            super().__init__(holder, reopen)

    if run_settings is None:  # the loaded profile (derandomized in CI), a short run
        run_settings = settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    try:
        run_state_machine_as_test(Machine, settings=run_settings)
    finally:
        if holder[0] is not storage:
            holder[0].close()


def _run_threads(target: object, count: int, timeout: float = 120.0) -> None:
    """Run `target(n)` on `count` threads at once; re-raise the first failure here."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait()
            target(n)  # type: ignore[operator]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


MODES = st.sampled_from(["right", "wrong", "none"])
STREAMS = st.sampled_from(["Account-a", "Account-b", "Order-1", "Order-2"])


@st.composite
def _records(draw: st.DrawFn) -> list[NewRecord]:
    return [
        NewRecord(
            event_id=str(uuid.uuid4()),
            type=draw(st.sampled_from(["t.Opened", "t.Deposited", "t.Closed"])),
            version=1,
            data=b'{"n": %d}' % draw(st.integers(0, 1000)),
            timestamp=1.7e9,
            metadata=draw(st.none() | st.just(b'{"user": "ann"}')),
            correlation_id=draw(st.none() | st.just("corr-1")),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]


class _ModelMachine(RuleBasedStateMachine):
    """One storage for every example: each example works in streams and names of its own
    and reads positions after where it began."""

    def __init__(self, holder: list[Storage], reopen: Callable[[Storage], Storage | None]) -> None:
        super().__init__()
        self.holder, self.reopener = holder, reopen
        self.ns = f"{uuid.uuid4().hex[:8]}-"
        self.base = self.store.last_position()
        self.streams: dict[str, list[str]] = {}
        self.log: list[str] = []
        self.last: tuple[str, list[NewRecord], int] | None = None
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Checkpoint] = {}

    @property
    def store(self) -> Storage:
        return self.holder[0]

    def _expected(self, stream: str, mode: str, wrong_by: int) -> int | None:
        version = len(self.streams.get(stream, []))
        return {"right": version, "none": None, "wrong": max(0, version + wrong_by)}[mode]

    def _apply(self, stream: str, records: list[NewRecord], expected: int | None) -> bool:
        """Update the model for one append; whether it should have succeeded."""
        version = len(self.streams.get(stream, []))
        if expected is not None and expected != version:
            return False
        if records:
            self.streams.setdefault(stream, []).extend(r.event_id for r in records)
            self.log.extend(r.event_id for r in records)
            self.last = (stream, records, version)
        return True

    @rule(stream=STREAMS, records=_records(), mode=MODES, wrong_by=st.sampled_from([-1, 1, 3]))
    def append(self, stream: str, records: list[NewRecord], mode: str, wrong_by: int) -> None:
        stream = self.ns + stream
        expected = self._expected(stream, mode, wrong_by)
        if self._apply(stream, records, expected):
            stored = self.store.append(stream, records, expected)
            assert ids(stored) == [r.event_id for r in records]
            positions = [e.position for e in stored]
            assert positions == sorted(positions) and len(set(positions)) == len(positions)
        else:
            with pytest.raises(ConcurrencyError):
                self.store.append(stream, records, expected)

    @precondition(lambda self: self.last is not None)
    @rule(with_version=st.booleans())
    def reappend_last(self, with_version: bool) -> None:
        """Re-sending the last successful append returns what was stored and adds nothing."""
        assert self.last is not None
        stream, records, version = self.last
        stored = self.store.append(stream, records, version if with_version else None)
        assert ids(stored) == [r.event_id for r in records]
        assert [e.seq for e in stored] == list(range(version + 1, version + 1 + len(records)))

    @rule(
        appends=st.lists(st.tuples(STREAMS, _records(), MODES, st.sampled_from([1, 2])), max_size=4)
    )
    def batch(self, appends: list[tuple[str, list[NewRecord], str, int]]) -> None:
        plan = []
        for stream, records, mode, wrong_by in appends:
            stream = self.ns + stream
            expected = self._expected(stream, mode, wrong_by)
            plan.append((Append(stream, records, expected), self._apply(stream, records, expected)))
        outcomes = self.store.append_batch([a for a, _ in plan])
        for (a, ok), outcome in zip(plan, outcomes, strict=True):
            assert (outcome.error is None) == ok, (a, outcome)
            if ok:
                assert ids(outcome.events) == [r.event_id for r in a.records]
            else:
                assert isinstance(outcome.error, ConcurrencyError)

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data(), state=st.binary(max_size=8))
    def snapshot(self, data: st.DataObject, state: bytes) -> None:
        stream = data.draw(st.sampled_from(sorted(self.streams)))
        snap = Snapshot(stream, len(self.streams[stream]), "Agg", 1, state)
        self.store.save_snapshot(snap)
        self.snapshots[stream] = snap

    @rule(name=st.sampled_from(["p1", "p2"]), state=st.none() | st.binary(max_size=8))
    def checkpoint(self, name: str, state: bytes | None) -> None:
        cp = Checkpoint(self.ns + name, len(self.log), state)
        self.store.save_checkpoint(cp)
        self.checkpoints[cp.name] = cp

    @rule()
    def reopen(self) -> None:
        """Closing and reopening the journal loses nothing (where the backend can)."""
        reopened = self.reopener(self.store)
        if reopened is not None:
            self.holder[0] = reopened

    @invariant()
    def streams_are_gapless(self) -> None:
        for stream, event_ids in self.streams.items():
            stored = list(self.store.read_stream(stream))
            assert [e.seq for e in stored] == list(range(1, len(event_ids) + 1))
            assert ids(stored) == event_ids
            assert self.store.stream_version(stream) == len(event_ids)

    @invariant()
    def read_all_is_the_commit_order(self) -> None:
        stored = list(self.store.read_all(self.base))
        assert ids(stored) == self.log
        positions = [e.position for e in stored]
        assert positions == list(range(self.base + 1, self.base + len(self.log) + 1))
        assert self.store.last_position() == self.base + len(self.log)
        mine = [
            (i.stream_id, i.version)
            for i in self.store.streams()
            if i.stream_id.startswith(self.ns)
        ]
        assert mine == sorted((k, len(v)) for k, v in self.streams.items())

    @invariant()
    def snapshots_and_checkpoints_are_kept(self) -> None:
        for stream, snap in self.snapshots.items():
            assert self.store.load_snapshot(stream) == snap
        for name, cp in self.checkpoints.items():
            assert self.store.load_checkpoint(name) == cp
