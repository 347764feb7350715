"""The audit trail: after a mixed run it holds every command's end (accepted, rejected,
denied, failed), every dead-letter order and every forget, in order, with who, when, what
and how it ended, and never a payload; it is durable, found by principal and time, and
read by `reactor audit`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reactor import ConcurrencyError, Policy, Principal, Rejected, Runtime, Unauthorized
from reactor.cli import main
from reactor.store import open_storage
from tests.customers import KEY, Customer, Ledger, Order, Ordered, Register, registry
from tests.helpers import wait_for

POLICY = Policy.from_dict(
    {
        "roles": {
            "clerk": {"send": ["Register", "Order"], "publish": ["cust.*"]},
            "ops": {"operate": ["*"]},
        }
    }
)
ANN, OLGA, GUS = (
    Principal("ann", roles=["clerk"]),
    Principal("olga", roles=["ops"]),
    Principal("gus", roles=["guest"]),
)


def mixed_run(rt: Runtime) -> None:
    """One of each kind of end, in this order."""
    Ledger.poison = {13}
    rt.send(Register("c1", "ann@example.com"), principal=ANN)
    with pytest.raises(Rejected):
        rt.send(Register("c1", "again@example.com"), principal=ANN)
    with pytest.raises(Unauthorized):
        rt.send(Register("c2", "gus@example.com"), principal=GUS)
    with pytest.raises(ValueError, match="a bug"):
        rt.send(Order("c1", -1), principal=ANN)
    rt.send(Order("c1", 13), principal=ANN)
    assert wait_for(lambda: rt.dead_letters())
    (letter,) = rt.dead_letters()
    with pytest.raises(ValueError, match="cannot book 13"):
        rt.redrive(letter.id, principal=OLGA)
    rt.discard(letter.id, principal=OLGA)
    rt.publish(Ordered("c1", 7), stream="imports", expected_version=0, principal=ANN)
    with pytest.raises(ConcurrencyError):
        rt.publish(Ordered("c1", 8), stream="imports", expected_version=0, principal=ANN)
    rt.forget("c1", principal=OLGA)
    Ledger.poison = set()


EXPECTED = [
    ("ann", "send", "tests.customers.Register", "accepted"),
    ("ann", "send", "tests.customers.Register", "rejected"),
    ("gus", "send", "tests.customers.Register", "denied"),
    ("ann", "send", "tests.customers.Order", "failed"),
    ("ann", "send", "tests.customers.Order", "accepted"),
    ("olga", "redrive", "Ledger", "failed"),
    ("olga", "discard", "Ledger", "done"),
    ("ann", "publish", "cust.Ordered", "accepted"),
    ("olga", "forget", "c1", "done"),
]


def test_the_trail_of_a_mixed_run(tmp_path: Path) -> None:
    """Every end, in order, each with its roles, time, and a detail naming the stream and
    command (a rejection's reason; a failure's type only); no payload anywhere."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    start = time.time()
    with Runtime(url, registry=registry, policy=POLICY, master_key=KEY) as rt:
        rt.register(Customer, Ledger)
        mixed_run(rt)
        trail = rt.audit()
    assert [(e.principal, e.action, e.resource, e.outcome) for e in trail] == EXPECTED
    assert [e.seq for e in trail] == list(range(1, len(EXPECTED) + 1))
    assert all(start <= e.timestamp <= time.time() for e in trail)
    assert trail[0].roles == ("clerk",) and trail[2].roles == ("guest",)
    assert trail[0].detail.startswith("stream Customer-c1, command ")
    assert trail[1].detail.endswith(": already registered")
    assert trail[3].detail.endswith(": ValueError")  # not its message: it may quote data
    assert trail[6].detail.endswith(": 0 delivered") and trail[-1].detail.endswith("destroyed")
    assert not [e for e in trail if "example.com" in repr(e)]
    stored = open_storage(url, create=False, readonly=True)  # durable: after the stop
    assert stored.audit() == trail
    stored.close()


def test_the_trail_is_found_by_principal_and_time() -> None:
    with Runtime("memory://", registry=registry, policy=POLICY, master_key=KEY) as rt:
        rt.register(Customer, Ledger)
        rt.send(Register("c1", "a@example.com"), principal=ANN)
        middle = time.time()
        wait_for(lambda: time.time() > middle)
        rt.send(Order("c1", 2), principal=ANN)
        rt.forget("c1", principal=OLGA)
        assert [e.action for e in rt.audit(principal=ANN)] == ["send", "send"]
        assert [e.action for e in rt.audit(principal="olga")] == ["forget"]
        assert [e.resource for e in rt.audit(since=middle)] == ["tests.customers.Order", "c1"]
        assert len(rt.audit(limit=2)) == 2


def test_commands_are_audited_with_a_policy_or_when_asked() -> None:
    """Without a policy, commands leave no entry unless `audit=True`; forgets always do."""
    for audit, expected in ((None, ["forget"]), (True, ["send", "send", "forget"])):
        with Runtime("memory://", registry=registry, master_key=KEY, audit=audit) as rt:
            rt.register(Customer)
            rt.send(Register("c1", "a@example.com"))
            with pytest.raises(Rejected):
                rt.send(Order("c1", 0))
            rt.forget("c1")
            assert [e.action for e in rt.audit()] == expected
            assert all(e.principal == "" for e in rt.audit())
    with Runtime("memory://", registry=registry, policy=POLICY, audit=False, master_key=KEY) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "a@example.com"), principal=ANN)
        with pytest.raises(Unauthorized):
            rt.send(Register("c2", "b@example.com"), principal=GUS)
        assert [e.outcome for e in rt.audit()] == ["denied"]  # denials always


def test_reactor_audit_prints_the_trail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Runtime(url, registry=registry, policy=POLICY, master_key=KEY) as rt:
        rt.register(Customer, Ledger)
        mixed_run(rt)
        since = rt.audit()[4].timestamp
    assert main(["audit", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "seq",
        "time",
        "principal",
        "roles",
        "action",
        "resource",
        "outcome",
        "detail",
    ]
    assert len(lines) == 1 + len(EXPECTED)
    assert "gus" in lines[3] and "guest" in lines[3] and "denied" in lines[3]
    assert main(["audit", "--store", url, "--principal", "olga"]) == 0
    assert [line.split()[5] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "redrive",
        "discard",
        "forget",
    ]
    assert main(["audit", "--store", url, "--since", str(since), "--limit", "2"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["5", "6"]
    with pytest.raises(SystemExit):
        main(["audit", "--store", url, "--since", "last tuesday"])
    assert "expected a time such as" in capsys.readouterr().err
