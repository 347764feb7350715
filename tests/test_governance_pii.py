"""Personal data in the runtime: sealed in stored events and snapshots, opened with the
master key, checked at start; forgetting a subject masks its fields everywhere (reads,
live aggregates, snapshots, rebuilt projections, the CLI) and leaves no copy of its key
in the SQLite files, while every other field and event still reads."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from reactor import EncodeError, Runtime, open_store
from reactor.cli import main
from reactor.security.crypto import MasterKeyError
from reactor.security.pii import MASK
from reactor.store import NewRecord, open_storage
from tests.customers import (
    KEY,
    Customer,
    Directory,
    Echo,
    Echoed,
    Move,
    Order,
    Register,
    Registered,
    registry,
)
from tests.pg import fresh_schema, needs_server
from tests.pg import url as pg_url


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'p.db'}"


def files(tmp_path: Path) -> bytes:
    """Every byte of the journal's files (the database, its WAL and shared memory)."""
    return b"".join(f.read_bytes() for f in tmp_path.glob("p.db*"))


def test_personal_fields_are_sealed_in_the_journal(tmp_path: Path) -> None:
    """The stored data holds a token, the metadata the marker; the runtime reads the value,
    a store without the key reads the mask; the plaintext is in no file."""
    url = sqlite_url(tmp_path)
    with Runtime(url, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "ann@example.com"))
        rt.send(Move("c1", "1 Main St"))
        rt.send(Move("c1", None))
        registered, moved, _ = rt.read_stream("Customer-c1")
        assert registered.event == Registered("c1", "ann@example.com")
        assert moved.event.address == "1 Main St"
    raw = open_storage(url, readonly=True)
    first, _second, third = raw.read_all()
    data = orjson.loads(first.data)
    assert data["customer_id"] == "c1" and data["plan"] == "basic"
    assert data["email"] != "ann@example.com" and len(data["email"]) > 40
    assert orjson.loads(first.metadata or b"{}") == {"pii": {"email": "customer_id"}}
    assert orjson.loads(third.data)["address"] is None  # None stays None
    raw.close()
    assert b"ann@example.com" not in files(tmp_path) and b"1 Main St" not in files(tmp_path)
    keyless = open_store(url, registry=registry, create=False)
    registered, moved, _ = keyless.read_stream("Customer-c1")
    assert registered.event == Registered("c1", MASK)
    assert moved.event.address == MASK
    keyless.close()


def test_the_master_key_is_checked_at_start(tmp_path: Path) -> None:
    """A malformed key is refused by the constructor; a wrong one, a missing one for a
    journal with keys, or none for registered personal classes, at start."""
    url = sqlite_url(tmp_path)
    with pytest.raises(ValueError, match="master_key must be 32 bytes"):
        Runtime(url, master_key=b"short")
    with pytest.raises(MasterKeyError, match=r"tests.customers.Registered.*hold personal data"):
        Runtime(url, registry=registry).register(Customer).start()
    with Runtime(url, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "ann@example.com"))
    with pytest.raises(MasterKeyError, match="wrong master key"):
        Runtime(url, registry=registry, master_key=os.urandom(32)).start()
    with pytest.raises(MasterKeyError, match="holds personal data encrypted with a master key"):
        Runtime(url, registry=registry).start()
    with Runtime(url, registry=registry, master_key=KEY) as rt:  # the right one still works
        rt.register(Customer)
        assert rt.read_stream("Customer-c1")[0].event.email == "ann@example.com"


def test_a_personal_event_is_never_stored_without_a_key() -> None:
    """An event with personal fields that no registered class declared (so the start
    check could not see it) is refused at encoding: nothing is stored in plaintext."""
    store = open_store("memory://", registry=registry)
    with pytest.raises(EncodeError, match=r"holds personal data \(email\).*master_key"):
        store.append("S", [Registered("c1", "ann@example.com")], 0)
    assert store.last_position() == 0
    store.close()


def test_forget_masks_the_subject_everywhere(tmp_path: Path) -> None:
    """After forget: reads mask its fields, a live aggregate holding the old value is
    rebuilt, projections rebuilt from the journal see the mask, other subjects and the
    fields that are not personal are untouched, and the chain still verifies."""
    url = sqlite_url(tmp_path)
    with Runtime(url, registry=registry, master_key=KEY) as rt:
        rt.register(Customer, Directory)
        rt.send(Register("c1", "ann@example.com", plan="gold"))
        rt.send(Move("c1", "1 Main St"))
        rt.send(Register("c2", "bob@example.com"))
        rt.send(Order("c1", 5))
        assert rt.send(Echo("c1")).events[0].event == Echoed("c1", "ann@example.com")
        assert rt.forget("c1") and not rt.forget("nobody")
        events = [e.event for e in rt.read_stream("Customer-c1")]
        assert events[0] == Registered("c1", MASK, "gold")
        assert events[1].address == MASK and events[3].email == MASK
        assert rt.read_stream("Customer-c2")[0].event.email == "bob@example.com"
        echoed = rt.send(Echo("c1"))  # the live actor was rebuilt: it holds the mask
        assert echoed.events[0].event == Echoed("c1", MASK)
        assert rt.verify() == 6
    with Runtime(url, registry=registry, master_key=KEY) as rt:  # projections rebuilt
        rt.register(Customer, Directory)
        emails, addresses = rt.query(Directory, after=6).everything()
        assert emails == {"c1": MASK, "c2": "bob@example.com"}
        assert addresses == {"c1": MASK}
        rt.send(Register("c3", "cy@example.com"))
        assert rt.read_stream("Customer-c3")[0].event.email == "cy@example.com"


