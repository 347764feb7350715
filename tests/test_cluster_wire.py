"""What a cluster needs no server for: shards and rendezvous hashing (stable, and a join or
a leave moves only the shards it must), and the wire encoding of commands, results and
errors (round trips, errors rebuilt with their class, unknown classes named)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor import ConcurrencyError, Rejected, command
from reactor.actors.messages import Handle, Reply
from reactor.cluster.shards import choose, shard_of
from reactor.cluster.wire import (
    RemoteError,
    decode_answer,
    decode_request,
    encode_error,
    encode_request,
    encode_result,
)
from reactor.events import Cause, CommandResult
from reactor.security.policy import Principal
from reactor.store import EventStore, open_store
from tests.bank import Deposited

NODES = st.lists(st.text("abcdefghij0123456789", min_size=1, max_size=6), min_size=1, unique=True)


@command
@attrs.frozen
class Pay:
    account_id: str
    amount: Decimal
    at: datetime
    ref: uuid.UUID


@pytest.fixture
def store() -> Iterator[EventStore]:
    s = open_store("memory://")
    yield s
    s.close()


def test_shards_and_choices_are_stable() -> None:
    """The shard of a stream and the choice of a node are the same in every process and
    Python version (CRC-32 and BLAKE2b, not `hash()`): pinned values."""
    assert [shard_of(f"Account-k{i}", 64) for i in range(4)] == [59, 45, 23, 1]
    assert (choose("0", ["a", "b", "c"]), choose("1", ["c", "b", "a"])) == ("b", "c")
    assert {shard_of(f"s{i}", 8) for i in range(200)} == set(range(8))


@given(nodes=NODES, newcomer=st.text("klmnop", min_size=1, max_size=4))
def test_a_join_moves_only_the_shards_the_newcomer_gets(nodes: list[str], newcomer: str) -> None:
    before = {s: choose(str(s), nodes) for s in range(64)}
    after = {s: choose(str(s), [*nodes, newcomer]) for s in range(64)}
    assert all(after[s] in (before[s], newcomer) for s in range(64))


@given(nodes=NODES.filter(lambda n: len(n) > 1), data=st.data())
def test_a_leave_moves_only_the_leavers_shards(nodes: list[str], data: st.DataObject) -> None:
    leaver = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n != leaver]
    for shard in range(64):
        if choose(str(shard), nodes) != leaver:
            assert choose(str(shard), rest) == choose(str(shard), nodes)


def test_a_command_travels_with_its_typed_fields_ids_principal_cause_and_trace(
    store: EventStore,
) -> None:
    pay = Pay("a1", Decimal("1.10"), datetime(2024, 5, 1, tzinfo=UTC), uuid.uuid4())
    who = Principal("ann", ["teller"])
    handle = Handle(
        command=pay,
        command_id="cmd-1",
        correlation_id="corr-1",
        reply=Reply(),
        given_id=True,
        sent_at=0.0,
        principal=who,
        audit=True,
        cause=Cause("ev-7", "saga:Mover"),
    )
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    data = encode_request(store, handle, False, trace)
    request = decode_request(store, data, {"tests.test_cluster_wire.Pay": Pay}.get)
    assert request.cause == Cause("ev-7", "saga:Mover") and request.trace == trace
    plain = decode_request(
        store,
        encode_request(store, handle._replace(cause=None), False, {}),
        {"tests.test_cluster_wire.Pay": Pay}.get,
    )
    assert plain.cause is None and plain.trace == {}
    assert request.command == pay
    assert (request.command_id, request.correlation_id, request.principal) == (
        "cmd-1",
        "corr-1",
        who,
    )
    assert request.audit and not request.fresh


def test_a_result_travels_with_its_events(store: EventStore) -> None:
    envelopes = tuple(store.append("Account-a1", [Deposited("a1", 5)], 0))
    result = CommandResult(stream_id="Account-a1", version=1, position=1, events=envelopes)
    back = decode_answer(store, encode_result(store, result))
    assert back == result


def test_errors_travel_with_their_class() -> None:
    store = None  # errors need no store
    for error in (Rejected("no"), ZeroDivisionError("a bug"), ConcurrencyError("s", 1, 2)):
        back = decode_answer(store, encode_error(error))  # type: ignore[arg-type]
        assert type(back) is type(error) and str(back) == str(error)
    back = decode_answer(store, encode_error(ConcurrencyError("s", 1, 2)))  # type: ignore[arg-type]
    assert isinstance(back, ConcurrencyError) and (back.expected, back.actual) == (1, 2)


def test_an_error_of_a_class_not_loaded_here_is_a_remote_error() -> None:
    """Nothing is imported on a peer's word: an unknown class comes back by name."""
    raw = b'{"error": {"type": "somewhere.unloaded.Boom", "message": "bang", "fields": {}}}'
    back = decode_answer(None, raw)  # type: ignore[arg-type]
    assert isinstance(back, RemoteError) and str(back) == "somewhere.unloaded.Boom: bang"
