"""The `reactor` command: one sub-command group per module of this package.

Each module adds its commands with `add_commands(commands, parents)`; errors are one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import reactor
from reactor.cli import audit, catalog, cluster, demo, dlq, journal, projection, top, trace
from reactor.cli.common import Parents
from reactor.errors import ReactorError

GROUPS = (
    audit,
    catalog,
    cluster,
    demo,
    dlq,
    journal,
    projection,
    top,
    trace,
)  # each: add_commands(commands, parents)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reactor` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        status = args.run(args)
    except ReactorError as e:
        print(f"reactor: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    except BrokenPipeError:  # `reactor journal tail ... | head`
        sys.stderr.close()
        return 0
    return int(status or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reactor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reactor {reactor.__version__}")
    commands = parser.add_subparsers(title="commands")
    parents = Parents.make()
    for group in GROUPS:
        group.add_commands(commands, parents)
    return parser


if __name__ == "__main__":
    sys.exit(main())
