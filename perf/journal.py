"""Journal throughput on a SQLite file (WAL, synchronous=FULL), next to raw sqlite3 doing
the same inserts and selects with the same schema and the same JSON library (orjson); then
the cost of the lineage indexes on append, of the hash chain, of sealing personal data
and of the audit trail (perf/governance.py).

    python -m perf journal
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

import attrs
import orjson

from perf.report import rate, row
from reactor import Codec, EventStore, Registry, event
from reactor.events import new_id
from reactor.store import Append, SQLiteStorage
from reactor.store.sqlite_schema import SCHEMA as _SCHEMA
from reactor.store.sqlite_schema import SCHEMA_VERSION

_INSERT = (  # the rows of schema 1 (no hash): the floor
    "INSERT INTO events (position, stream, seq, event_id, type, version, data, timestamp, "
    "metadata, correlation_id, causation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

registry = Registry()


@event("bench.Deposited", registry=registry)
@attrs.frozen
class Deposited:
    account_id: str
    amount: int
    currency: str = "EUR"


SINGLE, BATCHES, BATCH, REPLAY, STREAMS = 1500, 100, 100, 100_000, 1000


def _ours(path: Path) -> EventStore:
    return EventStore(SQLiteStorage(path), Codec(registry))


def _raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(f"BEGIN;{_SCHEMA.format(version=SCHEMA_VERSION)}COMMIT;")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO streams (id, name, version) VALUES (?, ?, 0)",
        [(n + 1, f"Account-{n}") for n in range(STREAMS)],
    )
    db.execute("COMMIT")
    return db


class RawWriter:
    """The floor: the same rows (the same kind of event ids) and stream versions, seqs kept
    in a list, no checks at all."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.seqs, self.n = db, [0] * STREAMS, 0

    def rows(self, count: int) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for _ in range(count):
            s = self.n % STREAMS
            self.n += 1
            self.seqs[s] += 1
            data = orjson.dumps({"account_id": f"a{s}", "amount": self.n, "currency": "EUR"})
            out.append(
                (
                    self.n,
                    s + 1,
                    self.seqs[s],
                    new_id(),
                    "bench.Deposited",
                    1,
                    data,
                    time.time(),
                    None,
                    None,
                    None,
                )
            )
        return out

    def commit(self, count: int) -> None:
        rows = self.rows(count)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(_INSERT, rows)
        self.db.executemany(
            "UPDATE streams SET version = ? WHERE id = ?", [(r[2], r[1]) for r in rows]
        )
        self.db.execute("COMMIT")


class OurWriter:
    """reactor: encode events, append with the expected version, one transaction per batch."""

    def __init__(self, store: EventStore) -> None:
        self.store, self.versions, self.n = store, [0] * STREAMS, 0

    def append_one(self) -> None:
        s = self.n % STREAMS
        self.n += 1
        self.store.append(f"Account-{s}", [Deposited(f"a{s}", self.n)], self.versions[s])
        self.versions[s] += 1

    def append_batch(self, count: int) -> None:
        appends = []
        for _ in range(count):
            s = self.n % STREAMS
            self.n += 1
            record = self.store.record(Deposited(f"a{s}", self.n))
            appends.append(Append(f"Account-{s}", [record], self.versions[s]))
            self.versions[s] += 1
        for outcome in self.store.commit(appends):
            outcome.result()


class TracedWriter(OurWriter):
    """`OurWriter` whose events carry a correlation and a causation id, as a command's do."""

    def append_batch(self, count: int) -> None:
        appends = []
        for _ in range(count):
            s = self.n % STREAMS
            self.n += 1
            command_id = new_id()
            record = self.store.new_record(Deposited(f"a{s}", self.n), command_id, command_id)
            appends.append(Append(f"Account-{s}", [record], self.versions[s]))
            self.versions[s] += 1
        for outcome in self.store.commit(appends):
            outcome.result()


def lineage_cost(tmp: str) -> None:
    """The lineage indexes (events by correlation and causation id) on append: the same
    appends of traced events, on a journal with them and one without."""
    indexed = TracedWriter(_ours(Path(tmp, "indexed.db")))
    plain = TracedWriter(_ours(Path(tmp, "plain.db")))
    with sqlite3.connect(Path(tmp, "plain.db")) as db:
        db.executescript("DROP INDEX events_by_correlation; DROP INDEX events_by_causation;")
    for size in (0, 100_000):
        while indexed.n < size:  # a bigger journal: deeper index trees
            indexed.append_batch(1000)
            plain.append_batch(1000)
        row(
            f"append_batch of {BATCH}, lineage indexed ({size // 1000}k)",
            rate(BATCH * BATCHES, lambda: [indexed.append_batch(BATCH) for _ in range(BATCHES)]),
            rate(BATCH * BATCHES, lambda: [plain.append_batch(BATCH) for _ in range(BATCHES)]),
            "without the lineage indexes",
            "events/s",
        )
    for writer in (indexed, plain):
        writer.store.close()


