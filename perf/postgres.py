"""The PostgreSQL journal on the local server (127.0.0.1:5432, database test), each figure
next to its baseline measured in the same run: appends one and 256 per batch against raw
psycopg inserting the same rows and the eventsourcing library's PostgreSQL recorder; a
batch stored at once (one statement) against the decided way (two round trips); the hash
chain on against a constant link; the wake-up of a waiter by another process's append;
1, 2 and 4 writer processes; then the runtime on PostgreSQL (perf/postgres_runtime.py).

    python -m perf postgres [--quick]
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from perf.report import row
from reactor.events import new_id
from reactor.store import postgres_batch, postgres_writes
from reactor.store.base import Append, NewRecord
from reactor.store.postgres import PostgresStorage

SERVER = "127.0.0.1:5432/test"
DATA = b'{"account_id": "a1", "amount": 5, "currency": "EUR"}'
STREAMS = 1000
INSERT = (
    "INSERT INTO events (event_id, stream, seq, position, type, version, data, timestamp, "
    "metadata, correlation_id, causation_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
SPAWN = multiprocessing.get_context("spawn")


@contextmanager
def schema() -> Iterator[str]:
    """The name of a fresh schema, dropped after."""
    name = f"perf_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def url(name: str) -> str:
    return f"postgresql://{SERVER}?schema={name}"


class Ours:
    """`PostgresStorage.append_batch`: one event per append, streams round-robin, each at
    its expected version."""

    def __init__(self, name: str) -> None:
        self.storage = PostgresStorage(url(name))
        self.versions = [0] * STREAMS
        self.n = 0

    def batch(self, size: int) -> None:
        appends = []
        for _ in range(size):
            s = self.n % STREAMS
            self.n += 1
            record = NewRecord(new_id(), "bench.Deposited", 1, DATA, time.time())
            appends.append(Append(f"Account-{s}", [record], self.versions[s]))
            self.versions[s] += 1
        for outcome in self.storage.append_batch(appends):
            outcome.result()


class Raw:
    """The floor: psycopg inserting the same rows in the same table, no checks, no head:
    one row per commit (autocommit), or `executemany` in one transaction."""

    def __init__(self, name: str) -> None:
        PostgresStorage(url(name)).close()  # the same tables
        self.conn = psycopg.connect(
            f"postgresql://{SERVER}", autocommit=True, options=f"-c search_path={name}"
        )
        self.seqs = [0] * STREAMS
        self.n = 0

    def batch(self, size: int) -> None:
        rows = []
        for _ in range(size):
            s = self.n % STREAMS
            self.n += 1
            self.seqs[s] += 1
            record = NewRecord(new_id(), "bench.Deposited", 1, DATA, time.time())
            rows.append((record[0], f"Account-{s}", self.seqs[s], self.n, *record[1:]))
        if size == 1:
            self.conn.execute(INSERT, rows[0])
        else:
            with self.conn.transaction():
                self.conn.cursor().executemany(INSERT, rows)


class Recorder:
    """The eventsourcing library's PostgreSQL application recorder (`insert_events`): one
    stored event per aggregate version, aggregates round-robin."""

    def __init__(self, name: str) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        store = PostgresDatastore("test", "127.0.0.1", 5432, "postgres", "", schema=name)
        self.recorder = PostgresApplicationRecorder(store)
        self.recorder.create_table()
        self.ids = [uuid.uuid4() for _ in range(STREAMS)]
        self.versions = [0] * STREAMS
        self.n = 0

    def batch(self, size: int) -> None:
        from eventsourcing.persistence import StoredEvent

        events = []
        for _ in range(size):
            s = self.n % STREAMS
            self.n += 1
            self.versions[s] += 1
            events.append(StoredEvent(self.ids[s], self.versions[s], "bench.Deposited", DATA))
        self.recorder.insert_events(events)


def best(writers: dict[str, Callable[[int], None]], size: int, count: int) -> dict[str, float]:
    """Events per second of each writer doing `count` batches of `size`: the best of three
    rounds, the writers taking turns so that the load of the machine hits them alike."""
    rates: dict[str, float] = {}
    for _ in range(3):
        for name, batch in writers.items():
            start = time.perf_counter()
            for _ in range(count):
                batch(size)
            rates[name] = max(rates.get(name, 0.0), size * count / (time.perf_counter() - start))
    return rates


@contextmanager
def arrays() -> Iterator[None]:
    """Every parameter of the write statement sent as an array, even of one element."""
    postgres_writes.Writes.singles = False
    try:
        yield
    finally:
        postgres_writes.Writes.singles = True


@contextmanager
def decided() -> Iterator[None]:
    """Every batch decided under the head's lock (two round trips), none stored at once."""
    at_once = postgres_batch.at_once
    postgres_batch.at_once = lambda appends, head: None  # type: ignore[assignment]
    try:
        yield
    finally:
        postgres_batch.at_once = at_once


