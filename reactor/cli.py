"""The `reactor` command: look inside a journal (`reactor journal ...`).

It reads stored records as they are (type, version and JSON data), so it needs none of the
application's event classes. Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import attrs

import reactor
from reactor.errors import ReactorError
from reactor.store import DeadLetterRecord, Storage, StoredEvent, open_storage
from reactor.store.base import dead_letter_by_id, stored_at

DATA_WIDTH = 60


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reactor` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except ReactorError as e:
        print(f"reactor: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `reactor journal tail ... | head`
        sys.stderr.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reactor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reactor {reactor.__version__}")
    commands = parser.add_subparsers(title="commands")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", required=True, metavar="URL", help="e.g. sqlite:///bank.db")
    shown = argparse.ArgumentParser(add_help=False)
    shown.add_argument("--full", action="store_true", help="print data uncut")

    demo = commands.add_parser("demo", help="run a demo: " + ", ".join(_demos()))
    demo.add_argument("name", choices=sorted(_demos()))
    demo.add_argument("args", nargs=argparse.REMAINDER, help="the demo's own options")
    demo.set_defaults(run=_demo)

    dlq = commands.add_parser("dlq", help="dead letters: events handlers gave up on")
    dlq_commands = dlq.add_subparsers(title="dlq commands", required=True)
    dlq_list = dlq_commands.add_parser("list", parents=[store], help="every dead letter")
    dlq_list.add_argument("--handler", help="only this projection or subscriber")
    dlq_list.set_defaults(run=_on_store(_dlq_list))
    for name, help_text in (
        ("show", "one dead letter, with its event and what waits behind it"),
        ("redrive", "order its handler to deliver it again, then what waits"),
        ("discard", "order its handler to drop it and deliver what waits"),
    ):
        parents = [store, shown] if name == "show" else [store]
        sub = dlq_commands.add_parser(name, parents=parents, help=help_text)
        sub.add_argument("id")
        sub.set_defaults(run=_on_store(_dlq_show if name == "show" else _dlq_order), order=name)

    journal = commands.add_parser("journal", help="look inside a journal")
    journal_commands = journal.add_subparsers(title="journal commands", required=True)

    info = journal_commands.add_parser("info", parents=[store], help="counts and positions")
    info.set_defaults(run=_on_store(_info))
    streams = journal_commands.add_parser("streams", parents=[store], help="every stream")
    streams.set_defaults(run=_on_store(_streams))
    show = journal_commands.add_parser("show", parents=[store, shown], help="one stream's events")
    show.add_argument("stream")
    show.set_defaults(run=_on_store(_show))
    tail = journal_commands.add_parser("tail", parents=[store, shown], help="events by position")
    tail.add_argument("--after", type=int, default=0, metavar="N", help="from position N + 1")
    tail.add_argument("--types", type=_names, metavar="T,...", help="only these type names")
    tail.add_argument("--limit", type=int, metavar="N", help="at most N events")
    tail.set_defaults(run=_on_store(_tail))
    return parser


def _demos() -> dict[str, Path]:
    """Demos by name (a script, or a package with a __main__): shipped in the wheel
    (reactor/_demos) or beside the package (demos/)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "_demos", here.parent / "demos"):
        if folder.is_dir():
            found = {p.stem: p for p in folder.glob("*.py") if not p.stem.startswith("_")}
            found.update({p.parent.name: p.parent for p in folder.glob("*/__main__.py")})
            return dict(sorted(found.items()))
    return {}


