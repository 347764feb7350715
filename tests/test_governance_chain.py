"""The tamper-evident journal: `verify` names each kind of tampering done by raw SQL on a
copy of a journal (SQLite and PostgreSQL): a row edited (any column, or its hash), deleted
(first, middle, last), inserted (between, after the head), reordered, or the whole chain
rewritten; `reactor journal verify` exits 1 naming the row; forgetting breaks nothing; an
old SQLite journal is hashed by its upgrade."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor import TamperedError
from reactor.cli import main
from reactor.security.chain import GENESIS, chain_hashes, verify_storage
from reactor.store import Append, SQLiteStorage, Storage
from reactor.store.sqlite_schema import SCHEMA_VERSION
from reactor.testing.storage_events import rec
from tests.pg import drop, fresh_schema, needs_server, new_schema, url

# (stream, event ids) appended in turn: positions 1..7
APPENDS = [("A", ["a1", "a2"]), ("B", ["b1"]), ("A", ["a3"]), ("C", ["c1", "c2"]), ("B", ["b2"])]


def fill(storage: Storage) -> None:
    versions: dict[str, int] = {}
    for stream, ids in APPENDS:
        records = [rec(i, data=b'{"n": "%s"}' % i.encode()) for i in ids]
        storage.append_batch([Append(stream, records, versions.get(stream, 0))])
        versions[stream] = versions.get(stream, 0) + len(ids)


# name: (SQLite statements, PostgreSQL statements, what verify says, at which position)
TAMPERING: dict[str, tuple[list[str], list[str], str, int]] = {
    "data edited": (
        ["UPDATE events SET data = x'7b7d' WHERE position = 3"],
        ["UPDATE events SET data = '\\x7b7d' WHERE position = 3"],
        "edited",
        3,
    ),
    "time edited": (
        ["UPDATE events SET timestamp = timestamp + 1 WHERE position = 5"],
        ["UPDATE events SET timestamp = timestamp + 1 WHERE position = 5"],
        "edited",
        5,
    ),
    "moved to another stream": (
        [
            "UPDATE events SET stream = (SELECT id FROM streams WHERE name = 'C'), seq = 3 "
            "WHERE position = 7"
        ],
        ["UPDATE events SET stream = 'C', seq = 3 WHERE position = 7"],
        "edited",
        7,
    ),
    "hash edited": (
        ["UPDATE events SET hash = zeroblob(32) WHERE position = 2"],
        ["UPDATE events SET hash = decode(repeat('00', 32), 'hex') WHERE position = 2"],
        "edited",
        2,
    ),
    "first deleted": (
        ["DELETE FROM events WHERE position = 1"],
        ["DELETE FROM events WHERE position = 1"],
        "deleted",
        1,
    ),
    "middle deleted": (
        ["DELETE FROM events WHERE position = 4"],
        ["DELETE FROM events WHERE position = 4"],
        "deleted",
        4,
    ),
    "last deleted": (
        ["DELETE FROM events WHERE position = 7"],
        ["DELETE FROM events WHERE position = 7"],
        "deleted",
        7,
    ),
    "middle deleted, later ones moved down": (
        [
            "DELETE FROM events WHERE position = 4",
            *[f"UPDATE events SET position = position - 1 WHERE position = {p}" for p in (5, 6, 7)],
        ],
        [
            "DELETE FROM events WHERE position = 4",
            *[f"UPDATE events SET position = position - 1 WHERE position = {p}" for p in (5, 6, 7)],
        ],
        "deleted",
        4,
    ),
    "inserted after the head": (
        [
            "INSERT INTO events SELECT 8, stream, 9, 'forged', type, version, data, timestamp, "
            "metadata, correlation_id, causation_id, hash FROM events WHERE position = 7"
        ],
        [
            "INSERT INTO events SELECT 8, stream, 9, 'forged', type, version, data, timestamp, "
            "metadata, correlation_id, causation_id, hash FROM events WHERE position = 7"
        ],
        "inserted",
        8,
    ),
    "inserted between": (
        [
            *[f"UPDATE events SET position = position + 1 WHERE position = {p}" for p in (7, 6, 5)],
            "INSERT INTO events SELECT 5, stream, 9, 'forged', type, version, data, timestamp, "
            "metadata, correlation_id, causation_id, hash FROM events WHERE position = 4",
        ],
        [
            *[f"UPDATE events SET position = position + 1 WHERE position = {p}" for p in (7, 6, 5)],
            "INSERT INTO events SELECT 5, stream, 9, 'forged', type, version, data, timestamp, "
            "metadata, correlation_id, causation_id, hash FROM events WHERE position = 4",
        ],
        "inserted",
        5,
    ),
    "two rows swapped": (
        [
            "UPDATE events SET position = 100 WHERE position = 5",
            "UPDATE events SET position = 5 WHERE position = 6",
            "UPDATE events SET position = 6 WHERE position = 100",
        ],
        [
            "UPDATE events SET position = 100 WHERE position = 5",
            "UPDATE events SET position = 5 WHERE position = 6",
            "UPDATE events SET position = 6 WHERE position = 100",
        ],
        "reordered",
        5,
    ),
}


def rewrite_chain(storage: Storage, position: int) -> list[tuple[int, bytes]]:
    """(position, hash) of every row, hashes recomputed from `position` on as a forger who
    knows the algorithm would (but not the recorded head)."""
    rows = list(storage.read_chain())
    prev = rows[position - 2][1] if position > 1 else GENESIS
    events = [e for e, _ in rows[position - 1 :]]
    return [(e.position, h) for e, h in zip(events, chain_hashes(prev, events), strict=True)]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "j.db"
    storage = SQLiteStorage(path)
    fill(storage)
    assert verify_storage(storage) == 7
    storage.close()
    yield path


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_verify_names_each_kind_of_tampering_on_sqlite(journal: Path, case: str) -> None:
    statements, _, what, position = TAMPERING[case]
    copy = journal.with_name("copy.db")
    shutil.copy(journal, copy)
    with sqlite3.connect(copy) as db:
        for statement in statements:
            db.execute(statement)
    storage = SQLiteStorage(copy, create=False)
    with pytest.raises(TamperedError) as info:
        verify_storage(storage)
    storage.close()
    assert (info.value.what, info.value.position) == (what, position), str(info.value)
    original = SQLiteStorage(journal, create=False)
    assert verify_storage(original) == 7  # the copy was changed, not the journal
    original.close()


def test_a_consistently_rewritten_chain_is_caught_by_the_head(journal: Path) -> None:
    """Editing a row and recomputing every later hash holds together, but does not end
    in the head the store recorded."""
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE events SET data = x'7b7d' WHERE position = 3")
    storage = SQLiteStorage(journal, create=False)
    forged = rewrite_chain(storage, 3)
    storage.close()
    with sqlite3.connect(journal) as db:
        db.executemany("UPDATE events SET hash = ? WHERE position = ?", [(h, p) for p, h in forged])
    storage = SQLiteStorage(journal, create=False)
    with pytest.raises(TamperedError, match="does not end in the head hash") as info:
        verify_storage(storage)
    assert info.value.what == "edited"
    storage.close()


def test_reactor_journal_verify(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It prints the count and the head, or the first bad row with exit status 1."""
    store = f"sqlite:///{journal}"
    assert main(["journal", "verify", "--store", store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("7 events verified") and "head: position 7, hash " in out
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE events SET data = x'7b7d' WHERE position = 3")
    assert main(["journal", "verify", "--store", store]) == 1
    err = capsys.readouterr().err
    assert err.startswith("TAMPERED at position 3 (stream 'B', seq 1): edited")


def test_a_row_of_the_wrong_types_is_named_not_crashed_on(journal: Path) -> None:
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE events SET data = 'text', timestamp = 'noon' WHERE position = 6")
    storage = SQLiteStorage(journal, create=False)
    with pytest.raises(TamperedError) as info:
        verify_storage(storage)
    assert (info.value.what, info.value.position, info.value.stream_id) == ("edited", 6, "C")
    storage.close()


def test_an_old_journal_is_hashed_by_its_upgrade(journal: Path) -> None:
    """A journal of schema 2 (no hashes) gets each event's hash, the same as if it had been
    chained from the start, and its head, when a reactor of schema 3 opens it."""
    storage = SQLiteStorage(journal, create=False)
    chained = list(storage.read_chain())
    storage.close()
    with sqlite3.connect(journal) as db:  # back to schema 2, as an older reactor left it
        db.executescript(
            "ALTER TABLE events DROP COLUMN hash; DROP TABLE chain; DROP TABLE keys; "
            "DROP TABLE audit; UPDATE reactor_meta SET value = '2' WHERE key = 'schema_version';"
        )
    storage = SQLiteStorage(journal, create=False)
    assert list(storage.read_chain()) == chained
    assert storage.chain_head() == (7, chained[-1][1]) and verify_storage(storage) == 7
    storage.close()
    with sqlite3.connect(journal) as db:
        version = db.execute("SELECT value FROM reactor_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)


@pytest.fixture
def pg_journal() -> Iterator[str]:
    schema = new_schema()
    storage = _pg(schema)
    fill(storage)
    storage.close()
    yield schema
    drop(schema)


def _pg(schema: str) -> Storage:
    from reactor.store.postgres import PostgresStorage

    return PostgresStorage(url(schema))


@needs_server
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_verify_names_each_kind_of_tampering_on_postgres(pg_journal: str, case: str) -> None:
    import psycopg

    _, statements, what, position = TAMPERING[case]
    with psycopg.connect(url(pg_journal).replace(f"?schema={pg_journal}", "")) as conn:
        conn.execute(f"SET search_path TO {pg_journal}")
        for statement in statements:
            conn.execute(statement)
    storage = _pg(pg_journal)
    try:
        with pytest.raises(TamperedError) as info:
            verify_storage(storage)
        assert (info.value.what, info.value.position) == (what, position), str(info.value)
    finally:
        storage.close()


def test_forgetting_leaves_the_chain_whole(tmp_path: Path) -> None:
    from reactor import Runtime
    from tests.customers import KEY, Customer, Register, registry

    with Runtime(f"sqlite:///{tmp_path / 'f.db'}", registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        for n in range(5):
            rt.send(Register(f"c{n}", f"user{n}@example.com"))
        heads: list[Any] = [rt.store.storage.chain_head()]
        rt.forget("c2")
        heads.append(rt.store.storage.chain_head())
        assert rt.verify() == 5 and heads[0] == heads[1]


@needs_server
def test_postgres_chains_in_sql_and_in_python_alike() -> None:
    """Batches chained in SQL (no version check, or another process wrote last) and in
    Python (this process wrote last) make one chain: each stored hash is `event_hash` of
    its row on the one before, whatever the columns hold (text beyond ASCII, NULLs)."""
    from reactor.store import NewRecord

    for schema in fresh_schema():
        one, two = _pg(schema), _pg(schema)
        try:
            for n, (storage, expected) in enumerate([(one, 0), (one, None), (two, None)] * 3):
                meta = None if n % 2 else '{"pii": {"émail": "id"}}'.encode()
                records = [
                    NewRecord(f"e{n}-{k}", "t.Ünïcode", 2, b'{"k": %d}' % k, 1.7e9 + n, meta)
                    for k in range(3)
                ]
                corr = (None, "corr-é")[n % 2]
                records = [r._replace(correlation_id=corr) for r in records]
                version = storage.stream_version(f"S-ü{n % 4}") if expected is not None else None
                storage.append(f"S-ü{n % 4}", records, version)
            rows = list(one.read_chain())
            events = [e for e, _ in rows]
            assert [h for _, h in rows] == chain_hashes(GENESIS, events)
            assert verify_storage(two) == 27 and one.chain_head() == (27, rows[-1][1])
        finally:
            one.close()
            two.close()


def test_an_old_journal_opened_read_only_says_it_has_no_chain(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(journal) as db:
        db.executescript(
            "ALTER TABLE events DROP COLUMN hash; DROP TABLE chain; "
            "UPDATE reactor_meta SET value = '2' WHERE key = 'schema_version';"
        )
    assert main(["journal", "verify", "--store", f"sqlite:///{journal}"]) == 2
    assert "has no hash chain: a journal older than schema 3" in capsys.readouterr().err
