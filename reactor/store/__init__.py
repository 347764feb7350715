"""The journal's storage layer: the `Storage` protocol, its backends, and `EventStore`.

`open_store(url)` opens a journal by URL: `memory://` or `sqlite:///path.db`
(`?synchronous=NORMAL` and `?busy_timeout=SECONDS` are accepted for SQLite).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qsl

from reactor.codec import MAX_EVENT_BYTES, Codec
from reactor.errors import StorageError
from reactor.registry import Registry
from reactor.store.base import (
    Access,
    Append,
    AppendOutcome,
    Checkpoint,
    CommandNote,
    CommandRecord,
    DeadLetterRecord,
    NewRecord,
    Snapshot,
    Storage,
    StoredEvent,
    StreamInfo,
)
from reactor.store.event_store import EventStore
from reactor.store.memory import MemoryStorage
from reactor.store.postgres import open_postgres
from reactor.store.sqlite import SQLiteStorage

__all__ = [
    "Access",
    "Append",
    "AppendOutcome",
    "Checkpoint",
    "CommandNote",
    "CommandRecord",
    "DeadLetterRecord",
    "EventStore",
    "MemoryStorage",
    "NewRecord",
    "SQLiteStorage",
    "Snapshot",
    "Storage",
    "StoredEvent",
    "StreamInfo",
    "open_storage",
    "open_store",
    "register_backend",
]


Opener = Callable[[str, dict[str, str], Access], Storage]


def _open_memory(rest: str, options: dict[str, str], access: Access) -> Storage:
    if rest or options:
        raise StorageError(f"memory:// takes no path or options, got {rest!r} {options or ''}")
    return MemoryStorage()


def _open_sqlite(rest: str, options: dict[str, str], access: Access) -> Storage:
    if not rest.startswith("/") or rest == "/":
        raise StorageError(
            f"sqlite URL needs three slashes and a path: sqlite:///relative.db or "
            f"sqlite:////absolute.db, got sqlite://{rest}"
        )
    unknown = set(options) - {"synchronous", "busy_timeout"}
    if unknown:
        raise StorageError(
            f"unknown sqlite option(s) {sorted(unknown)}: use synchronous, busy_timeout"
        )
    try:
        timeout = float(options.get("busy_timeout", 10.0))
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout) or timeout < 0:
        raise StorageError(
            f"busy_timeout must be a finite number of seconds >= 0, got {options['busy_timeout']!r}"
        )
    return SQLiteStorage(
        rest[1:],
        synchronous=options.get("synchronous", "FULL"),
        create=access.create,
        busy_timeout=timeout,
        readonly=access.readonly,
    )


_BACKENDS: dict[str, Opener] = {"memory": _open_memory, "sqlite": _open_sqlite}
_BACKENDS.update(postgresql=open_postgres, postgres=open_postgres)  # psycopg: on first use


def register_backend(scheme: str, opener: Opener) -> None:
    """Let `open_storage` open `scheme://...` URLs with `opener(rest, options, access)`:
    `rest` is the URL after `scheme://` up to `?`, `options` its query, `access` an
    `Access` (may it create the journal, must it only read)."""
    _BACKENDS[scheme] = opener


def open_storage(url: str, *, create: bool = True, readonly: bool = False) -> Storage:
    """Open the `Storage` a URL names; `StorageError` for a bad URL or an unusable store.

    `readonly` opens it for reading only (the CLI's looks): nothing is created, upgraded
    or written, and it works on a journal in use or on a read-only file system.
    """
    scheme, sep, rest = url.partition("://")
    opener = _BACKENDS.get(scheme) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(_BACKENDS))
        raise StorageError(f"unknown store URL {url!r}: expected one of {known}")
    rest, _, query = rest.partition("?")
    access = Access(create=create and not readonly, readonly=readonly)
    return opener(rest, dict(parse_qsl(query, keep_blank_values=True)), access)


def open_store(
    url: str,
    *,
    registry: Registry | None = None,
    create: bool = True,
    max_event_bytes: int | None = MAX_EVENT_BYTES,
) -> EventStore:
    """Open a journal by URL as an `EventStore` decoding with `registry` (default: global),
    refusing events whose data is larger than `max_event_bytes`.

    Checks the registry first, so a gap in an upcaster chain or an unsupported field type
    is a `RegistrationError` now, not a `DecodeError` at some later read.
    """
    codec = Codec(registry, max_event_bytes=max_event_bytes)
    codec.registry.check()
    codec.check()
    return EventStore(open_storage(url, create=create), codec)