def _demo(args: argparse.Namespace) -> None:
    path = _demos()[args.name]
    sys.argv = [str(path), *args.args]
    if path.is_dir():  # a package: run it as a module, from the folder that holds demos
        package = "reactor._demos" if path.parent.name == "_demos" else "demos"
        if package == "demos":
            sys.path.insert(0, str(path.parent.parent))
        runpy.run_module(f"{package}.{path.name}", run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(str(path), run_name="__main__")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _on_store(
    command: Callable[[Storage, argparse.Namespace], None],
) -> Callable[[argparse.Namespace], None]:
    """`command` run on the journal `--store` names (which must exist), closed after."""

    def run(args: argparse.Namespace) -> None:
        storage = open_storage(args.store, create=False)
        try:
            command(storage, args)
        finally:
            storage.close()

    return run


def _info(storage: Storage, args: argparse.Namespace) -> None:
    streams = list(storage.streams())
    last = storage.last_position()
    newest = stored_at(storage, last) if last else None
    rows = [
        ("store", storage.url),
        ("events", str(last)),
        ("streams", str(len(streams))),
        ("last event", _time(newest.timestamp) if newest else "-"),
    ]
    _print_table(("", ""), rows, header=False)


def _streams(storage: Storage, args: argparse.Namespace) -> None:
    rows = [(s.stream_id, str(s.version), str(s.last_position)) for s in storage.streams()]
    _print_table(("stream", "version", "last position"), rows)


def _show(storage: Storage, args: argparse.Namespace) -> None:
    events = list(storage.read_stream(args.stream))
    if not events:
        raise ReactorError(f"stream {args.stream!r} has no events in {storage.url}")
    _print_events(events, args.full, with_stream=False)


def _tail(storage: Storage, args: argparse.Namespace) -> None:
    _print_events(storage.read_all(args.after, args.types, args.limit), args.full)


def _dlq_list(storage: Storage, args: argparse.Namespace) -> None:
    rows = [
        (
            d.id,
            d.handler,
            str(d.position),
            d.stream_id,
            str(d.attempts),
            str(len(d.parked)),
            d.request or "-",
            d.error,
        )
        for d in storage.dead_letters(args.handler)
    ]
    headers = ("id", "handler", "position", "stream", "attempts", "waiting", "order", "error")
    _print_table(headers, rows)


def _letter(storage: Storage, letter_id: str) -> DeadLetterRecord:
    letter = dead_letter_by_id(storage, letter_id)
    if letter is None:
        raise ReactorError(f"no dead letter {letter_id!r} in {storage.url}")
    return letter


def _dlq_show(storage: Storage, args: argparse.Namespace) -> None:
    d = _letter(storage, args.id)
    facts = [
        ("id", d.id),
        ("handler", d.handler),
        ("stream", d.stream_id),
        ("error", d.error),
        ("attempts", str(d.attempts)),
        ("order", d.request or "-"),
    ]
    _print_table(("", ""), facts, header=False)
    print()
    wanted = {d.position, *d.parked}
    events = [e for e in map(partial(stored_at, storage), sorted(wanted)) if e is not None]
    _print_events(events, args.full)


def _dlq_order(storage: Storage, args: argparse.Namespace) -> None:
    d = _letter(storage, args.id)
    storage.save_dead_letter(attrs.evolve(d, request=args.order))
    print(
        f"{args.order} ordered for dead letter {d.id} ({d.handler}, position {d.position}, "
        f"{len(d.parked)} waiting): {d.handler} carries it out when it next runs"
    )


def _print_events(events: Iterable[StoredEvent], full: bool, with_stream: bool = True) -> None:
    headers: tuple[str, ...] = ("position", "stream", "seq", "type", "version", "time", "data")
    rows: list[tuple[str, ...]] = [
        (
            str(e.position),
            e.stream_id,
            str(e.seq),
            e.type,
            str(e.version),
            _time(e.timestamp),
            _data(e.data, full),
        )
        for e in events
    ]
    if not with_stream:
        headers = ("seq", "position", "type", "version", "time", "data")
        rows = [(r[2], r[0], *r[3:]) for r in rows]
    _print_table(headers, rows)


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _data(data: bytes, full: bool) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if full or len(text) <= DATA_WIDTH else text[: DATA_WIDTH - 3] + "..."


def _print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], header: bool = True
) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
