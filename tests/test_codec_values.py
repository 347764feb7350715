"""The codec's checks: a value reads back equal and of the same type, or is refused with an
`EncodeError` that names the event type, the field's path, the expected type and the value."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given

from reactor import Codec, EncodeError, RegistrationError, Registry, event
from tests import strategies as s

codec = Codec(s.registry)


def _holder(tp: Any) -> tuple[Codec, type]:
    """A codec and a fresh event class with one field `x` declared as `tp`."""
    cls = attrs.make_class("Holder", {"x": attrs.field()}, frozen=True)
    cls.__annotations__ = {"x": tp}
    registry = Registry()
    event("t.Holder", registry=registry)(cls)
    return Codec(registry), cls


@given(s.typed_values)
def test_every_accepted_value_reads_back_equal_and_of_the_same_type(typed: tuple) -> None:
    """As an event field, an attribute of state, or a value: the same value, type by type."""
    tp, value = typed
    c, holder = _holder(tp)
    decoded = c.decode(*c.encode(holder(value)))[0]
    assert s.same_value(decoded.x, value), (tp, value, decoded.x)
    state = codec.decode_state(codec.encode_state({"x": value}, {"x": tp}), {"x": tp})
    assert s.same_value(state["x"], value), (tp, value, state)
    assert s.same_value(codec.decode_value(codec.encode_value(value, tp), tp), value)


@given(s.refused_values)
def test_every_refused_value_raises_encode_error(refused: tuple) -> None:
    """A value that would not read back as it is never gets stored, in any of the three paths."""
    tp, value = refused
    c, holder = _holder(tp)
    with pytest.raises(EncodeError, match=r"'t.Holder': field 'x"):
        c.encode(holder(value))
    with pytest.raises(EncodeError, match="attribute 'x"):
        codec.encode_state({"x": value}, {"x": tp})
    with pytest.raises(EncodeError):
        codec.encode_value(value, tp)


@given(s.kinds, s.any_values)
def test_any_value_in_any_field_is_refused_or_reads_back_as_it_was(kind: tuple, value: Any) -> None:
    """Whatever is put in whatever field, encoding never changes it silently (an int in a
    float field reads back as the equal float)."""
    tp = kind[0]
    try:
        data = codec.encode_value(value, tp)
    except EncodeError:
        return
    back = codec.decode_value(data, tp)
    assert _reads_back_as(back, value), (tp, value, back)


def _reads_back_as(back: Any, value: Any) -> bool:
    """`back` is `value` (same types all the way down), but for ints read back as equal floats."""
    if type(value) is int and type(back) is float:
        return back == value
    if s.same_value(back, value):
        return True
    if type(value) is not type(back) or not isinstance(value, list | tuple | dict):
        return False
    if len(value) != len(back):
        return False
    if isinstance(value, dict):
        pairs = zip(back.items(), value.items(), strict=True)
        return all(s.same_value(kb, kv) and _reads_back_as(b, v) for (kb, b), (kv, v) in pairs)
    return all(map(_reads_back_as, back, value))


reg = Registry()


@attrs.frozen
class Line:
    sku: str
    amount: int


@event("t.Order", registry=reg)
@attrs.frozen
class Order:
    order_id: str = "o-1"
    lines: list[Line] = attrs.field(factory=list)
    count: int = 0
    share: float = 0.0
    paid: bool = False
    day: date | None = None
    at: datetime | None = None
    money: Decimal = Decimal(0)
    ref: uuid.UUID | None = None
    by_sku: dict[str, int] = attrs.field(factory=dict)
    extra: Any = None


orders = Codec(reg)


@pytest.mark.parametrize(
    ("order", "field", "expected", "got"),
    [
        (Order(count="5"), "count", "expects int", "got '5' (str)"),
        (Order(count=datetime(2024, 1, 2)), "count", "expects int", "(datetime)"),
        (Order(count=5.0), "count", "expects int", "got 5.0 (float)"),
        (Order(count=True), "count", "expects int", "got True (bool)"),
        (Order(count=2**64), "count", "expects a 64-bit int", "18446744073709551616 (int)"),
        (Order(share="0.5"), "share", "expects float", "got '0.5' (str)"),
        (Order(paid=1), "paid", "expects bool", "got 1 (int)"),
        (Order(order_id=None), "order_id", "expects str", "got None (NoneType)"),
        (Order(day=datetime(2024, 1, 2)), "day", "expects date (not a datetime", "(datetime)"),
        (Order(at="2024-01-02"), "at", "expects datetime", "or None, got '2024-01-02'"),
        (Order(money=1.5), "money", "expects Decimal", "got 1.5 (float)"),
        (Order(ref=str(uuid.UUID(int=1))), "ref", "expects UUID", "(str)"),
        (Order(lines=(Line("a", 1),)), "lines", "expects list[Line]", "(tuple)"),
        (
            Order(lines=[Line("a", 1), Line("b", 2), Line("c", "3")]),
            "lines[2].amount",
            "expects int",
            "got '3' (str)",
        ),
        (Order(lines=[{"sku": "a", "amount": 1}]), "lines[0]", "expects Line", "(dict)"),
        (Order(by_sku={"a": 1, "b": None}), "by_sku['b']", "expects int", "got None"),
        (Order(by_sku={1: 1}), "by_sku[1]", "expects a str key", "got 1 (int)"),
        (Order(extra=(1, 2)), "extra", "is typed Any", "holds (1, 2) (tuple)"),
        (Order(extra={"a": [uuid.UUID(int=1)]}), "extra['a'][0]", "typed Any", "(UUID)"),
    ],
)
def test_a_wrongly_typed_field_names_type_field_expected_and_value(
    order: Order, field: str, expected: str, got: str
) -> None:
    with pytest.raises(EncodeError) as info:
        orders.encode(order)
    message = str(info.value)
    for part in ("cannot encode event 't.Order'", f"field '{field}'", expected, got):
        assert part in message, (part, message)
    assert isinstance(info.value, TypeError)


def test_the_value_in_a_message_is_shortened() -> None:
    with pytest.raises(EncodeError) as info:
        orders.encode(Order(count="9" * 1000))
    assert "'999" in str(info.value) and "..." in str(info.value)
    assert len(str(info.value)) < 200


def test_a_value_typed_any_that_would_change_says_to_annotate_the_field() -> None:
    for value, kind in [
        (datetime(2024, 1, 2), "datetime"),
        (float("nan"), "float"),
        ({1, 2}, "set"),
        (Decimal("1.5"), "Decimal"),
    ]:
        with pytest.raises(EncodeError) as info:
            orders.encode(Order(extra=value))
        assert f"annotate 'extra' with the type it holds (e.g. `extra: {kind}`)" in str(info.value)


def test_an_int_a_float_cannot_hold_exactly_is_refused_in_a_float_field() -> None:
    """5 is taken by a float field (read back as 5.0, equal); 2**60 + 1 has no equal float."""
    assert orders.decode(*orders.encode(Order(share=5)))[0].share == 5.0
    with pytest.raises(EncodeError, match="float holds exactly"):
        orders.encode(Order(share=2**60 + 1))


def test_non_finite_floats_in_float_fields_still_round_trip() -> None:
    for x in (float("inf"), float("-inf")):
        assert orders.decode(*orders.encode(Order(share=x)))[0].share == x


def test_a_value_that_contains_itself_is_an_encode_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodeError, match="'t.Order'"):
        orders.encode(Order(extra=loop))


def test_check_state_names_the_owner_and_the_attribute() -> None:
    """An unannotated set in a projection's state is caught before any checkpoint."""
    with pytest.raises(EncodeError) as info:
        codec.check_state({"seen": set(), "total": 0}, {}, "projection Balances")
    message = str(info.value)
    for part in ("projection Balances", "attribute 'seen'", "holds set() (set)", "class body"):
        assert part in message, (part, message)
    codec.check_state({"seen": set(), "total": 0}, {"seen": set[str]}, "projection Balances")
    with pytest.raises(EncodeError, match=r"projection P: attribute 'n' expects int, got '1'"):
        codec.check_state({"n": "1"}, {"n": int}, "projection P")
    with pytest.raises(RegistrationError, match=r"projection P: attribute 'z': complex"):
        codec.check_state({"z": 1j}, {"z": complex}, "projection P")


