"""The storage conformance kit, part four: governance. Every event chained to the one before
(`verify` passes, the head is recorded), the audit trail (with an append, or alone), the
data keys of personal data, and a whole journal dumped and loaded as it is.

`StorageContract` (in reactor/testing/storage.py) gathers every part.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reactor.errors import ConcurrencyError, StorageError
from reactor.security.chain import chain_hashes, verify_storage
from reactor.store.base import (
    GENESIS,
    Append,
    AuditRecord,
    Checkpoint,
    Dump,
    Snapshot,
    Storage,
)
from reactor.store.memory import MemoryStorage
from reactor.testing.storage_events import ids, letter, rec
from reactor.testing.storage_lineage import note


def entry(principal: str, action: str = "send", at: float = 1.7e9, **more: Any) -> AuditRecord:
    """An audit entry (a command sent by `principal`, accepted, unless told otherwise)."""
    fields: dict[str, Any] = {"resource": "bank.Deposit", "outcome": "accepted", **more}
    return AuditRecord(
        timestamp=at, principal=principal, roles=("teller",), action=action, **fields
    )


def fill(storage: Storage) -> None:
    """Put one of everything a dump holds into `storage`."""
    storage.append("A", [rec("a1"), rec("a2", data=b'{"n": 2}')], 0)
    storage.append_batch(
        [
            Append("B", [rec("b1")], 0, command_id="cmd-1", audit=[entry("ann")]),
            Append("A", [rec("a3")], 2),
        ]
    )
    storage.save_snapshot(Snapshot(stream_id="A", seq=2, type="Account", version=1, state=b"s"))
    storage.save_checkpoint(
        Checkpoint(name="saga:S", position=3, state=b"st", keyed=(("k1", b"v1"), ("k2", b"v2")))
    )
    storage.save_dead_letter(letter("d1", "Balances", 2, "A", parked=(4,)))
    storage.order_dead_letter("d1", "redrive")
    storage.save_key("s1", b"wrapped-1")
    storage.append_audit([entry("bob", "forget", outcome="done")])
    storage.save_note(note("saga:S:k:e1:c1", "flow-1"))


def contents(dump: Dump) -> dict[str, Any]:
    """What a dump holds, read whole and in a fixed order (comparable)."""
    return {
        "head": dump.head,
        "events": list(dump.events),
        "snapshots": sorted(dump.snapshots, key=lambda s: s.stream_id),
        "checkpoints": sorted(
            (c.name, c.position, c.state, sorted(c.keyed)) for c in dump.checkpoints
        ),
        "commands": sorted(dump.commands, key=lambda c: c.command_id),
        "dead_letters": sorted(dump.dead_letters, key=lambda d: d.id),
        "keys": sorted(dump.keys),
        "audit": list(dump.audit),
        "notes": sorted(dump.notes, key=lambda n: n.command_id),
    }


def dumped(storage: Storage) -> dict[str, Any]:
    with storage.dump() as dump:
        return contents(dump)


class GovernanceContract:
    """The hash chain, the audit trail, data keys, dump and load."""

    def test_each_event_is_chained_to_the_one_before(self, storage: Storage) -> None:
        assert storage.chain_head() == (0, GENESIS) and verify_storage(storage) == 0
        storage.append("A", [rec("a1"), rec("a2")], 0)
        storage.append_batch(
            [
                Append("B", [rec("b1")], 0),
                Append("A", [rec("x")], 0),  # refused: A is at 2
                Append("A", [rec("a3")], 2),
                Append("", (), None, Checkpoint(name="p", position=1)),
            ]
        )
        chain = list(storage.read_chain())
        events = [e for e, _ in chain]
        assert ids(events) == ["a1", "a2", "b1", "a3"]
        assert [h for _, h in chain] == chain_hashes(GENESIS, events)
        assert storage.chain_head() == (4, chain[-1][1])
        assert verify_storage(storage) == 4
        assert list(storage.read_chain(after=2, limit=1)) == chain[2:3]

    def test_audit_entries_are_kept_in_order_and_found_by_principal_and_time(
        self, storage: Storage
    ) -> None:
        storage.append_audit([entry("ann", at=10.0), entry("bob", at=20.0)])
        storage.append_audit([entry("ann", "redrive", at=30.0, outcome="denied", detail="d1")])
        found = storage.audit()
        assert [(e.seq, e.principal, e.timestamp) for e in found] == [
            (1, "ann", 10.0),
            (2, "bob", 20.0),
            (3, "ann", 30.0),
        ]
        assert found[2] == entry("ann", "redrive", at=30.0, outcome="denied", detail="d1", seq=3)
        assert [e.seq for e in storage.audit(principal="ann")] == [1, 3]
        assert [e.seq for e in storage.audit(since=20.0)] == [2, 3]
        assert [e.seq for e in storage.audit(since=15.0, principal="ann", limit=5)] == [3]
        assert [e.seq for e in storage.audit(limit=2)] == [1, 2]

    def test_an_appends_audit_entries_are_stored_iff_it_succeeds(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        outcomes = storage.append_batch(
            [
                Append("A", [rec("x")], 0, audit=[entry("refused")]),
                Append("A", [rec("a2")], 1, command_id="c1", audit=[entry("ok")]),
                Append("", (), None, audit=[entry("alone")]),
            ]
        )
        assert isinstance(outcomes[0].error, ConcurrencyError)
        again = storage.append_batch(
            [Append("A", [rec("a2")], 1, command_id="c1", audit=[entry("again")])]
        )
        assert not again[0].fresh and again[0].error is None
        assert [e.principal for e in storage.audit()] == ["ok", "alone", "again"]

    def test_data_keys_are_saved_once_loaded_and_destroyed(self, storage: Storage) -> None:
        assert storage.save_key("s1", b"first") == b"first"
        assert storage.save_key("s1", b"second") == b"first"  # the stored one wins
        storage.save_key("s2", b"other")
        assert storage.load_key("s1") == b"first" and storage.load_key("none") is None
        assert storage.load_keys(["s1", "s2", "none"]) == {"s1": b"first", "s2": b"other"}
        assert storage.delete_key("s1") and not storage.delete_key("s1")
        assert storage.load_key("s1") is None and storage.load_keys(["s1"]) == {}
        assert storage.save_key("s1", b"new") == b"new"

    def test_racing_writers_of_a_key_get_one_winner(self, storage: Storage) -> None:
        got: list[bytes] = []
        threads = [
            threading.Thread(target=lambda n=n: got.append(storage.save_key("s", b"k%d" % n)))
            for n in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(got) == 8 and len(set(got)) == 1 and storage.load_key("s") == got[0]

    def test_a_dump_loads_into_another_backend_as_it_is(self, storage: Storage) -> None:
        fill(storage)
        copy = MemoryStorage()
        with storage.dump() as dump:
            assert copy.load(dump) == 4
        assert dumped(copy) == dumped(storage)
        assert verify_storage(copy) == 4

    def test_a_load_fills_an_empty_journal_as_it_was(self, storage: Storage) -> None:
        source = MemoryStorage()
        fill(source)
        seen: list[tuple[int, int]] = []
        with source.dump() as dump:
            assert storage.load(dump, lambda done, total: seen.append((done, total))) == 4
        assert dumped(storage) == dumped(source)
        assert seen and seen[-1] == (4, 4)
        assert verify_storage(storage) == 4
        (b1,) = storage.append("B", [rec("b2")], 1)  # it goes on from the loaded head
        assert b1.position == 5 and verify_storage(storage) == 5
        assert [e.principal for e in storage.audit()] == ["ann", "bob"]
        storage.append_audit([entry("cy")])
        assert [e.seq for e in storage.audit()] == [1, 2, 3]

    def test_a_journal_holding_anything_refuses_a_load(self, storage: Storage) -> None:
        source = MemoryStorage()
        fill(source)
        storage.save_key("s", b"k")
        with source.dump() as dump, pytest.raises(StorageError, match="not empty"):
            storage.load(dump)
        assert list(storage.read_all()) == []

    def test_a_dump_is_one_snapshot_while_appends_go_on(self, storage: Storage) -> None:
        storage.append("A", [rec("a1")], 0)
        with storage.dump() as dump:
            storage.append("A", [rec("a2")], 1)
            storage.append_audit([entry("late", at=time.time())])
            seen = contents(dump)
        assert seen["head"][0] == 1 and ids(e for e, _ in seen["events"]) == ["a1"]
        assert seen["audit"] == [] and [e for e, _ in seen["events"]] == list(
            storage.read_all(limit=1)
        )
