"""Opening a PostgreSQL journal: its URL, its schema (created once, isolated, versioned),
a server that does not answer, psycopg missing, the CLI, and leases on the server's clock."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from reactor.cli import main
from reactor.errors import StorageError
from reactor.store import open_storage
from reactor.store.base import Checkpoint, NewRecord
from reactor.store.postgres import PostgresStorage
from reactor.store.postgres_schema import SCHEMA_VERSION
from reactor.store.postgres_target import Target
from tests.pg import SERVER, fresh_schema, needs_server, url


def rec(event_id: str) -> NewRecord:
    return NewRecord(event_id, "t.Happened", 1, b"{}", 1.7e9)


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema()


@pytest.fixture
def other() -> Iterator[str]:
    """A second fresh schema."""
    yield from fresh_schema()


# -- the URL (no server needed) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            "postgresql://h/db?schema=x&pool=3",
            "unknown option.s. pool: the options are schema, pool_size, connect_timeout, "
            "application_name, sslmode",
        ),
        ("postgresql://h/db?schema=Bank", "schema must be 1 to 63 lowercase letters"),
        ("postgresql://h/db?schema=pg_x", "nor with pg_"),
        ("postgresql://h/db?pool_size=0", "pool_size must be at least 1"),
        ("postgresql://h/db?pool_size=many", "bad PostgreSQL URL"),
        ("postgresql://h/db?connect_timeout=soon", "bad PostgreSQL URL"),
        ("postgresql://h:port/db", "bad PostgreSQL URL"),
        ("mysql://h/db", "not a PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_before_connecting(bad: str, message: str) -> None:
    """A bad option or value is a `StorageError` saying what is allowed, before any I/O."""
    with pytest.raises(StorageError, match=message):
        PostgresStorage(bad)


def test_the_url_shown_hides_the_password_and_names_the_schema() -> None:
    """`url` (printed by the CLI and in errors) never holds the password; libpq gets it."""
    target = Target.parse("postgres://ann:secret@db.example:6543/shop?pool_size=2")
    assert target.url == "postgresql://ann@db.example:6543/shop?schema=reactor"
    assert target.conninfo == "postgresql://ann:secret@db.example:6543/shop"
    assert (target.schema, target.pool_size, target.timeout) == ("reactor", 2, 5.0)
    assert target.where == "host db.example, port 6543, database shop"
    assert target.connect["options"].startswith("-c search_path=reactor ")


def test_libpq_options_pass_through() -> None:
    """`application_name` and `sslmode` go to libpq as given."""
    target = Target.parse("postgresql://h/db?application_name=shop&sslmode=require")
    assert (target.connect["application_name"], target.connect["sslmode"]) == ("shop", "require")


def test_importing_reactor_needs_no_psycopg() -> None:
    """Without psycopg, reactor imports; opening a PostgreSQL URL says how to install it."""
    code = (
        "import sys; sys.modules['psycopg'] = sys.modules['psycopg_pool'] = None\n"
        "import reactor, reactor.store\n"
        "try:\n"
        "    reactor.store.open_storage('postgresql://127.0.0.1/test')\n"
        "except reactor.StorageError as e:\n"
        "    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "pip install 'reactor-actors[postgres]'" in run.stdout


# -- opening a server -----------------------------------------------------------------------


def test_a_server_that_does_not_answer_is_named() -> None:
    """Nothing listening at open: the error names host, port and database, and the checks."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorageError) as info:
        PostgresStorage(f"postgresql://127.0.0.1:{port}/shop?schema=x")
    message = str(info.value)
    assert f"host 127.0.0.1, port {port}, database shop" in message
    assert "is PostgreSQL running? is the URL right?" in message


@needs_server
def test_both_schemes_open_the_same_journal(schema: str) -> None:
    """postgresql:// and postgres:// are one backend; the journal is shared."""
    first = open_storage(f"postgresql://{SERVER}?schema={schema}")
    first.append("A", [rec("a1")], 0)
    second = open_storage(f"postgres://{SERVER}?schema={schema}", create=False)
    try:
        assert [e.event_id for e in second.read_all()] == ["a1"]
        assert second.shared and repr(second) == f"PostgresStorage({first.url!r})"
    finally:
        first.close()
        second.close()


