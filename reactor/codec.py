"""Event objects to JSON bytes and back, shaped by each class's type hints.

Supported field types: str, int (64-bit), float, bool, None, Decimal, UUID, datetime,
date, Enum, list/tuple/set/frozenset, dict, nested attrs classes, Optional, Literal and Any.
Each class is compiled once into a plan that checks every value against its declared type
while encoding (so that replay gives back what was live); decoding runs upcasters.
Personal-data fields (`metadata={"pii": ...}`) are sealed with the codec's `ring` (a
`KeyRing`) and opened before upcasting; a forgotten subject's values read as masked.
"""

from __future__ import annotations

import sys
import threading
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from reactor.converters import Decode, Encode, Mismatch, converters, short
from reactor.errors import DecodeError, EncodeError, RegistrationError, UnknownEventType
from reactor.registry import EventSpec, Registry, default_registry, qualified_name, type_text
from reactor.security.pii import MASK, PersonalField, personal_fields, seal, unseal

if TYPE_CHECKING:
    from reactor.security.crypto import KeyRing

MAX_EVENT_BYTES = 4 * 1024 * 1024
_loads = orjson.loads


def dumps(value: Any) -> bytes:
    """JSON-encode a value already in JSON form; `EncodeError` if it is not."""
    try:
        return orjson.dumps(value)
    except TypeError as e:
        raise EncodeError(f"cannot encode {short(value)}: {e}") from e


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes; `orjson.JSONDecodeError` (a ValueError) if they are not JSON."""
    return _loads(data)


@attrs.frozen
class _Plan:
    """How to turn one attrs class into a JSON dict and back."""

    cls: type
    # (stored key, __init__ argument name, check-and-encode, decode or None)
    fields: tuple[tuple[str, str, Encode, Decode | None], ...]
    plain: bool  # every field reads back as stored and is named as its __init__ argument
    personal: tuple[PersonalField, ...] = ()  # its personal-data fields
    sealed: Mapping[str, str] | None = None  # their marker: field -> its subject's field

    def to_json(self, obj: Any) -> dict[str, Any]:
        out = {}
        for key, _, enc, _ in self.fields:
            try:
                out[key] = enc(getattr(obj, key))
            except Mismatch as m:
                raise m.within("." + key) from None
        return out

    def from_json(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(
                f"expected a JSON object for {self.cls.__qualname__}, got {short(data)}"
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
    `max_event_bytes` bounds the encoded data of one event (None: no limit).
    """

    def __init__(
        self, registry: Registry | None = None, *, max_event_bytes: int | None = MAX_EVENT_BYTES
    ) -> None:
        if max_event_bytes is not None and (
            type(max_event_bytes) is not int or max_event_bytes < 1
        ):
            raise ValueError(
                "max_event_bytes must be an int >= 1 (bytes) or None (no limit), "
                f"got {max_event_bytes!r}"
            )
        self.registry = registry if registry is not None else default_registry
        self.max_event_bytes = max_event_bytes
        self._limit = sys.maxsize if max_event_bytes is None else max_event_bytes
        self._plans: dict[type, _Plan] = {}
        self._types: dict[Any, tuple[Encode, Decode | None]] = {}  # state hints, compiled
        self._compiling: set[type] = set()
        self._fast: dict[str, tuple[int, Callable[[bytes], Any]]] = {}  # current versions
        self._generation = self.registry.generation
        self._lock = threading.RLock()
        self.ring: KeyRing | None = None  # seals personal data (None: masks what is sealed)
        self._markers: dict[tuple[Any, ...], tuple[PersonalField, ...]] = {}

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
        """`(type name, version, JSON bytes)` of a registered event object (kept as state:
        its personal fields are sealed if the codec has a ring, as they are if not).

        Raises `UnknownEventType` for an unregistered class, and `EncodeError` naming the
        type, the field, the expected type and the value for a value that does not fit its
        field's declared type (or would not read back as it is), or for data larger than
        `max_event_bytes`.
        """
        return self._encode(obj, strict=False)[:3]

    def encode_event(self, obj: object) -> tuple[str, int, bytes, Mapping[str, str] | None]:
        """`encode` for the journal: also the marker of the personal fields sealed (field ->
        its subject's field; None for none), to keep in the event's metadata under "pii".
        `EncodeError` for an event with personal fields when the codec has no ring."""
        return self._encode(obj, strict=True)

    def _encode(
        self, obj: object, strict: bool
    ) -> tuple[str, int, bytes, Mapping[str, str] | None]:
        spec = self.registry.spec_of(type(obj))
        plan = self.plan(spec.cls)
        try:
            values = plan.to_json(obj)
            if plan.personal and (strict or self.ring is not None):
                values = self._seal(plan, values, spec.name)
            data = orjson.dumps(values)
        except Mismatch as m:
            raise m.error(f"event {spec.name!r}", "field") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise EncodeError(f"cannot encode event {spec.name!r}: {e}") from e
        if len(data) > self._limit:
            raise EncodeError(
                f"cannot encode event {spec.name!r}: its data is {len(data):,} bytes, over the "
                f"limit of {self._limit:,} (max_event_bytes); keep large payloads outside the "
                "journal and store a reference to them in the event"
            )
        return spec.name, spec.version, data, plan.sealed

    def _seal(self, plan: _Plan, values: dict[str, Any], context: str) -> dict[str, Any]:
        if self.ring is None:
            names = ", ".join(f.name for f in plan.personal)
            raise EncodeError(
                f"event {context!r} holds personal data ({names}), which is stored encrypted: "
                "start the Runtime with master_key=<32 bytes> (or give the EventStore a key "
                "ring with unlock())"
            )
        return seal(self.ring, plan.personal, values, context)

    def decode(
        self,
        type_name: str,
        version: int,
        data: bytes,
        stream_id: str = "",
        seq: int = 0,
        position: int = 0,
        sealed: Mapping[str, str] | None = None,
    ) -> tuple[Any, int]:
        """The event object of stored `data`, upcast to the current version, and that version.

        `sealed` is the marker of the personal fields stored sealed (an event's metadata
        "pii"; None: those of its class, if the codec has a ring). They are opened before
        upcasting; a forgotten subject's (and, with no ring, every) sealed value is masked.
        Raises `UnknownEventType` for an unregistered type name and `DecodeError` for
        bytes that are not this type's JSON; both name the stream, seq and position.
        """
        if self._generation != self.registry.generation:  # a class was (re)registered
            self._fast.clear()
            self._generation = self.registry.generation
        fast = self._fast.get(type_name)  # never for a class with personal fields
        if fast is not None and version == fast[0] and not sealed:
            try:
                return fast[1](data), version
            except Exception:
                pass  # the full path below reports it with its place
        spec = self.registry.get(type_name)
        if spec is None:
            raise UnknownEventType(type_name, stream_id=stream_id, seq=seq, position=position)
        try:
            return self._decode(spec, version, data, sealed)
        except Exception as e:
            reason = e.reason if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
            raise DecodeError(
                reason, type_name=type_name, stream_id=stream_id, seq=seq, position=position
            ) from e

    def _decode(
        self, spec: EventSpec, version: int, data: bytes, sealed: Mapping[str, str] | None
    ) -> tuple[Any, int]:
        """`decode`'s full path: parse, open, upcast, build (and remember the fast path)."""
        raw = _loads(data)
        plan = self.plan(spec.cls)
        if sealed is None and self.ring is not None:
            sealed = plan.sealed
        if sealed:
            raw = self._unseal(plan, raw, sealed, spec.name)
        if version != spec.version:
            if version > spec.version:
                raise DecodeError(
                    f"stored at version {version}, newer than the registered version "
                    f"{spec.version} (written by newer code?)"
                )
            raw = self.registry.upcast(spec.name, version, raw, spec.version)
        event = plan.from_json(raw)
        if version == spec.version and not plan.personal:
            self._fast[spec.name] = (version, _fast_decoder(plan))
        return event, spec.version

    def _unseal(
        self, plan: _Plan, raw: Any, sealed: Mapping[str, str], context: str
    ) -> dict[str, Any]:
        """Open the sealed values of `raw` (as the marker names them); mask those that do
        not open (no ring, or a forgotten subject)."""
        if not isinstance(raw, dict):
            raise DecodeError(f"expected a JSON object, got {short(raw)}")
        fields = self._marked(plan, sealed)
        if self.ring is not None:
            return unseal(self.ring, fields, raw, context)
        return {**raw, **{f.name: f.mask for f in fields if raw.get(f.name) is not None}}

    def _marked(self, plan: _Plan, sealed: Mapping[str, str]) -> tuple[PersonalField, ...]:
        """The personal fields a marker names, each masked as its class's field is."""
        items = tuple(sealed.items()) if isinstance(sealed, Mapping) else ((None, None),)
        if not all(isinstance(n, str) and isinstance(s, str) for n, s in items):
            raise DecodeError(f"its metadata 'pii' is not a marker: {short(sealed)}")
        fields = self._markers.get((plan.cls, items))
        if fields is None:
            masks = {f.name: f.mask for f in plan.personal}
            fields = tuple(PersonalField(n, s, masks.get(n, MASK)) for n, s in items)
            self._markers[plan.cls, items] = fields
        return fields

    def encode_value(self, value: Any, tp: Any) -> bytes:
        """JSON bytes of a value of a supported type `tp`; `EncodeError` if it does not fit."""
        try:
            return orjson.dumps(self._type(tp)[0](value))
        except Mismatch as m:
            raise m.error(f"a value of type {type_text(tp)}", "item") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise EncodeError(f"cannot encode a value of type {type_text(tp)}: {e}") from e

    def decode_value(self, data: bytes, tp: Any) -> Any:
        """The value of type `tp` stored by `encode_value`; `DecodeError` if it is not."""
        dec = self._type(tp)[1]
        try:
            raw = _loads(data)
            return dec(raw) if dec is not None and raw is not None else raw
        except Exception as e:
            raise DecodeError(f"{type_text(tp)}: {type(e).__name__}: {e}") from e

    def encode_state(
        self, values: Mapping[str, Any], hints: Mapping[str, Any], owner: str = ""
    ) -> bytes:
        """JSON bytes of named values (an object's attributes), each typed by `hints`.

        Unhinted values must be JSON values that read back as they are. Raises
        `EncodeError` naming `owner` ("projection Balances") and the attribute when one
        cannot be stored exactly, `RegistrationError` for an unsupported hint.
        """
        whose = f"the state of {owner}" if owner else "state"
        out = {}
        for name, value in values.items():
            try:
                out[name] = self._state_type(hints.get(name, Any), name, whose)[0](value)
            except Mismatch as m:
                raise m.within(name).error(whose, "attribute") from None
        try:
            return orjson.dumps(out)
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise EncodeError(f"cannot encode {whose}: {e}") from e

    def check_state(self, values: Mapping[str, Any], hints: Mapping[str, Any], owner: str) -> None:
        """Raise what `encode_state` would for these values (call it where a class is
        registered, on a fresh instance, so a bad attribute fails there and not at its
        first save)."""
        self.encode_state(values, hints, owner)

    def decode_state(self, data: bytes, hints: Mapping[str, Any]) -> dict[str, Any]:
        """The named values stored by `encode_state`; `DecodeError` if they cannot be read."""
        try:
            raw = _loads(data)
            out = {}
            for name, value in raw.items():
                dec = self._type(hints.get(name, Any))[1]
                out[name] = dec(value) if dec is not None and value is not None else value
            return out
        except Exception as e:
            raise DecodeError(f"state: {type(e).__name__}: {e}") from e

    # -- compiling ---------------------------------------------------------------------------

    def _type(self, tp: Any) -> tuple[Encode, Decode | None]:
        """The converters of a type hint, compiled once."""
        try:
            return self._types[tp]
        except KeyError:
            with self._lock:
                conv = self._types[tp] = converters(self._nested, tp)
            return conv
        except TypeError:  # an unhashable hint (Annotated with a dict, say)
            return converters(self._nested, tp)

    def _state_type(self, tp: Any, name: str, whose: str) -> tuple[Encode, Decode | None]:
        try:
            return self._type(tp)
        except RegistrationError as e:
            raise RegistrationError(f"{whose}: attribute {name!r}: {e}") from None

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
                    enc, dec = converters(self._nested, hints.get(f.name, Any))
                except RegistrationError as e:
                    raise RegistrationError(
                        f"field {f.name!r} of {qualified_name(cls)}: {e}"
                    ) from None
                fields.append((f.name, f.alias or f.name, enc, dec))
        finally:
            self._compiling.discard(cls)
        plain = all(dec is None and key == arg for key, arg, _, dec in fields)
        personal = personal_fields(cls)
        sealed = {f.name: f.subject for f in personal} or None
        plan = _Plan(cls, tuple(fields), plain, personal, sealed)
        self._plans[cls] = plan
        return plan

    def _nested(self, cls: type) -> tuple[Encode, Decode]:
        plans, expected = self._plans, cls.__qualname__
        if cls not in self._compiling:
            self.plan(cls)  # a recursive class finds its own plan when it is first used

        def encode(v: Any) -> Any:
            if type(v) is cls:
                return plans[cls].to_json(v)
            raise Mismatch(expected, v)

        return encode, (lambda v: plans[cls].from_json(v))


def _fast_decoder(plan: _Plan) -> Callable[[bytes], Any]:
    """bytes -> object for data at the current version, with no checks beyond Python's own."""
    cls, from_json = plan.cls, plan.from_json
    if plan.plain:
        return lambda data: cls(**_loads(data))
    return lambda data: from_json(_loads(data))
