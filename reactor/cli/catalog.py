"""`reactor catalog`: the event and command types of an application, as a table (rich),
JSON or Markdown; `reactor catalog check` names the breaking changes since a saved one
(exit status 1 if there is one)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from reactor.catalog import App, Entry, build, check, from_json, load_app, to_json
from reactor.cli.common import Parents
from reactor.errors import ReactorError
from reactor.metrics import import_extra

APP_HELP = (
    "the application: a module (its Aggregate, Projection and Saga subclasses, with those "
    "of a package's submodules) or MODULE:NAME, a list of those classes in MODULE"
)


def add_commands(commands: Any, parents: Parents) -> None:
    app = argparse.ArgumentParser(add_help=False)  # on both levels, neither overriding
    app.add_argument("--app", metavar="MODULE[:NAME]", default=argparse.SUPPRESS, help=APP_HELP)
    app.add_argument(
        "--registry", metavar="NAME", default=argparse.SUPPRESS, help="a Registry in MODULE"
    )
    catalog = commands.add_parser(
        "catalog", parents=[app], help="every event and command type of an application"
    )
    shown = catalog.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON (to save for check)")
    shown.add_argument("--markdown", action="store_true", help="print a Markdown table")
    catalog.set_defaults(run=_show)
    checks = catalog.add_subparsers(title="catalog commands")
    against = checks.add_parser(
        "check", parents=[app], help="compare with a saved catalog: exit 1 on a breaking change"
    )
    against.add_argument("--against", required=True, metavar="FILE.json", help="a saved --json")
    against.set_defaults(run=_check)


def _app(args: argparse.Namespace) -> App:
    spec = getattr(args, "app", None)
    if spec is None:
        raise ReactorError("catalog needs --app MODULE: the module of the application's classes")
    if os.getcwd() not in sys.path:  # as `python -m` does: the app is found where we stand
        sys.path.insert(0, os.getcwd())
    return load_app(spec, getattr(args, "registry", None))


def _show(args: argparse.Namespace) -> None:
    app = _app(args)
    entries = build(app)
    if args.json:
        print(json.dumps(to_json(app.name, entries), indent=2))
    elif args.markdown:
        print(markdown(entries))
    else:
        import_extra("rich", "cli", "the catalog table (or use --json or --markdown)")
        from rich.console import Console
        from rich.table import Table

        events = sum(e.kind != "command" for e in entries)
        table = Table(
            title=f"{app.name}: {events} event types, {len(entries) - events} commands",
            show_lines=True,
        )
        for header in HEADERS:  # folded, not cut, when the terminal is narrow
            table.add_column(header, overflow="fold", justify="right" if header == "v" else "left")
        for entry in entries:
            table.add_row(*cells(entry, "\n"))
        Console().print(table)


def _check(args: argparse.Namespace) -> int:
    try:
        with open(args.against, encoding="utf-8") as f:
            saved = from_json(json.load(f))
    except (OSError, ValueError) as e:
        raise ReactorError(f"cannot read the saved catalog {args.against}: {e}") from e
    changes = check(saved, build(_app(args)))
    for change in changes:
        print(change)
    breaking = sum(c.breaking for c in changes)
    if breaking:
        print(f"{breaking} breaking change(s) since {args.against}")
        return 1
    print(f"no breaking change since {args.against} ({len(changes)} change(s))")
    return 0


HEADERS = ("type", "kind", "v", "fields", "upcasters", "producers", "consumers")


def cells(entry: Entry, sep: str) -> tuple[str, ...]:
    """An entry's cells under `HEADERS`, lists joined by `sep`."""
    fields = sep.join(
        f"{f.name}: {f.type}" + ("" if f.default is None else f" = {f.default}")
        for f in entry.fields
    )
    return (
        entry.name,
        entry.kind,
        str(entry.version),
        fields,
        "from " + ", ".join(map(str, entry.upcasters)) if entry.upcasters else "",
        sep.join(entry.producers),
        sep.join(entry.consumers),
    )


def markdown(entries: Iterable[Entry]) -> str:
    """The catalog as one Markdown table (pipes in types escaped, lists one per line)."""
    rows = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for entry in entries:
        row = (c.replace("|", "\\|") for c in cells(entry, "<br>"))
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)
