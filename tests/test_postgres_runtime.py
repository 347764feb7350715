"""Runtimes in several processes on one PostgreSQL journal: each sees the others' events in
position order with no gap and no duplicate; concurrent writers lose no update and store a
command id once; a durable projection runs in one process at a time, fails over after
`kill -9` within its lease's bound and counts every event exactly once; a stale holder
cannot move its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest

from reactor import Envelope, Projection, ReactorError, Runtime, Saga, event, on
from tests.bank import Account, Deposit, Deposited, Open, Opened
from tests.helpers import wait_for
from tests.pg import SERVER, fresh_schema, needs_server, url
from tests.pg_node import Tally

pytestmark = needs_server


@pytest.fixture
def journal() -> Iterator[str]:
    for schema in fresh_schema():
        yield url(schema)


def node(journal: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pg_node", journal, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


class Seen(Projection):
    def __init__(self) -> None:
        self.positions: list[int] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self.positions.append(env.position)

    def all(self) -> list[int]:
        return list(self.positions)


def test_events_of_other_processes_arrive_in_order_once(journal: str) -> None:
    """Two writer processes and this one append; this process's projection and named
    subscriber see every position once, in order (catch-up and live alike)."""
    with Runtime(journal) as rt:
        rt.register(Account, Seen)
        got: list[int] = []
        rt.subscribe(lambda e, env: got.append(env.position), types=[Deposited], name="mine")
        writers = [node(journal, "writer", name, "40") for name in ("w1", "w2")]
        for _ in range(20):
            rt.send(Deposit("local", 1))
        for w in writers:
            assert w.wait(120) == 0
        head = rt.store.last_position()
        assert head == 2 * 40 * 2 - 40 + 20  # each writer: 40 own + its dup-i (stored once)
        assert rt.query(Seen, after=head, timeout=30).all() == list(range(1, head + 1))
        assert wait_for(lambda: len(got) == head, timeout=30)
        assert got == list(range(1, head + 1))


def test_concurrent_writers_lose_no_update_and_store_a_command_id_once(journal: str) -> None:
    writers = [node(journal, "writer", name, "30") for name in ("w1", "w2", "w3")]
    acks = [w.communicate(timeout=120)[0].split("\n") for w in writers]
    assert all(w.returncode == 0 for w in writers)
    assert sum(1 for lines in acks for line in lines if line.startswith("ack")) == 90
    with Runtime(journal) as rt:
        total = 0
        for account in ("shared-a", "shared-b", "shared-c"):
            events = rt.read_stream(f"Account-{account}")
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            total += sum(e.event.amount for e in events)
        assert total == 90  # every increment, none lost to a concurrent writer
        dup = rt.read_stream("Account-dup")
        assert sorted(e.causation_id for e in dup) == sorted(f"dup-{i}" for i in range(30))


def test_one_process_at_a_time_runs_a_durable_projection_and_fails_over(journal: str) -> None:
    """Tally runs in one of two processes; after `kill -9` of that one the other takes over
    within the lease's bound (1 s here), and Tally has counted every deposit exactly once."""
    a = node(journal, "consumer", "a")
    assert a.stdout is not None and a.stdout.readline().split() == ["a", "active"]
    b = node(journal, "consumer", "b")
    assert b.stdout is not None and b.stdout.readline().split() == ["b", "standby"]
    with Runtime(journal) as rt:
        rt.register(Account)
        for n in range(30):
            rt.send(Deposit(f"x{n % 4}", n + 1))
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
        killed = time.monotonic()
        assert b.stdout.readline().split() == ["b", "active"]
        took_over = time.monotonic() - killed
        assert took_over < 5.0, took_over  # lease_ttl 1 s, renewed every 1/3 s
        for n in range(30, 45):
            rt.send(Deposit(f"x{n % 4}", n + 1))
        assert b.stdin is not None
        b.stdin.close()  # b stops cleanly: it saves its checkpoint and releases the lease
        assert b.wait(30) == 0
    with Runtime(journal) as rt:
        rt.register(Account, Tally)
        assert rt.query(Tally, after=45, timeout=30).state() == (45, sum(range(1, 46)))


