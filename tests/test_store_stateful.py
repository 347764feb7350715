"""A hypothesis state machine drives each backend against a plain in-test model: appends
with right, wrong and no expected versions, idempotent re-appends, batches, snapshots,
checkpoints and (for SQLite) reopening the file. Invariants are checked after every step."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from reactor import ConcurrencyError
from reactor.store import Append, Checkpoint, NewRecord, Snapshot, open_storage
from tests import strategies as s

MODES = st.sampled_from(["right", "wrong", "none"])


class StorageMachine(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="reactor-sm-"))
        self.url = "memory://" if self.backend == "memory" else f"sqlite:///{self.dir}/j.db"
        self.store = open_storage(self.url)
        self.streams: dict[str, list[str]] = {}
        self.log: list[str] = []
        self.last: tuple[str, list[NewRecord], int] | None = None  # stream, records, expected
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Checkpoint] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _expected(self, stream: str, mode: str, wrong_by: int) -> int | None:
        version = len(self.streams.get(stream, []))
        return {"right": version, "none": None, "wrong": version + wrong_by}[mode]

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

    @rule(stream=s.STREAMS, records=s.records(), mode=MODES, wrong_by=st.sampled_from([-1, 1, 3]))
    def append(self, stream: str, records: list[NewRecord], mode: str, wrong_by: int) -> None:
        expected = self._expected(stream, mode, wrong_by)
        if expected is not None and expected < 0:
            expected = 1 + len(self.streams.get(stream, []))
        before = len(self.log)
        if self._apply(stream, records, expected):
            stored = self.store.append(stream, records, expected)
            assert [e.event_id for e in stored] == [r.event_id for r in records]
            assert [e.position for e in stored] == list(range(before + 1, len(self.log) + 1))
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
        assert [e.event_id for e in stored] == [r.event_id for r in records]
        assert [e.seq for e in stored] == list(range(version + 1, version + 1 + len(records)))

    @rule(
        appends=st.lists(
            st.tuples(s.STREAMS, s.records(), MODES, st.sampled_from([1, 2])), max_size=4
        )
    )
    def batch(self, appends: list[tuple[str, list[NewRecord], str, int]]) -> None:
        plan = []
        for stream, records, mode, wrong_by in appends:
            expected = self._expected(stream, mode, wrong_by)
            plan.append((Append(stream, records, expected), self._apply(stream, records, expected)))
        outcomes = self.store.append_batch([a for a, _ in plan])
        for (a, ok), outcome in zip(plan, outcomes, strict=True):
            assert (outcome.error is None) == ok, (a, outcome)
            if ok:
                assert [e.event_id for e in outcome.events] == [r.event_id for r in a.records]
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
        cp = Checkpoint(name, len(self.log), state)
        self.store.save_checkpoint(cp)
        self.checkpoints[name] = cp

    @precondition(lambda self: self.backend == "sqlite")
    @rule()
    def reopen(self) -> None:
        """Closing and reopening the file loses nothing."""
        self.store.close()
        self.store = open_storage(self.url)

    @invariant()
    def streams_are_gapless(self) -> None:
        for stream, event_ids in self.streams.items():
            stored = list(self.store.read_stream(stream))
            assert [e.seq for e in stored] == list(range(1, len(event_ids) + 1))
            assert [e.event_id for e in stored] == event_ids
            assert self.store.stream_version(stream) == len(event_ids)

    @invariant()
    def read_all_is_the_commit_order(self) -> None:
        stored = list(self.store.read_all())
        assert [e.event_id for e in stored] == self.log
        assert [e.position for e in stored] == list(range(1, len(self.log) + 1))
        assert self.store.last_position() == len(self.log)
        assert [(i.stream_id, i.version) for i in self.store.streams()] == sorted(
            (k, len(v)) for k, v in self.streams.items()
        )

    @invariant()
    def snapshots_and_checkpoints_are_kept(self) -> None:
        for stream, snap in self.snapshots.items():
            assert self.store.load_snapshot(stream) == snap
        for name, cp in self.checkpoints.items():
            assert self.store.load_checkpoint(name) == cp


class MemoryMachine(StorageMachine):
    backend = "memory"


class SQLiteMachine(StorageMachine):
    backend = "sqlite"


TestMemoryStorage = MemoryMachine.TestCase
TestSQLiteStorage = SQLiteMachine.TestCase