def test_events_larger_than_max_event_bytes_are_refused() -> None:
    big = Order(order_id="x" * (4 * 1024 * 1024))
    with pytest.raises(EncodeError) as info:
        orders.encode(big)
    message = str(info.value)
    assert "'t.Order'" in message and "4,194,3" in message and "limit of 4,194,304" in message
    assert orders.max_event_bytes == 4 * 1024 * 1024
    assert Codec(reg, max_event_bytes=None).encode(big)[0] == "t.Order"
    size = len(orders.encode(Order())[2])
    exact = Codec(reg, max_event_bytes=size)
    assert exact.encode(Order())[2] == orders.encode(Order())[2]
    with pytest.raises(EncodeError, match=rf"{size + 1} bytes, over the limit of {size} \("):
        exact.encode(Order(order_id="o-12"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4MB"])
def test_max_event_bytes_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match=r"max_event_bytes must be an int >= 1 .* or None"):
        Codec(reg, max_event_bytes=bad)  # type: ignore[arg-type]


class Planet(enum.Enum):
    EARTH = (1.0, 6.4)


def test_unsupported_literals_and_enum_values_are_refused_when_compiling() -> None:
    """An enum valued by tuples or a Literal of enum members would not read back as it is."""
    r = Registry()

    @event("t.Odd", registry=r)
    @attrs.frozen
    class Odd:
        planet: Planet

    @event("t.Lit", registry=r)
    @attrs.frozen
    class Lit:
        colour: Literal[s.Colour.RED]

    with pytest.raises(RegistrationError, match=r"field 'planet'.*EARTH has value \(1.0, 6.4\)"):
        Codec(r).plan(Odd)
    with pytest.raises(RegistrationError, match="field 'colour'.*Literal values must be"):
        Codec(r).plan(Lit)
