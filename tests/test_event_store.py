"""EventStore: typed appends and reads over every backend, envelopes, and what a corrupt
or unknown stored row does (a clear error naming it; the rest stays readable)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest

from reactor import (
    Codec,
    DecodeError,
    EncodeError,
    EventStore,
    NewEvent,
    RegistrationError,
    Registry,
    UnknownEventType,
    event,
    open_store,
    upcaster,
)
from reactor.store import NewRecord, Storage

reg = Registry()


@event("bank.Deposited", version=2, registry=reg)
@attrs.frozen
class Deposited:
    account_id: str
    amount: Decimal
    currency: str = "EUR"


@upcaster("bank.Deposited", from_version=1, registry=reg)
def _v1(data: dict) -> dict:
    return {**data, "currency": "EUR"}


@event("bank.Closed", registry=reg)
@attrs.frozen
class Closed:
    account_id: str


@pytest.fixture
def store(storage: Storage) -> EventStore:
    return EventStore(storage, Codec(reg))


def test_envelopes_carry_everything(store: EventStore) -> None:
    before = datetime.now(UTC)
    new = NewEvent(
        Deposited("a1", Decimal("10.5")),
        event_id="e-1",
        correlation_id="c-1",
        causation_id="cmd-1",
        metadata={"user": "ann"},
    )
    (env,) = store.append("Account-a1", [new], 0)
    assert (env.event_id, env.stream_id, env.seq, env.position) == ("e-1", "Account-a1", 1, 1)
    assert (env.type, env.version, env.event) == (
        "bank.Deposited",
        2,
        Deposited("a1", Decimal("10.5")),
    )
    assert (env.correlation_id, env.causation_id, env.metadata) == ("c-1", "cmd-1", {"user": "ann"})
    assert env.timestamp.tzinfo is UTC and before <= env.timestamp <= datetime.now(UTC)
    (read,) = store.read_stream("Account-a1")
    assert read == env


def test_reads_decode_and_filter_by_class_or_name(store: EventStore) -> None:
    store.append("Account-a1", [Deposited("a1", Decimal(1)), Closed("a1")], 0)
    store.append("Account-b2", [Deposited("b2", Decimal(2))], 0)
    assert [e.event for e in store.read_all(types=[Closed])] == [Closed("a1")]
    assert [e.event.account_id for e in store.read_all(types=["bank.Deposited"])] == ["a1", "b2"]
    assert [e.seq for e in store.read_stream("Account-a1", 2)] == [2]
    assert store.stream_version("Account-a1") == 2 and store.last_position() == 3


def test_old_versions_are_upcast_on_read(store: EventStore) -> None:
    old = NewRecord("old-1", "bank.Deposited", 1, b'{"account_id": "a1", "amount": "3"}', 0.0)
    store.storage.append("Account-a1", [old], 0)
    (env,) = store.read_all()
    assert (env.version, env.event) == (2, Deposited("a1", Decimal(3), "EUR"))


def test_idempotent_reappend_returns_the_stored_envelopes(store: EventStore) -> None:
    new = NewEvent(Closed("a1"), event_id="e-9")
    first = store.append("Account-a1", [new], 0)
    assert store.append("Account-a1", [new], 0) == first
    assert store.last_position() == 1


def test_corrupt_and_unknown_rows_name_their_place_and_spare_the_rest(store: EventStore) -> None:
    store.append("Account-a1", [Deposited("a1", Decimal(1))], 0)
    store.storage.append("Account-a1", [NewRecord("bad", "bank.Deposited", 2, b"{oops", 0.0)], 1)
    store.storage.append("Gone-1", [NewRecord("gone", "old.Removed", 1, b"{}", 0.0)], 0)
    store.storage.append(
        "Meta-1", [NewRecord("m", "bank.Closed", 1, b'{"account_id": "m"}', 0.0, b"[")], 0
    )
    store.append("Account-a1", [Closed("a1")], 2)
    with pytest.raises(
        DecodeError, match=r"stream 'Account-a1', seq 2, position 2: JSONDecodeError"
    ):
        list(store.read_stream("Account-a1"))
    with pytest.raises(
        UnknownEventType, match=r"'old.Removed' \(stream 'Gone-1', seq 1, position 3\)"
    ):
        list(store.read_all(after=2))
    with pytest.raises(DecodeError, match=r"position 4: metadata is not JSON"):
        list(store.read_all(after=3))
    # Everything else is still readable, around the bad rows.
    assert [e.event for e in store.read_all(after=4)] == [Closed("a1")]
    assert [e.event for e in store.read_stream("Account-a1", 3)] == [Closed("a1")]


def test_unencodable_events_store_nothing(store: EventStore) -> None:
    @attrs.frozen
    class Unregistered:
        a: int

    with pytest.raises(UnknownEventType):
        store.append("S", [Unregistered(1)], 0)
    with pytest.raises(EncodeError):
        store.append("S", [Closed("a"), NewEvent(Closed("b"), metadata={"x": object()})], 0)
    assert store.last_position() == 0


def test_open_store_reports_registry_problems_before_any_read(tmp_path: object) -> None:
    """A gap in an upcaster chain or an unsupported field is found at open, not at read."""
    gap = Registry()

    @event("t.Doc", version=3, registry=gap)
    @attrs.frozen
    class Doc:
        a: int

    upcaster("t.Doc", from_version=1, registry=gap)(lambda d: d)
    with pytest.raises(RegistrationError, match="misses from_version 2"):
        open_store("memory://", registry=gap)

    odd = Registry()

    @event("t.Odd", registry=odd)
    @attrs.frozen
    class Odd:
        z: complex

    with pytest.raises(RegistrationError, match="field 'z'"):
        open_store("memory://", registry=odd)
    open_store("memory://", registry=reg).close()
