"""Access control: principals, policies from TOML, dicts and code, and `Unauthorized`."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.errors import ReactorError
from reactor.security.policy import (
    ACTIONS,
    Policy,
    PolicyError,
    Principal,
    Unauthorized,
)

TELLER = Principal("u1", roles=["teller"])


def policy_of(text: str, tmp_path: Path) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return Policy.from_file(path)


def test_principal_keeps_roles_as_a_frozenset_from_any_iterable() -> None:
    """Roles given as a list, a set, a tuple or a generator become the same frozenset."""
    for roles in (["a", "b"], {"a", "b"}, ("b", "a"), (r for r in "ab")):
        assert Principal("u", roles=roles).roles == frozenset({"a", "b"})
    assert Principal("u").roles == frozenset()
    assert Principal("u", ["a"]) == Principal("u", roles={"a"})


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"id": "u", "roles": "clerk"}, TypeError, "roles=['clerk']"),
        ({"id": "u", "roles": ["clerk", ""]}, ValueError, "''"),
        ({"id": "u", "roles": [1]}, ValueError, "1"),
        ({"id": "", "roles": []}, ValueError, "Principal.id"),
        ({"id": None, "roles": []}, ValueError, "Principal.id"),
    ],
)
def test_principal_rejects_bad_values(kwargs: dict, error: type, text: str) -> None:
    """A bare string as roles (it would split into letters), an empty role or id, a non-str."""
    with pytest.raises(error, match=re.escape(text)):
        Principal(**kwargs)


def test_policy_from_file_allows_what_the_roles_list(tmp_path: Path) -> None:
    """A role's send list allows those commands, bare or qualified; nothing else is allowed."""
    policy = policy_of(
        '[roles.teller]\nsend = ["Deposit", "Withdraw"]\nquery = ["Balances"]\n'
        '[roles.auditor]\nsubscribe = ["bank.*"]\noperate = ["*"]\n',
        tmp_path,
    )
    assert policy.allows(TELLER, "send", "Deposit")
    assert policy.allows(TELLER, "send", "bank.commands.Deposit")
    assert policy.allows(TELLER, "query", "reports.Balances")
    assert not policy.allows(TELLER, "send", "bank.commands.Close")
    assert not policy.allows(TELLER, "send", "bank.commands.deposit")  # case-sensitive
    assert not policy.allows(TELLER, "publish", "Deposit")  # another action
    auditor = Principal("a1", roles=["auditor"])
    assert policy.allows(auditor, "subscribe", "bank.Deposited")
    assert not policy.allows(auditor, "subscribe", "shop.bank.Deposited")  # dotted: whole name
    assert not policy.allows(auditor, "subscribe", "Deposited")
    assert policy.allows(auditor, "operate", "Balances")
    both = Principal("u3", roles=["teller", "auditor"])
    assert policy.allows(both, "send", "Withdraw") and policy.allows(both, "operate", "X")
    assert policy.roles == {
        "teller": {"send": ("Deposit", "Withdraw"), "query": ("Balances",)},
        "auditor": {"subscribe": ("bank.*",), "operate": ("*",)},
    }


@pytest.mark.parametrize("action", ACTIONS)
def test_check_raises_unauthorized_for_each_action(action: str) -> None:
    """A denied action of each kind raises `Unauthorized` naming principal, action, resource."""
    policy = Policy({"teller": {a: ["Allowed"] for a in ACTIONS}})
    policy.check(TELLER, action, "x.Allowed")  # type: ignore[arg-type]
    with pytest.raises(Unauthorized) as info:
        policy.check(TELLER, action, "x.Denied")  # type: ignore[arg-type]
    e = info.value
    assert isinstance(e, PermissionError) and isinstance(e, ReactorError)
    assert (e.principal, e.action, e.resource) == (TELLER, action, "x.Denied")
    assert "'u1'" in str(e) and action in str(e) and "'x.Denied'" in str(e)
    assert "teller" in str(e)


def test_no_principal_is_denied_everything_and_told_so() -> None:
    """With a policy, a missing principal may do nothing, even what every role may do."""
    policy = Policy({"anyone": {a: ["*"] for a in ACTIONS}})
    for action in ACTIONS:
        assert not policy.allows(None, action, "Deposit")
    with pytest.raises(Unauthorized, match="no principal given") as info:
        policy.check(None, "send", "bank.Deposit")
    assert info.value.principal is None