def appends(quick: bool) -> None:
    print("\n1. appends: one event each, 1,000 streams round-robin, synchronous_commit on")
    with schema() as a, schema() as b, schema() as c, schema() as d, schema() as e, schema() as f:
        ours, raw, es, slow, bare = Ours(a), Raw(b), Recorder(c), Ours(d), Ours(e)
        listed = Ours(f)
        bare.storage._head.link = lambda prev, event: prev  # the chain's hashing taken out

        def decided_batch(size: int) -> None:
            with decided():
                slow.batch(size)

        def arrays_batch(size: int) -> None:
            with arrays():
                listed.batch(size)

        writers = {
            "ours": ours.batch,
            "raw": raw.batch,
            "es": es.batch,
            "slow": decided_batch,
            "bare": bare.batch,
            "arrays": arrays_batch,
        }
        for size, count in ((1, 300 if quick else 1500), (256, 8 if quick else 40)):
            r = best(writers, size, count)
            what = f"append_batch of {size}"
            floor = "raw psycopg, 1 row/commit" if size == 1 else "raw executemany, 256/commit"
            row(what, r["ours"], r["raw"], floor, "events/s")
            row(what, r["ours"], r["es"], "eventsourcing recorder", "events/s")
            row(f"{what}, decided (2 round trips)", r["slow"], r["ours"], "at once (1)", "events/s")
            row(f"{what}, hash chain on", r["ours"], r["bare"], "chain off", "events/s")
            if size == 1:
                row(f"{what}, its values as such", r["ours"], r["arrays"], "as arrays", "events/s")
        for w in (ours, slow, bare, listed):
            w.storage.close()
        raw.conn.close()


def ping(journal: str, rounds: int) -> None:
    """Append a ping holding the time it was sent, then wait for the pong; `rounds` times."""
    storage = PostgresStorage(journal)
    for _ in range(rounds):
        sent = time.time()
        (e,) = storage.append(
            "ping", [NewRecord(new_id(), "t", 1, repr(sent).encode(), sent)], None
        )
        storage.wait_for_append(e.position, 30)
    storage.close()


def raw_ping(rounds: int) -> None:
    """The same over raw NOTIFYs: a ping holding the time, then LISTEN for the pong."""
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute("LISTEN perf_pong")
        for _ in range(rounds):
            conn.execute("SELECT pg_notify('perf_ping', %s)", [repr(time.time())])
            next(conn.notifies(timeout=30, stop_after=1))


def wakeups(quick: bool) -> None:
    rounds = 100 if quick else 500
    with schema() as name:
        storage = PostgresStorage(url(name))
        storage.wait_for_append(0, 0.01)  # listening before the other process starts
        other = SPAWN.Process(target=ping, args=(url(name), rounds))
        other.start()
        ours, last = [], 0
        for _ in range(rounds):
            last = storage.wait_for_append(last, 30)
            woke = time.time()
            (e,) = storage.read_all(last - 1)
            ours.append(woke - float(e.data))
            last = storage.append("pong", [NewRecord(new_id(), "t", 1, b"{}", woke)], None)[
                0
            ].position
        other.join(60)
        storage.close()
    with psycopg.connect(f"postgresql://{SERVER}", autocommit=True) as conn:
        conn.execute("LISTEN perf_ping")
        other = SPAWN.Process(target=raw_ping, args=(rounds,))
        other.start()
        raw = []
        for _ in range(rounds):
            n = next(conn.notifies(timeout=30, stop_after=1))
            raw.append(time.time() - float(n.payload))
            conn.execute("NOTIFY perf_pong")
        other.join(60)
    q, r = statistics.quantiles(ours, n=100), statistics.quantiles(raw, n=100)
    print("\n2. wake-up across processes: append in A -> wait_for_append returns in B")
    print(
        f"{'p50 / p99':<44} {q[49] * 1e3:>8.3f} / {q[98] * 1e3:.3f} ms   raw NOTIFY -> LISTEN "
        f"{r[49] * 1e3:.3f} / {r[98] * 1e3:.3f} ms   (ours includes the commit)"
    )


def writer(journal: str, size: int, start: float, seconds: float, done: Any) -> None:
    """Append batches of `size` to streams of its own from `start` for `seconds`."""
    storage = PostgresStorage(journal)
    tag, n = uuid.uuid4().hex[:6], 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < start + seconds:
        records = [NewRecord(new_id(), "t", 1, DATA, time.time()) for _ in range(size)]
        storage.append_batch([Append(f"{tag}-{n + k}", [r], 0) for k, r in enumerate(records)])
        n += size
    storage.close()
    done.put(n)


def processes(quick: bool) -> None:
    seconds = 1.5 if quick else 4.0
    print(f"\n3. writer processes on one journal, {seconds:g} s each")
    for size in (1, 32):
        rates = {}
        for count in (1, 2, 4):
            with schema() as name:
                PostgresStorage(url(name)).close()
                done, start = SPAWN.Queue(), time.time() + 3.0  # after every process started
                procs = [
                    SPAWN.Process(target=writer, args=(url(name), size, start, seconds, done))
                    for _ in range(count)
                ]
                for p in procs:
                    p.start()
                total = sum(done.get(timeout=60) for _ in procs)
                for p in procs:
                    p.join(60)
                rates[count] = total / seconds
            if count > 1:
                row(
                    f"{count} processes, batches of {size}",
                    rates[count],
                    rates[1],
                    "1 process",
                    "events/s",
                )


def _server_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


def main(quick: bool = False) -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    if not _server_up():
        print("   skipped: no PostgreSQL server on 127.0.0.1:5432")
        return
    appends(quick)
    wakeups(quick)
    processes(quick)
    from perf import postgres_runtime

    postgres_runtime.main(quick)


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
