"""Access control: who (`Principal`) may do what (`Policy`), and the `Unauthorized` refusal.

A policy maps role names to five actions, each a list of glob patterns over resource
names; with a policy, anything no role of the principal allows is denied.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import attrs

from reactor.errors import ReactorError

Action = Literal["send", "publish", "query", "subscribe", "operate"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# What each action's patterns are matched against (the resource the runtime passes).
RESOURCES: Mapping[Action, str] = {
    "send": "command class names (bare `Deposit` or qualified `bank.commands.Deposit`)",
    "publish": "stored event type names (`bank.Deposited`)",
    "query": "projection class names",
    "subscribe": "stored event type names",
    "operate": "dead-letter handler names (a projection or saga class name, a subscriber name)",
}


class PolicyError(ReactorError, ValueError):
    """A policy (its file, dict or constructor arguments) is malformed; names where."""

    def __init__(self, source: str, reason: str, *, role: str = "", key: str = "") -> None:
        self.source, self.reason, self.role, self.key = source, reason, role, key
        where = "".join((f", role {role!r}" if role else "", f", key {key!r}" if key else ""))
        super().__init__(f"{source}{where}: {reason}")


def _roles(roles: Iterable[str]) -> frozenset[str]:
    if isinstance(roles, str | bytes):  # frozenset("clerk") would be five one-letter roles
        raise TypeError(
            f"Principal roles must be an iterable of role names, got the string {roles!r}; "
            f"write roles=[{roles!r}]"
        )
    out = frozenset(roles)
    bad = sorted(repr(r) for r in out if not isinstance(r, str) or not r.strip())
    if bad:
        raise ValueError(f"Principal roles must be non-empty strings, got {', '.join(bad)}")
    return out


@attrs.frozen
class Principal:
    """Who acts: an id (a user, a service) and the role names the policy grants rights to.

    `roles` accepts any iterable of role names (a list, a set) and is kept as a frozenset.
    """

    id: str = attrs.field()
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_roles)

    @id.validator
    def _check_id(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Principal.id must be a non-empty str, got {value!r}")


class Unauthorized(ReactorError, PermissionError):
    """A policy denied `principal` the `action` on `resource`; nothing was done.

    `principal` is None when none was given (with a policy, every action needs one).
    """

    def __init__(self, principal: Principal | None, action: str, resource: str) -> None:
        self.principal, self.action, self.resource = principal, action, resource
        if principal is None:
            reason = (
                f"{action} {resource!r} denied: no principal given (the runtime has a policy, "
                "so every action needs principal=Principal(id, roles=[...]))"
            )
        elif not principal.roles:
            reason = f"principal {principal.id!r} has no roles, so may not {action} {resource!r}"
        else:
            roles = ", ".join(sorted(principal.roles))
            reason = (
                f"principal {principal.id!r} (roles: {roles}) may not {action} {resource!r}: "
                f"no pattern in the {action!r} lists of its roles matches it"
            )
        super().__init__(reason)


@attrs.frozen
class _Rule:
    """The patterns of one role for one action, compiled: bare ones match a name's last
    dotted segment, dotted ones the whole name."""

    patterns: tuple[str, ...]
    bare: re.Pattern[str] | None
    full: re.Pattern[str] | None

    @classmethod
    def of(cls, patterns: tuple[str, ...]) -> _Rule:
        def compiled(group: list[str]) -> re.Pattern[str] | None:
            return re.compile("|".join(map(fnmatch.translate, group))) if group else None

        return cls(
            patterns,
            compiled([p for p in patterns if "." not in p]),
            compiled([p for p in patterns if "." in p]),
        )

    def matches(self, resource: str) -> bool:
        if self.full is not None and self.full.match(resource):
            return True
        return self.bare is not None and self.bare.match(resource.rpartition(".")[2]) is not None


class Policy:
    """Which role may do which action on which resources; everything else is denied.

    `roles` maps a role name to `{action: [glob pattern, ...]}` (actions: `ACTIONS`; what
    each matches: `RESOURCES`). Patterns follow `fnmatch`, case-sensitive; a pattern with a
    dot is matched against the whole dotted name (`bank.*`), one without against the last
    segment only (`Deposit`, `*`), so `Deposit` allows `bank.commands.Deposit`.
    Raises `PolicyError` naming the source, role and key of the first mistake.
    """

    def __init__(
        self, roles: Mapping[str, Mapping[str, Any]], *, source: str = "Policy(roles=...)"
    ) -> None:
        self.source = source
        if not isinstance(roles, Mapping):
            raise PolicyError(source, f"roles must be a table of roles, got {_kind(roles)}")
        self._rules: dict[tuple[str, str], _Rule] = {}
        for role, actions in roles.items():
            for action, patterns in _role_actions(source, role, actions).items():
                self._rules[role, action] = _Rule.of(patterns)
        self._roles = frozenset(roles)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "policy dict") -> Policy:
        """The policy of a parsed document `{"roles": {role: {action: [pattern, ...]}}}`."""
        if not isinstance(data, Mapping):
            raise PolicyError(source, f"expected a table with a 'roles' table, got {_kind(data)}")
        extra = sorted(set(data) - {"roles"})
        if extra:
            raise PolicyError(
                source, f"unknown top-level key(s) {extra}: a policy has only [roles.NAME] tables"
            )
        return cls(data.get("roles", {}), source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Policy:
        """The policy of a TOML file of `[roles.NAME]` tables (`send = ["Deposit"]`)."""
        source = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise PolicyError(source, f"cannot read the policy file: {e.strerror or e}") from e
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(source, f"not valid TOML: {e}") from e
        return cls.from_dict(data, source=source)

    @property
    def roles(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """The patterns of each role by action (a copy)."""
        out: dict[str, dict[str, tuple[str, ...]]] = {role: {} for role in self._roles}
        for (role, action), rule in self._rules.items():
            out[role][action] = rule.patterns
        return out

    def allows(self, principal: Principal | None, action: Action, resource: str) -> bool:
        """Whether some role of `principal` allows `action` on `resource` (never for None).

        O(roles of the principal); raises `PolicyError` for an action not in `ACTIONS`.
        """
        if action not in RESOURCES:
            raise PolicyError(self.source, f"unknown action {action!r}: use one of {ACTIONS}")
        if principal is None:
            return False
        for role in principal.roles:
            rule = self._rules.get((role, action))
            if rule is not None and rule.matches(resource):
                return True
        return False

    def check(self, principal: Principal | None, action: Action, resource: str) -> None:
        """Return if `allows(...)`, else raise `Unauthorized` naming all three."""
        if not self.allows(principal, action, resource):
            raise Unauthorized(principal, action, resource)

    def __repr__(self) -> str:
        return f"Policy(source={self.source!r}, roles={sorted(self._roles)})"


def _role_actions(source: str, role: object, actions: object) -> dict[str, tuple[str, ...]]:
    """The validated `{action: patterns}` of one role."""
    if not isinstance(role, str) or not role.strip():
        raise PolicyError(source, f"role names must be non-empty strings, got {role!r}")
    if not isinstance(actions, Mapping):
        raise PolicyError(
            source,
            f"must be a table of actions ({', '.join(ACTIONS)}), got {_kind(actions)}",
            role=role,
        )
    out = {}
    for key, patterns in actions.items():
        if key not in RESOURCES:
            near = difflib.get_close_matches(str(key), ACTIONS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise PolicyError(
                source,
                f"unknown action; {hint}the actions are {', '.join(ACTIONS)}",
                role=role,
                key=str(key),
            )
        if not isinstance(patterns, list | tuple):
            raise PolicyError(
                source,
                f"must be a list of glob patterns, got {_kind(patterns)}",
                role=role,
                key=key,
            )
        for p in patterns:
            if not isinstance(p, str) or not p.strip():
                raise PolicyError(
                    source, f"patterns must be non-empty strings, got {p!r}", role=role, key=key
                )
        out[key] = tuple(patterns)
    return out


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