@needs_server
def test_two_schemas_never_see_each_other(schema: str, other: str) -> None:
    """Events, positions, checkpoints and wake-ups of one schema are not another's."""
    a, b = PostgresStorage(url(schema)), PostgresStorage(url(other))
    try:
        a.append("S", [rec("a1"), rec("a2")], 0)
        a.save_checkpoint(Checkpoint(name="p", position=2, state=b"x"))
        assert b.append("S", [rec("b1")], 0)[0].position == 1  # its own positions and streams
        assert [e.event_id for e in b.read_all()] == ["b1"] and b.load_checkpoint("p") is None
        assert b.wait_for_append(1, 0.2) == 1  # a's appends wake nobody here
        assert (a.last_position(), b.stream_version("S")) == (2, 1)
    finally:
        a.close()
        b.close()


@needs_server
def test_create_false_needs_a_journal(schema: str) -> None:
    """create=False refuses a missing or empty schema; create=True fills an empty one."""
    with pytest.raises(StorageError, match=f"no reactor journal in schema '{schema}'"):
        PostgresStorage(url(schema), create=False)
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    with pytest.raises(StorageError, match="an empty schema of that name"):
        PostgresStorage(url(schema), create=False)
    PostgresStorage(url(schema)).close()  # create=True fills an empty schema


@needs_server
def test_another_schema_version_is_refused_not_migrated(schema: str) -> None:
    """A journal of another schema version: an error naming both versions, nothing changed."""
    PostgresStorage(url(schema)).close()
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError) as info:
        PostgresStorage(url(schema))
    assert f"schema version 99, but this reactor uses version {SCHEMA_VERSION}" in str(info.value)
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        found = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
        assert found.fetchone() == ("99",)  # untouched


@needs_server
def test_a_foreign_schema_is_refused(schema: str) -> None:
    """A schema with tables but no reactor meta is refused, its tables named."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id int)")
    with pytest.raises(StorageError, match="is not a reactor journal .it has tables orders"):
        PostgresStorage(url(schema))


@needs_server
def test_processes_opening_a_new_schema_at_once_agree(schema: str) -> None:
    """Opened from several connections at the same moment, the schema is made once."""
    opened: list[PostgresStorage] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        start.wait()
        try:
            opened.append(PostgresStorage(url(schema)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors and len(opened) == 4
        opened[0].append("A", [rec("a1")], 0)
        assert all(s.last_position() == 1 for s in opened)
    finally:
        for s in opened:
            s.close()


@needs_server
def test_the_cli_reads_a_postgres_journal(schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`reactor journal info|streams --store postgresql://...` work."""
    storage = PostgresStorage(url(schema))
    storage.append("Account-1", [rec("a1"), rec("a2")], 0)
    storage.close()
    assert main(["journal", "info", "--store", url(schema)]) == 0
    out = capsys.readouterr().out
    assert url(schema) in out and "events" in out and "2" in out
    assert main(["journal", "streams", "--store", url(schema)]) == 0
    assert "Account-1" in capsys.readouterr().out


@needs_server
def test_leases_expire_by_the_servers_clock(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose clock is an hour off takes and keeps leases as the others do."""
    storage = PostgresStorage(url(schema))
    try:
        lease = storage.acquire_lease("L", "a", 30.0)
        assert lease is not None
        wall = time.time()
        monkeypatch.setattr(time, "time", lambda: wall + 3600.0)  # this node's clock is wrong
        assert storage.acquire_lease("L", "b", 30.0) is None  # still a's
        renewed = storage.acquire_lease("L", "a", 30.0)
        assert renewed is not None and renewed.epoch == lease.epoch
        assert abs(renewed.expires - (wall + 30.0)) < 60.0  # the server's clock, not ours
    finally:
        storage.close()