def test_a_stale_holder_cannot_move_its_checkpoint(journal: str) -> None:
    """A runtime whose lease keeper stalls (as a paused process would) keeps handling, but
    once another runtime took the lease its checkpoints are refused: only the new holder's
    are saved."""
    with Runtime(journal, lease_ttl=0.5) as one, Runtime(journal, lease_ttl=0.5) as two:
        one.register(Account, Tally)
        assert wait_for(lambda: "Tally" not in one.health().standby)
        two.register(Account, Tally)
        assert "Tally" in two.health().standby
        keeper = one._consumers.keeper
        assert keeper is not None
        keeper.halt()  # one stops renewing, and does not notice it lost the lease
        assert wait_for(lambda: "Tally" not in two.health().standby, timeout=10)
        for _ in range(12):
            one.send(Deposit("s", 1))
        assert two.query(Tally, after=12, timeout=30).state() == (12, 12)
        two_saved = two.store.load_checkpoint("projection:Tally")
        assert one.query(Tally, after=12, timeout=30).state() == (12, 12)  # it still handles
        one._consumers.stop([Tally.__reactor_type__(one.registry).kind], 10)  # its last save
        saved = two.store.load_checkpoint("projection:Tally")
        assert saved is not None and two_saved is not None
        assert saved.position == two_saved.position  # the stale holder moved nothing


@event("tpg.Reminded")
@attrs.frozen
class Reminded:
    account_id: str


class Welcome(Saga, key="account_id"):
    """Opens an account's welcome: a bonus deposit once a deadline falls due."""

    @on(Opened, start=True)
    def opened(self, e: Opened, ctx: Any) -> None:
        ctx.schedule(0.2, Reminded(e.account_id))

    @on(Reminded)
    def reminded(self, e: Reminded, ctx: Any) -> None:
        ctx.send(Deposit(e.account_id, 100))
        ctx.done()


def test_a_saga_in_two_processes_fires_its_deadline_once(journal: str) -> None:
    """The saga runs under a lease in one runtime at a time; its deadline fires once, and
    when the first runtime stops, the second takes over without firing it again."""
    with Runtime(journal, lease_ttl=0.5) as one, Runtime(journal, lease_ttl=0.5) as two:
        for rt in (one, two):
            rt.register(Account, Welcome)
        for n in range(5):
            one.send(Open(f"w{n}"))
        assert wait_for(
            lambda: all(len(one.read_stream(f"Account-w{n}")) == 2 for n in range(5)), timeout=30
        )
        one.stop()  # the lease goes to two, which resumes from one's checkpoint
        assert wait_for(lambda: "Welcome" not in two.health().standby, timeout=10)
        two.send(Open("late"))
        assert wait_for(lambda: len(two.read_stream("Account-late")) == 2, timeout=30)
        bonuses = [e for e in two.read_all(types=[Deposited]) if e.event.amount == 100]
        assert sorted(e.stream_id for e in bonuses) == sorted(
            ["Account-late", *(f"Account-w{n}" for n in range(5))]
        )


def test_killed_connections_lose_nothing_acknowledged(journal: str) -> None:
    """Connections are killed (`pg_terminate_backend`) while commands flow: each command
    is acknowledged or fails with a clear error; sent again with its id, each is stored
    exactly once."""

    def kill_all() -> None:
        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'reactor' AND pid <> pg_backend_pid()"
            )

    failed: list[str] = []
    with Runtime(journal) as rt:
        rt.register(Account)
        for n in range(60):
            if n % 15 == 7:
                kill_all()
            try:
                rt.send(Deposit(f"k{n % 3}", 1), command_id=f"cmd-{n}")
            except ReactorError as e:
                assert "PostgreSQL" in str(e) or "may or may not be stored" in str(e), e
                failed.append(f"cmd-{n}")
        for command_id in failed:  # sent again: stored once, whether it was or not
            n = int(command_id.split("-")[1])
            rt.send(Deposit(f"k{n % 3}", 1), command_id=command_id)
        stored = [e.causation_id for e in rt.read_all()]
        assert sorted(stored) == sorted(f"cmd-{n}" for n in range(60))
