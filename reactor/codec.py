"""Event objects to JSON bytes and back, shaped by each class's type hints.

Supported field types: str, int (64-bit), float, bool, None, Decimal, UUID, datetime,
date, Enum, list/tuple/set/frozenset, dict, nested attrs classes, Optional and Any.
Each class is compiled once into a plan; decoding runs upcasters up to the current version.
"""

from __future__ import annotations

import enum
import math
import threading
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs
import orjson

from reactor.errors import DecodeError, EncodeError, RegistrationError, UnknownEventType
from reactor.registry import Registry, default_registry, qualified_name

Convert = Callable[[Any], Any]
_NATIVE = (str, int, bool, type(None), Any, object)
_loads = orjson.loads


def dumps(value: Any) -> bytes:
    """JSON-encode a value already in JSON form; `EncodeError` if it is not."""
    try:
        return orjson.dumps(value)
    except TypeError as e:
        raise EncodeError(f"cannot encode {_short(value)}: {e}") from e


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes; `orjson.JSONDecodeError` (a ValueError) if they are not JSON."""
    return _loads(data)


@attrs.frozen
class _Plan:
    """How to turn one attrs class into a JSON dict and back."""

    cls: type
    # (stored key, __init__ argument name, to-json or None, from-json or None)
    fields: tuple[tuple[str, str, Convert | None, Convert | None], ...]
    plain: bool  # every field is JSON-native and named as its __init__ argument

    def to_json(self, obj: Any) -> dict[str, Any]:
        if self.plain:
            return {key: getattr(obj, key) for key, _, _, _ in self.fields}
        return {
            key: (enc(v) if enc is not None and v is not None else v)
            for key, _, enc, _ in self.fields
            for v in (getattr(obj, key),)
        }

    def from_json(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(
                f"expected a JSON object for {self.cls.__qualname__}, got {_short(data)}"
            )
        if self.plain:
            return self.cls(**data)
        kwargs = {}
        for key, arg, _, dec in self.fields:
            if key in data:
                v = data[key]
                kwargs[arg] = dec(v) if dec is not None and v is not None else v
        if len(kwargs) != len(data):
            extra = sorted(set(data) - {key for key, _, _, _ in self.fields})
            raise TypeError(f"unexpected field(s) {extra} for {self.cls.__qualname__}")
        return self.cls(**kwargs)


class Codec:
    """Encodes registered events to `(type, version, bytes)` and decodes them back.

    Plans are compiled on first use (or all at once by `check()`) and cached; thread-safe.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry
        self._plans: dict[type, _Plan] = {}
        self._compiling: set[type] = set()
        self._fast: dict[str, tuple[int, Callable[[bytes], Any]]] = {}  # current versions
        self._generation = self.registry.generation
        self._lock = threading.RLock()

    def check(self) -> None:
        """Compile every registered class; `RegistrationError` names an unsupported field."""
        for info in self.registry.catalog():
            spec = self.registry.get(info.name)
            if spec is not None:
                self.plan(spec.cls)

    def plan(self, cls: type) -> _Plan:
        """The compiled plan of an attrs class (compiled on first call)."""
        plan = self._plans.get(cls)
        if plan is None:
            with self._lock:
                plan = self._plans.get(cls) or self._compile(cls)
        return plan

    def encode(self, obj: object) -> tuple[str, int, bytes]:
        """`(type name, version, JSON bytes)` of a registered event object.

        Raises `UnknownEventType` for an unregistered class, `EncodeError` for a value that
        cannot be encoded (the message names the type).
        """
        spec = self.registry.spec_of(type(obj))
        try:
            return spec.name, spec.version, orjson.dumps(self.plan(spec.cls).to_json(obj))
        except (TypeError, ValueError, OverflowError) as e:
            raise EncodeError(f"cannot encode event {spec.name!r}: {e}") from e

    def decode(
        self,
        type_name: str,
        version: int,
        data: bytes,
        stream_id: str = "",
        seq: int = 0,
        position: int = 0,
    ) -> tuple[Any, int]:
        """The event object of stored `data`, upcast to the current version, and that version.

        Raises `UnknownEventType` for an unregistered type name and `DecodeError` for
        bytes that are not this type's JSON; both name the stream, seq and position.
        """
        if self._generation != self.registry.generation:  # a class was (re)registered
            self._fast.clear()
            self._generation = self.registry.generation
        fast = self._fast.get(type_name)
        if fast is not None and version == fast[0]:
            try:
                return fast[1](data), version
            except Exception:
                pass  # the full path below reports it with its place
        spec = self.registry.get(type_name)
        if spec is None:
            raise UnknownEventType(type_name, stream_id=stream_id, seq=seq, position=position)
        try:
            raw = _loads(data)
            if version != spec.version:
                if version > spec.version:
                    raise DecodeError(
                        f"stored at version {version}, newer than the registered version "
                        f"{spec.version} (written by newer code?)"
                    )
                raw = self.registry.upcast(type_name, version, raw, spec.version)
            plan = self.plan(spec.cls)
            event = plan.from_json(raw)
            if version == spec.version:
                self._fast[type_name] = (version, _fast_decoder(plan))
            return event, spec.version
        except DecodeError as e:
            raise DecodeError(
                e.reason, type_name=type_name, stream_id=stream_id, seq=seq, position=position
            ) from e
        except Exception as e:
            raise DecodeError(
                f"{type(e).__name__}: {e}",
                type_name=type_name,
                stream_id=stream_id,
                seq=seq,
                position=position,
            ) from e

    def encode_value(self, value: Any, tp: Any) -> bytes:
        """JSON bytes of any value of a supported type `tp` (snapshot state, saga state)."""
        enc = _converters(self, tp)[0]
        try:
            return orjson.dumps(enc(value) if enc is not None and value is not None else value)
        except (TypeError, ValueError, OverflowError) as e:
            raise EncodeError(f"cannot encode {_type_text(tp)} value: {e}") from e

    def decode_value(self, data: bytes, tp: Any) -> Any:
        """The value of type `tp` stored by `encode_value`; `DecodeError` if it is not."""
        dec = _converters(self, tp)[1]
        try:
            raw = _loads(data)
            return dec(raw) if dec is not None and raw is not None else raw
        except Exception as e:
            raise DecodeError(f"{_type_text(tp)}: {type(e).__name__}: {e}") from e

    def encode_state(self, values: Mapping[str, Any], hints: Mapping[str, Any]) -> bytes:
        """JSON bytes of named values (an object's attributes), each typed by `hints`
        (unhinted values must be JSON-native)."""
        out = {}
        for name, value in values.items():
            enc = _converters(self, hints.get(name, Any))[0]
            out[name] = enc(value) if enc is not None and value is not None else value
        try:
            return orjson.dumps(out)
        except TypeError as e:
            raise EncodeError(f"cannot encode state: {e}") from e

    def decode_state(self, data: bytes, hints: Mapping[str, Any]) -> dict[str, Any]:
        """The named values stored by `encode_state`; `DecodeError` if they cannot be read."""
        try:
            raw = _loads(data)
            out = {}
            for name, value in raw.items():
                dec = _converters(self, hints.get(name, Any))[1]
                out[name] = dec(value) if dec is not None and value is not None else value
            return out
        except Exception as e:
            raise DecodeError(f"state: {type(e).__name__}: {e}") from e

    # -- compiling ---------------------------------------------------------------------------

    def _compile(self, cls: type) -> _Plan:
        try:
            hints = typing.get_type_hints(cls)
        except Exception as e:
            raise RegistrationError(
                f"cannot resolve the type hints of {qualified_name(cls)}: {e}"
            ) from e
        self._compiling.add(cls)  # so that a recursive class refers to its own plan lazily
        try:
            fields = []
            for f in attrs.fields(cls):
                if not f.init:
                    continue
                try:
                    enc, dec = _converters(self, hints.get(f.name, Any))
                except RegistrationError as e:
                    raise RegistrationError(
                        f"field {f.name!r} of {qualified_name(cls)}: {e}"
                    ) from None
                fields.append((f.name, f.alias or f.name, enc, dec))
        finally:
            self._compiling.discard(cls)
        plain = all(enc is None and dec is None and key == arg for key, arg, enc, dec in fields)
        plan = _Plan(cls, tuple(fields), plain)
        self._plans[cls] = plan
        return plan

    def _nested(self, cls: type) -> tuple[Convert, Convert]:
        if cls in self._compiling:
            return (lambda v: self._plans[cls].to_json(v)), (
                lambda v: self._plans[cls].from_json(v)
            )
        plan = self.plan(cls)
        return plan.to_json, plan.from_json


