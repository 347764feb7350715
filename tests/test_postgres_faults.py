"""Faults of a PostgreSQL journal: connections killed by the server (idle, waiting for the
head, in the middle of a commit) and the server unreachable for a while. Calls after a
fault reconnect; an append in flight commits or fails with a clear error; nothing
acknowledged is lost, and a re-sent command is stored once."""

from __future__ import annotations

import selectors
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from reactor.errors import StorageError
from reactor.store import postgres
from reactor.store.base import Append, NewRecord
from reactor.store.postgres import PostgresStorage
from tests.pg import SERVER, fresh_schema, needs_server, until, url

pytestmark = needs_server


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema()


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[Any]]:
    """A connection of the test's own, to kill and block the storage's."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        yield conn


def rec(event_id: str) -> NewRecord:
    return NewRecord(event_id, "t.Happened", 1, b"{}", 1.7e9)


def pids(admin: psycopg.Connection[Any], app: str, waiting_on: str | None = None) -> list[int]:
    """The server processes of connections named `app` (waiting on a lock of this kind)."""
    sql = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting_on is not None:
        sql += " AND wait_event_type = 'Lock' AND wait_event = %s"
    params = [app] if waiting_on is None else [app, waiting_on]
    admin.execute("SELECT pg_stat_clear_snapshot()")  # a transaction keeps a stale view else
    return [pid for (pid,) in admin.execute(sql, params)]


def kill(admin: psycopg.Connection[Any], app: str, waiting_on: str | None = None) -> None:
    """Terminate the connections named `app` (waiting on that lock) and wait until gone."""
    doomed = until(lambda: pids(admin, app, waiting_on), f"connections of {app}")
    for pid in doomed:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    until(lambda: not set(doomed) & set(pids(admin, app)), "the killed connections to go")


def test_killed_idle_connections_are_replaced(schema: str, admin: psycopg.Connection[Any]) -> None:
    """Connections the server killed while idle are replaced before the next call uses them."""
    app = f"reactor-{uuid.uuid4().hex[:8]}"
    storage = PostgresStorage(url(schema, application_name=app))
    try:
        storage.append("A", [rec("a1")], 0)
        assert storage.wait_for_append(0, 1.0) == 1  # opens the listening connection too
        kill(admin, app)
        storage.append("A", [rec("a2")], 1)
        assert [e.event_id for e in storage.read_all()] == ["a1", "a2"]
        assert storage.wait_for_append(1, 1.0) == 2
    finally:
        storage.close()


def test_a_killed_listening_connection_is_opened_again(
    schema: str, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter whose listening connection was killed listens on a new one, and another
    process's append wakes it (polling only once a minute here)."""
    monkeypatch.setattr(postgres, "POLL", 60.0)
    app = f"reactor-{uuid.uuid4().hex[:8]}"
    storage, other = (
        PostgresStorage(url(schema, application_name=app)),
        PostgresStorage(url(schema)),
    )

    def listening() -> bool:
        admin.execute("SELECT pg_stat_clear_snapshot()")
        sql = "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'"
        return admin.execute(sql, [app]).fetchone() is not None

    def append_once_listening() -> None:
        until(listening, "a new LISTEN")
        other.append("A", [rec("a1")], 0)

    appender = threading.Thread(target=append_once_listening)
    try:
        assert storage.wait_for_append(0, 0.05) == 0  # listening
        kill(admin, app)
        appender.start()
        assert storage.wait_for_append(0, 50.0) == 1
    finally:
        appender.join(30)
        storage.close()
        other.close()


# Batches of two appends to one stream are decided under the head's lock (two round trips);
# others go in one statement (one round trip): each way has its faults.
ONE_STATEMENT = [Append("A", [rec("a1")], 0, command_id="cmd-1")]
DECIDED = [Append("A", [rec("a1")], 0, command_id="cmd-1"), Append("A", [rec("a2")], 1)]


def test_a_batch_killed_before_it_writes_is_run_again(
    schema: str, admin: psycopg.Connection[Any]
) -> None:
    """Killed while it waits for the head (held here) before it sent any write, a decided
    batch runs again on a new connection."""
    app = f"reactor-{uuid.uuid4().hex[:8]}"
    storage = PostgresStorage(url(schema, application_name=app))
    done: list[Any] = []
    try:
        with admin.transaction():
            admin.execute(f"SELECT position FROM {schema}.head FOR UPDATE")
            appender = threading.Thread(target=lambda: done.append(storage.append_batch(DECIDED)))
            appender.start()
            kill(admin, app, waiting_on="transactionid")
        appender.join(30)
        assert [[e.event_id for e in o.events] for o in done[0]] == [["a1"], ["a2"]]
        assert [e.position for e in storage.read_all()] == [1, 2]
    finally:
        storage.close()


