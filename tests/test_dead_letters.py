"""Retries and sequenced dead letters (guarantee 7): a poison event is retried,
dead-lettered and its stream parked while other streams go on; redrive and discard
release what waited; transient failures apply once; dead letters survive a restart."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import DeadLetter, Envelope, Projection, RetryPolicy, Runtime, on
from tests.bank import Account, Deposit, Deposited
from tests.helpers import wait_for

FAST = RetryPolicy(max_attempts=3, first_delay=0.001, max_delay=0.005, jitter=0.0)


class Ledger(Projection):
    """Fails on amounts listed in `poison` (a class-level switch the tests flip)."""

    retry = FAST
    poison: set[int] = set()
    flaky: dict[int, int] = {}  # amount -> failures left
    attempts: dict[int, int] = {}

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        Ledger.attempts[e.amount] = Ledger.attempts.get(e.amount, 0) + 1
        if e.amount in Ledger.poison:
            raise ValueError(f"cannot book {e.amount}")
        if Ledger.flaky.get(e.amount, 0) > 0:
            Ledger.flaky[e.amount] -= 1
            raise ConnectionError("the ledger service blinked")
        self.seen.append((e.account_id, e.amount))

    def booked(self) -> list[tuple[str, int]]:
        return list(self.seen)


@pytest.fixture(autouse=True)
def reset() -> None:
    Ledger.poison, Ledger.flaky, Ledger.attempts = set(), {}, {}


def test_a_poison_event_parks_its_stream_only() -> None:
    Ledger.poison = {13}
    with Runtime("memory://") as rt:
        rt.register(Account, Ledger)
        for account, amount in [("a", 1), ("a", 13), ("b", 2), ("a", 3), ("b", 4), ("a", 5)]:
            last = rt.send(Deposit(account, amount)).position
        booked = rt.query(Ledger, after=last).booked()
        assert booked == [("a", 1), ("b", 2), ("b", 4)]  # a's later events wait behind 13
        (letter,) = rt.dead_letters()
        assert isinstance(letter, DeadLetter)
        assert (letter.handler, letter.attempts, letter.waiting) == ("Ledger", 3, 2)
        assert letter.error == "ValueError: cannot book 13"
        assert letter.envelope.event == Deposited("a", 13) and letter.envelope.position == 2
        assert Ledger.attempts[13] == 3

        with pytest.raises(ValueError, match="cannot book 13"):  # still broken: it stays
            rt.redrive(letter.id)
        (again,) = rt.dead_letters()
        assert (again.id, again.attempts, again.waiting) == (letter.id, 4, 2)

        Ledger.poison = set()  # the fix is deployed
        assert rt.redrive(letter.id) == 3
        assert rt.dead_letters() == []
        rt.send(Deposit("a", 7))
        assert rt.query(Ledger, after=last + 1).booked() == [
            ("a", 1),
            ("b", 2),
            ("b", 4),
            ("a", 13),
            ("a", 3),
            ("a", 5),
            ("a", 7),
        ]


def test_discard_drops_it_and_releases_what_waited() -> None:
    Ledger.poison = {13}
    with Runtime("memory://") as rt:
        rt.register(Account, Ledger)
        for amount in (13, 2, 3):
            last = rt.send(Deposit("a", amount)).position
        assert rt.query(Ledger, after=last).booked() == []  # waits for the retries
        (letter,) = rt.dead_letters("Ledger")
        assert rt.discard(letter.id) == 2
        assert rt.query(Ledger, after=last).booked() == [("a", 2), ("a", 3)]
        assert rt.dead_letters() == []


def test_transient_failures_apply_once() -> None:
    Ledger.flaky = {5: 2}  # fails twice, then succeeds
    with Runtime("memory://") as rt:
        rt.register(Account, Ledger)
        for amount in (5, 6):
            last = rt.send(Deposit("a", amount)).position
        assert rt.query(Ledger, after=last).booked() == [("a", 5), ("a", 6)]
        assert Ledger.attempts[5] == 3 and Ledger.attempts[6] == 1
        assert rt.dead_letters() == []


def test_a_query_waits_for_events_being_retried() -> None:
    slow = RetryPolicy(max_attempts=2, first_delay=0.2, max_delay=0.2, jitter=0.0)

    class Slow(Ledger):
        retry = slow

    Ledger.flaky = {9: 1}
    with Runtime("memory://") as rt:
        rt.register(Account, Slow)
        last = rt.send(Deposit("a", 9)).position
        assert rt.query(Slow, after=last).booked() == [("a", 9)]  # not before the retry


def test_dead_letters_survive_a_restart_and_replay_skips_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dlq.db'}"
    Ledger.poison = {13}
    with Runtime(url) as rt:
        rt.register(Account, Ledger)
        for amount in (1, 13, 2):
            last = rt.send(Deposit("a", amount)).position
        rt.query(Ledger, after=last).booked()
        (letter,) = rt.dead_letters()
    Ledger.attempts = {}
    with Runtime(url) as rt:
        rt.register(Account, Ledger)  # replays from the start (not durable)
        last = rt.send(Deposit("a", 4)).position
        assert rt.query(Ledger, after=last).booked() == [("a", 1)]  # 2 and 4 still parked
        assert Ledger.attempts.get(13) is None  # not retried on replay
        (same,) = rt.dead_letters()
        assert (same.id, same.waiting) == (letter.id, 2)
        Ledger.poison = set()
        rt.redrive(letter.id)
        assert rt.query(Ledger, after=last).booked() == [("a", 1), ("a", 13), ("a", 2), ("a", 4)]


def test_a_failing_subscriber_is_retried_then_dead_lettered() -> None:
    calls: list[int] = []
    done = threading.Event()

    def mailer(event: Deposited, env: Any) -> None:
        calls.append(event.amount)
        if event.amount == 2:
            raise RuntimeError("smtp down")
        if event.amount == 3:
            done.set()

    with Runtime("memory://") as rt:
        rt.register(Account)
        rt.subscribe(mailer, types=[Deposited], name="mailer", retry=FAST)
        for amount in (1, 2):
            rt.send(Deposit("a", amount))
        rt.send(Deposit("b", 3))  # another stream goes on
        assert done.wait(10)
        assert wait_for(lambda: rt.dead_letters("mailer"))
        (letter,) = rt.dead_letters("mailer")
        assert letter.attempts == 3 and letter.error == "RuntimeError: smtp down"
        assert calls.count(2) == 3 and 3 in calls


def test_the_dlq_command_lists_shows_and_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reactor dlq` works on the file alone; a redrive it orders is carried out by the
    handler when the runtime next starts."""
    from reactor.cli import main

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    Ledger.poison = {13}
    with Runtime(url) as rt:
        rt.register(Account, Ledger)
        for amount in (13, 2):
            last = rt.send(Deposit("a", amount)).position
        rt.query(Ledger, after=last).booked()
        (letter,) = rt.dead_letters()
    assert main(["dlq", "list", "--store", url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == [
        "id",
        "handler",
        "position",
        "stream",
        "attempts",
        "waiting",
        "order",
        "error",
    ]
    assert listed[1].split()[:7] == [letter.id, "Ledger", "1", "Account-a", "3", "1", "-"]
    assert listed[1].endswith("ValueError: cannot book 13")
    assert main(["dlq", "show", letter.id, "--store", url]) == 0
    shown = capsys.readouterr().out
    assert (
        "error     ValueError: cannot book 13" in shown
        and '"amount":13' in shown
        and '"amount":2' in shown
    )
    assert main(["dlq", "redrive", letter.id, "--store", url]) == 0
    assert "redrive ordered for dead letter" in capsys.readouterr().out
    assert main(["dlq", "discard", "nope", "--store", url]) == 2
    assert "no dead letter 'nope'" in capsys.readouterr().err

    Ledger.poison = set()
    with Runtime(url) as rt:
        rt.register(Account, Ledger)
        assert rt.query(Ledger, after=last).booked() == [("a", 13), ("a", 2)]
        assert wait_for(lambda: rt.dead_letters() == [])


def test_a_rejected_event_is_not_retried() -> None:
    from reactor import Rejected

    class Strict(Projection):
        retry = FAST

        @on(Deposited)
        def _deposited(self, e: Deposited, env: Envelope) -> None:
            Ledger.attempts[e.amount] = Ledger.attempts.get(e.amount, 0) + 1
            raise Rejected("never for this one")

        def ok(self) -> bool:
            return True

    with Runtime("memory://") as rt:
        rt.register(Account, Strict)
        last = rt.send(Deposit("a", 4)).position
        assert rt.query(Strict, after=last).ok()
        (letter,) = rt.dead_letters("Strict")
        assert (letter.attempts, letter.error) == (1, "Rejected: never for this one")
        assert Ledger.attempts[4] == 1


@settings(max_examples=max(15, settings().max_examples // 4), deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 6)), max_size=20),
    poison=st.sets(st.integers(1, 6), max_size=2),
)
def test_sequenced_dead_letters_match_a_model(
    events: list[tuple[str, int]], poison: set[int]
) -> None:
    """Guarantee 7: a poison event parks the later events of its stream for that handler,
    other streams go on; discarding each letter releases what waited, in order, until the
    stream's next poison. In the end every good event is booked once, in stream order."""
    Ledger.poison, Ledger.flaky, Ledger.attempts = set(poison), {}, {}
    with Runtime("memory://") as rt:
        rt.register(Account, Ledger)
        positions = [rt.send(Deposit(account, amount)).position for account, amount in events]
        last = positions[-1] if positions else 0
        blocked: dict[str, int] = {}  # stream -> index of its first poison event
        for i, (account, amount) in enumerate(events):
            if amount in poison and account not in blocked:
                blocked[account] = i
        expected = [(a, n) for i, (a, n) in enumerate(events) if a not in blocked or i < blocked[a]]
        assert rt.query(Ledger, after=last).booked() == expected
        letters = {d.envelope.stream_id: d for d in rt.dead_letters("Ledger")}
        assert {s: (d.envelope.position, d.waiting) for s, d in letters.items()} == {
            f"Account-{a}": (positions[i], sum(1 for b, _ in events[i + 1 :] if b == a))
            for a, i in blocked.items()
        }
        for _ in range(len(events)):  # discard until no letter is left
            letters_now = rt.dead_letters("Ledger")
            if not letters_now:
                break
            for letter in letters_now:
                with contextlib.suppress(ValueError):  # a parked poison: the next letter
                    rt.discard(letter.id)
        assert rt.dead_letters() == []
        booked = rt.query(Ledger, after=last).booked()
    for account in "abc":
        good = [(a, n) for a, n in events if a == account and n not in poison]
        assert [b for b in booked if b[0] == account] == good
