"""The journal's tamper-evident hash chain: each event's SHA-256 over the previous hash
and every stored column of the event, and `verify`, which walks a journal in position
order and names the first row edited, deleted, inserted or reordered (`TamperedError`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, NamedTuple

from reactor.errors import ReactorError
from reactor.store.base import GENESIS, Storage, StoredEvent

CHAIN_VERSION = 1  # hashed into every link: a new encoding gets a new number
What = Literal["edited", "deleted", "inserted", "reordered"]
Row = tuple[StoredEvent, bytes | None]  # an event and the hash stored with it

# The encoding hashed: a fixed header (chain version, previous hash, seq, position,
# version, timestamp, then the byte length of each variable field, NONE for a None),
# followed by those fields' bytes. Lengths first make it unambiguous: no field can
# borrow bytes from its neighbour, and None differs from "".
_HEADER = struct.Struct(">B32sqqqd7I")
_NONE = 0xFFFFFFFF
_sha256 = hashlib.sha256


class ChainHead(NamedTuple):
    """A point of the chain: a position and the hash stored there (0 and GENESIS: before
    the first event)."""

    position: int
    hash: bytes


START = ChainHead(0, GENESIS)


class TamperedError(ReactorError):
    """The journal's hash chain is broken: a row was edited, deleted, inserted or reordered.

    `position`, `stream_id` and `seq` name the first bad row (for "deleted": the missing
    position, and the stream and seq of the row found in its place, if any).
    """

    def __init__(self, what: What, position: int, stream_id: str, seq: int, detail: str) -> None:
        self.what, self.position, self.stream_id, self.seq = what, position, stream_id, seq
        where = f"stream {stream_id!r}, seq {seq}" if stream_id else "no row"
        super().__init__(
            f"journal tampered with at position {position} ({where}): {what}; {detail}"
        )


def event_hash(prev: bytes, event: StoredEvent) -> bytes:
    """SHA-256 of `event` (all its stored columns) chained to the previous event's hash.

    ~1 µs for a 200-byte event (perf/chain.py).
    """
    event_id, stream_id, seq, position, type_, version, data, timestamp, meta, corr, cause = event
    eid, sid, typ = event_id.encode(), stream_id.encode(), type_.encode()
    cid = b"" if corr is None else corr.encode()
    kid = b"" if cause is None else cause.encode()
    mb = b"" if meta is None else meta
    header = _HEADER.pack(
        CHAIN_VERSION,
        prev,
        seq,
        position,
        version,
        timestamp,
        len(eid),
        len(sid),
        len(typ),
        _NONE if corr is None else len(cid),
        _NONE if cause is None else len(kid),
        len(data),
        _NONE if meta is None else len(mb),
    )
    return _sha256(b"".join((header, eid, sid, typ, cid, kid, data, mb))).digest()


def hashable(event: StoredEvent) -> StoredEvent:
    """`event` with each column of the wrong type (a row edited by hand: text data, a seq
    that is not a number) turned into one `event_hash` takes, so that it hashes (to a value
    that differs from the original's) instead of raising."""
    eid, sid, seq, position, typ, version, data, ts, meta, corr, cause = event
    if (
        type(eid) is str
        and type(sid) is str
        and type(typ) is str
        and type(seq) is int
        and type(position) is int
        and type(version) is int
        and type(data) is bytes
        and type(ts) is float
        and (meta is None or type(meta) is bytes)
        and (corr is None or type(corr) is str)
        and (cause is None or type(cause) is str)
    ):
        return event
    return StoredEvent(
        _text(eid),
        _text(sid),
        _number(seq),
        _number(position),
        _text(typ),
        _number(version),
        _bytes(data),
        float(ts) if isinstance(ts, int | float) else float("nan"),
        None if meta is None else _bytes(meta),
        None if corr is None else _text(corr),
        None if cause is None else _text(cause),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _number(value: object) -> int:
    return value if type(value) is int and -(2**63) <= value < 2**63 else -1


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return (value if isinstance(value, str) else repr(value)).encode()


def chain_hashes(prev: bytes, events: Iterable[StoredEvent]) -> list[bytes]:
    """The hash of each event in turn, the first chained to `prev` (a batch's append)."""
    out = []
    for event in events:
        prev = event_hash(prev, event)
        out.append(prev)
    return out


def verify(rows: Iterable[Row], *, start: ChainHead = START, head: ChainHead | None = None) -> int:
    """Walk `(event, stored hash)` rows in position order; return how many were checked.

    `start` is where the rows begin (the default: position 1). `head`, if given, is the
    last position and hash the store recorded before the rows were read: rows after it
    are new appends and must chain on; a missing tail or a rewritten chain that no longer
    ends in `head.hash` is caught too (without it, a deleted last row is not).
    Raises `TamperedError` naming the first bad row. O(rows); reads the rows once.
    """
    it = iter(rows)
    last: tuple[StoredEvent, bytes] | None = None  # the last verified row, and its prev
    prev, expected, rewritten = start.hash, start.position + 1, None
    for event, stored in it:
        if event.position != expected or stored != event_hash(prev, event):
            raise _diagnose(event, stored, _Place(last, prev, expected, head), it)
        if head is not None and expected == head.position and stored != head.hash:
            rewritten = event  # unless a later row tells more (an insertion before it)
        last, prev, expected = (event, prev), stored, expected + 1
    if rewritten is not None:
        raise TamperedError(
            "edited",
            rewritten.position,
            rewritten.stream_id,
            rewritten.seq,
            "the chain holds together but does not end in the head hash the store "
            "recorded: rows at or before it were rewritten with recomputed hashes",
        )
    if head is not None and expected <= head.position:
        raise TamperedError(
            "deleted",
            expected,
            "",
            0,
            f"the journal ends at position {expected - 1}, but the store recorded events up "
            f"to position {head.position}",
        )
    return expected - 1 - start.position


def verify_storage(storage: Storage) -> int:
    """Walk a whole journal's chain up to the head it recorded (and what was appended while
    walking); the number of events checked, or `TamperedError` naming the first bad row."""
    head = ChainHead(*storage.chain_head())
    return verify(((hashable(e), h) for e, h in storage.read_chain()), head=head)


class _Place(NamedTuple):
    """Where the walk stands at the first bad row: the last verified row with the hash it
    chained onto (None before the first), the last verified hash, the position expected."""

    last: tuple[StoredEvent, bytes] | None
    prev: bytes
    expected: int
    head: ChainHead | None


def _at(event: StoredEvent, position: int) -> StoredEvent:
    return event._replace(position=position)


def _links(prev: bytes, event: StoredEvent, stored: bytes | None, position: int) -> bool:
    """Whether `event`, stored with hash `stored`, chains onto `prev` at `position`."""
    return stored == event_hash(prev, _at(event, position))


def _diagnose(
    event: StoredEvent, stored: bytes | None, place: _Place, rest: Iterator[Row]
) -> TamperedError:
    """Tell why the row `event` does not chain on, reading ahead in `rest` if needed."""
    x = place.expected

    def error(what: What, detail: str) -> TamperedError:
        return TamperedError(what, x, event.stream_id, event.seq, detail)

    if place.last is not None and _links(place.last[1], event, stored, x - 1):
        foreign = place.last[0]
        return TamperedError(
            "inserted",
            x - 1,
            foreign.stream_id,
            foreign.seq,
            f"its hash chains on, but the row after it belongs at position {x - 1}",
        )
    if place.head is not None and x > place.head.position:
        return error("inserted", f"a row after the recorded head (position {place.head.position})")
    if event.position > x:
        return error("deleted", f"the row found in its place is at position {event.position}")
    if event.position < x:
        return TamperedError(
            "inserted" if event.position == x - 1 else "reordered",
            event.position,
            event.stream_id,
            event.seq,
            f"position {event.position} comes again after position {x - 1}",
        )
    return _diagnose_in_place(event, stored, place, rest, error)


def _diagnose_in_place(
    event: StoredEvent,
    stored: bytes | None,
    place: _Place,
    rest: Iterator[Row],
    error: Callable[[What, str], TamperedError],
) -> TamperedError:
    """The row at the expected position does not chain on: look at what follows it."""
    x, prev = place.expected, place.prev
    nxt = next(rest, None)
    if nxt is None:
        if place.head is not None and x == place.head.position - 1 and stored == place.head.hash:
            return error("deleted", "a row was removed and the later ones moved down")
        return error("edited", "its columns or its stored hash changed")
    after, after_hash = nxt
    if (stored is not None and _links(stored, after, after_hash, x + 1)) or _links(
        event_hash(prev, event), after, after_hash, x + 1
    ):
        return error("edited", "its columns or its stored hash changed; the next row chains on")
    if _links(prev, after, after_hash, x):
        if after_hash is not None and _links(after_hash, event, stored, x + 1):
            return error("reordered", f"it belongs at position {x + 1}, its row at {x} follows")
        return error("inserted", f"the row that belongs at position {x} follows it, moved up")
    if stored is not None and _links(stored, after, after_hash, x + 2):
        return error("deleted", "a row was removed and the later ones moved down")
    for other, other_hash in rest:
        if _links(prev, other, other_hash, x):
            return error("reordered", f"the row that belongs here is at {other.position}")
    return error("edited", "its columns or its stored hash changed, and more rows after it")
