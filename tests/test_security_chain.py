"""The hash chain: the encoding hashed, and `verify` naming each kind of tampering."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.errors import ReactorError
from reactor.security.chain import (
    GENESIS,
    ChainHead,
    Row,
    TamperedError,
    chain_hashes,
    event_hash,
    verify,
)
from reactor.store.base import StoredEvent

NULLABLE_TEXT = st.none() | st.text(max_size=6)
NULLABLE_BYTES = st.none() | st.binary(max_size=20)
COUNTS = st.integers(1, 12)


@st.composite
def events(draw: st.DrawFn, count: st.SearchStrategy[int] = COUNTS) -> list:
    """Events at positions 1..n, seqs 1..k per stream, unique ids, any column values."""
    n = draw(count)
    seqs: dict[str, int] = {}
    out = []
    for position in range(1, n + 1):
        stream = draw(st.sampled_from(["A-1", "A-2", "B-1"]))
        seqs[stream] = seqs.get(stream, 0) + 1
        out.append(
            StoredEvent(
                event_id=f"e{position}-{draw(st.text(max_size=4))}",
                stream_id=stream,
                seq=seqs[stream],
                position=position,
                type=draw(st.sampled_from(["bank.Deposited", "bank.Opened", "é.Ü"])),
                version=draw(st.integers(1, 3)),
                data=draw(st.binary(max_size=40)),
                timestamp=draw(st.floats(0, 2e9)),
                metadata=draw(NULLABLE_BYTES),
                correlation_id=draw(NULLABLE_TEXT),
                causation_id=draw(NULLABLE_TEXT),
            )
        )
    return out


def chained(evs: list[StoredEvent]) -> list[Row]:
    return list(zip(evs, chain_hashes(GENESIS, evs), strict=True))


def head_of(rows: list[Row]) -> ChainHead:
    return ChainHead(rows[-1][0].position, rows[-1][1] or b"")


def renumbered(rows: list[Row], first: int = 1) -> list[Row]:
    """The rows at positions first, first + 1, ..., their stored hashes kept."""
    return [(e._replace(position=first + i), h) for i, (e, h) in enumerate(rows)]


def tampered(rows: list[Row], head: ChainHead | None = None) -> TamperedError:
    with pytest.raises(TamperedError) as info:
        verify(rows, head=head)
    return info.value


@given(events(), st.booleans())
def test_a_valid_chain_verifies(evs: list[StoredEvent], with_head: bool) -> None:
    """An untouched chain verifies and counts every row, with or without its head."""
    rows = chained(evs)
    assert verify(rows, head=head_of(rows) if with_head else None) == len(rows)
    assert verify([]) == 0


@given(events(st.integers(2, 12)), st.data())
def test_verify_can_start_from_a_known_link(evs: list[StoredEvent], data: st.DataObject) -> None:
    """Verifying from a known (position, hash) checks only the rows after it."""
    rows = chained(evs)
    k = data.draw(st.integers(1, len(rows) - 1))
    assert verify(rows[k:], start=ChainHead(k, rows[k - 1][1] or b"")) == len(rows) - k
    with pytest.raises(TamperedError):
        verify(rows[k:], start=ChainHead(k, bytes(32)))


@given(events(), st.data())
def test_rows_appended_after_the_head_was_read_are_accepted(
    evs: list[StoredEvent], data: st.DataObject
) -> None:
    """Rows beyond the recorded head (appended while verifying) must chain on, and do."""
    rows = chained(evs)
    k = data.draw(st.integers(1, len(rows)))
    assert verify(rows, head=head_of(rows[:k])) == len(rows)


def _edit_value(field: str, value: object) -> object:
    """A different value for one column."""
    if field in ("metadata", "correlation_id", "causation_id") and value is not None:
        return None
    return {
        "event_id": lambda v: v + "x",
        "stream_id": lambda v: v + "x",
        "type": lambda v: v + "x",
        "seq": lambda v: v + 1,
        "version": lambda v: v + 1,
        "timestamp": lambda v: v + 0.5,
        "data": lambda v: v + b"x",
        "metadata": lambda v: b"",
        "correlation_id": lambda v: "",
        "causation_id": lambda v: "",
    }[field](value)


EDITABLE = [f for f in StoredEvent._fields if f != "position"] + ["hash"]


@given(events(), st.data(), st.sampled_from(EDITABLE), st.booleans())
def test_an_edited_row_is_named(
    evs: list[StoredEvent], data: st.DataObject, field: str, with_head: bool
) -> None:
    """Changing any one column of one row, or its stored hash, is reported as that row
    edited (a None hash too)."""
    rows = chained(evs)
    head = head_of(rows) if with_head else None
    k = data.draw(st.integers(1, len(rows)))
    event, stored = rows[k - 1]
    if field == "hash":
        rows[k - 1] = (event, data.draw(st.sampled_from([None, os.urandom(32)])))
    else:
        new = _edit_value(field, getattr(event, field))
        rows[k - 1] = (event._replace(**{field: new}), stored)
    e = tampered(rows, head)
    edited = rows[k - 1][0]  # the error names the row as it is stored now
    assert (e.what, e.position, e.stream_id, e.seq) == ("edited", k, edited.stream_id, edited.seq)


@given(events(), st.data(), st.booleans())
def test_a_deleted_row_is_named(evs: list[StoredEvent], data: st.DataObject, moved: bool) -> None:
    """Deleting a row, leaving a gap or moving the later rows down, is reported as that
    position deleted (the last row's deletion needs the recorded head)."""
    rows = chained(evs)
    head = head_of(rows)
    k = data.draw(st.integers(1, len(rows)))
    rest = rows[k:]
    cut = rows[: k - 1] + (renumbered(rest, k) if moved else rest)
    e = tampered(cut, head)
    assert (e.what, e.position) == ("deleted", k)
    if rest:
        assert (e.stream_id, e.seq) == (rest[0][0].stream_id, rest[0][0].seq)
    if k < len(rows) - 1 or (k == len(rows) - 1 and not moved):
        headless = tampered(cut)  # no head needed
        assert (headless.what, headless.position) == ("deleted", k)


@given(events(), events(st.just(1)), st.data(), st.booleans())
def test_an_inserted_row_is_named(
    evs: list[StoredEvent], extra: list[StoredEvent], data: st.DataObject, chains: bool
) -> None:
    """A row inserted at any position (the later rows moved up), with a made-up hash or
    one chained onto its predecessor, is reported as inserted at its position."""
    rows = chained(evs)
    head = head_of(rows)
    k = data.draw(st.integers(1, len(rows) + 1 if not chains else len(rows)))
    prev = rows[k - 2][1] if k > 1 else GENESIS
    new = extra[0]._replace(position=k, event_id="new")
    forged = event_hash(prev or b"", new) if chains else os.urandom(32)
    changed = [*rows[: k - 1], (new, forged), *renumbered(rows[k - 1 :], k + 1)]
    e = tampered(changed, head)
    assert (e.what, e.position, e.stream_id, e.seq) == ("inserted", k, new.stream_id, new.seq)


@given(events(st.integers(2, 12)), st.data())
def test_swapped_rows_are_named(evs: list[StoredEvent], data: st.DataObject) -> None:
    """Two rows exchanging positions (each keeping its stored hash) are reported as the
    first of them reordered, adjacent or not."""
    rows = chained(evs)
    i = data.draw(st.integers(1, len(rows) - 1))
    j = data.draw(st.integers(i + 1, len(rows)))
    (a, ha), (b, hb) = rows[i - 1], rows[j - 1]
    rows[i - 1], rows[j - 1] = (b._replace(position=i), hb), (a._replace(position=j), ha)
    e = tampered(rows)
    assert (e.what, e.position, e.stream_id, e.seq) == ("reordered", i, b.stream_id, b.seq)


@given(events(st.integers(2, 12)), st.data())
def test_a_rewritten_chain_is_caught_by_the_head(
    evs: list[StoredEvent], data: st.DataObject
) -> None:
    """Editing a row and recomputing every later hash defeats the chain alone; the head
    hash the store recorded catches it."""
    rows = chained(evs)
    head = head_of(rows)
    k = data.draw(st.integers(1, len(rows)))
    evs[k - 1] = evs[k - 1]._replace(data=evs[k - 1].data + b"x")
    rewritten = chained(evs)
    assert verify(rewritten) == len(rows)
    e = tampered(rewritten, head)
    assert (e.what, e.position) == ("edited", len(rows))
    assert "recomputed" in str(e)


def test_a_repeated_or_backward_position_is_named() -> None:
    """Rows given out of position order: a repeated position is an insertion, a position
    going back further a reordering."""
    rows = chained(_three())
    again = tampered([rows[0], rows[0]])
    assert (again.what, again.position) == ("inserted", 1)
    assert tampered([rows[0], rows[1], rows[0]]).what == "reordered"


def _three() -> list[StoredEvent]:
    return [
        StoredEvent(f"e{p}", "S", p, p, "T", 1, b"{}", 0.0, None, None, None) for p in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e._replace(stream_id="ab", type="c"),
        lambda e: e._replace(correlation_id=""),
        lambda e: e._replace(metadata=b""),
        lambda e: e._replace(data=b"{}", metadata=None, causation_id="x"),
    ],
)
def test_the_encoding_is_unambiguous(change: Callable[[StoredEvent], StoredEvent]) -> None:
    """Bytes moved between neighbouring fields, or None turned into "", change the hash."""
    base = StoredEvent("e", "a", 1, 1, "bc", 1, b"{}x", 0.0, None, None, None)
    assert event_hash(GENESIS, change(base)) != event_hash(GENESIS, base)
    assert event_hash(GENESIS, base) == event_hash(GENESIS, base)
    assert event_hash(bytes(31) + b"\1", base) != event_hash(GENESIS, base)


def test_tampered_error_names_the_row() -> None:
    """The error is a ReactorError whose message names the position, stream and seq."""
    rows = chained(_three())
    rows[1] = (rows[1][0]._replace(data=b"[]"), rows[1][1])
    e = tampered(rows)
    assert isinstance(e, ReactorError)
    assert "position 2" in str(e) and "stream 'S', seq 2" in str(e) and "edited" in str(e)
    cut = rows[:1]
    gone = tampered(cut, ChainHead(3, b""))
    assert "ends at position 1" in str(gone) and gone.position == 2