def _converters(codec: Codec, tp: Any) -> tuple[Convert | None, Convert | None]:
    """(to JSON, from JSON) for type `tp`; None stands for the identity."""
    if tp in _NATIVE or isinstance(tp, typing.TypeVar):
        return None, None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return None, None
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:  # Optional[X]: None is passed through by the callers
            return _converters(codec, inner[0])
        if all(a in _NATIVE or a is float for a in inner):
            return None, None
        raise RegistrationError(
            f"{_type_text(tp)} is not supported: a union may only mix str, int, float, bool "
            "and None; use one attrs class per shape instead"
        )
    if origin is typing.Annotated:
        return _converters(codec, args[0])
    if tp is float:
        return _float_to_json, float
    if tp is Decimal:
        return str, Decimal
    if tp is uuid.UUID:
        return str, uuid.UUID
    if tp is datetime:
        return datetime.isoformat, datetime.fromisoformat
    if tp is date:
        return date.isoformat, date.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_value, tp
    if isinstance(tp, type) and attrs.has(tp):
        return codec._nested(tp)
    container = origin or tp
    if container in (list, tuple, set, frozenset, Sequence, typing.Sequence):
        build: Callable[[Any], Any] = list if container in (list, Sequence) else container
        if container is tuple and args and args[-1] is not Ellipsis:
            convs = [_converters(codec, a) for a in args]
            if all(e is None and d is None for e, d in convs):
                return list, tuple
            encs, decs = [_opt(e) for e, _ in convs], [_opt(d) for _, d in convs]
            return (
                lambda v: [f(x) for f, x in zip(encs, v, strict=True)],
                lambda v: tuple(f(x) for f, x in zip(decs, v, strict=True)),
            )
        enc, dec = _converters(codec, args[0]) if args else (None, None)
        each_enc, each_dec = _opt(enc), _opt(dec)
        return (
            (lambda v: [each_enc(x) for x in v]) if enc else list,
            (lambda v: build(each_dec(x) for x in v)) if dec else build,
        )
    if container in (dict, Mapping, typing.Mapping):
        key_enc, key_dec = _key_converters(args[0] if args else str)
        enc, dec = _converters(codec, args[1]) if args else (None, None)
        if key_enc is None and enc is None and dec is None:
            return None, None
        ke, kd, ve, vd = _opt(key_enc), _opt(key_dec), _opt(enc), _opt(dec)
        return (
            lambda v: {ke(k): ve(x) for k, x in v.items()},
            lambda v: {kd(k): vd(x) for k, x in v.items()},
        )
    raise RegistrationError(f"{_type_text(tp)} is not a supported field type")


