"""`reactor projection rebuild NAME --store URL --app MODULE`: replay a durable projection
from position 0 into fresh state (a runtime of its own runs only that projection), with a
progress bar showing events/s and time left; Ctrl-C keeps the progress, and the same
command goes on from there."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reactor.cli.common import Parents, app_here
from reactor.domain import Projection
from reactor.errors import ReactorError
from reactor.metrics import import_extra
from reactor.runtime import Runtime
from reactor.store import open_storage

Update = Callable[[int, int], None]


def add_commands(commands: Any, parents: Parents) -> None:
    group = commands.add_parser("projection", help="operate durable projections")
    verbs = group.add_subparsers(title="projection commands")
    rebuild = verbs.add_parser(
        "rebuild",
        parents=[parents.store],
        help="replay a durable projection from position 0 into fresh state, then swap",
        description=__doc__.split("\n\n")[0],
    )
    rebuild.add_argument("name", help="the projection's name (its class name or name=)")
    rebuild.add_argument("--app", required=True, metavar="MODULE", help="the app's module")
    rebuild.set_defaults(run=_rebuild)


def projection_named(app: str, name: str) -> type[Projection]:
    """The projection class called `name` in the application module `app`."""
    classes = [c for c in app_here(app).classes if issubclass(c, Projection)]
    found = [c for c in classes if name in (c.__reactor_name__, c.__name__)]
    if not found:
        known = ", ".join(sorted(c.__reactor_name__ for c in classes)) or "none"
        raise ReactorError(f"{app} has no projection named {name!r} (its projections: {known})")
    return found[0]


def _rebuild(args: argparse.Namespace) -> int:
    cls = projection_named(args.app, args.name)
    open_storage(args.store, create=False).close()  # an existing journal, or one line
    with Runtime(args.store) as rt, _bar(cls.__reactor_name__) as update:
        rt.register(cls)
        try:
            done = rt.rebuild(cls, progress=update)
        except KeyboardInterrupt:
            print(
                f"stopped: the progress is kept; run the same command to go on ({args.name})",
                file=sys.stderr,
            )
            return 130
    print(
        f"{done.projection}: rebuilt to position {done.position} ({done.events} events in "
        f"{done.seconds:.1f}s) and swapped in"
    )
    return 0


@contextmanager
def _bar(name: str) -> Iterator[Update]:
    """A rich progress bar (events/s, time left); lines on stderr without rich."""
    try:
        import_extra("rich", "cli", "the progress bar")
    except ReactorError:
        yield _lines(name)
        return
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:,.0f} events/s")

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}"))
    with Progress(*columns, Rate(), TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(f"rebuilding {name}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _lines(name: str) -> Update:
    last = [0.0]

    def update(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 1.0 or done >= total:
            last[0] = time.monotonic()
            print(f"rebuilding {name}: {done}/{total}", file=sys.stderr)

    return update