def test_a_principal_without_roles_or_with_unknown_roles_may_do_nothing() -> None:
    """Roles the policy does not know grant nothing; the message says when there are none."""
    policy = Policy({"teller": {"send": ["*"]}})
    assert not policy.allows(Principal("u", roles=["guest"]), "send", "Deposit")
    with pytest.raises(Unauthorized, match="has no roles"):
        policy.check(Principal("u"), "send", "Deposit")


def test_an_unknown_action_is_a_policy_error() -> None:
    """Asking about an action outside the five is a mistake, not a denial."""
    with pytest.raises(PolicyError, match="unknown action 'sned'"):
        Policy({}).allows(TELLER, "sned", "Deposit")  # type: ignore[arg-type]


def test_from_dict_reads_the_toml_shape() -> None:
    """`from_dict` takes the parsed document; a missing roles table is an empty policy."""
    policy = Policy.from_dict({"roles": {"teller": {"send": ["Dep*"]}}})
    assert policy.allows(TELLER, "send", "Deposit")
    assert Policy.from_dict({}).roles == {}
    assert "teller" in repr(policy)


@pytest.mark.parametrize(
    ("text", "role", "key", "reason"),
    [
        ('[roles.teller]\nsned = ["Deposit"]\n', "teller", "sned", "did you mean 'send'?"),
        ('[roles.teller]\nsend = "Deposit"\n', "teller", "send", "must be a list"),
        ("[roles.teller]\nsend = [1]\n", "teller", "send", "got 1"),
        ('[roles.teller]\nsend = [""]\n', "teller", "send", "non-empty strings"),
        ('[roles.""]\nsend = ["Deposit"]\n', "", "", "role names must be non-empty"),
        ("[roles]\nteller = 3\n", "teller", "", "must be a table of actions"),
        ("roles = 3\n", "", "", "roles must be a table"),
        ('[role.teller]\nsend = ["Deposit"]\n', "", "", "unknown top-level key(s) ['role']"),
    ],
)
def test_file_errors_name_the_file_role_and_key(
    tmp_path: Path, text: str, role: str, key: str, reason: str
) -> None:
    """Each kind of mistake is reported at load, naming the file, the role and the key."""
    with pytest.raises(PolicyError) as info:
        policy_of(text, tmp_path)
    e = info.value
    assert (e.source, e.role, e.key) == (str(tmp_path / "policy.toml"), role, key)
    assert reason in str(e) and str(tmp_path / "policy.toml") in str(e)
    if role:
        assert f"role {role!r}" in str(e)
    if key:
        assert f"key {key!r}" in str(e)


def test_bad_toml_and_missing_file_name_the_file_and_line(tmp_path: Path) -> None:
    """Broken TOML is reported with its line; an absent file with its path."""
    with pytest.raises(PolicyError, match=r"not valid TOML.*line 2"):
        policy_of("[roles.teller]\nsend = [Deposit]\n", tmp_path)
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        Policy.from_file(tmp_path / "absent.toml")


def test_constructor_errors_name_the_source() -> None:
    """Errors of a policy built in code name the constructor as their source."""
    with pytest.raises(PolicyError, match=r"Policy\(roles=\.\.\.\), role 'x', key 'send'"):
        Policy({"x": {"send": "Deposit"}})
    with pytest.raises(PolicyError, match="roles must be a table"):
        Policy(["teller"])  # type: ignore[arg-type]


NAMES = st.lists(st.sampled_from(["bank", "shop", "a", "commands"]), max_size=3).flatmap(
    lambda mods: st.sampled_from(["Deposit", "Withdraw", "deposit", "Open"]).map(
        lambda cls: ".".join([*mods, cls])
    )
)
PATTERNS = st.sampled_from(
    ["Deposit", "Dep*", "*", "*.Deposit", "bank.*", "bank.Deposit", "?pen", "[DW]*", "a.*.*"]
)


@given(
    st.dictionaries(st.sampled_from(["r1", "r2", "r3"]), st.lists(PATTERNS, max_size=3)),
    st.frozensets(st.sampled_from(["r1", "r2", "r4"])),
    NAMES,
)
def test_allows_agrees_with_fnmatch_on_each_pattern(
    roles: dict[str, list[str]], held: frozenset[str], resource: str
) -> None:
    """The compiled rules decide as matching each pattern alone with `fnmatchcase` would:
    a dotted pattern against the whole name, another against its last segment."""
    policy = Policy({role: {"send": patterns} for role, patterns in roles.items()})
    expected = any(
        fnmatch.fnmatchcase(resource if "." in p else resource.rpartition(".")[2], p)
        for role in held
        for p in roles.get(role, [])
    )
    assert policy.allows(Principal("u", roles=held), "send", resource) == expected
