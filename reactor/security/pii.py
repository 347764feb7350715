"""Personal-data fields of event classes: which field holds whose data
(`attrs.field(metadata={"pii": "customer_id"})`), sealing them in an event's JSON form
with a `KeyRing`, and the masked value a forgotten field reads as. No `cryptography` needed
to inspect classes; sealing takes a `KeyRing` (reactor.security.crypto).
"""

from __future__ import annotations

import base64
import struct
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from reactor.errors import DecodeError, EncodeError, RegistrationError
from reactor.registry import qualified_name

if TYPE_CHECKING:
    from reactor.security.crypto import KeyRing

PII = "pii"  # the attrs metadata key: {"pii": "<name of the field naming the subject>"}
MASK = "<forgotten>"  # what a forgotten str field reads as; other fields read as None
KEY_CHECK = ""  # the reserved subject id the master key check is stored under (by KeyRing)
_length = struct.Struct(">I").pack


@attrs.frozen
class PersonalField:
    """A field holding personal data: its name (also its JSON key), the name of the field
    whose value is the subject id, and the value it reads as once the subject is forgotten."""

    name: str
    subject: str
    mask: str | None


def personal_fields(cls: type) -> tuple[PersonalField, ...]:
    """The personal fields of an attrs class, in field order (none: an empty tuple).

    A personal field must be typed `str` (masked as `MASK`) or admit None (`X | None`,
    masked as None), so that a forgotten event still builds; its subject field must be
    another, non-personal field of the class. Raises `RegistrationError` naming the field.
    """
    if not attrs.has(cls):
        return ()
    fields = {f.name: f for f in attrs.fields(cls)}
    out = []
    for f in fields.values():
        subject = f.metadata.get(PII)
        if subject is None:
            continue
        where = f"field {f.name!r} of {qualified_name(cls)}"
        target = fields.get(subject) if isinstance(subject, str) else None
        if target is None or PII in target.metadata or not target.init:
            raise RegistrationError(
                f'{where}: metadata {{"pii": {subject!r}}} must name another field of the '
                "class that holds the subject id (and is not personal data itself)"
            )
        if not f.init:
            raise RegistrationError(f"{where}: a personal field must be an __init__ argument")
        out.append(PersonalField(f.name, subject, _mask(cls, f, where)))
    return tuple(out)


def _mask(cls: type, field: attrs.Attribute[Any], where: str) -> str | None:
    """MASK for a str field, None for one that admits None; else a RegistrationError."""
    try:
        tp = typing.get_type_hints(cls, include_extras=False).get(field.name, Any)
    except Exception as e:
        raise RegistrationError(f"{where}: cannot resolve its type hint: {e}") from e
    if tp is str:
        return MASK
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        tp
    ):
        return MASK if str in typing.get_args(tp) else None
    if tp in (Any, object):
        return MASK
    raise RegistrationError(
        f"{where} is personal data typed {getattr(tp, '__qualname__', tp)}: once its subject "
        "is forgotten it must still be a valid value, so type it str (it reads as "
        f"{MASK!r}) or make it optional (`X | None`, it reads as None)"
    )


def field_aad(context: str, field: str) -> bytes:
    """The associated data sealing a field: where it lives (the stored event type name, or
    a snapshot's) and the field's name, length-prefixed."""
    a, b = context.encode(), field.encode()
    return b"".join((_length(len(a)), a, _length(len(b)), b))


def seal(
    ring: KeyRing, fields: tuple[PersonalField, ...], data: Mapping[str, Any], context: str
) -> dict[str, Any]:
    """A copy of `data` (an object's JSON form) whose personal values are replaced by the
    base64 text of their tokens (None stays None). `EncodeError` if a subject id is missing.
    """
    out = dict(data)
    for f in fields:
        value = out.get(f.name)
        if value is not None:
            subject = _subject(out, f, context, EncodeError)
            token = ring.encrypt(subject, orjson.dumps(value), field_aad(context, f.name))
            out[f.name] = base64.b64encode(token).decode("ascii")
    return out


def unseal(
    ring: KeyRing, fields: tuple[PersonalField, ...], data: Mapping[str, Any], context: str
) -> dict[str, Any]:
    """The JSON form `seal` was given back, each forgotten subject's values masked.

    Raises `DecodeError` for a value that is not a token's text, and lets the `CryptoError`
    of a token that does not open (altered, moved) through.
    """
    out = dict(data)
    for f in fields:
        text = out.get(f.name)
        if text is None:
            continue
        subject = _subject(out, f, context, DecodeError)
        try:
            token = base64.b64decode(text, validate=True)
        except (TypeError, ValueError) as e:  # binascii.Error is a ValueError
            raise DecodeError(f"personal field {f.name!r} of {context} holds no token: {e}") from e
        plain = ring.decrypt(subject, token, field_aad(context, f.name))
        out[f.name] = f.mask if plain is None else orjson.loads(plain)
    return out


def _subject(
    data: Mapping[str, Any], f: PersonalField, context: str, error: type[Exception]
) -> str:
    """The subject id of field `f`: the JSON value of its subject field, as text."""
    value = data.get(f.subject)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise error(
        f"personal field {f.name!r} of {context} belongs to the subject named by field "
        f"{f.subject!r}, which holds {value!r}: it must be a non-empty str, an int or a UUID"
    )
