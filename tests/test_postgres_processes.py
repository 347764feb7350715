"""Several OS processes on one PostgreSQL journal: positions are gapless in commit order, so
readers tailing `read_all(after=last seen)` in other processes see every committed event
once, in one order; `wait_for_append` wakes when another process appends."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.errors import ConcurrencyError
from reactor.store import postgres
from reactor.store.base import Append, NewRecord
from reactor.store.postgres import PostgresStorage
from tests.pg import SERVER, fresh_schema, needs_server, new_schema, until, url

pytestmark = needs_server
SPAWN = multiprocessing.get_context("spawn")
Seen = list[tuple[int, str]]  # (position, event id), in the order read


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema()


def rec(event_id: str) -> NewRecord:
    return NewRecord(event_id, "t.Happened", 1, b"{}", 1.7e9)


# -- the processes ---------------------------------------------------------------------------


def writer(journal: str, name: str, batches: list[int], pause: float, out: str) -> None:
    """Append batches of these sizes to streams of its own, pausing up to `pause` seconds
    between batches; write what was acknowledged to `out`."""
    rng = random.Random(name)
    storage = PostgresStorage(journal)
    acked: Seen = []
    for i, size in enumerate(batches):
        appends = [Append(f"{name}-{k % 2}", [rec(f"{name}-{i}-{k}")], None) for k in range(size)]
        for outcome in storage.append_batch(appends):
            acked += [(e.position, e.event_id) for e in outcome.result()]
        time.sleep(rng.random() * pause)
    storage.close()
    Path(out).write_text(json.dumps(acked))


def reader(journal: str, total: int, out: str) -> None:
    """Tail the journal with `read_all(after=last seen)` until `total` events were seen (or a
    minute passed), waiting for appends when there is nothing new; write what it saw."""
    storage = PostgresStorage(journal)
    seen: Seen = []
    deadline = time.monotonic() + 60
    while len(seen) < total and time.monotonic() < deadline:
        after = seen[-1][0] if seen else 0
        new = [(e.position, e.event_id) for e in storage.read_all(after)]
        if not new:
            storage.wait_for_append(after, 1.0)
        seen += new
    storage.close()
    Path(out).write_text(json.dumps(seen))


def appender(journal: str, app: str) -> None:
    """Append one event once a connection named `app` is listening (a waiter is set)."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'",
            [app],
        ).fetchone():
            assert time.monotonic() < deadline, "nobody listened"
            time.sleep(0.01)
    storage = PostgresStorage(journal)
    storage.append("other-process", [rec("x1")], 0)
    storage.close()


