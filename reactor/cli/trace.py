"""`reactor trace ID`: the causal tree of the flow an event, command or correlation id
belongs to, read from the journal (a rich tree, or `--json`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reactor.catalog import build
from reactor.cli.common import Parents, app_here, on_store
from reactor.metrics import import_extra
from reactor.runtime.lineage import Consumers, TraceNode, label, trace
from reactor.store import EventStore, Storage


def add_commands(commands: Any, parents: Parents) -> None:
    shown = commands.add_parser(
        "trace",
        parents=[parents.store],
        help="the causal tree of an event, command or correlation id",
        description="Command -> its events -> the consumers they reached -> their commands "
        "..., with rejections and dead letters marked; the node asked for ends in <==.",
    )
    shown.add_argument("id", help="an event id, a command id or a correlation id")
    shown.add_argument("--json", action="store_true", help="print the tree as JSON")
    shown.add_argument(
        "--app",
        metavar="MODULE",
        help="the app's module: show every projection and saga an event reached, not only "
        "those that sent commands or hold dead letters",
    )
    shown.set_defaults(run=on_store(_trace))


def consumers_of_app(spec: str) -> Consumers:
    """What consumes each stored type in the application `spec`, from its catalog."""
    found: dict[str, list[tuple[str, str]]] = {}
    for entry in build(app_here(spec)):
        if entry.kind != "command":
            for who in entry.consumers:
                kind, _, label = who.partition(":")
                found.setdefault(entry.name, []).append((kind, label))
    return found


def _trace(storage: Storage, args: argparse.Namespace) -> None:
    consumers = None if args.app is None else consumers_of_app(args.app)
    tree = trace(EventStore(storage), args.id, consumers)
    if args.json:
        print(json.dumps(tree.to_json(), indent=2))
        return
    import_extra("rich", "cli", "the trace tree (or use --json)")
    from rich.console import Console
    from rich.tree import Tree

    def grow(parent: Tree, node: TraceNode) -> None:
        for child in node.children:
            grow(parent.add(_styled(child)), child)

    root = Tree(_styled(tree))
    grow(root, tree)
    console = Console()
    if not console.is_terminal:  # a pipe or a file: whole lines, not cut at 80 columns
        console = Console(width=10_000)
    console.print(root)


STYLES = {"rejected": "red", "failed": "red", "dead-lettered": "red"}


def _styled(node: TraceNode) -> Any:
    from rich.text import Text

    style = STYLES.get(node.outcome or "", "bold" if node.kind == "command" else "")
    if node.kind == "dead-letter":
        style = "red"
    return Text(label(node), style=style)
