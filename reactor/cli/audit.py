"""`reactor audit`: the audit trail of a journal (who did what, when, and how it ended),
oldest first, of one principal and from a time if asked."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from typing import Any

from reactor.cli.common import Parents, count, on_store, print_table, when
from reactor.store import Storage


def add_commands(commands: Any, parents: Parents) -> None:
    audit = commands.add_parser(
        "audit", parents=[parents.store], help="the audit trail: who did what, when, outcome"
    )
    audit.add_argument("--principal", metavar="ID", help="only what this principal did")
    audit.add_argument(
        "--since",
        type=moment,
        metavar="T",
        help="from this time on: ISO 8601 (2024-05-01T12:00, UTC unless it says) or epoch seconds",
    )
    audit.add_argument("--limit", type=count, metavar="N", help="at most N entries")
    audit.set_defaults(run=on_store(_audit))


def moment(text: str) -> float:
    """An argparse type: a time as seconds since the epoch (ISO 8601, or a number)."""
    try:
        value = float(text)
    except ValueError:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a time such as 2024-05-01T12:00:00 or epoch seconds, got {text!r}"
            ) from None
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    return value


def _audit(storage: Storage, args: argparse.Namespace) -> None:
    rows = [
        (
            str(e.seq),
            when(e.timestamp),
            e.principal or "-",
            ",".join(e.roles) or "-",
            e.action,
            e.resource,
            e.outcome,
            e.detail,
        )
        for e in storage.audit(args.since, args.principal, args.limit)
    ]
    print_table(
        ("seq", "time", "principal", "roles", "action", "resource", "outcome", "detail"), rows
    )
