"""`reactor journal ...`: look inside a journal (info, streams, show, tail); verify,
backup and restore are in `reactor.cli.backup`.

It reads stored records as they are (type, version and JSON data, personal fields masked),
so it needs none of the application's event classes.
"""

from __future__ import annotations

import argparse
from typing import Any

from reactor.cli import backup
from reactor.cli.common import Parents, count, on_store, print_events, print_table, when
from reactor.errors import ReactorError
from reactor.store import Storage
from reactor.store.base import stored_at


def add_commands(commands: Any, parents: Parents) -> None:
    journal = commands.add_parser("journal", help="look inside a journal")
    journal_commands = journal.add_subparsers(title="journal commands", required=True)
    store, shown = parents.store, parents.shown

    info = journal_commands.add_parser("info", parents=[store], help="counts and positions")
    info.set_defaults(run=on_store(_info))
    streams = journal_commands.add_parser("streams", parents=[store], help="every stream")
    streams.set_defaults(run=on_store(_streams))
    show = journal_commands.add_parser("show", parents=[store, shown], help="one stream's events")
    show.add_argument("stream")
    show.set_defaults(run=on_store(_show))
    tail = journal_commands.add_parser("tail", parents=[store, shown], help="events by position")
    tail.add_argument("--after", type=count, default=0, metavar="N", help="from position N + 1")
    tail.add_argument("--types", type=_names, metavar="T,...", help="only these type names")
    tail.add_argument("--limit", type=count, metavar="N", help="at most N events")
    tail.set_defaults(run=on_store(_tail))
    backup.add_commands(journal_commands, parents)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _info(storage: Storage, args: argparse.Namespace) -> None:
    streams = list(storage.streams())
    last = storage.last_position()
    newest = stored_at(storage, last) if last else None
    rows = [
        ("store", storage.url),
        ("events", str(last)),
        ("streams", str(len(streams))),
        ("last event", when(newest.timestamp) if newest else "-"),
    ]
    print_table(("", ""), rows, header=False)


def _streams(storage: Storage, args: argparse.Namespace) -> None:
    rows = [(s.stream_id, str(s.version), str(s.last_position)) for s in storage.streams()]
    print_table(("stream", "version", "last position"), rows)


def _show(storage: Storage, args: argparse.Namespace) -> None:
    events = list(storage.read_stream(args.stream))
    if not events:
        raise ReactorError(f"stream {args.stream!r} has no events in {storage.url}")
    print_events(events, args.full, with_stream=False)


def _tail(storage: Storage, args: argparse.Namespace) -> None:
    print_events(storage.read_all(args.after, args.types, args.limit), args.full)
