"""The cost of governance, each figure next to the same work without it, measured in the
same run (the two take turns, best of three): the journal's hash chain on batched SQLite
appends (hashing on, against the same batches with a constant link), a command whose event
has one personal field sealed against the same command with a plain field, and a command
written to the audit trail against one that is not (on memory://, where nothing else hides
the cost, and on SQLite). These are the last rows of `python -m perf journal`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from perf.journal import BATCH, OurWriter
from perf.journal import registry as journal_registry
from perf.report import row
from reactor import Aggregate, Codec, EventStore, Registry, Runtime, event, handles
from reactor.store import Append, AppendOutcome, SQLiteStorage
from reactor.store.sqlite_batch import Batch

BATCHES, COMMANDS, SUBJECTS = 100, 3000, 100
registry = Registry()
KEY = bytes(range(1, 33))


class UnchainedBatch(Batch):
    """A batch whose link is a constant: the chain's hashing taken out, nothing else."""

    @staticmethod
    def hash(prev: bytes, event: Any) -> bytes:
        return prev


class Unchained(SQLiteStorage):
    def append_batch(self, appends: Sequence[Append]) -> list[AppendOutcome]:
        with self._transaction() as db:
            return UnchainedBatch(db).run(appends)


@event("perf.Registered", registry=registry)
@attrs.frozen
class Registered:
    customer_id: str
    email: str = attrs.field(metadata={"pii": "customer_id"})
    plan: str = "basic"


@event("perf.Signed", registry=registry)
@attrs.frozen
class Signed:
    customer_id: str
    email: str
    plan: str = "basic"


@attrs.frozen
class Register:
    customer_id: str
    email: str


@attrs.frozen
class Sign:
    customer_id: str
    email: str


class Customer(Aggregate, key="customer_id"):
    @handles(Register)
    def register(self, cmd: Register) -> Registered:
        return Registered(cmd.customer_id, cmd.email)

    @handles(Sign)
    def sign(self, cmd: Sign) -> Signed:
        return Signed(cmd.customer_id, cmd.email)


def best(runs: dict[str, Callable[[], None]], count: int) -> dict[str, float]:
    """Operations per second of each run (`count` operations): best of three rounds, the
    runs taking turns so that the load of the machine hits them alike."""
    rates: dict[str, float] = {}
    for _ in range(3):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            rates[name] = max(rates.get(name, 0.0), count / (time.perf_counter() - start))
    return rates


def chain() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        on = OurWriter(EventStore(SQLiteStorage(Path(tmp, "on.db")), Codec(journal_registry)))
        off = OurWriter(EventStore(Unchained(Path(tmp, "off.db")), Codec(journal_registry)))

        def batches(writer: OurWriter) -> Callable[[], None]:
            def run() -> None:
                for _ in range(BATCHES):
                    writer.append_batch(BATCH)

            return run

        r = best({"on": batches(on), "off": batches(off)}, BATCH * BATCHES)
        row(f"append_batch of {BATCH}, hash chain on", r["on"], r["off"], "chain off", "events/s")
        cost = 1e9 / r["on"] - 1e9 / r["off"]
        print(f"{'':<44} the chain costs {cost:,.0f} ns per event appended")
        for w in (on, off):
            w.store.close()


def commands(where: str, url: Callable[[str], str], count: int) -> None:
    """Sealed against plain, audited against not, on the journal `url(name)` names."""
    emails = [f"user{n}@example.com" for n in range(SUBJECTS)]

    def sending(rt: Runtime, make: Callable[[str, str], object]) -> Callable[[], None]:
        def send() -> None:
            for n in range(count):
                rt.send(make(f"c{n % SUBJECTS}", emails[n % SUBJECTS]))

        return send

    with (
        Runtime(url("plain"), registry=registry, master_key=KEY) as plain,
        Runtime(url("audited"), registry=registry, master_key=KEY, audit=True) as audited,
    ):
        for rt in (plain, audited):
            rt.register(Customer)
        sending(plain, Register)()  # every subject's key made (first use: a write)
        r = best(
            {
                "sealed": sending(plain, Register),
                "plain": sending(plain, Sign),
                "audited": sending(audited, Sign),
            },
            count,
        )
    row(f"command, one field sealed, {where}", r["sealed"], r["plain"], "plain field", "cmds/s")
    row(f"command, audited, {where}", r["audited"], r["plain"], "not audited", "cmds/s")


def main() -> None:
    print("\n" + " ".join(__doc__.split("\n\n")[0].split()))
    chain()
    commands("memory://", lambda name: "memory://", COMMANDS)
    with tempfile.TemporaryDirectory() as tmp:
        commands("SQLite", lambda name: f"sqlite:///{tmp}/{name}.db", COMMANDS // 6)


if __name__ == "__main__":
    main()
