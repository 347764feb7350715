"""What the `reactor` sub-commands share: the `--store` option, opening the journal for
one command, printing aligned tables of stored events (personal data masked: the CLI has
no key), and who the CLI is in the audit trail."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs
import orjson

from reactor.security.pii import MASK
from reactor.security.policy import Principal
from reactor.store import Storage, StoredEvent, open_storage

if TYPE_CHECKING:
    from reactor.catalog import App

DATA_WIDTH = 60
Command = Callable[[Storage, argparse.Namespace], int | None]  # the exit status (None: 0)


@attrs.frozen
class Parents:
    """Parent parsers the sub-commands combine: `store` (`--store URL`), `shown` (`--full`)."""

    store: argparse.ArgumentParser
    shown: argparse.ArgumentParser

    @classmethod
    def make(cls) -> Parents:
        store = argparse.ArgumentParser(add_help=False)
        store.add_argument("--store", required=True, metavar="URL", help="e.g. sqlite:///bank.db")
        shown = argparse.ArgumentParser(add_help=False)
        shown.add_argument("--full", action="store_true", help="print data uncut")
        return cls(store, shown)


def on_store(
    command: Command, *, readonly: bool = True
) -> Callable[[argparse.Namespace], int | None]:
    """`command` run on the journal `--store` names (which must exist), closed after;
    opened read-only unless the command writes (an order to a dead letter)."""

    def run(args: argparse.Namespace) -> int | None:
        storage = open_storage(args.store, create=False, readonly=readonly)
        try:
            return command(storage, args)
        finally:
            storage.close()

    return run


def app_here(spec: str) -> App:
    """The application module `spec` (see `reactor.catalog.load_app`), found as `python -m`
    finds modules: from the directory we stand in first."""
    from reactor.catalog import load_app

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return load_app(spec)


def operator() -> Principal:
    """Who the CLI acts as in the audit trail: the user of this process on this host."""
    return Principal(f"{getpass.getuser()}@{socket.gethostname()}", roles=["cli"])


def print_events(events: Iterable[StoredEvent], full: bool, with_stream: bool = True) -> None:
    headers: tuple[str, ...] = ("position", "stream", "seq", "type", "version", "time", "data")
    rows: list[tuple[str, ...]] = [
        (
            str(e.position),
            e.stream_id,
            str(e.seq),
            e.type,
            str(e.version),
            when(e.timestamp),
            _data(masked(e), full),
        )
        for e in events
    ]
    if not with_stream:
        headers = ("seq", "position", "type", "version", "time", "data")
        rows = [(r[2], r[0], *r[3:]) for r in rows]
    print_table(headers, rows)


def when(timestamp: float) -> str:
    """A stored timestamp as UTC text, to the millisecond (as stored, if it is not one)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except (TypeError, ValueError, OverflowError, OSError):
        return f"{timestamp!r:.30} (not a time)"


def masked(e: StoredEvent) -> bytes | str:
    """The event's data with each personal field its metadata names as sealed ("pii")
    shown as `MASK` (as it is if the row is not what reactor writes)."""
    try:
        sealed = orjson.loads(e.metadata).get("pii") if e.metadata else None
        if not sealed:
            return e.data
        data = orjson.loads(e.data)
        data.update((name, MASK) for name in sealed if data.get(name) is not None)
        return orjson.dumps(data)
    except (TypeError, ValueError, AttributeError):
        return e.data


def _data(data: bytes | str, full: bool) -> str:
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors="replace")
    return text if full or len(text) <= DATA_WIDTH else text[: DATA_WIDTH - 3] + "..."


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], header: bool = True) -> None:
    """Print aligned columns: a column of numbers to the right, any other to the left."""
    shown = [headers, *rows] if header else list(rows)
    columns = range(len(headers))
    widths = [max(len(r[i]) for r in shown) for i in columns]
    numeric = [bool(rows) and all(r[i].isdigit() for r in rows) for i in columns]
    for row in shown:
        cells = (
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        )
        print("  ".join(cells).rstrip())