def pause_inserts(schema: str, pause: float) -> None:
    """Make every insert of events in `schema` sleep up to `pause` seconds first: inside its
    transaction, while the head is locked."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {schema}.pause() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep(random() * {pause}); RETURN NULL; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER pause BEFORE INSERT ON {schema}.events "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.pause()"
        )


def run(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def check_tails(committed: Seen, tails: Sequence[Seen]) -> None:
    """Every tail saw exactly the committed events, in one order, each once, at positions
    1..n with no gap."""
    committed = sorted(committed)
    assert [p for p, _ in committed] == list(range(1, len(committed) + 1))
    for seen in tails:
        assert seen == committed


# -- the order -------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[int]], int, float]:
    """Writers (each a list of batch sizes), a number of readers, and the longest pause."""
    batches = st.lists(st.integers(1, 8), min_size=1, max_size=6)
    writers = draw(st.lists(batches, min_size=1, max_size=3))
    return writers, draw(st.integers(1, 2)), draw(st.sampled_from([0.0, 0.002, 0.01]))


def order_property(tmp: Path, scenario: tuple[list[list[int]], int, float]) -> None:
    writers, readers, pause = scenario
    schema = new_schema()
    journal = url(schema)
    PostgresStorage(journal).close()  # created before the processes race
    pause_inserts(schema, pause)
    total = sum(map(sum, writers))
    try:
        run(
            [
                SPAWN.Process(target=reader, args=(journal, total, f"{tmp}/r{n}"))
                for n in range(readers)
            ]
            + [
                SPAWN.Process(target=writer, args=(journal, f"w{n}", b, pause, f"{tmp}/w{n}"))
                for n, b in enumerate(writers)
            ]
        )
        committed = [tuple(x) for n in range(len(writers)) for x in _load(f"{tmp}/w{n}")]
        tails = [[tuple(x) for x in _load(f"{tmp}/r{n}")] for n in range(readers)]
        check_tails(committed, tails)  # type: ignore[arg-type]
        storage = PostgresStorage(journal, create=False)
        final = [(e.position, e.event_id) for e in storage.read_all()]
        storage.close()
        check_tails(committed, [final])  # type: ignore[arg-type]
    finally:
        from tests.pg import drop

        drop(schema)


def _load(path: str) -> list[Any]:
    return json.loads(Path(path).read_text())  # type: ignore[no-any-return]


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenarios())
def test_readers_in_other_processes_miss_nothing(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[list[list[int]], int, float]
) -> None:
    """N writer processes, M tailing reader processes: every reader sees exactly the
    committed set, in one order, each once, positions 1..n."""
    order_property(tmp_path_factory.mktemp("order"), scenario)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenarios())
def test_readers_in_other_processes_miss_nothing_deep(
    tmp_path_factory: pytest.TempPathFactory, scenario: tuple[list[list[int]], int, float]
) -> None:
    """The same, with 30 scenarios (pytest -m slow)."""
    order_property(tmp_path_factory.mktemp("order"), scenario)


def test_the_check_catches_a_late_commit_skipped(schema: str) -> None:
    """The bug class the head lock rules out, played by hand: position 1 is taken before
    position 2 but committed after it, so a tailing reader skips it; `check_tails` fails."""
    storage = PostgresStorage(url(schema))
    insert = (
        f"INSERT INTO {schema}.events VALUES (%s, 'S', %s, %s, 't', 1, '', 0, NULL, NULL, NULL)"
    )
    take = f"UPDATE {schema}.head SET position = position + 1 RETURNING position"
    try:
        with (
            psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as slow,
            psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as fast,
        ):
            first = slow.execute(take).fetchone()[0]  # type: ignore[index]  # like a sequence
            with slow.transaction():
                slow.execute(insert, [first, first, "late"])
                second = fast.execute(take).fetchone()[0]  # type: ignore[index]
                fast.execute(insert, [second, second, "early"])
                seen = [(e.position, e.event_id) for e in storage.read_all(0)]
            seen += [(e.position, e.event_id) for e in storage.read_all(seen[-1][0])]
        assert seen == [(2, "early")]
        with pytest.raises(AssertionError):
            check_tails([(1, "late"), (2, "early")], [seen])
    finally:
        storage.close()


def test_a_later_append_waits_for_the_earlier_commit(schema: str) -> None:
    """While an append holds positions it has not committed (its insert is held here), the
    next append waits for the head: it cannot take a later position and commit first."""
    first = PostgresStorage(url(schema, application_name=f"first-{schema}"))
    second = PostgresStorage(url(schema, application_name=f"second-{schema}"))
    admin = psycopg.connect(f"postgresql://{SERVER}", autocommit=True)
    admin.execute(
        f"CREATE FUNCTION {schema}.hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.stream = 'A' THEN PERFORM pg_advisory_xact_lock(4243); END IF; RETURN NEW; "
        "END $$"
    )
    admin.execute(
        f"CREATE TRIGGER hold BEFORE INSERT ON {schema}.events "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.hold()"
    )

    def waiting(app: str, on: str) -> bool:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        return bool(
            admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event = %s",
                [app, on],
            ).fetchone()
        )

    threads = [
        threading.Thread(target=first.append, args=("A", [rec("a1")], 0)),
        threading.Thread(target=second.append, args=("B", [rec("b1")], 0)),
    ]
    try:
        with admin.transaction():
            admin.execute("SELECT pg_advisory_xact_lock(4243)")
            threads[0].start()
            until(lambda: waiting(f"first-{schema}", "advisory"), "the first append to hold")
            threads[1].start()
            until(lambda: waiting(f"second-{schema}", "transactionid"), "the second to wait")
            assert first.last_position() == 0  # nothing committed yet
        for t in threads:
            t.join(30)
        assert [(e.position, e.event_id) for e in first.read_all()] == [(1, "a1"), (2, "b1")]
    finally:
        admin.close()
        first.close()
        second.close()


def racer(journal: str, n: int, versions: int, out: str) -> None:
    """Race for each version of one stream with the expected version; write the wins."""
    storage = PostgresStorage(journal)
    wins, version = [], 0
    while version < versions:
        try:
            storage.append("Race", [rec(f"p{n}-v{version}")], version)
            wins.append(version)
        except ConcurrencyError:
            pass
        version = storage.stream_version("Race")
    storage.close()
    Path(out).write_text(json.dumps(wins))


def test_writer_processes_win_each_version_once(schema: str, tmp_path: Path) -> None:
    """Processes racing for each version of one stream: one wins each, no gap."""
    journal, versions = url(schema), 30
    PostgresStorage(journal).close()
    run(
        [
            SPAWN.Process(target=racer, args=(journal, n, versions, f"{tmp_path}/{n}"))
            for n in range(3)
        ]
    )
    wins = [v for n in range(3) for v in _load(f"{tmp_path}/{n}")]
    assert sorted(wins) == list(range(versions))
    storage = PostgresStorage(journal)
    assert [e.seq for e in storage.read_stream("Race")] == list(range(1, versions + 1))
    storage.close()


# -- waiting for appends ---------------------------------------------------------------------


def test_an_append_in_another_process_wakes_a_waiter(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by the other process's NOTIFY: with polling once a minute, the wait still ends
    as soon as the event is committed."""
    monkeypatch.setattr(postgres, "POLL", 60.0)
    app = f"waiter-{schema}"
    storage = PostgresStorage(url(schema, application_name=app))
    other = SPAWN.Process(target=appender, args=(url(schema), app))
    try:
        other.start()
        began = time.monotonic()
        assert storage.wait_for_append(0, 50.0) == 1
        assert time.monotonic() - began < 40  # not the poll: that would take a minute
        other.join(60)
        assert other.exitcode == 0
    finally:
        storage.close()


def test_a_waiter_polls_when_no_notification_comes(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event stored without a NOTIFY (a lost wake-up) is found by the polling."""
    monkeypatch.setattr(postgres, "POLL", 0.05)
    app = f"waiter-{schema}"
    storage = PostgresStorage(url(schema, application_name=app))

    def store_silently() -> None:
        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
                "AND query LIKE 'LISTEN%%'",
                [app],
            ).fetchone():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO {schema}.events VALUES "
                    "(1, 'S', 1, 'e1', 't', 1, '', 0, NULL, NULL, NULL)"
                )
                conn.execute(f"UPDATE {schema}.head SET position = 1")

    silent = threading.Thread(target=store_silently)
    try:
        silent.start()
        assert storage.wait_for_append(0, 30.0) == 1
    finally:
        silent.join(30)
        storage.close()


def test_a_wait_ends_at_its_timeout(schema: str) -> None:
    """With nothing appended, a wait returns the head at its timeout."""
    storage = PostgresStorage(url(schema))
    try:
        began = time.monotonic()
        assert storage.wait_for_append(0, 0.3) == 0
        assert 0.3 <= time.monotonic() - began < 10
    finally:
        storage.close()
