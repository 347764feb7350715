"""Lineage: `rt.trace` and `reactor trace` over a saga flow with a rejection and a dead
letter; unknown ids; what plain commands keep (nothing); the journal schema upgrades that
add the lineage indexes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from reactor import (
    Aggregate,
    Envelope,
    Projection,
    Rejected,
    RetryPolicy,
    Runtime,
    Saga,
    command,
    event,
    handles,
    on,
)
from reactor.cli import main
from reactor.runtime.lineage import TraceNode, UnknownTraceId
from reactor.store import SQLiteStorage
from reactor.store.sqlite_schema import SCHEMA_VERSION
from tests.bank import Account, Deposit, Deposited, Open
from tests.helpers import wait_for
from tests.pg import needs_server


@event("tlin.TransferAsked")
@attrs.frozen
class TransferAsked:
    transfer_id: str
    source: str
    target: str
    amount: int


@command
@attrs.frozen
class AskTransfer:
    transfer_id: str
    source: str
    target: str
    amount: int


class Transfer(Aggregate, key="transfer_id"):
    @handles(AskTransfer)
    def ask(self, cmd: AskTransfer) -> Any:
        return TransferAsked(cmd.transfer_id, cmd.source, cmd.target, cmd.amount)


class Mover(Saga, key="transfer_id"):
    @on(TransferAsked, start=True)
    def _asked(self, e: TransferAsked, ctx: Any) -> None:
        from tests.bank import Withdraw

        ctx.send(Withdraw(e.source, e.amount))
        ctx.send(Deposit(e.target, e.amount))
        ctx.done()


class Fragile(Projection):
    retry = RetryPolicy(max_attempts=1)

    def __init__(self) -> None:
        self.seen = 0

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        if e.account_id == "bad":
            raise ValueError(f"cannot count account {e.account_id}")
        self.seen += 1


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A journal holding one transfer's flow: a rejected withdrawal and a deposit that a
    projection dead-letters; its URL and ids."""
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    with Runtime(url) as rt:
        rt.register(Account, Transfer, Mover, Fragile)
        rt.send(Open("a"))
        asked = rt.send(AskTransfer("t1", "a", "bad", 50), correlation_id="corr-t1")

        def settled() -> bool:
            kinds = [(n.kind, n.outcome) for n in rt.trace("corr-t1").walk()]
            rejected = ("command", "rejected") in kinds
            return rejected and any(kind == "dead-letter" for kind, _ in kinds)

        assert wait_for(settled)
        tree = rt.trace("corr-t1")
        yield {"url": url, "tree": tree, "rt": rt, "asked": asked}


def nodes(tree: TraceNode, kind: str) -> list[TraceNode]:
    return [n for n in tree.walk() if n.kind == kind]


def test_the_tree_of_a_saga_flow(journal: dict[str, Any]) -> None:
    """Command -> its event -> the saga -> its two commands (one rejected) -> the deposit's
    event -> the projection that dead-lettered it."""
    tree: TraceNode = journal["tree"]
    assert (tree.kind, tree.name, tree.outcome, tree.stream) == (
        "command",
        "AskTransfer",
        "accepted",
        "Transfer-t1",
    )
    (asked,) = tree.children
    assert (asked.kind, asked.name) == ("event", "tlin.TransferAsked")
    saga = next(c for c in asked.children if c.kind == "saga")
    assert saga.name == "Mover"
    by_name = {c.name: c for c in saga.children}
    assert set(by_name) == {"Withdraw", "Deposit"}
    withdraw, deposit = by_name["Withdraw"], by_name["Deposit"]
    assert (withdraw.outcome, withdraw.children) == ("rejected", ())
    assert withdraw.error is not None and "insufficient funds" in withdraw.error
    (deposited,) = deposit.children
    assert (deposited.name, deposited.stream) == ("tbank.Deposited", "Account-bad")
    fragile = next(c for c in deposited.children if c.name == "Fragile")
    assert (fragile.kind, fragile.outcome) == ("projection", "dead-lettered")
    (letter,) = fragile.children
    assert letter.kind == "dead-letter" and letter.position == deposited.position
    assert letter.error is not None and "cannot count account bad" in letter.error


