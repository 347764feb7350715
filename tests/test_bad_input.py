"""Bad input, as a new user gives it: each case gets a clear error naming what is wrong,
nothing is stored, and the runtime serves on. Wrongly typed fields, missing and mixed keys,
two classes under one name, unsaveable state, bad options, oversized events, handlers that
return what is not an event, timeouts, two runtimes on one journal (another process)."""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from reactor import (
    Aggregate,
    EncodeError,
    InvalidCommand,
    Projection,
    ReactorError,
    RegistrationError,
    Runtime,
    StorageError,
    Timeout,
    applies,
    event,
    handles,
    on,
)
from reactor.store import open_storage
from tests import bank
from tests.bank import Account, Deposit, Deposited


@event("tbad.Measured")
@attrs.frozen
class Measured:
    sensor_id: str
    count: int
    level: float = 0.0
    at: datetime | None = None
    tags: tuple[str, ...] = ()


@attrs.frozen
class Measure:
    sensor_id: Any
    count: Any
    level: Any = 0.0
    at: Any = None
    tags: Any = ()


class Sensor(Aggregate, key="sensor_id"):
    def __init__(self) -> None:
        self.total = 0

    @handles(Measure)
    def measure(self, cmd: Measure) -> Measured:
        return Measured(cmd.sensor_id, cmd.count, cmd.level, cmd.at, cmd.tags)

    @applies(Measured)
    def _measured(self, e: Measured) -> None:
        self.total += e.count


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    with Runtime(f"sqlite:///{tmp_path / 'bad.db'}") as runtime:
        runtime.register(Sensor, Account)
        yield runtime


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("count", "5", "expects int, got '5' (str)"),
        ("count", 5.0, "expects int, got 5.0 (float)"),
        ("count", True, "expects int, got True (bool)"),
        ("count", datetime(2026, 1, 1, tzinfo=UTC), "expects int, got datetime"),
        ("level", "high", "got 'high' (str)"),
        ("level", False, "got False (bool)"),
        ("at", "2026-01-01", "got '2026-01-01' (str)"),
        ("tags", ["a"], "expects tuple[str, ...], got ['a'] (list)"),
        ("tags", ("a", 1), "'tags[1]' expects str, got 1 (int)"),
    ],
)
def test_a_wrongly_typed_field_is_refused_and_stores_nothing(
    rt: Runtime, field: str, value: Any, expected: str
) -> None:
    command = attrs.evolve(Measure("s1", 1), **{field: value})
    with pytest.raises(EncodeError) as info:
        rt.send(command)
    message = str(info.value)
    assert "Sensor.measure, handling Measure for stream 'Sensor-s1'" in message
    assert f"'tbad.Measured': field '{field}" in message and expected in message
    assert rt.read_stream("Sensor-s1") == []
    assert rt.send(Measure("s1", 2)).version == 1  # the stream is not poisoned


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "Measure.sensor_id is missing (None)"),
        ("", "Measure.sensor_id is blank"),
        ("   ", "Measure.sensor_id is blank"),
        (5.0, "Measure.sensor_id is a float (5.0): a key is a str, an int or a UUID"),
        (True, "Measure.sensor_id is a bool (True)"),
        (("a", 1), "Measure.sensor_id is a tuple"),
    ],
)
def test_a_missing_or_odd_key_is_refused(rt: Runtime, key: Any, problem: str) -> None:
    with pytest.raises(InvalidCommand, match=rf"{re.escape(problem)}.*the Sensor aggregate"):
        rt.send(Measure(key, 1))
    assert list(rt.read_all()) == []


def test_int_and_uuid_keys_name_streams_by_their_text(rt: Runtime) -> None:
    @attrs.frozen
    class Ring:
        bell_id: object

    class Bell(Aggregate, key="bell_id"):
        @handles(Ring)
        def ring(self, cmd: Ring) -> None:
            return None

    rt.register(Bell)
    ident = uuid.UUID(int=7)
    assert rt.send(Ring(5)).stream_id == "Bell-5"
    assert rt.send(Ring(ident)).stream_id == f"Bell-{ident}"


def test_commands_of_one_aggregate_may_not_mix_key_types() -> None:
    @attrs.frozen
    class ByName:
        gauge_id: str

    @attrs.frozen
    class ByNumber:
        gauge_id: int

    class Gauge(Aggregate, key="gauge_id"):
        @handles(ByName)
        def by_name(self, cmd: ByName) -> None:
            return None

        @handles(ByNumber)
        def by_number(self, cmd: ByNumber) -> None:
            return None

    with pytest.raises(RegistrationError, match=r"key 'gauge_id' with different types"):
        Runtime().register(Gauge)


def test_two_aggregate_classes_under_one_name_are_refused() -> None:
    @attrs.frozen
    class Bill:
        account_id: str

    class Account(Aggregate, key="account_id"):  # billing's Account, not the bank's
        @handles(Bill)
        def bill(self, cmd: Bill) -> None:
            return None

    runtime = Runtime().register(bank.Account)
    with pytest.raises(RegistrationError) as info:
        runtime.register(Account)
    message = str(info.value)
    assert "tests.bank.Account" in message and "test_bad_input" in message
    assert "would share the streams Account-<key>" in message and 'name="<name>"' in message


