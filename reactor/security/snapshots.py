"""Aggregate state that holds personal data, sealed whole: a snapshot of an aggregate that
applied personal fields is encrypted under the key of every subject whose data it applied
(one layer per subject), so that forgetting any of them makes it unreadable; the runtime
then rebuilds the aggregate from its events, where that subject's fields read as masked.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from reactor.errors import DecodeError
from reactor.security.pii import PersonalField, field_aad

if TYPE_CHECKING:
    from reactor.security.crypto import KeyRing

SEALED = b'{"$sealed":'  # how a sealed state begins (no attribute name starts with $)


def subjects(fields: tuple[PersonalField, ...], obj: Any) -> tuple[str, ...]:
    """The subject ids of `obj`'s personal values that are set (its `fields`: those of its
    class), as text, as `seal` keys them."""
    return tuple(str(getattr(obj, f.subject)) for f in fields if getattr(obj, f.name) is not None)


def seal_state(ring: KeyRing, data: bytes, owners: Iterable[str], context: str) -> bytes:
    """`data` encrypted under the key of each of `owners`, in turn; `context` (the stream)
    is bound into each layer, so that a sealed state moved elsewhere does not open."""
    names = sorted(set(owners))
    aad = field_aad(context, "state")
    for subject in names:
        data = ring.encrypt(subject, data, aad)
    return orjson.dumps({"$sealed": names, "token": base64.b64encode(data).decode("ascii")})


def open_state(ring: KeyRing | None, data: bytes, context: str) -> tuple[bytes, tuple[str, ...]]:
    """The state `seal_state` sealed, and its owners; `data` as it is (and no owners) if it
    is not sealed. Raises `LookupError` if it cannot be opened: an owner was forgotten, or
    there is no ring; `DecodeError` if it is not what `seal_state` wrote."""
    if not data.startswith(SEALED):
        return data, ()
    try:
        found = orjson.loads(data)
        names = tuple(found["$sealed"])
        token = base64.b64decode(found["token"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise DecodeError(f"a sealed state of {context} is malformed: {e}") from e
    if ring is None:
        raise LookupError(f"the state of {context} is sealed, and there is no master key")
    aad = field_aad(context, "state")
    for subject in reversed(names):
        opened = ring.decrypt(subject, token, aad)
        if opened is None:
            raise LookupError(f"the state of {context} holds data of forgotten {subject!r}")
        token = opened
    return token, names