def test_any_id_of_the_flow_gives_its_tree_with_that_node_in_focus(
    journal: dict[str, Any],
) -> None:
    """An event id, the caller's command id and a rejected saga command's id each give the
    whole flow; the node asked for (only it) has `focus`."""
    rt, tree = journal["rt"], journal["tree"]
    rejected = next(n for n in tree.walk() if n.outcome == "rejected")
    deposited = next(n for n in tree.walk() if n.name == "tbank.Deposited")
    for wanted in (rejected.id, deposited.id, tree.id):
        again = rt.trace(wanted)
        assert [n.id for n in again.walk()] == [n.id for n in tree.walk()]
        assert [n.id for n in again.walk() if n.focus] == [wanted]


def test_an_unknown_id_is_a_lookup_error_naming_it(journal: dict[str, Any]) -> None:
    """Nothing has the id: `UnknownTraceId`, a LookupError that names it."""
    with pytest.raises(LookupError, match="'no-such-id' is not an event id") as info:
        journal["rt"].trace("no-such-id")
    assert isinstance(info.value, UnknownTraceId) and info.value.id == "no-such-id"


def test_plain_commands_keep_no_lineage(tmp_path: Path) -> None:
    """A command sent without a chosen id or correlation adds nothing to its events'
    metadata and leaves no note when rejected (the hot path pays nothing)."""
    with Runtime("memory://") as rt:
        rt.register(Account)
        result = rt.send(Deposit("p", 5))
        assert result.events[0].metadata == {}
        with pytest.raises(Exception, match="amount must be positive"):
            rt.send(Deposit("p", -1))
        traced = rt.send(Deposit("p", 1), correlation_id="mine")
        assert traced.events[0].metadata == {"command": "Deposit"}
        assert rt.trace("mine").name == "Deposit"


