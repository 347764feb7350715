"""Access control in the runtime: with a policy, each kind of action a principal may not do
is refused (`Unauthorized`) before anything is stored or started, and written to the audit
trail; without one, everything is allowed as before; the principal rides in the metadata
of the events it caused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor import Policy, Principal, Runtime, Unauthorized
from tests.customers import KEY, Customer, Directory, Ledger, Order, Ordered, Register, registry
from tests.helpers import wait_for
from tests.test_bus_support import needs_nats, services

__all__ = ["services"]  # the fixture

POLICY = Policy.from_dict(
    {
        "roles": {
            "clerk": {
                "send": ["Register", "tests.customers.Order"],
                "publish": ["cust.Ordered"],
                "query": ["Directory"],
                "subscribe": ["cust.*"],
            },
            "ops": {"operate": ["Ledger"]},
            "guest": {"query": ["Dir*"]},
            "boss": {a: ["*"] for a in ("send", "publish", "query", "subscribe", "operate")},
        }
    }
)
CLERK = Principal("ann", roles=["clerk"])
OPS = Principal("olga", roles=["ops"])
GUEST = Principal("gus", roles=["guest"])
BOSS = Principal("bea", roles=["boss"])


@pytest.fixture
def rt() -> Iterator[Runtime]:
    Ledger.poison = set()
    with Runtime("memory://", registry=registry, policy=POLICY, master_key=KEY) as runtime:
        runtime.register(Customer, Directory, Ledger)
        yield runtime
    Ledger.poison = set()


def dead_letter(rt: Runtime) -> str:
    """A dead letter of the Ledger (an order it cannot book)."""
    Ledger.poison = {13}
    rt.send(Order("c1", 13), principal=CLERK)
    assert wait_for(lambda: rt.dead_letters())
    return rt.dead_letters()[0].id


def _send(rt: Runtime, p: Principal | None) -> Any:
    return rt.send(Register("c9", "x@example.com"), principal=p)


def _submit(rt: Runtime, p: Principal | None) -> Any:
    return rt.submit(Order("c9", 1), principal=p).get(10)


def _send_async(rt: Runtime, p: Principal | None) -> Any:
    return asyncio.run(rt.send_async(Register("c9", "x@example.com"), principal=p))


def _publish(rt: Runtime, p: Principal | None) -> Any:
    return rt.publish(Ordered("c9", 5), stream="imports", principal=p)


def _query(rt: Runtime, p: Principal | None) -> Any:
    return rt.query(Ledger, principal=p).total()


def _subscribe(rt: Runtime, p: Principal | None) -> Any:
    return rt.subscribe(lambda e, env: None, types=[Ordered], name="mailer", principal=p)


def _subscribe_all(rt: Runtime, p: Principal | None) -> Any:
    return rt.subscribe(lambda e, env: None, name="everything", principal=p)


ACTIONS: dict[str, tuple[Callable[[Runtime, Principal | None], Any], str, str, str]] = {
    # what, (the call, the policy's action, the resource, the audit's action)
    "send": (_send, "send", "tests.customers.Register", "send"),
    "submit": (_submit, "send", "tests.customers.Order", "send"),
    "send_async": (_send_async, "send", "tests.customers.Register", "send"),
    "publish": (_publish, "publish", "cust.Ordered", "publish"),
    "query": (_query, "query", "tests.customers.Ledger", "query"),
    "subscribe": (_subscribe, "subscribe", "cust.Ordered", "subscribe"),
    "subscribe to all": (_subscribe_all, "subscribe", "*", "subscribe"),
}


@pytest.mark.parametrize("what", sorted(ACTIONS))
def test_each_action_is_denied_before_anything_is_done(rt: Runtime, what: str) -> None:
    """A guest may do none of these: `Unauthorized` names principal, action and resource,
    nothing is stored or started, and the denial is in the audit trail."""
    call, action, resource, audited = ACTIONS[what]
    before = rt.store.last_position()
    with pytest.raises(Unauthorized) as info:
        call(rt, GUEST)
    assert isinstance(info.value, PermissionError)
    assert (info.value.principal, info.value.action, info.value.resource) == (
        GUEST,
        action,
        resource,
    )
    assert "'gus' (roles: guest) may not" in str(info.value)
    assert rt.store.last_position() == before
    assert rt.health().consumers.keys() == {"Directory", "Ledger"}
    (denial,) = rt.audit(principal=GUEST)
    assert (denial.action, denial.resource, denial.outcome, denial.roles) == (
        audited,
        resource,
        "denied",
        ("guest",),
    )


@pytest.mark.parametrize("what", sorted(ACTIONS))
def test_each_action_is_done_when_allowed(rt: Runtime, what: str) -> None:
    """A role whose patterns match may do each of them."""
    call = ACTIONS[what][0]
    call(rt, BOSS)
    assert all(e.outcome != "denied" for e in rt.audit())


def test_patterns_match_bare_and_dotted_names(rt: Runtime) -> None:
    """A bare pattern matches a name's last segment (`Register`, `Dir*`), a dotted one the
    whole name (`tests.customers.Order`, `cust.*`); a principal's roles add up."""
    rt.send(Register("c1", "a@example.com"), principal=CLERK)
    last = rt.send(Order("c1", 2), principal=CLERK).position
    rt.subscribe(lambda e, env: None, types=[Ordered], name="mailer", principal=CLERK)
    assert rt.query(Directory, after=last, principal=GUEST).everything()[0] == {
        "c1": "a@example.com"
    }
    with pytest.raises(Unauthorized):
        rt.query(Ledger, principal=Principal("x", roles=["guest", "ops"]))
    both = Principal("y", roles=["guest", "clerk"])
    rt.send(Order("c1", 3), principal=both)
    assert rt.query(Directory, principal=both).everything()


