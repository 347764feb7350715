"""Corrupt rows, one column at a time, under a running runtime: each is a DecodeError naming
its stream, seq and position; a projection dead-letters it once (however often it is
restarted) and goes on; `dead_letters()` lists it with its raw type and version; health
and queries answer; the aggregate of that stream says it cannot be rebuilt; other streams
serve on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reactor import DecodeError, Runtime, UnknownEventType, open_store
from tests.bank import Account, Balances, Deposit, DurableBalances
from tests.helpers import wait_for

CORRUPTIONS = {  # column: (SQL assignment, what the error says)
    "timestamp": ("timestamp = 'noon'", "timestamp 'noon' is not seconds"),
    "data": ("data = x'00ff'", "JSONDecodeError"),
    "metadata": ("metadata = '[1]'", "metadata is list, not a JSON object"),
    "metadata text": ("metadata = 'not json'", "metadata is not JSON"),
    "seq": ("seq = 'two'", "a column holds a value of the wrong type"),
    "event_id": ("event_id = x'01'", "a column holds a value of the wrong type"),
    "correlation_id": ("correlation_id = x'01'", "a column holds a value of the wrong type"),
    "version": ("version = 'v1'", "cannot decode"),
    "type": ("type = 'tbank.Nothing'", "unknown event type 'tbank.Nothing'"),
    "stream": ("stream = 999", "a column holds a value of the wrong type"),
}


def corrupt(path: Path, assignment: str, position: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE events SET {assignment} WHERE position = ?", (position,))


@pytest.mark.parametrize("column", sorted(CORRUPTIONS))
def test_a_corrupt_column_is_named_dead_lettered_once_and_the_rest_serves_on(
    tmp_path: Path, column: str
) -> None:
    assignment, says = CORRUPTIONS[column]
    path = tmp_path / "j.db"
    url = f"sqlite:///{path}"
    with Runtime(url) as rt:
        rt.register(Account)
        for n in range(1, 4):
            rt.send(Deposit("a1", n))  # positions 1-3; the second is corrupted below
        rt.send(Deposit("b1", 10))  # position 4, another stream
    corrupt(path, assignment, 2)

    store = open_store(url, create=False)
    with pytest.raises(Exception) as info:
        list(store.read_all())
    store.close()
    assert says in str(info.value) and "position 2" in str(info.value)

    for run in range(2):  # a second start over the same row adds no second letter
        with Runtime(url) as rt:
            rt.register(Account, Balances, DurableBalances)
            head = 4 + run
            assert rt.query(Balances, after=head, timeout=10).balance("b1") == 10 + run
            assert rt.query(DurableBalances, after=head, timeout=10).balance("b1") == 10 + run
            letters = {d.handler: d for d in rt.dead_letters()}
            if column == "type":  # no longer an event these projections handle
                assert letters == {}
            else:
                assert sorted(letters) == ["Balances", "DurableBalances"]
                letter = letters["Balances"]
                assert letter.position == 2 and letter.envelope is None
                assert says in letter.unreadable or says in letter.error
                assert rt.health().dead_letters == 2
            assert rt.health().state == "running"
            assert rt.send(Deposit("b1", 1)).version == 2 + run  # another stream serves on
            with pytest.raises((DecodeError, UnknownEventType), match="'Account-a1'.*position"):
                rt.send(Deposit("a1", 1))  # its aggregate cannot be rebuilt


def test_undecodable_letters_list_their_raw_type_and_version(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    url = f"sqlite:///{path}"
    with Runtime(url) as rt:
        rt.register(Account)
        rt.send(Deposit("a1", 1))
    corrupt(path, "type = 'tbank.Gone', version = 3", 1)
    with Runtime(url) as rt:
        rt.subscribe(lambda e, env: None, name="everything", from_position=0)
        assert wait_for(lambda: rt.dead_letters() != [])
        (letter,) = rt.dead_letters()
        assert (letter.handler, letter.type, letter.version) == ("everything", "tbank.Gone", 3)
        assert letter.envelope is None and "unknown event type 'tbank.Gone'" in letter.unreadable
