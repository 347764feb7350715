"""Per type hint, the function that checks a value and gives its JSON form, and the one
that reads that form back. The checks are what make replay give back what was live: a value
is refused unless it reads back equal and of the same type.
"""

from __future__ import annotations

import enum
import math
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from itertools import repeat
from typing import Any

import attrs

from reactor.errors import EncodeError, RegistrationError
from reactor.registry import type_text

Encode = Callable[[Any], Any]  # checks a value against its declared type; returns its JSON form
Decode = Callable[[Any], Any]
Nested = Callable[[type], tuple[Encode, Decode]]  # the converters of an attrs class
_NATIVE = (str, int, float, bool, type(None), Any, object)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes (signed and unsigned 64-bit)
_FLOAT_MAX = int(sys.float_info.max)


class Mismatch(Exception):
    """A value that does not fit its declared type: raised where it is found, given its path
    (`items[2].amount`) on the way out, and turned into an `EncodeError` at the top."""

    def __init__(self, expected: str, value: Any, *, unhinted: bool = False) -> None:
        super().__init__(expected)
        self.expected, self.value, self.unhinted = expected, value, unhinted
        self.path: list[str] = []  # innermost first

    def within(self, segment: str) -> Mismatch:
        self.path.append(segment)
        return self

    def error(self, whose: str, what: str) -> EncodeError:
        """The `EncodeError` for `whose` ("event 'bank.Deposited'"), naming the `what`
        ("field", or "attribute" of an object's state) by its path."""
        where = "".join(reversed(self.path)).lstrip(".")
        got = f"{short(self.value)} ({type(self.value).__qualname__})"
        place = f"{what} '{where}' " if where else ""
        if not self.unhinted:
            return EncodeError(f"cannot encode {whose}: {place}expects {self.expected}, got {got}")
        root = self.path[-1].lstrip(".") if self.path else where
        example = f" (e.g. `{root}: {type(self.value).__qualname__}`)" if where == root else ""
        if what == "attribute":
            example += " in the class body (annotations inside __init__ are not seen)"
        return EncodeError(
            f"cannot encode {whose}: {place}is typed Any (or not annotated) and holds {got}, "
            "which would read back changed: only str, int, finite float, bool, None, list and "
            f"dict with str keys are stored as they are without a type; annotate {root!r} with "
            f"the type it holds{example}"
        )


