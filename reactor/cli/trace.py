"""`reactor trace ID`: the causal tree of the flow an event, command or correlation id
belongs to, read from the journal (a rich tree, or `--json`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reactor.cli.common import Parents, on_store
from reactor.metrics import import_extra
from reactor.runtime.lineage import TraceNode, label, trace
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
    shown.set_defaults(run=on_store(_trace))


def _trace(storage: Storage, args: argparse.Namespace) -> None:
    tree = trace(EventStore(storage), args.id)
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