def test_snapshots_of_personal_aggregates_are_sealed(tmp_path: Path) -> None:
    """A snapshot of an aggregate that applied personal data is sealed under its subjects:
    no plaintext in the snapshot; after a forget it cannot be opened, and the aggregate is
    rebuilt from its events (masked). One without personal data stays plain."""
    url = sqlite_url(tmp_path)
    with Runtime(url, registry=registry, master_key=KEY, snapshot_every=2) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "ann@example.com"))
        rt.send(Order("c1", 1))
        rt.send(Order("c2", 1))
        rt.send(Order("c2", 2))
    raw = sqlite3.connect(tmp_path / "p.db")
    states = dict(raw.execute("SELECT stream, state FROM snapshots"))
    raw.close()
    assert states["Customer-c1"].startswith(b'{"$sealed":["c1"]')
    assert orjson.loads(states["Customer-c2"])["orders"] == 2
    with Runtime(url, registry=registry, master_key=KEY, snapshot_every=2) as rt:
        rt.register(Customer)
        assert rt.send(Echo("c1")).events[0].event.email == "ann@example.com"  # from it
        rt.forget("c1")
        assert rt.send(Echo("c1")).events[0].event.email == MASK
    with Runtime(url, registry=registry, master_key=KEY) as rt:  # the snapshot is unreadable
        rt.register(Customer)
        assert rt.send(Echo("c1")).events[0].event.email == MASK
    assert b"ann@example.com" not in files(tmp_path)


def test_a_forgotten_key_leaves_no_copy_in_the_files(tmp_path: Path) -> None:
    """SQLite overwrites the deleted key (secure_delete) and truncates the WAL that held
    its page: its wrapped bytes are in no file, even while the runtime still runs."""
    url = sqlite_url(tmp_path)
    with Runtime(url, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        for n in range(30):
            rt.send(Register(f"c{n}", f"user{n}@example.com"))
        wrapped = rt.store.load_key("c7")
        assert wrapped is not None and wrapped in files(tmp_path)
        rt.forget("c7")
        assert wrapped not in files(tmp_path)
        assert rt.store.load_key("c8") in files(tmp_path)
    assert wrapped not in files(tmp_path)


def test_upcasting_opens_sealed_fields_first(tmp_path: Path) -> None:
    """Data stored at an older version is opened before its upcaster runs (the marker says
    what was sealed then); data stored in plaintext before a field was marked personal
    (no marker) reads as it is."""
    store = open_store(sqlite_url(tmp_path), registry=registry)
    store.unlock(KEY)
    _, _, sealed, marker = store.codec.encode_event(Registered("c1", "ann@example.com"))
    data = orjson.loads(sealed)
    del data["plan"]
    meta = orjson.dumps({"pii": marker})
    store.commit(
        [
            _append("Customer-c1", "e1", orjson.dumps(data), meta),
            _append("Customer-c2", "e2", b'{"customer_id": "c2", "email": "old@example.com"}'),
        ]
    )
    assert [e.event for e in store.read_all()] == [
        Registered("c1", "ann@example.com", "legacy"),
        Registered("c2", "old@example.com", "legacy"),
    ]
    store.forget("c1")
    assert next(store.read_all()).event == Registered("c1", MASK, "legacy")
    store.close()


def _append(stream: str, event_id: str, data: bytes, meta: bytes | None = None) -> object:
    from reactor.store import Append

    record = NewRecord(event_id, "cust.Registered", 1, data, 1.7e9, meta)
    return Append(stream, [record], 0)


def test_the_cli_shows_personal_fields_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path)
    with Runtime(url, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "ann@example.com", plan="gold"))
    assert main(["journal", "show", "Customer-c1", "--store", url, "--full"]) == 0
    out = capsys.readouterr().out
    assert f'"email":"{MASK}"' in out and '"plan":"gold"' in out


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema()


@needs_server
def test_forget_on_postgres(schema: str) -> None:
    """The same on a shared journal: sealed, forgotten (the key row gone), masked, the
    chain whole; a second runtime process would read the mask once it drops its cache."""
    journal = pg_url(schema)
    with Runtime(journal, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "ann@example.com"))
        rt.send(Register("c2", "bob@example.com"))
        assert rt.forget("c1")
        assert rt.store.load_key("c1") is None
        assert [e.event.email for e in rt.read_all()] == [MASK, "bob@example.com"]
        assert rt.send(Echo("c1")).events[0].event.email == MASK
        assert rt.verify() == 3
    with Runtime(journal, registry=registry, master_key=KEY) as rt:
        rt.register(Customer)
        assert rt.read_stream("Customer-c1")[0].event.email == MASK