def test_two_projection_classes_under_one_name_are_refused() -> None:
    class Totals(Projection):
        @on(Deposited)
        def _d(self, e: Deposited, env: Any) -> None:
            pass

    class Other(Projection, name="Totals"):
        @on(Deposited)
        def _d(self, e: Deposited, env: Any) -> None:
            pass

    with pytest.raises(RegistrationError, match="are both the projection 'Totals'"):
        Runtime().register(Totals, Other)


def test_a_durable_projection_whose_state_cannot_be_saved_is_refused_at_register() -> None:
    class Seen(Projection):
        durable = True

        def __init__(self) -> None:
            self.ids = set()  # unannotated: it would come back as a list

        @on(Deposited)
        def _d(self, e: Deposited, env: Any) -> None:
            self.ids.add(env.event_id)

    with pytest.raises(EncodeError, match=r"projection Seen: attribute 'ids'.*annotate 'ids'"):
        Runtime().register(Seen)


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("workers", 0, "an int >= 1"),
        ("workers", 2.5, "an int >= 1"),
        ("throughput", -1, "an int >= 1"),
        ("timeout", 0, "a finite number of seconds > 0"),
        ("timeout", math.nan, "a finite number of seconds > 0"),
        ("idle_timeout", -5, "a finite number of seconds > 0 or None"),
        ("max_live", 0, "an int >= 1 or None"),
        ("backlog", 0, "an int >= 1"),
        ("retry", 3, "a RetryPolicy"),
        ("max_event_bytes", 0, "an int >= 1 or None"),
    ],
)
def test_bad_options_are_refused_by_the_constructor(option: str, value: Any, accepted: str) -> None:
    with pytest.raises(ValueError, match=rf"Runtime\({option}=\.\.\.\) must be {accepted}"):
        Runtime(**{option: value})


def test_an_event_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    with Runtime(f"sqlite:///{tmp_path / 'big.db'}", max_event_bytes=1000) as runtime:
        runtime.register(Sensor)
        with pytest.raises(EncodeError, match=r"'tbad.Measured'.*2,\d{3} bytes.*limit of 1,000"):
            runtime.send(Measure("s1", 1, tags=("x" * 100,) * 20))
        assert runtime.read_all() is not None and list(runtime.read_all()) == []


def test_a_handler_returning_what_is_not_an_event_names_it(rt: Runtime) -> None:
    @attrs.frozen
    class Odd:
        sensor_id: str

    class Odds(Aggregate, key="sensor_id"):
        @handles(Odd)
        def odd(self, cmd: Odd) -> Any:
            return 42

    rt.register(Odds)
    with pytest.raises(
        EncodeError, match=r"Odds.odd, handling Odd for stream 'Odds-x'.*builtins.int"
    ):
        rt.send(Odd("x"))


def test_a_timeout_names_the_command_and_what_it_waited_on(tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock: `send(timeout=...)` returns on time,
    naming the command; re-sent with its id once the lock is free, it is stored once."""
    path = tmp_path / "locked.db"
    with Runtime(f"sqlite:///{path}?busy_timeout=5") as runtime:
        runtime.register(Account)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # as another process would
        try:
            began = time.monotonic()
            with pytest.raises(Timeout) as info:
                runtime.send(Deposit("a1", 5), command_id="dep-1", timeout=0.3)
            assert time.monotonic() - began < 2.0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        message = str(info.value)
        assert "Deposit (command id 'dep-1') got no answer within 0.3s" in message
        assert "stream 'Account-a1'" in message and "command_id='dep-1'" in message
        assert runtime.send(Deposit("a1", 5), command_id="dep-1").version == 1
        assert len(runtime.read_stream("Account-a1")) == 1


HOLDER = """
import sys, time
from reactor import Runtime
with Runtime(sys.argv[1]) as rt:
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_another_process_on_the_same_sqlite_file_gets_a_clear_error(tmp_path: Path) -> None:
    """A runtime in another process holds the file: a second runtime is refused, naming the
    file and the holder's pid; the CLI still reads it and still places orders."""
    url = f"sqlite:///{tmp_path / 'held.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(StorageError) as info:
            Runtime(url).start()
        assert "held.db is in use by a reactor runtime on" in str(info.value)
        assert f"(pid {holder.pid})" in str(info.value)
        assert "use a postgresql:// journal to share one journal" in str(info.value)
        storage = open_storage(url, create=False, readonly=True)  # the CLI's way
        assert storage.last_position() == 0
        storage.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    with Runtime(url) as again:  # freed when the holder stopped
        assert again.health().state == "running"


def test_a_failing_runtime_start_leaves_the_journal_free(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    with Runtime(url), pytest.raises(ReactorError):
        Runtime(url).start()
    with Runtime(url) as runtime:
        assert runtime.health().state == "running"
