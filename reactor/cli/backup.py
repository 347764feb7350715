"""`reactor journal verify | backup | restore`: walk a journal's hash chain (exit status 1
naming the first bad row), copy a journal while runtimes write, restore a copy into an
empty store. Backups and restores go to the audit trail; long ones show a progress bar
(rich, the `cli` extra; plain lines on stderr without it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reactor.cli.common import Parents, on_store, operator
from reactor.security.audit import DONE, FAILED, entry
from reactor.security.chain import TamperedError, verify_storage
from reactor.store import Storage, open_storage
from reactor.store.backup import backup, restore


def add_commands(journal_commands: Any, parents: Parents) -> None:
    """Add verify, backup and restore to the `reactor journal` group."""
    verify = journal_commands.add_parser(
        "verify", parents=[parents.store], help="walk the hash chain (exit 1 if tampered with)"
    )
    verify.set_defaults(run=on_store(_verify))
    copy = journal_commands.add_parser(
        "backup", parents=[parents.store], help="copy the journal to a new file, while in use"
    )
    copy.add_argument("dest", metavar="DEST", help="the backup file to create")
    copy.set_defaults(run=on_store(_backup, readonly=False))
    back = journal_commands.add_parser(
        "restore", parents=[parents.store], help="restore a backup into an empty store"
    )
    back.add_argument("src", metavar="SRC", help="a backup file made by `reactor journal backup`")
    back.set_defaults(run=_restore)


def _verify(storage: Storage, args: argparse.Namespace) -> int:
    try:
        count = verify_storage(storage)
    except TamperedError as e:
        where = f"stream {e.stream_id!r}, seq {e.seq}" if e.stream_id else "no row there"
        print(f"TAMPERED at position {e.position} ({where}): {e.what}", file=sys.stderr)
        print(f"  {e}", file=sys.stderr)
        return 1
    position, hash_ = storage.chain_head()
    print(f"{count} events verified: the chain is intact")
    print(f"head: position {position}, hash {hash_.hex()}")
    return 0


def _backup(storage: Storage, args: argparse.Namespace) -> None:
    try:
        with progress_bar("backup") as shown:
            position = backup(storage, args.dest, shown)
    except BaseException as e:
        storage.append_audit([entry(operator(), "backup", args.dest, FAILED, type(e).__name__)])
        raise
    detail = f"up to position {position}"
    storage.append_audit([entry(operator(), "backup", args.dest, DONE, detail)])
    print(f"backed up {storage.url} {detail} to {args.dest}")


def _restore(args: argparse.Namespace) -> None:
    storage = open_storage(args.store)
    try:
        storage.claim(f"reactor journal restore {args.src}")
        with progress_bar("restore") as shown:
            count = restore(args.src, storage, shown)
        storage.append_audit([entry(operator(), "restore", args.src, DONE, f"{count} events")])
        print(f"restored {count} events from {args.src} into {storage.url}")
    finally:
        storage.close()


@contextmanager
def progress_bar(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback `(done, total)`: a rich bar on a terminal with rich installed,
    else a line on stderr at each tenth."""
    try:
        from rich.progress import Progress
    except ImportError:
        Progress = None  # type: ignore[assignment,misc]
    if Progress is None or not sys.stderr.isatty():
        yield _lines(what)
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _lines(what: str) -> Callable[[int, int], None]:
    shown = [-1]

    def show(done: int, total: int) -> None:
        tenth = 10 * done // total if total else 10
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"{what}: {done:,} of {total:,} ({10 * tenth}%)", file=sys.stderr)

    return show
