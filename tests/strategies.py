"""Hypothesis strategies shared by the tests: field values of every supported type,
event records and stream ids."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

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
    """Equality that treats NaN as equal to NaN, also inside containers and attrs classes."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if attrs.has(type(a)) and type(a) is type(b):
        return all(
            same_value(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a))
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and type(a) is type(b):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