@pytest.mark.parametrize("batch", [ONE_STATEMENT, DECIDED], ids=["one statement", "decided"])
def test_a_commit_cut_off_is_reported_and_resending_is_safe(
    schema: str, admin: psycopg.Connection[Any], batch: list[Append]
) -> None:
    """Killed after its writes were sent, the batch's outcome is unknown: it says so, and
    re-sending it under the same command id stores it once."""
    app = f"reactor-{uuid.uuid4().hex[:8]}"
    storage = PostgresStorage(url(schema, application_name=app))
    admin.execute(
        f"CREATE FUNCTION {schema}.hold() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$"
    )
    admin.execute(
        f"CREATE TRIGGER hold BEFORE INSERT ON {schema}.events "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.hold()"
    )
    errors: list[BaseException] = []

    def send() -> None:
        try:
            storage.append_batch(batch)
        except BaseException as e:
            errors.append(e)

    try:
        with admin.transaction():
            admin.execute("SELECT pg_advisory_xact_lock(4242)")
            sender = threading.Thread(target=send)
            sender.start()
            kill(admin, app, waiting_on="advisory")
            sender.join(30)
        assert len(errors) == 1 and isinstance(errors[0], StorageError)
        assert "may or may not be stored" in str(errors[0])
        assert "same command id is safe" in str(errors[0])
        admin.execute(f"DROP TRIGGER hold ON {schema}.events")
        first, again = storage.append_batch(batch[:1]), storage.append_batch(batch[:1])
        assert first[0].fresh and not again[0].fresh
        assert again[0].command == first[0].command
        assert [e.event_id for e in storage.read_all()] == ["a1"]
    finally:
        storage.close()


class Proxy:
    """A TCP forwarder to the server on a port of its own, that can be cut (every connection
    closed, new ones refused) and restored. One thread; `close()` stops it."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.server: socket.socket | None = None
        self.port = 0
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.restore()
        self.thread = threading.Thread(target=self._run, name="proxy")
        self.thread.start()

    def restore(self) -> None:
        with self.lock:
            self.server = socket.create_server(("127.0.0.1", self.port))
            self.port = self.server.getsockname()[1]
            self.server.setblocking(False)
            self.selector.register(self.server, selectors.EVENT_READ)

    def cut(self) -> None:
        with self.lock:
            assert self.server is not None
            for s in [self.server, *self.pairs]:
                self.selector.unregister(s)
                s.close()
            self.server = None
            self.pairs.clear()

    def close(self) -> None:
        self.stopping = True
        self.thread.join(10)
        if self.server is not None:
            self.cut()
        self.selector.close()

    def _run(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(0.05):
                with self.lock:
                    if key.fileobj not in self.pairs and key.fileobj is not self.server:
                        continue  # cut meanwhile
                    if key.fileobj is self.server:
                        self._accept()
                    else:
                        self._forward(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        assert self.server is not None
        client, _ = self.server.accept()
        upstream = socket.create_connection(("127.0.0.1", 5432))
        for a, b in ((client, upstream), (upstream, client)):
            self.pairs[a] = b
            self.selector.register(a, selectors.EVENT_READ)

    def _forward(self, source: socket.socket) -> None:
        target = self.pairs[source]
        data = source.recv(65536)
        if data:
            target.sendall(data)
            return
        for s in (source, target):
            self.selector.unregister(s)
            s.close()
            del self.pairs[s]


def test_the_server_out_of_reach_for_a_while(schema: str) -> None:
    """While the server cannot be reached, calls fail naming it; then they work again and
    nothing acknowledged is lost."""
    proxy = Proxy()
    storage = PostgresStorage(
        f"postgresql://127.0.0.1:{proxy.port}/test?schema={schema}&connect_timeout=1"
    )
    try:
        storage.append("A", [rec("a1")], 0)
        proxy.cut()
        with pytest.raises(StorageError, match=rf"port {proxy.port}, database test.*running"):
            storage.append("A", [rec("a2")], 1)
        proxy.restore()

        def append() -> bool:
            try:
                storage.append("A", [rec("a2")], 1)
            except StorageError:
                return False
            return True

        until(append, "the storage to reconnect")
        assert [e.event_id for e in storage.read_all()] == ["a1", "a2"]
    finally:
        storage.close()
        proxy.close()