@pytest.mark.parametrize("order", ["redrive", "discard"])
def test_dead_letter_orders_need_the_operate_right(rt: Runtime, order: str) -> None:
    """Only a role that may operate the letter's handler may redrive or discard it; both
    the denial and the order are in the audit trail."""
    letter = dead_letter(rt)
    act = getattr(rt, order)
    with pytest.raises(Unauthorized, match=r"may not operate 'Ledger'"):
        act(letter, principal=CLERK)
    assert [d.id for d in rt.dead_letters()] == [letter]
    Ledger.poison = set()
    assert act(letter, principal=OPS) == (1 if order == "redrive" else 0)  # nothing parked
    assert rt.dead_letters() == []
    trail = [(e.principal, e.action, e.resource, e.outcome) for e in rt.audit()]
    assert trail[-2:] == [("ann", order, "Ledger", "denied"), ("olga", order, "Ledger", "done")]


def test_with_a_policy_every_action_needs_a_principal(rt: Runtime) -> None:
    with pytest.raises(Unauthorized, match="no principal given"):
        rt.send(Register("c1", "a@example.com"))
    (denial,) = rt.audit()
    assert (denial.principal, denial.roles, denial.outcome) == ("", (), "denied")


def test_without_a_policy_everything_is_allowed_and_the_principal_is_kept() -> None:
    """No policy: calls with or without a principal go through; the principal (id and
    roles) is in the metadata of the events it caused, and no command is audited."""
    with Runtime("memory://", registry=registry, master_key=KEY) as rt:
        rt.register(Customer, Directory)
        done = rt.send(Register("c1", "a@example.com"), principal=GUEST)
        rt.send(Order("c1", 3))
        published = rt.publish(Ordered("c1", 4), stream="imports", principal=CLERK)
        assert rt.query(Directory, after=published.position, principal=GUEST).everything()
        envs = rt.read_stream("Customer-c1")
        assert envs[0].metadata["principal"] == {"id": "gus", "roles": ["guest"]}
        assert "principal" not in envs[1].metadata
        assert published.events[0].metadata["principal"] == {"id": "ann", "roles": ["clerk"]}
        assert done.events[0].metadata["pii"] == {"email": "customer_id"}
        assert rt.audit() == []


def test_the_policy_file_is_read_into_the_runtime(tmp_path: Path) -> None:
    """`Policy.from_file` (TOML) gives the runtime its rules; a wrong option is a ValueError."""
    path = tmp_path / "policy.toml"
    path.write_text('[roles.clerk]\nsend = ["Register"]\n')
    with Runtime(
        "memory://", registry=registry, policy=Policy.from_file(path), master_key=KEY
    ) as rt:
        rt.register(Customer)
        rt.send(Register("c1", "a@example.com"), principal=CLERK)
        with pytest.raises(Unauthorized):
            rt.send(Order("c1", 2), principal=CLERK)
    with pytest.raises(ValueError, match=r"Runtime\(policy=...\) must be a Policy"):
        Runtime(policy={"roles": {}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Runtime\(audit=...\) must be True, False or None"):
        Runtime(audit="yes")  # type: ignore[arg-type]


@needs_nats
def test_a_runtimes_own_bus_is_not_held_to_its_policy(
    tmp_path: Path, services: Callable[[str], str]
) -> None:
    """The bus's outbox subscribes to the integration events as the runtime itself: a
    policy applies to principals, not to it; a principal's publish is still checked."""
    from tests.test_bus_support import NATS_URL, Asked

    url = f"sqlite:///{tmp_path / 'b.db'}"
    policy = Policy.from_dict({"roles": {"app": {"publish": ["bustest.*"]}}})
    with Runtime(url, service=services("gov"), bus=NATS_URL, policy=policy) as rt:
        done = rt.publish(Asked(1), stream="S", principal=Principal("svc", roles=["app"]))
        assert done.events[0].metadata["principal"] == {"id": "svc", "roles": ["app"]}
        with pytest.raises(Unauthorized):
            rt.publish(Asked(2), stream="S", principal=GUEST)
        assert wait_for(lambda: (h := rt.health().bus) is not None and h.exported >= 1, 30)
