"""`EventStore`: a `Storage` with the codec on top, so events go in and Envelopes come out.

It encodes `NewEvent`s into records, decodes stored records (upcasting on the way), and
reports undecodable data with the stream, seq and position it sits at.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from reactor.codec import Codec, dumps, loads
from reactor.errors import DecodeError
from reactor.events import Envelope, NewEvent, new_id
from reactor.registry import Registry
from reactor.store.base import Append, NewRecord, Storage, StoredEvent, StreamInfo, stored_at


class EventStore:
    """Typed access to a journal. Thread-safe when its `Storage` is (every backend is)."""

    def __init__(self, storage: Storage, codec: Codec | None = None) -> None:
        self.storage = storage
        self.codec = codec if codec is not None else Codec()

    def __repr__(self) -> str:
        return f"EventStore({self.storage.url!r})"

    @property
    def registry(self) -> Registry:
        return self.codec.registry

    def record(self, new: NewEvent | object) -> NewRecord:
        """Encode an event (bare, or a `NewEvent` with ids and metadata) into a record."""
        if isinstance(new, NewEvent):
            return self.new_record(
                new.event, new.correlation_id, new.causation_id, new.metadata, new.event_id
            )
        return self.new_record(new)

    def new_record(
        self,
        event: object,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        event_id: str | None = None,
    ) -> NewRecord:
        """Encode one event with its ids into a record (a fresh event id unless given)."""
        type_name, version, data = self.codec.encode(event)
        return NewRecord(
            event_id or new_id(),
            type_name,
            version,
            data,
            time.time(),
            dumps(dict(metadata)) if metadata else None,
            correlation_id,
            causation_id,
        )

    def envelope(self, stored: StoredEvent, event: Any = None) -> Envelope:
        """Decode a stored record into an Envelope (`event`, when given, is used as is).

        The replay hot path: one tuple unpacking, positional calls only.
        """
        event_id, stream_id, seq, position, type_name, version, data, ts, meta, corr, cause = stored
        if event is None:
            event, version = self.codec.decode(type_name, version, data, stream_id, seq, position)
        if meta is None:
            metadata = {}
        else:
            try:
                metadata = loads(meta)
            except ValueError as e:
                raise DecodeError(
                    f"metadata is not JSON: {e}",
                    type_name=type_name,
                    stream_id=stream_id,
                    seq=seq,
                    position=position,
                ) from e
        return Envelope(
            event_id,
            stream_id,
            seq,
            position,
            type_name,
            version,
            event,
            datetime.fromtimestamp(ts, UTC),
            corr,
            cause,
            metadata,
        )

    def append(
        self, stream_id: str, events: Sequence[NewEvent | object], expected_version: int | None
    ) -> list[Envelope]:
        """Append events atomically at `expected_version` (None: no check).

        Raises `ConcurrencyError` on a stale version, `DuplicateEventId` when an event id is
        stored elsewhere; re-appending the same event ids at the same place returns the
        stored envelopes and writes nothing.
        """
        records = [self.record(e) for e in events]
        outcome = self.storage.append_batch([Append(stream_id, records, expected_version)])[0]
        stored = outcome.result()
        if not outcome.fresh:  # stored before: decode what is there
            return [self.envelope(s) for s in stored]
        objects = [e.event if isinstance(e, NewEvent) else e for e in events]
        return list(map(self.envelope, stored, objects))

    def at(self, position: int) -> Envelope | None:
        """The envelope at a global position, or None if there is none."""
        stored = stored_at(self.storage, position)
        return None if stored is None else self.envelope(stored)

    def read_stream(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[Envelope]:
        """The stream's envelopes in seq order, decoded lazily."""
        return map(self.envelope, self.storage.read_stream(stream_id, from_seq, to_seq))

    def read_all(
        self,
        after: int = 0,
        types: Collection[type | str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Envelope]:
        """Every envelope after `position` (of `types`: classes or names), in position order."""
        names = None if types is None else self.registry.type_names(types)
        return map(self.envelope, self.storage.read_all(after, names, limit))

    def last_position(self) -> int:
        return self.storage.last_position()

    def stream_version(self, stream_id: str) -> int:
        return self.storage.stream_version(stream_id)

    def streams(self) -> Iterator[StreamInfo]:
        return self.storage.streams()

    def close(self) -> None:
        self.storage.close()
