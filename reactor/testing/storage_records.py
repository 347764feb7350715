"""The storage conformance kit, part two: what a journal keeps besides events (snapshots,
checkpoints with keyed rows, dead letters, leases and fences), waiting and closing.

`StorageContract` (in reactor/testing/storage.py) gathers every part.
"""

from __future__ import annotations

import threading
import time

import attrs
import pytest

from reactor.errors import FencedError, StorageError
from reactor.store.base import Append, Checkpoint, Fence, Snapshot, Storage
from reactor.testing.storage_events import ids, letter, rec


class RecordsContract:
    """Snapshots, checkpoints, dead letters, leases and fences, waiting, claims, closing."""

    def test_snapshots_keep_the_latest(self, storage: Storage) -> None:
        storage.append("A", [rec(f"a{i}") for i in range(4)], 0)
        storage.save_snapshot(
            Snapshot(stream_id="A", seq=2, type="Account", version=1, state=b"two")
        )
        storage.save_snapshot(
            Snapshot(stream_id="A", seq=4, type="Account", version=1, state=b"four")
        )
        assert storage.load_snapshot("A") == Snapshot(
            stream_id="A", seq=4, type="Account", version=1, state=b"four"
        )
        assert storage.load_snapshot("B") is None

    def test_checkpoints_are_replaced(self, storage: Storage) -> None:
        storage.save_checkpoint(Checkpoint(name="p", position=5, state=b"s5"))
        storage.save_checkpoint(Checkpoint(name="p", position=9, state=None))
        assert storage.load_checkpoint("p") == Checkpoint(name="p", position=9, state=None)

    def test_checkpoints_are_listed_by_name_without_their_state(self, storage: Storage) -> None:
        for name, position in (("saga:S", 3), ("projection:B", 7), ("projection:A", 5)):
            storage.save_checkpoint(Checkpoint(name=name, position=position, state=b"big"))
        assert [(c.name, c.position, c.state) for c in storage.checkpoints()] == [
            ("projection:A", 5, None),
            ("projection:B", 7, None),
            ("saga:S", 3, None),
        ]
        assert [c.name for c in storage.checkpoints("projection:")] == [
            "projection:A",
            "projection:B",
        ]
        assert storage.checkpoints("none:") == []

    def test_closed_store_refuses_calls(self, storage: Storage) -> None:
        storage.close()
        storage.close()  # idempotent
        for call in (
            lambda: storage.append("A", [rec("a")], 0),
            lambda: list(storage.read_all()),
            lambda: list(storage.read_stream("A")),
            lambda: storage.last_position(),
            lambda: storage.save_checkpoint(Checkpoint(name="p", position=1)),
            lambda: storage.acquire_lease("l", "me", 1.0),
            lambda: storage.dead_letters(),
        ):
            with pytest.raises(StorageError, match="closed"):
                call()

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
            Checkpoint(name="saga:S", position=3, state=b"blob", keyed=(("k1", b"a"), ("k2", b"b")))
        )
        storage.append_batch(
            [
                Append(
                    "A",
                    [rec("a1")],
                    0,
                    Checkpoint(
                        name="saga:S", position=5, state=None, keyed=(("k1", None), ("k3", b"c"))
                    ),
                ),
                Append(
                    "B",
                    [rec("b1")],
                    7,
                    Checkpoint(name="saga:S", position=6, state=None, keyed=(("k2", None),)),
                ),  # refused
            ]
        )
        assert storage.load_checkpoint("saga:S") == Checkpoint(
            name="saga:S", position=5, state=None
        )
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

    def test_leases_are_taken_and_renewed_many_at_once(self, storage: Storage) -> None:
        assert storage.acquire_lease("held", "b", 30.0) is not None
        mine = storage.acquire_leases(["s1", "held", "s2", "s1"], "a", 30.0)
        assert sorted(mine) == ["s1", "s2"]  # not b's; a name twice is one lease
        assert {(x.owner, x.epoch) for x in mine.values()} == {("a", 1)}
        again = storage.acquire_leases(["s2", "s1"], "a", 30.0)
        assert {n: x.epoch for n, x in again.items()} == {"s1": 1, "s2": 1}  # renewed
        assert storage.acquire_leases([], "a", 30.0) == {}
        assert storage.acquire_leases(["s1"], "c", 30.0) == {}  # a's

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
        storage.save_checkpoint(Checkpoint(name="c", position=1, state=b"x", fence=fence))
        storage.release_lease("L", "a")
        assert storage.acquire_lease("L", "b", 30.0) is not None  # epoch 2 now
        stale_cp = Checkpoint(name="c", position=2, state=b"stale", fence=fence)
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
        assert storage.load_checkpoint("c") == Checkpoint(name="c", position=1, state=b"x")
        assert ids(storage.read_all()) == ["s1", "t1"]
        with pytest.raises(FencedError):  # a lease never taken: epoch 0
            storage.save_checkpoint(Checkpoint(name="d", position=1, fence=Fence("never", 1)))

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
