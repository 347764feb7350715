"""Forgetting, as a property: after any run of commands over a few customers and the
forgetting of any subset of them, every event still reads, every field of the others and
every field that is not personal reads as it was, every forgotten personal field reads as
masked, and replay is deterministic: the live aggregates, the ones rebuilt from sealed
snapshots and their tails, and projections rebuilt twice all agree with the model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from reactor import Rejected, Runtime
from reactor.security.pii import MASK
from tests.customers import (
    KEY,
    Customer,
    Directory,
    Echo,
    Move,
    Moved,
    Order,
    Ordered,
    Register,
    Registered,
    registry,
)
from tests.strategies import SUBJECTS, customer_commands, forgotten_subjects

Command = tuple[str, str, Any]


def model(commands: list[Command], forgotten: set[str]) -> tuple[list[object], dict[str, Any]]:
    """The events the commands store, as they read after the forget, and each subject's
    email as its aggregate holds it (None: never registered)."""
    events: list[object] = []
    emails: dict[str, Any] = dict.fromkeys(SUBJECTS)
    for kind, subject, value in commands:
        gone = subject in forgotten
        if kind == "register" and emails[subject] is None:
            emails[subject] = MASK if gone else value
            events.append(Registered(subject, emails[subject]))
        elif kind == "move":
            events.append(Moved(subject, MASK if gone and value is not None else value))
        elif kind == "order":
            events.append(Ordered(subject, value))
    return events, emails


def run(rt: Runtime, commands: list[Command]) -> None:
    for kind, subject, value in commands:
        try:
            if kind == "register":
                rt.send(Register(subject, value))
            elif kind == "move":
                rt.send(Move(subject, value))
            else:
                rt.send(Order(subject, value))
        except Rejected:
            assert kind == "register"


def held(rt: Runtime) -> dict[str, Any]:
    """Each subject's email as its aggregate holds it (asked with Echo, which stores an
    event nothing applies)."""
    return {s: rt.send(Echo(s)).events[0].event.email for s in SUBJECTS}


def check(commands: list[Command], forgotten: set[str]) -> None:
    events, emails = model(commands, forgotten)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'f.db'}?synchronous=OFF"
        with Runtime(url, registry=registry, master_key=KEY, snapshot_every=2) as rt:
            rt.register(Customer)
            run(rt, commands)
            last = rt.store.last_position()
            for subject in sorted(forgotten):
                rt.forget(subject)
            assert [e.event for e in rt.read_all()] == events
            assert held(rt) == emails  # live actors, rebuilt where they held a forgotten one
        views = []
        for _ in range(2):  # aggregates from sealed snapshots (or not) and tails; projections
            with Runtime(url, registry=registry, master_key=KEY, snapshot_every=2) as rt:
                rt.register(Customer, Directory)
                assert [e.event for e in rt.read_all(limit=last)] == events
                assert held(rt) == emails
                views.append(rt.query(Directory, after=last).everything())
                assert rt.verify() == rt.store.last_position()
        assert views[0] == views[1]
        assert views[0][0] == {s: e for s, e in emails.items() if e is not None}


@settings(max_examples=15)
@given(customer_commands, forgotten_subjects)
def test_forgetting_masks_exactly_the_forgotten(
    commands: list[Command], forgotten: set[str]
) -> None:
    check(commands, forgotten)


@pytest.mark.slow
@settings(max_examples=300)
@given(customer_commands, forgotten_subjects)
def test_forgetting_masks_exactly_the_forgotten_deep(
    commands: list[Command], forgotten: set[str]
) -> None:
    """The same, with 300 runs (pytest -m slow)."""
    check(commands, forgotten)