def converters(nested: Nested, tp: Any) -> tuple[Encode, Decode | None]:
    """(check and encode, decode) for type `tp`; a None decoder stands for the identity.

    Decoders are never given None (their callers pass it through); encoders are.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return converters(nested, args[0])
    if tp in (Any, object) or isinstance(tp, typing.TypeVar):
        return _plain, None
    if origin is None and tp in _SCALARS:
        return _SCALARS[tp]
    if origin is typing.Literal:
        return _literal(tp, args), None
    if origin in (typing.Union, types.UnionType):
        return _union(nested, tp, args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if isinstance(tp, type) and attrs.has(tp):
        return nested(tp)
    container = origin or tp
    if container in (list, tuple, set, frozenset, Sequence, typing.Sequence):
        return _sequence(nested, tp, container, args)
    if container in (dict, Mapping, typing.Mapping):
        return _mapping(nested, tp, args)
    raise RegistrationError(f"{type_text(tp)} is not a supported field type")


def _plain(v: Any) -> Any:
    """A value typed Any: accepted when JSON gives it back as it is (checked, not copied)."""
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        return _int(v)
    if t is float and math.isfinite(v):
        return v
    if t is list:
        _each(zip(repeat(_plain), v))
        return v
    if t is dict:
        for k, x in v.items():
            try:
                if type(k) is not str:
                    raise Mismatch("", k, unhinted=True)
                _plain(x)
            except Mismatch as m:
                raise m.within(f"[{short(k)}]") from None
        return v
    raise Mismatch("", v, unhinted=True)


def _exact(tp: type, expected: str, to_json: Callable[[Any], Any] | None = None) -> Encode:
    """An encoder taking values of exactly type `tp` (not a subclass: it would read back as
    `tp`), returned as they are or through `to_json`."""
    if to_json is None:

        def same(v: Any) -> Any:
            if type(v) is tp:
                return v
            raise Mismatch(expected, v)

        return same
    convert = to_json

    def encode(v: Any) -> Any:
        if type(v) is tp:
            return convert(v)
        raise Mismatch(expected, v)

    return encode


def _int(v: Any) -> int:
    if type(v) is int and _INT_MIN <= v <= _INT_MAX:
        return v
    raise Mismatch("a 64-bit int" if type(v) is int else "int", v)


def _float(v: Any) -> float | str:
    if type(v) is float:
        return v if math.isfinite(v) else repr(v)  # "nan", "inf", "-inf": float() reads them
    if type(v) is int and -_FLOAT_MAX <= v <= _FLOAT_MAX and float(v) == v:
        return float(v)  # reads back equal (an int a float cannot hold exactly would not)
    raise Mismatch("float (or an int that a float holds exactly)", v)


def _datetime(v: Any) -> str:
    # subclasses too (freezegun's); a zone other than a fixed offset would read back as one
    if isinstance(v, datetime) and (v.tzinfo is None or type(v.tzinfo) is timezone):
        return v.isoformat()
    raise Mismatch("datetime (naive, or aware with a fixed-offset datetime.timezone)", v)


def _date(v: Any) -> str:
    if isinstance(v, date) and not isinstance(v, datetime):  # a datetime reads back as a date
        return v.isoformat()
    raise Mismatch("date (not a datetime: pass value.date())", v)


_SCALARS: dict[Any, tuple[Encode, Decode | None]] = {
    str: (_exact(str, "str"), None),
    bool: (_exact(bool, "bool"), None),
    type(None): (_exact(type(None), "None"), None),
    int: (_int, None),
    float: (_float, float),
    Decimal: (_exact(Decimal, "Decimal", str), Decimal),
    uuid.UUID: (_exact(uuid.UUID, "UUID", str), uuid.UUID),
    datetime: (_datetime, datetime.fromisoformat),
    date: (_date, date.fromisoformat),
}


def _literal(tp: Any, values: tuple[Any, ...]) -> Encode:
    odd = [v for v in values if type(v) not in (str, int, bool, type(None))]
    if odd:
        raise RegistrationError(
            f"{type_text(tp)}: Literal values must be str, int, bool or None to read back "
            f"as they are, not {odd[0]!r}"
        )
    expected = type_text(tp)

    def encode(v: Any) -> Any:
        if any(type(v) is type(x) and v == x for x in values):
            return v
        raise Mismatch(expected, v)

    return encode


def _union(nested: Nested, tp: Any, args: tuple[Any, ...]) -> tuple[Encode, Decode | None]:
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:  # Optional[X]
        enc, dec = converters(nested, inner[0])
        return _or_none(enc), dec
    if not all(a in _NATIVE for a in inner):
        raise RegistrationError(
            f"{type_text(tp)} is not supported: a union may only mix str, int, float, bool "
            "and None; use one attrs class per shape instead"
        )
    if any(a in (Any, object) for a in inner):
        return _plain, None
    allowed = frozenset(args) | ({int} if float in args else set())
    expected = type_text(tp)

    def encode(v: Any) -> Any:
        t = type(v)
        if t in allowed:
            if t is float and not math.isfinite(v):
                raise Mismatch(f"{expected} with a finite float", v)
            return _int(v) if t is int else v
        raise Mismatch(expected, v)

    return encode, None


def _or_none(enc: Encode) -> Encode:
    def encode(v: Any) -> Any:
        if v is None:
            return None
        try:
            return enc(v)
        except Mismatch as m:
            if not m.path:
                m.expected += " or None"
            raise

    return encode


def _enum(tp: type[enum.Enum]) -> tuple[Encode, Decode]:
    odd = [m for m in tp if type(m.value) not in (str, int, float, bool)]
    if odd:
        raise RegistrationError(
            f"{tp.__qualname__}.{odd[0].name} has value {odd[0].value!r}: stored enums need "
            "str, int, float or bool values"
        )
    return _exact(tp, tp.__qualname__, _enum_value), tp


def _sequence(
    nested: Nested, tp: Any, container: Any, args: tuple[Any, ...]
) -> tuple[Encode, Decode]:
    """list, tuple, set, frozenset: the container (exactly: a Sequence is stored and read
    back as a list, so it takes a list) and each item, by its type argument."""
    build: Callable[[Any], Any] = list if container in (list, Sequence) else container
    expected, indexed = type_text(tp), container not in (set, frozenset)
    if container is tuple and args and args[-1] is not Ellipsis:
        convs = [converters(nested, a) for a in args]
        encs, decs = [e for e, _ in convs], [_opt(d) for _, d in convs]

        def encode_fixed(v: Any) -> list[Any]:
            if type(v) is not tuple or len(v) != len(encs):
                raise Mismatch(expected, v)
            return _each(zip(encs, v, strict=True))

        return encode_fixed, (lambda v: tuple(f(x) for f, x in zip(decs, v, strict=True)))
    enc, dec = converters(nested, args[0]) if args else (_plain, None)

    def encode(v: Any) -> list[Any]:
        if type(v) is not build:
            raise Mismatch(expected, v)
        return _each(zip(repeat(enc), v), indexed)

    each = _opt(dec)
    return encode, ((lambda v: build(each(x) for x in v)) if dec is not None else build)


def _mapping(nested: Nested, tp: Any, args: tuple[Any, ...]) -> tuple[Encode, Decode | None]:
    """dict or Mapping (read back as a dict, so it takes a dict): its keys and values, by
    their type arguments."""
    key_enc, key_dec = _key_converters(args[0] if args else str)
    enc, dec = converters(nested, args[1]) if args else (_plain, None)
    expected = type_text(tp)

    def encode(v: Any) -> dict[Any, Any]:
        if type(v) is not dict:
            raise Mismatch(expected, v)
        out = {}
        for k, x in v.items():
            try:
                out[key_enc(k)] = enc(x)
            except Mismatch as m:
                raise m.within(f"[{short(k)}]") from None
        return out

    if key_dec is None and dec is None:
        return encode, None
    kd, vd = key_dec or _identity, _opt(dec)
    return encode, (lambda v: {kd(k): vd(x) for k, x in v.items()})


def _key_converters(tp: Any) -> tuple[Encode, Decode | None]:
    """Dict keys are JSON strings: str as is; int, UUID, Enum, Decimal and dates as text."""
    if tp in (str, Any):
        return _exact(str, "a str key"), None
    if tp in (int, uuid.UUID, Decimal):
        return _exact(tp, f"a {tp.__qualname__} key", str), tp
    if tp is date:
        return _exact(date, "a date key", date.isoformat), date.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        sample = next(iter(tp)).value
        if isinstance(sample, str):
            return _exact(tp, f"a {tp.__qualname__} key", _enum_value), tp
        if isinstance(sample, int):
            return _exact(tp, f"a {tp.__qualname__} key", lambda e: str(e.value)), (
                lambda s: tp(int(s))
            )
    raise RegistrationError(
        f"dict keys of type {type_text(tp)} are not supported (use str, int, UUID, Decimal, "
        "date or an Enum of str or int)"
    )


def _each(pairs: Iterable[tuple[Encode, Any]], indexed: bool = True) -> list[Any]:
    """Each item encoded by its encoder; a mismatch learns its index (`[2]`, or `{…}` for
    an item of a set)."""
    out = []
    for i, (enc, x) in enumerate(pairs):
        try:
            out.append(enc(x))
        except Mismatch as m:
            raise m.within(f"[{i}]" if indexed else "{…}") from None
    return out


def _opt(conv: Decode | None) -> Decode:
    """`conv` for values that may be None (which stays None); the identity for None."""
    if conv is None:
        return _identity
    return lambda x: None if x is None else conv(x)


def _identity(x: Any) -> Any:
    return x


def _enum_value(e: enum.Enum) -> Any:
    return e.value


def short(value: Any) -> str:
    """The repr of a value, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
