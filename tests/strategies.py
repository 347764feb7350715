"""Hypothesis strategies shared by the tests: field values of every supported type,
event records and stream ids."""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Literal

import attrs
from hypothesis import strategies as st

from reactor.events import event
from reactor.registry import Registry
from reactor.store.base import NewRecord

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=20)
STREAMS = st.sampled_from(["Account-a", "Account-b", "Order-1", "Order-2"])


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


registry = Registry()


@attrs.frozen
class Address:
    street: str
    zip_code: str | None = None


@event("test.Everything", registry=registry)
@attrs.frozen
class Everything:
    """One field of every supported type."""

    text: str
    number: int
    real: float
    flag: bool
    nothing: None
    money: Decimal
    ident: uuid.UUID
    moment: datetime
    day: date
    colour: Colour
    level: Level
    items: list[int]
    pair: tuple[str, float]
    many: tuple[Decimal, ...]
    tags: frozenset[str]
    scores: dict[str, float]
    by_level: dict[Level, list[date]]
    by_id: dict[uuid.UUID, Colour]
    address: Address
    addresses: list[Address]
    maybe: Decimal | None
    maybe_address: Address | None
    anything: object


@attrs.frozen
class Node:
    """A recursive type."""

    label: str
    children: tuple[Node, ...] = ()


@event("test.Tree", registry=registry)
@attrs.frozen
class Tree:
    root: Node


