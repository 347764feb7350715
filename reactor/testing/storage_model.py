"""The storage conformance kit, part three: threads racing and tailing, and a hypothesis
state machine driving the storage against a plain model.

`StorageContract` (in reactor/testing/storage.py) gathers every part.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable

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

from reactor.errors import ConcurrencyError
from reactor.store.base import Append, Checkpoint, NewRecord, Snapshot, Storage
from reactor.testing.storage_events import ids, rec

THREADS, VERSIONS = 6, 40  # the concurrency tests: writer threads, versions raced for


class ConcurrencyContract:
    """Threads racing for versions, and readers tailing while writers append."""

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
        finished, count_lock = [0], threading.Lock()  # writers done

        def work(n: int) -> None:
            if n < THREADS:  # a writer: its own stream, some batches of two
                try:
                    i = 0
                    while i < per_writer:
                        count = 2 if i % 3 == 0 and i + 1 < per_writer else 1
                        records = [rec(f"w{n}-{i + k}") for k in range(count)]
                        storage.append(f"S-{n}", records, i)
                        i += count
                finally:
                    with count_lock:
                        finished[0] += 1
                return
            mine, last = seen[n - THREADS], False
            while not last:  # tail while writers write, then once more after all are done
                last = finished[0] == THREADS
                after = mine[-1][0] if mine else 0
                mine.extend((e.position, e.event_id) for e in storage.read_all(after))

        _run_threads(work, THREADS + readers)
        for mine in seen:
            assert [p for p, _ in mine] == list(range(1, total + 1))
            assert mine == seen[0]
        for n in range(THREADS):
            assert [e.seq for e in storage.read_stream(f"S-{n}")] == list(range(1, per_writer + 1))


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
        snap = Snapshot(
            stream_id=stream, seq=len(self.streams[stream]), type="Agg", version=1, state=state
        )
        self.store.save_snapshot(snap)
        self.snapshots[stream] = snap

    @rule(name=st.sampled_from(["p1", "p2"]), state=st.none() | st.binary(max_size=8))
    def checkpoint(self, name: str, state: bytes | None) -> None:
        cp = Checkpoint(name=self.ns + name, position=len(self.log), state=state)
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