def _key_converters(tp: Any) -> tuple[Convert | None, Convert | None]:
    """Dict keys are JSON strings: str as is; int, UUID, Enum, Decimal and dates as text."""
    if tp in (str, Any):
        return None, None
    if tp is int:
        return str, int
    if tp in (uuid.UUID, Decimal):
        return str, tp
    if tp is date:
        return date.isoformat, date.fromisoformat
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        sample = next(iter(tp)).value
        if isinstance(sample, str):
            return _enum_value, tp
        if isinstance(sample, int):
            return (lambda e: str(e.value)), (lambda s: tp(int(s)))
    raise RegistrationError(
        f"dict keys of type {_type_text(tp)} are not supported (use str, int, UUID, Decimal, "
        "date or an Enum of str or int)"
    )


def _fast_decoder(plan: _Plan) -> Callable[[bytes], Any]:
    """bytes -> object for data at the current version, with no checks beyond Python's own."""
    cls, from_json = plan.cls, plan.from_json
    if plan.plain:
        return lambda data: cls(**_loads(data))
    return lambda data: from_json(_loads(data))


def _opt(conv: Convert | None) -> Convert:
    """`conv` for values that may be None (which stays None); the identity for None."""
    if conv is None:
        return _identity
    return lambda x: None if x is None else conv(x)


def _identity(x: Any) -> Any:
    return x


def _float_to_json(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)  # "nan", "inf", "-inf"; float() reads them back


def _enum_value(e: enum.Enum) -> Any:
    return e.value


def _type_text(tp: Any) -> str:
    return tp.__qualname__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
