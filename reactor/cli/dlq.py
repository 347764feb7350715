"""`reactor dlq ...`: list and show dead letters, order a redrive or a discard."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from reactor.cli.common import Parents, on_store, operator, print_events, print_table
from reactor.errors import ReactorError
from reactor.security.audit import ACCEPTED, entry
from reactor.store import DeadLetterRecord, Storage
from reactor.store.base import dead_letter_by_id, stored_at


def add_commands(commands: Any, parents: Parents) -> None:
    dlq = commands.add_parser("dlq", help="dead letters: events handlers gave up on")
    dlq_commands = dlq.add_subparsers(title="dlq commands", required=True)
    dlq_list = dlq_commands.add_parser("list", parents=[parents.store], help="every dead letter")
    dlq_list.add_argument("--handler", help="only this projection or subscriber")
    dlq_list.set_defaults(run=on_store(_list))
    for name, help_text in (
        ("show", "one dead letter, with its event and what waits behind it"),
        ("redrive", "order its handler to deliver it again, then what waits"),
        ("discard", "order its handler to drop it and deliver what waits"),
    ):
        shown = [parents.store, parents.shown] if name == "show" else [parents.store]
        sub = dlq_commands.add_parser(name, parents=shown, help=help_text)
        sub.add_argument("id")
        run = on_store(_show) if name == "show" else on_store(_order, readonly=False)
        sub.set_defaults(run=run, order=name)


def _list(storage: Storage, args: argparse.Namespace) -> None:
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
    print_table(headers, rows)


def _letter(storage: Storage, letter_id: str) -> DeadLetterRecord:
    letter = dead_letter_by_id(storage, letter_id)
    if letter is None:
        raise ReactorError(f"no dead letter {letter_id!r} in {storage.url}")
    return letter


def _show(storage: Storage, args: argparse.Namespace) -> None:
    d = _letter(storage, args.id)
    facts = [
        ("id", d.id),
        ("handler", d.handler),
        ("stream", d.stream_id),
        ("error", d.error),
        ("attempts", str(d.attempts)),
        ("order", d.request or "-"),
    ]
    print_table(("", ""), facts, header=False)
    print()
    wanted = {d.position, *d.parked}
    events = [e for e in map(partial(stored_at, storage), sorted(wanted)) if e is not None]
    print_events(events, args.full)


def _order(storage: Storage, args: argparse.Namespace) -> None:
    d = _letter(storage, args.id)
    storage.order_dead_letter(d.id, args.order)
    detail = f"dead letter {d.id}: ordered, carried out when its handler next runs"
    storage.append_audit([entry(operator(), args.order, d.handler, ACCEPTED, detail)])
    print(
        f"{args.order} ordered for dead letter {d.id} ({d.handler}, position {d.position}, "
        f"{len(d.parked)} waiting): {d.handler} carries it out when it next runs"
    )
