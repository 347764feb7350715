"""The codec: round trips of every supported field type, upcasting, and clear errors."""

from __future__ import annotations

import uuid
from decimal import Decimal

import attrs
import pytest
from hypothesis import given

from reactor import Codec, DecodeError, EncodeError, RegistrationError, Registry, UnknownEventType
from reactor.events import event, upcaster
from tests import strategies as s

codec = Codec(s.registry)


@given(s.everything)
def test_every_field_type_round_trips(value: s.Everything) -> None:
    """Encoding then decoding gives back an equal object (NaN included)."""
    name, version, data = codec.encode(value)
    decoded, decoded_version = codec.decode(name, version, data)
    assert (name, version, decoded_version) == ("test.Everything", 1, 1)
    assert s.same_value(decoded, value), (decoded, value)


@given(s.nodes)
def test_recursive_classes_round_trip(root: s.Node) -> None:
    """A class that contains itself compiles once and round-trips at any depth."""
    assert codec.decode(*codec.encode(s.Tree(root)))[0] == s.Tree(root)


@given(s.everything)
def test_encode_value_round_trips_any_supported_type(value: s.Everything) -> None:
    """encode_value/decode_value (for snapshot and saga state) keep the value."""
    tp = dict[str, list[s.Everything]]
    assert s.same_value(
        codec.decode_value(codec.encode_value({"k": [value]}, tp), tp), {"k": [value]}
    )


def test_the_json_is_plain_and_readable() -> None:
    """Stored data is ordinary JSON: tools outside reactor can read it."""
    reg = Registry()

    @event("t.Paid", registry=reg)
    @attrs.frozen
    class Paid:
        order: uuid.UUID
        amount: Decimal

    order = uuid.UUID(int=7)
    assert Codec(reg).encode(Paid(order, Decimal("9.90")))[2] == (
        b'{"order":"00000000-0000-0000-0000-000000000007","amount":"9.90"}'
    )


def test_upcasters_chain_up_to_the_current_version() -> None:
    """Data stored at version 1 goes through 1->2 and 2->3 on read."""
    reg = Registry()

    @event("t.Renamed", version=3, registry=reg)
    @attrs.frozen
    class Renamed:
        full_name: str
        reason: str

    @upcaster("t.Renamed", from_version=1, registry=reg)
    def _v1(d: dict) -> dict:
        return {"full_name": d.pop("name")}

    @upcaster("t.Renamed", from_version=2, registry=reg)
    def _v2(d: dict) -> dict:
        return {**d, "reason": "unknown"}

    c = Codec(reg)
    assert c.decode("t.Renamed", 1, b'{"name": "Ann"}') == (Renamed("Ann", "unknown"), 3)
    assert c.decode("t.Renamed", 2, b'{"full_name": "Bo"}') == (Renamed("Bo", "unknown"), 3)


def test_unknown_type_names_the_type_and_position() -> None:
    with pytest.raises(UnknownEventType) as info:
        codec.decode("nope.Gone", 1, b"{}", stream_id="S-1", seq=4, position=17)
    assert "'nope.Gone'" in str(info.value) and "position 17" in str(info.value)
    assert (info.value.type, info.value.position, info.value.stream_id) == ("nope.Gone", 17, "S-1")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "JSONDecodeError"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"root": {"label": "x"}, "extra": 1}', "unexpected field"),
        (b'{"root": {"label": "x", "children": 5}}', "TypeError"),
    ],
)
def test_undecodable_data_names_stream_seq_and_position(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode("test.Tree", 1, data, stream_id="Tree-9", seq=3, position=42)
    message = str(info.value)
    for part in ("'test.Tree'", "stream 'Tree-9'", "seq 3", "position 42", reason):
        assert part in message, (part, message)
    assert (info.value.stream_id, info.value.seq, info.value.position) == ("Tree-9", 3, 42)


def test_missing_upcaster_and_newer_version_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match=r"no @upcaster\('test.Tree', from_version=0\)"):
        codec.decode("test.Tree", 0, b"{}", stream_id="T", seq=1, position=1)
    with pytest.raises(
        DecodeError, match="stored at version 2, newer than the registered version 1"
    ):
        codec.decode("test.Tree", 2, b"{}", stream_id="T", seq=1, position=1)


def test_failing_upcaster_is_a_decode_error() -> None:
    reg = Registry()

    @event("t.X", version=2, registry=reg)
    @attrs.frozen
    class X:
        a: int

    @upcaster("t.X", from_version=1, registry=reg)
    def _bad(d: dict) -> dict:
        return d["missing"]

    with pytest.raises(DecodeError, match="upcaster from version 1 raised KeyError") as info:
        Codec(reg).decode("t.X", 1, b"{}", stream_id="X-1", seq=2, position=5)
    assert info.value.position == 5


def test_integers_beyond_64_bits_are_refused_when_encoding() -> None:
    reg = Registry()

    @event("t.Big", registry=reg)
    @attrs.frozen
    class Big:
        n: int

    with pytest.raises(EncodeError, match="'t.Big'.*64-bit"):
        Codec(reg).encode(Big(2**64))


def test_unregistered_class_cannot_be_encoded() -> None:
    @attrs.frozen
    class Stray:
        a: int

    with pytest.raises(UnknownEventType, match="Stray"):
        codec.encode(Stray(1))


def test_unsupported_field_types_are_reported_by_check() -> None:
    reg = Registry()

    @event("t.Odd", registry=reg)
    @attrs.frozen
    class Odd:
        when: complex

    @event("t.Mixed", registry=reg)
    @attrs.frozen
    class Mixed:
        either: int | Decimal

    with pytest.raises(RegistrationError, match="field 'when' of .*Odd: complex"):
        Codec(reg).plan(Odd)
    with pytest.raises(RegistrationError, match="field 'either'.*union"):
        Codec(reg).check()