def main() -> None:
    print(" ".join(__doc__.split("\n\n")[0].split()))
    with tempfile.TemporaryDirectory() as tmp:
        lineage_cost(tmp)
    with tempfile.TemporaryDirectory() as tmp:
        ours, raw = OurWriter(_ours(Path(tmp, "ours.db"))), RawWriter(_raw(Path(tmp, "raw.db")))

        def singles() -> None:
            for _ in range(SINGLE):
                ours.append_one()

        def raw_singles() -> None:
            for _ in range(SINGLE):
                raw.commit(1)

        row(
            "append, 1 event per transaction",
            rate(SINGLE, singles, 1),
            rate(SINGLE, raw_singles, 1),
            "raw sqlite3 insert",
            "events/s",
        )

        def batches() -> None:
            for _ in range(BATCHES):
                ours.append_batch(BATCH)

        def raw_batches() -> None:
            for _ in range(BATCHES):
                raw.commit(BATCH)

        row(
            f"append_batch of {BATCH} appends",
            rate(BATCH * BATCHES, batches),
            rate(BATCH * BATCHES, raw_batches),
            f"raw, {BATCH} rows/commit",
            "events/s",
        )

        while raw.n < REPLAY:  # grow both journals for the replay
            raw.commit(1000)
            ours.append_batch(1000)
        store, db = ours.store, raw.db
        total = store.last_position()
        assert total == db.execute("SELECT count(*) FROM events").fetchone()[0]

        def replay() -> None:
            for env in store.read_all():
                env.event  # noqa: B018

        select = (
            "SELECT e.event_id, s.name, e.seq, e.position, e.type, e.version, e.data, "
            "e.timestamp, e.metadata, e.correlation_id, e.causation_id FROM events e "
            "JOIN streams s ON s.id = e.stream ORDER BY e.position"
        )

        def raw_replay() -> None:
            for r in db.execute(select):
                orjson.loads(r[6])

        def raw_replay_json() -> None:
            for r in db.execute(select):
                json.loads(r[6])

        ours_replay = rate(total, replay)
        row(
            "replay: read_all + decode to Envelopes",
            ours_replay,
            rate(total, raw_replay),
            "raw select + orjson.loads",
            "events/s",
        )
        row("", ours_replay, rate(total, raw_replay_json), "raw select + json.loads", "events/s")
        store.close()
        db.close()

    value = Deposited("account-42", 1234, "EUR")
    codec = Codec(registry)
    name, version, data = codec.encode(value)
    n = 200_000

    def encode() -> None:
        for _ in range(n):
            codec.encode(value)

    def encode_json() -> None:
        for _ in range(n):
            json.dumps(attrs.asdict(value)).encode()

    def decode() -> None:
        for _ in range(n):
            codec.decode(name, version, data)

    def decode_json() -> None:
        for _ in range(n):
            Deposited(**json.loads(data))

    row(
        "codec encode (type-directed, orjson)",
        rate(n, encode),
        rate(n, encode_json),
        "json.dumps(attrs.asdict(e))",
        "events/s",
    )
    keys = [f.name for f in attrs.fields(Deposited)]

    def encode_unchecked() -> None:  # encode as it was before the field checks
        for _ in range(n):
            spec = registry.spec_of(Deposited)
            (spec.name, spec.version, orjson.dumps({k: getattr(value, k) for k in keys}))

    checked, unchecked = rate(n, encode, 5), rate(n, encode_unchecked, 5)
    row(
        "codec encode, field types checked",
        checked,
        unchecked,
        "unchecked (encode before)",
        "events/s",
    )
    print(f"{'':<44} the checks cost {1e9 / checked - 1e9 / unchecked:,.0f} ns per event encoded")
    row(
        "codec decode (type-directed, orjson)",
        rate(n, decode),
        rate(n, decode_json),
        "cls(**json.loads(data))",
        "events/s",
    )
    from perf import governance  # the cost of the hash chain, sealing and the audit trail

    governance.main()


if __name__ == "__main__":
    main()
