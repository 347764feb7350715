"""Commands: which aggregate handles a command, which stream it goes to, and the route
that takes it there.

`CommandRoute` is the seam where a command leaves this module: `LocalRoute` hands it to the
aggregate host of this process; a cluster routes it to the node that owns its shard.
"""

from __future__ import annotations

import typing
import uuid
from typing import Any, Protocol

import attrs

from reactor.actors.host import AggregateHost
from reactor.actors.messages import Handle
from reactor.domain import Aggregate
from reactor.errors import InvalidCommand, RegistrationError, UnknownCommand
from reactor.registry import qualified_name
from reactor.specs import AggregateType

KEY_TYPES = (str, int, uuid.UUID)  # what may name an aggregate instance
_BLANK = frozenset(" \t\n\r\x0b\x0c")  # a key starting with none of these is not blank


class CommandRoute(Protocol):
    """Where a checked command goes: to the actor of `stream_id`, wherever it lives."""

    def deliver(self, spec: AggregateType, stream_id: str, handle: Handle) -> None: ...


class LocalRoute:
    """Every aggregate lives in this process."""

    def __init__(self, host: AggregateHost) -> None:
        self.host = host

    def deliver(self, spec: AggregateType, stream_id: str, handle: Handle) -> None:
        self.host.route(spec, stream_id, handle)


class Commands:
    """The registered aggregates, by the command classes they handle and by name."""

    def __init__(self) -> None:
        self._by_command: dict[type, AggregateType] = {}
        self._by_name: dict[str, AggregateType] = {}

    def __iter__(self) -> typing.Iterator[AggregateType]:
        return iter(self._by_name.values())

    def register(self, cls: type[Aggregate], snapshot_every: int | None) -> None:
        """Add an aggregate class; `RegistrationError` if another class has its name (and so
        its streams) or handles one of its commands, or if its key fields disagree."""
        spec = cls.__reactor_type__(snapshot_every)
        other = self._by_name.get(spec.name)
        if other is not None and other.cls is not cls:
            raise RegistrationError(
                f"{qualified_name(cls)} and {qualified_name(other.cls)} are both named "
                f"{spec.name!r}, so they would share the streams {spec.name}-<key>: give one a "
                f'name of its own: class {cls.__name__}(Aggregate, key="{spec.key}", '
                f'name="<name>")'
            )
        for command_type in spec.handlers:
            taken = self._by_command.get(command_type)
            if taken is not None and taken.cls is not cls:
                raise RegistrationError(
                    f"{qualified_name(command_type)} is handled by both "
                    f"{qualified_name(taken.cls)} and {qualified_name(cls)}"
                )
        _check_key_types(spec)
        self._by_name[spec.name] = spec
        for command_type in spec.handlers:
            self._by_command[command_type] = spec

    def spec(self, command: object) -> AggregateType:
        """The aggregate that handles `command`; `UnknownCommand` if none does."""
        spec = self._by_command.get(type(command))
        if spec is None:
            known = ", ".join(sorted(c.__name__ for c in self._by_command)) or "none"
            raise UnknownCommand(
                f"no registered aggregate handles {qualified_name(type(command))} "
                f"(commands handled: {known}); register() its aggregate first"
            )
        return spec

    @staticmethod
    def stream_of(spec: AggregateType, command: object) -> str:
        """The stream of the aggregate `command` is for; `InvalidCommand` if its key is
        missing, blank or not a str, an int or a UUID."""
        key = getattr(command, spec.key)
        if type(key) is str and key and key[0] not in _BLANK:  # the common case, no call
            return spec.stream_id(key)
        if isinstance(key, str) and key.strip():
            return spec.stream_id(key)
        if isinstance(key, int | uuid.UUID) and not isinstance(key, bool):
            return spec.stream_id(key)
        problem = (
            "is missing (None)"
            if key is None
            else "is blank"
            if isinstance(key, str)
            else f"is a {type(key).__name__} ({key!r}): a key is a str, an int or a UUID"
        )
        raise InvalidCommand(
            f"{type(command).__name__}.{spec.key} {problem}; it names the {spec.name} "
            f"aggregate the command is for, so nothing was sent"
        )


def _check_key_types(spec: AggregateType) -> None:
    """The key fields of an aggregate's commands must not mix key types: an int key 5 and a
    str key "5" would name the same stream."""
    declared: dict[type, list[str]] = {}
    for command_type in spec.handlers:
        hint = _hint(command_type, spec.key)
        if hint in KEY_TYPES:
            declared.setdefault(hint, []).append(command_type.__name__)
    if len(declared) > 1:
        mixed = "; ".join(f"{t.__name__} in {', '.join(names)}" for t, names in declared.items())
        raise RegistrationError(
            f"{qualified_name(spec.cls)}'s commands declare its key {spec.key!r} with different "
            f"types ({mixed}): 5 and '5' would name the same stream {spec.name}-5; declare "
            "one type in every command"
        )


def _hint(cls: type, field: str) -> Any:
    try:
        return typing.get_type_hints(cls).get(field)
    except Exception:  # unresolvable annotations: checked at send time only
        return attrs.fields_dict(cls)[field].type if attrs.has(cls) else None
