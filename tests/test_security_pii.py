"""Personal fields: marking them, sealing an event's JSON form, masking forgotten ones."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.codec import Codec
from reactor.errors import DecodeError, EncodeError, RegistrationError
from reactor.events import event
from reactor.registry import Registry
from reactor.security.crypto import CryptoError, KeyRing, MemoryKeyStore
from reactor.security.pii import MASK, PersonalField, personal_fields, seal, unseal

registry = Registry()
KEY = bytes(range(1, 33))


@event("test.pii.Registered", registry=registry)
@attrs.frozen
class Registered:
    customer_id: str
    email: str = attrs.field(metadata={"pii": "customer_id"})
    phone: str | None = attrs.field(default=None, metadata={"pii": "customer_id"})
    birth_year: int | None = attrs.field(default=None, metadata={"pii": "customer_id"})
    tags: list[str] | None = attrs.field(default=None, metadata={"pii": "customer_id"})
    note: str = ""


@attrs.frozen
class ByUuid:
    owner: uuid.UUID
    name: str = attrs.field(metadata={"pii": "owner"})


@attrs.frozen
class ByNumber:
    owner: int
    name: str = attrs.field(metadata={"pii": "owner"})


FIELDS = personal_fields(Registered)
CODEC = Codec(registry)


def to_json(obj: Any) -> dict[str, Any]:
    return CODEC.plan(type(obj)).to_json(obj)


def from_json(cls: type, data: dict[str, Any]) -> Any:
    return CODEC.plan(cls).from_json(data)


def test_personal_fields_are_found_with_their_subject_and_mask() -> None:
    """Each marked field names its subject field; str fields mask as MASK, optional ones
    as None; unmarked fields and classes have none."""
    assert personal_fields(Registered) == (
        PersonalField("email", "customer_id", MASK),
        PersonalField("phone", "customer_id", MASK),
        PersonalField("birth_year", "customer_id", None),
        PersonalField("tags", "customer_id", None),
    )
    assert MASK == "<forgotten>"
    assert personal_fields(ByUuid) == (PersonalField("name", "owner", MASK),)
    assert personal_fields(int) == ()


def _class(**fields: Any) -> type:
    return attrs.make_class("Bad", fields, frozen=True)


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"id": attrs.field(type=str), "n": attrs.field(type=int, metadata={"pii": "id"})},
            "typed int",
        ),
        ({"n": attrs.field(type=str, metadata={"pii": "missing"})}, "must name another field"),
        ({"n": attrs.field(type=str, metadata={"pii": "n"})}, "must name another field"),
        (
            {
                "a": attrs.field(type=str, metadata={"pii": "b"}),
                "b": attrs.field(type=str, metadata={"pii": "a"}),
            },
            "not personal data itself",
        ),
        (
            {"id": attrs.field(type=str), "n": attrs.field(type=str, metadata={"pii": 3})},
            "must name another field",
        ),
    ],
)
def test_misdeclared_personal_fields_are_registration_errors(
    fields: dict[str, Any], text: str
) -> None:
    """A personal field that could not hold its mask, or whose subject field is missing,
    itself, or personal, is refused naming the field and the class."""
    with pytest.raises(RegistrationError, match=text) as info:
        personal_fields(_class(**fields))
    assert "of " in str(info.value) and "Bad" in str(info.value)


def test_sealed_json_holds_no_plaintext_and_unseals_back() -> None:
    """Sealing replaces each personal value by a token's text; unsealing restores the JSON
    form exactly, which builds the same event; None stays None."""
    ring = KeyRing(KEY, MemoryKeyStore())
    e = Registered("c1", "ann@example.com", birth_year=1990, tags=["vip"], note="hello")
    data = to_json(e)
    sealed = seal(ring, FIELDS, data, "test.pii.Registered")
    stored = orjson.dumps(sealed)
    assert b"ann@example.com" not in stored and b"1990" not in stored and b"vip" not in stored
    assert sealed["phone"] is None and sealed["note"] == "hello" and sealed["customer_id"] == "c1"
    assert unseal(ring, FIELDS, orjson.loads(stored), "test.pii.Registered") == data
    assert from_json(Registered, unseal(ring, FIELDS, sealed, "test.pii.Registered")) == e


def test_uuid_and_int_subjects_are_used_as_text() -> None:
    """A UUID or int subject field keys the data by its text."""
    ring = KeyRing(KEY, MemoryKeyStore())
    owner = uuid.uuid4()
    for obj in (ByUuid(owner, "ann"), ByNumber(7, "bob")):
        fields = personal_fields(type(obj))
        sealed = seal(ring, fields, to_json(obj), "t")
        ring.forget(str(obj.owner))
        assert from_json(type(obj), unseal(ring, fields, sealed, "t")).name == MASK


def test_forgotten_fields_read_as_their_mask_and_the_event_still_builds() -> None:
    """Once the subject is forgotten, str fields read MASK, optional ones None; the rest of
    the event is untouched."""
    ring = KeyRing(KEY, MemoryKeyStore())
    e = Registered("c1", "ann@example.com", "555", 1990, ["vip"], note="kept")
    sealed = seal(ring, FIELDS, to_json(e), "test.pii.Registered")
    ring.forget("c1")
    masked = from_json(Registered, unseal(ring, FIELDS, sealed, "test.pii.Registered"))
    assert masked == Registered("c1", MASK, MASK, None, None, note="kept")


def test_a_token_moved_to_another_field_or_event_type_is_refused() -> None:
    """A token copied into another personal field, or read under another event type, does
    not open."""
    ring = KeyRing(KEY, MemoryKeyStore())
    sealed = seal(ring, FIELDS, to_json(Registered("c1", "a@x", "555")), "test.pii.Registered")
    swapped = {**sealed, "phone": sealed["email"]}
    with pytest.raises(CryptoError, match="copied from another field"):
        unseal(ring, FIELDS, swapped, "test.pii.Registered")
    with pytest.raises(CryptoError):
        unseal(ring, FIELDS, sealed, "test.pii.Moved")


def test_missing_subjects_and_non_tokens_are_codec_errors() -> None:
    """A personal value without a subject id cannot be sealed (EncodeError); a stored
    value that is not a token's text cannot be read (DecodeError)."""
    ring = KeyRing(KEY, MemoryKeyStore())
    with pytest.raises(EncodeError, match="'customer_id', which holds None"):
        seal(ring, FIELDS, {"customer_id": None, "email": "a@x"}, "t")
    with pytest.raises(EncodeError, match="which holds ''"):
        seal(ring, FIELDS, {"customer_id": "", "email": "a@x"}, "t")
    with pytest.raises(DecodeError, match="holds no token"):
        unseal(ring, FIELDS, {"customer_id": "c1", "email": "ann@example.com"}, "t")
    with pytest.raises(DecodeError, match="holds no token"):
        unseal(ring, FIELDS, {"customer_id": "c1", "email": 42}, "t")


@given(
    st.lists(
        st.tuples(st.sampled_from(["c1", "c2", "c3", "c4"]), st.text(max_size=8), st.text()),
        min_size=1,
        max_size=20,
    ),
    st.sets(st.sampled_from(["c1", "c2", "c3", "c4"])),
)
def test_forgetting_any_subset_masks_exactly_those_subjects(
    events: list[tuple[str, str, str]], forgotten: set[str]
) -> None:
    """Forget a random subset of subjects: every event still builds, each forgotten
    subject's personal fields are masked, everything else reads as written, and reading
    twice gives the same result."""
    ring = KeyRing(KEY, MemoryKeyStore(), cache_size=2)
    originals = [Registered(c, email, phone=email, note=note) for c, email, note in events]
    stored = [orjson.dumps(seal(ring, FIELDS, to_json(e), "r")) for e in originals]
    for subject in forgotten:
        ring.forget(subject)

    def read() -> list[Registered]:
        return [from_json(Registered, unseal(ring, FIELDS, orjson.loads(s), "r")) for s in stored]

    first = read()
    assert read() == first
    for original, got in zip(originals, first, strict=True):
        if original.customer_id in forgotten:
            assert got == attrs.evolve(original, email=MASK, phone=MASK)
        else:
            assert got == original