def test_reactor_trace_prints_the_tree(journal: dict[str, Any], capsys: Any) -> None:
    """`reactor trace` prints one line per node, guides drawn, rejection and dead letter
    marked, whole lines (not cut at 80 columns)."""
    journal["rt"].stop()
    assert main(["trace", "corr-t1", "--store", journal["url"]]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("command  AskTransfer  -> Transfer-t1  [accepted]")
    assert any("└── event  tlin.TransferAsked" in line for line in lines)
    rejected = next(line for line in lines if "Withdraw" in line)
    assert "[rejected]" in rejected and "insufficient funds" in rejected
    assert any("dead-letter  Fragile" in line and "cannot count" in line for line in lines)


def test_reactor_trace_json(journal: dict[str, Any], capsys: Any) -> None:
    """`--json` prints the same tree as nested objects, the event id asked for in focus."""
    deposited = next(n for n in journal["tree"].walk() if n.name == "tbank.Deposited")
    journal["rt"].stop()
    assert main(["trace", deposited.id, "--store", journal["url"], "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree == journal["tree"].to_json() | {"children": tree["children"]}

    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node["children"]:
            yield from walk(child)

    assert [n["id"] for n in walk(tree) if n.get("focus")] == [deposited.id]
    assert {"tlin.TransferAsked", "tbank.Deposited", "Withdraw"} <= {n["name"] for n in walk(tree)}


def test_reactor_trace_of_an_unknown_id_is_one_line_exit_2(
    journal: dict[str, Any], capsys: Any
) -> None:
    """An id nothing has: one line on stderr naming it, exit status 2."""
    journal["rt"].stop()
    assert main(["trace", "nope", "--store", journal["url"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nope' is not an event id" in err


def test_a_version_3_sqlite_journal_gains_the_lineage_indexes(tmp_path: Path) -> None:
    """A journal of schema 3 (before lineage) reads as it is when opened read-only (no
    notes), and is upgraded at its next writable opening: the indexes and the notes table
    are there, and the lineage reads work on its old events."""
    path = tmp_path / "old.db"
    store = SQLiteStorage(path)
    from reactor.testing.storage_lineage import traced

    store.append("A", [traced("a1", "k", "c1")], 0)
    store.close()
    with sqlite3.connect(path) as db:
        db.executescript(
            "DROP INDEX events_by_correlation; DROP INDEX events_by_causation; "
            "DROP TABLE command_notes; "
            "UPDATE reactor_meta SET value = '3' WHERE key = 'schema_version';"
        )
    readonly = SQLiteStorage(path, readonly=True)  # (the CLI): as it is, with no notes
    assert [e.event_id for e in readonly.correlated("k")] == ["a1"]
    assert readonly.notes("k") == [] and readonly.find_note("x") is None
    readonly.close()
    store = SQLiteStorage(path)
    try:
        assert [e.event_id for e in store.correlated("k")] == ["a1"]
        assert store.notes("k") == []
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("SELECT value FROM reactor_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)
        plan = " ".join(
            str(r) for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM events WHERE correlation_id = 'k'"
            )
        )  # fmt: skip
    assert {"events_by_correlation", "events_by_causation", "command_notes"} <= names
    assert "events_by_correlation" in plan


@needs_server
def test_a_version_2_postgres_journal_is_upgraded_not_refused() -> None:
    """A PostgreSQL journal of schema 2 reads as it is when opened read-only, and a writable
    opening upgrades it to 3 (the indexes and the notes table), its events kept."""
    import psycopg

    from reactor.store import open_storage
    from reactor.store.postgres_schema import SCHEMA_VERSION as PG_VERSION
    from reactor.testing.storage_lineage import traced
    from tests.pg import SERVER, fresh_schema, url

    for schema in fresh_schema():
        store = open_storage(url(schema))
        store.append("A", [traced("a1", "k", "c1")], 0)
        store.close()
        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            conn.execute(
                f"SET search_path TO {schema}; DROP TABLE command_notes; "
                "DROP INDEX events_by_correlation; DROP INDEX events_by_causation; "
                "UPDATE meta SET value = '2' WHERE key = 'schema_version'"
            )
        readonly = open_storage(url(schema), create=False, readonly=True)
        assert [e.event_id for e in readonly.correlated("k")] == ["a1"]
        assert readonly.notes("k") == [] and readonly.find_note("x") is None
        readonly.close()
        store = open_storage(url(schema), create=False)
        try:
            assert [e.event_id for e in store.correlated("k")] == ["a1"]
            assert store.notes("k") == []
        finally:
            store.close()
        with psycopg.connect(f"postgresql://{SERVER}") as conn:
            found = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema]
            ).fetchall()
            version = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
            assert version.fetchone() == (str(PG_VERSION),) == ("3",)
        assert {"events_by_correlation", "events_by_causation"} <= {r[0] for r in found}


def test_commands_a_subscriber_sends_join_the_flow_under_it() -> None:
    """A subscriber function that sends commands with `rt.send` (one rejected): they appear
    under the subscriber, under the event it acted on, in that event's flow."""
    with Runtime("memory://") as rt:
        rt.register(Account, Transfer)

        def refund(e: TransferAsked, env: Envelope) -> None:
            rt.send(Deposit(e.source, e.amount))
            with pytest.raises(Rejected):
                rt.send(Deposit(e.source, 0))

        rt.subscribe(refund, types=[TransferAsked], name="refunds")
        rt.send(AskTransfer("t2", "s", "t", 5), correlation_id="corr-sub")

        def sent() -> list[TraceNode]:
            return [n for n in nodes(rt.trace("corr-sub"), "subscriber") if n.name == "refunds"]

        assert wait_for(lambda: sent() and len(sent()[0].children) == 2)
        (subscriber,) = sent()
        outcomes = sorted((c.name, c.outcome) for c in subscriber.children)
        assert outcomes == [("Deposit", "accepted"), ("Deposit", "rejected")]
        accepted = next(c for c in subscriber.children if c.outcome == "accepted")
        assert [e.name for e in accepted.children] == ["tbank.Deposited"]


def test_reactor_trace_with_the_app_shows_every_consumer(
    journal: dict[str, Any], capsys: Any
) -> None:
    """With `--app`, the consumers of each event come from the app's catalog (the
    projection that dead-lettered is a projection, the saga a saga); a module that does
    not import is one line, exit status 2."""
    journal["rt"].stop()
    args = ["trace", "corr-t1", "--store", journal["url"], "--app", "tests.test_lineage"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "projection  Fragile  [dead-lettered]" in out and "saga  Mover" in out
    assert main([*args[:-1], "tests.no_such_module"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot import app module 'tests.no_such_module'" in err