timezones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
datetimes = st.builds(
    lambda d, tz: d.replace(tzinfo=tz), st.datetimes(allow_imaginary=False), timezones
)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
floats = st.floats()  # NaN and infinities included: the codec keeps them
json_values = st.recursive(
    st.none() | st.booleans() | INT64 | TEXT | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
addresses = st.builds(Address, TEXT, st.none() | TEXT)

everything = st.builds(
    Everything,
    text=TEXT,
    number=INT64,
    real=floats,
    flag=st.booleans(),
    nothing=st.none(),
    money=decimals,
    ident=st.uuids(),
    moment=datetimes,
    day=st.dates(),
    colour=st.sampled_from(Colour),
    level=st.sampled_from(Level),
    items=st.lists(INT64, max_size=4),
    pair=st.tuples(TEXT, floats),
    many=st.lists(decimals, max_size=3).map(tuple),
    tags=st.frozensets(TEXT, max_size=3),
    scores=st.dictionaries(TEXT, floats, max_size=3),
    by_level=st.dictionaries(st.sampled_from(Level), st.lists(st.dates(), max_size=2)),
    by_id=st.dictionaries(st.uuids(), st.sampled_from(Colour), max_size=2),
    address=addresses,
    addresses=st.lists(addresses, max_size=2),
    maybe=st.none() | decimals,
    maybe_address=st.none() | addresses,
    anything=json_values,
)

nodes = st.recursive(
    st.builds(Node, TEXT),
    lambda inner: st.builds(Node, TEXT, st.lists(inner, max_size=3).map(tuple)),
    max_leaves=10,
)


# -- values by declared type: the codec reads each back as it was, or refuses it -----------

Kind = tuple[Any, st.SearchStrategy[Any]]  # a type hint, and values of exactly that type

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
KEY_KINDS: list[Kind] = [
    (str, TEXT),
    (int, INT64),
    (uuid.UUID, st.uuids()),
    (Decimal, decimals),
    (date, st.dates()),
    (Colour, st.sampled_from(Colour)),
    (Level, st.sampled_from(Level)),
]
HASHABLE_KINDS: list[Kind] = [*KEY_KINDS, (bool, st.booleans()), (datetime, datetimes)]
SCALAR_KINDS: list[Kind] = [
    *HASHABLE_KINDS,
    (float, floats),
    (type(None), st.none()),
    (typing.Any, json_values),
    (object, json_values),
    (Literal["a", 1, True, None], st.sampled_from(["a", 1, True, None])),
    (int | str, INT64 | TEXT),
    (float | str | None, finite_floats | INT64 | TEXT | st.none()),
    (Address, addresses),
]


def _containers(inner: st.SearchStrategy[Kind]) -> st.SearchStrategy[Kind]:
    hashable, keys = st.sampled_from(HASHABLE_KINDS), st.sampled_from(KEY_KINDS)
    return st.one_of(
        inner.map(lambda k: (list[k[0]], st.lists(k[1], max_size=3))),
        inner.map(lambda k: (Sequence[k[0]], st.lists(k[1], max_size=3))),
        inner.map(lambda k: (tuple[k[0], ...], st.lists(k[1], max_size=3).map(tuple))),
        st.tuples(inner, inner).map(
            lambda p: (tuple[p[0][0], p[1][0]], st.tuples(p[0][1], p[1][1]))
        ),
        inner.map(lambda k: (typing.Optional[k[0]], st.none() | k[1])),  # noqa: UP045
        st.tuples(keys, inner).map(
            lambda p: (dict[p[0][0], p[1][0]], st.dictionaries(p[0][1], p[1][1], max_size=3))
        ),
        inner.map(lambda k: (Mapping[str, k[0]], st.dictionaries(TEXT, k[1], max_size=3))),
        hashable.map(lambda k: (frozenset[k[0]], st.frozensets(k[1], max_size=3))),
        hashable.map(lambda k: (set[k[0]], st.sets(k[1], max_size=3))),
    )


kinds = st.recursive(st.sampled_from(SCALAR_KINDS), _containers, max_leaves=4)
typed_values = kinds.flatmap(lambda k: st.tuples(st.just(k[0]), k[1]))


class Zoned(tzinfo):
    """A named time zone (as zoneinfo's are): not a fixed-offset `datetime.timezone`."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "CET"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int


class Text(str):
    """A str subclass: it would read back as a plain str."""


beyond_int64 = st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1)
not_json = st.one_of(  # values that JSON would not give back as they are
    st.tuples(INT64),
    st.frozensets(TEXT, max_size=2),
    st.sets(INT64, max_size=2),
    datetimes,
    st.dates(),
    st.uuids(),
    decimals,
    st.binary(max_size=4),
    st.builds(Point, INT64),
    addresses,
    st.sampled_from([math.nan, math.inf, -math.inf]),
    beyond_int64,
    st.dictionaries(INT64, TEXT, min_size=1, max_size=2),
    st.sampled_from(Colour),
    st.sampled_from(Level),
    TEXT.map(Text),
)
zoned = st.datetimes(allow_imaginary=False).map(lambda d: d.replace(tzinfo=Zoned()))
REFUSED_KINDS: list[Kind] = [
    (str, INT64 | floats | st.booleans() | st.none() | st.binary() | st.sampled_from(Colour)),
    (str, TEXT.map(Text)),
    (int, st.booleans() | floats | INT64.map(str) | decimals | datetimes | st.none()),
    (int, st.sampled_from(Level) | beyond_int64),
    (float, st.booleans() | TEXT | decimals | st.none() | st.just(2**60 + 1)),
    (bool, st.integers(0, 1) | st.none() | TEXT),
    (type(None), st.booleans() | TEXT | st.just(0)),
    (Decimal, finite_floats | INT64 | TEXT),
    (uuid.UUID, st.uuids().map(str)),
    (datetime, st.dates() | TEXT | finite_floats | zoned),
    (date, datetimes | st.dates().map(date.isoformat)),
    (Colour, st.sampled_from([c.value for c in Colour]) | st.sampled_from(Level)),
    (Level, st.sampled_from([1, 2])),
    (Address, st.builds(dict, street=TEXT) | st.builds(Point, INT64) | TEXT),
    (list[int], st.lists(INT64, max_size=3).map(tuple)),
    (Sequence[int], st.lists(INT64, max_size=3).map(tuple)),
    (tuple[int, ...], st.lists(INT64, max_size=3)),
    (tuple[str, int], st.tuples(TEXT) | st.tuples(TEXT, INT64, INT64) | st.just(["a", 1])),
    (frozenset[str], st.sets(TEXT, max_size=2)),
    (set[int], st.frozensets(INT64, max_size=2)),
    (dict[str, int], st.dictionaries(INT64, INT64, min_size=1, max_size=2)),
    (dict[int, str], st.dictionaries(st.booleans(), TEXT, min_size=1)),
    (dict[date, str], st.dictionaries(datetimes, TEXT, min_size=1, max_size=1)),
    (Literal["a", 1], st.sampled_from(["b", 2, True, 1.0, None])),
    (int | str, st.booleans() | finite_floats | st.none() | beyond_int64),
    (int | float, st.sampled_from([math.nan, math.inf, -math.inf]) | TEXT),
    (typing.Any, not_json),
]


def _wrapped(kind: tuple[Any, Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    """A refused value placed inside a container of its type, beside accepted values."""
    tp, value = kind
    options = [
        (list[tp], [value]),
        (dict[str, tp], {"k": value}),
        (tuple[str, tp], ("ok", value)),
    ]
    if value is not None:
        options.append((typing.Optional[tp], value))  # noqa: UP045
    return st.sampled_from(options)


refused_values = st.recursive(
    st.sampled_from(REFUSED_KINDS).flatmap(lambda k: st.tuples(st.just(k[0]), k[1])),
    lambda inner: inner.flatmap(_wrapped),
    max_leaves=3,
)
any_values = typed_values.map(lambda kv: kv[1]) | refused_values.map(lambda kv: kv[1])


@st.composite
def records(draw: st.DrawFn, count: int | None = None) -> list[NewRecord]:
    """A list of new records with fresh event ids."""
    n = count if count is not None else draw(st.integers(0, 3))
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
        for _ in range(n)
    ]


def same_value(a: object, b: object) -> bool:
    """Equal and of the same type all the way down (NaN equal to NaN): what a value read
    back from the journal must be to the value that was live."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if attrs.has(type(a)):
        return all(
            same_value(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a))
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict):
        pairs = list(zip(a.items(), b.items(), strict=False))
        return len(a) == len(b) and all(
            same_value(ka, kb) and same_value(va, vb) for (ka, va), (kb, vb) in pairs
        )
    if isinstance(a, set | frozenset):  # items are hashable scalars (never NaN)
        return {(type(x), x) for x in a} == {(type(x), x) for x in b}
    return a == b


# A customer run for the governance tests (tests/customers.py): commands of a few subjects,
# each ("register", subject, email) | ("move", subject, address or None) |
# ("order", subject, amount), and the subjects to forget.
SUBJECTS = [f"c{n}" for n in range(5)]
customer_commands = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.sampled_from(SUBJECTS), st.emails()),
        st.tuples(st.just("move"), st.sampled_from(SUBJECTS), st.none() | TEXT),
        st.tuples(st.just("order"), st.sampled_from(SUBJECTS), st.integers(1, 100)),
    ),
    min_size=1,
    max_size=25,
)
forgotten_subjects = st.sets(st.sampled_from(SUBJECTS))
