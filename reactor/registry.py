"""The registry of event types, their schema versions, upcasters and command classes.

A `Registry` is a plain object: `default_registry` serves the decorators, and a Runtime
or a test may hold its own. `catalog()` lists everything it knows.
"""

from __future__ import annotations

import threading
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from reactor.errors import DecodeError, RegistrationError, UnknownEventType

Kind = Literal["domain", "integration", "system"]
KINDS: tuple[Kind, ...] = ("domain", "integration", "system")
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen(kw_only=True)
class EventSpec:
    """How one event class is stored: its type name, schema version and kind."""

    name: str
    version: int
    kind: Kind
    cls: type


@attrs.frozen
class FieldInfo:
    """One field of a cataloged type: its name, its type as text, and whether it has a default."""

    name: str
    type: str
    required: bool


@attrs.frozen(kw_only=True)
class TypeInfo:
    """One catalog entry: an event type (kind domain, integration, system) or a command."""

    name: str
    kind: str
    version: int
    cls: str
    fields: tuple[FieldInfo, ...]
    upcasters: tuple[int, ...]


def qualified_name(cls: type) -> str:
    """`module.QualName` of a class, as errors and the catalog print it."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry:
    """Event types by name and by class, upcaster chains, and command classes.

    Registration happens at import time (decorators) or explicitly; lookups are O(1) and
    safe from any thread. Registering a class again under its own qualified name (a
    re-run notebook cell) replaces it; a different class under a taken name is an error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, EventSpec] = {}
        self._by_class: dict[type, EventSpec] = {}
        self._upcasters: dict[str, dict[int, Upcaster]] = {}
        self._commands: dict[str, type] = {}
        self.generation = 0  # bumped by every event registration: caches check it

    def add_event(self, cls: type, name: str, version: int = 1, kind: Kind = "domain") -> EventSpec:
        """Register `cls` as the current schema of event type `name` at `version`.

        Raises `RegistrationError` for a non-attrs class, a bad name, version or kind, or a
        name already taken by another class.
        """
        _require_attrs(cls, "@event")
        if not isinstance(name, str) or not name or name != name.strip():
            raise RegistrationError(f"event type name must be a non-empty string, got {name!r}")
        if type(version) is not int or version < 1:
            raise RegistrationError(
                f"event type {name!r}: version must be an int >= 1, got {version!r}"
            )
        if kind not in KINDS:
            raise RegistrationError(
                f"event type {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}"
            )
        spec = EventSpec(name=name, version=version, kind=kind, cls=cls)
        with self._lock:
            old = self._by_name.get(name)
            if old is not None and old.cls is not cls:
                if qualified_name(old.cls) != qualified_name(cls):
                    raise RegistrationError(
                        f"event type {name!r} is already registered to {qualified_name(old.cls)}; "
                        f"cannot register {qualified_name(cls)} under the same name (two classes "
                        "under one name: was a module imported twice, e.g. run as a script and "
                        "imported?)"
                    )
                del self._by_class[old.cls]
            if self._by_class.get(cls, spec).name != name:
                raise RegistrationError(
                    f"{qualified_name(cls)} is already registered as {self._by_class[cls].name!r}"
                )
            self._by_name[name] = spec
            self._by_class[cls] = spec
            self.generation += 1
        return spec

    def add_upcaster(self, name: str, from_version: int, fn: Upcaster) -> None:
        """Register `fn` to turn stored data of `name` at `from_version` into `from_version + 1`."""
        if type(from_version) is not int or from_version < 1:
            raise RegistrationError(
                f"upcaster for {name!r}: from_version must be an int >= 1, got {from_version!r}"
            )
        if not callable(fn):
            raise RegistrationError(f"upcaster for {name!r} v{from_version} is not callable")
        with self._lock:
            chain = self._upcasters.setdefault(name, {})
            old = chain.get(from_version)
            if old is not None and qualified_name(old) != qualified_name(fn):  # type: ignore[arg-type]
                raise RegistrationError(
                    f"event type {name!r} already has an upcaster from version {from_version} "
                    f"({qualified_name(old)})"  # type: ignore[arg-type]
                )
            chain[from_version] = fn

    def add_command(self, cls: type) -> None:
        """Register `cls` as a command class (for the catalog)."""
        _require_attrs(cls, "@command")
        with self._lock:
            self._commands[qualified_name(cls)] = cls

    def spec_of(self, cls: type) -> EventSpec:
        """The spec of an event class; `UnknownEventType` saying why if it is not one."""
        try:
            return self._by_class[cls]
        except (KeyError, TypeError):
            raise self._not_an_event(cls) from None

    def _not_an_event(self, cls: object) -> UnknownEventType:
        """Why `cls` has no spec: not a class, redefined, in another registry, or no @event."""
        if not isinstance(cls, type):
            error = UnknownEventType(repr(cls))
            reason = "that is not a class; pass the event class itself"
        else:
            error, name = UnknownEventType(qualified_name(cls)), qualified_name(cls)
            with self._lock:
                specs = list(self._by_name.values())
            newer = [s.name for s in specs if qualified_name(s.cls) == name]
            top = cls.__module__.split(".")[0]
            if newer:
                reason = (
                    f"the class was defined again after it was registered as {newer[0]!r}, and "
                    "the registry holds the newer one (a re-run cell, or a module imported "
                    "twice?); use the current class"
                )
            elif self is not default_registry and cls in default_registry._by_class:
                reason = (
                    "the class is registered in the default registry, not in this one; "
                    "declare it with @event(..., registry=...) of the registry in use"
                )
            elif top == "builtins":
                reason = "a built-in type is not an event type; use an @event class"
            else:
                suggested = cls.__name__ if top == "__main__" else f"{top}.{cls.__name__}"
                reason = (
                    f'the class is not an event type, it lacks @event; declare it with @event("'
                    f'{suggested}") above @attrs.frozen'
                    + ("" if attrs.has(cls) else " (it is not an attrs class yet either)")
                )
        error.args = (f"unknown event type {error.type!r}: {reason}",)  # this case's message
        return error

    def spec_named(self, name: str) -> EventSpec:
        """The spec registered under a type name; `UnknownEventType` if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(name) from None

    def get(self, name: str) -> EventSpec | None:
        """The spec registered under a type name, or None."""
        return self._by_name.get(name)

    def type_names(self, types: Iterable[type | str]) -> list[str]:
        """Type names for a mix of event classes and names (classes must be registered)."""
        return [t if isinstance(t, str) else self.spec_of(t).name for t in types]

    def is_command(self, cls: type) -> bool:
        """Whether `cls` was declared with @command."""
        return self._commands.get(qualified_name(cls)) is cls

    def upcast(self, name: str, version: int, data: dict[str, Any], target: int) -> dict[str, Any]:
        """Run the upcasters of `name` from `version` up to `target`, in order.

        Raises `DecodeError` when a step of the chain is missing or a step fails.
        """
        chain = self._upcasters.get(name, {})
        while version < target:
            fn = chain.get(version)
            if fn is None:
                raise DecodeError(
                    f"stored at version {version}, current version is {target}, and no "
                    f"@upcaster({name!r}, from_version={version}) is registered",
                    type_name=name,
                )
            try:
                data = fn(data)
            except Exception as e:
                raise DecodeError(
                    f"upcaster from version {version} raised {type(e).__name__}: {e}",
                    type_name=name,
                ) from e
            if not isinstance(data, dict):
                raise DecodeError(
                    f"upcaster from version {version} returned {type(data).__name__}, not a dict",
                    type_name=name,
                )
            version += 1
        return data

    def problems(self) -> list[str]:
        """Every inconsistency in the upcaster chains, as sentences (empty when sound)."""
        found = []
        with self._lock:
            chains = {name: dict(chain) for name, chain in self._upcasters.items()}
            specs = dict(self._by_name)
        for name, chain in sorted(chains.items()):
            spec = specs.get(name)
            if spec is None:
                found.append(f"upcasters are registered for {name!r}, but no event class is")
                continue
            too_new = sorted(v for v in chain if v >= spec.version)
            if too_new:
                found.append(
                    f"event type {name!r} is at version {spec.version}, but has upcasters from "
                    f"version(s) {too_new}; an upcaster from k makes version k + 1"
                )
            present = [v for v in chain if v < spec.version]
            if present:
                gaps = [v for v in range(min(present), spec.version) if v not in chain]
                if gaps:
                    found.append(
                        f"event type {name!r}: the upcaster chain to version {spec.version} "
                        f"misses from_version {', '.join(map(str, gaps))}"
                    )
        return found

    def check(self) -> None:
        """Raise `RegistrationError` listing every problem of `problems()`, if any."""
        found = self.problems()
        if found:
            raise RegistrationError("the event registry is inconsistent:\n- " + "\n- ".join(found))

    def catalog(self) -> list[TypeInfo]:
        """Every registered event type and command: name, kind, version, fields, upcasters."""
        with self._lock:
            specs = sorted(self._by_name.values(), key=lambda s: s.name)
            commands = sorted(self._commands.items())
            chains = {name: sorted(chain) for name, chain in self._upcasters.items()}
        entries = [
            TypeInfo(
                name=s.name,
                kind=s.kind,
                version=s.version,
                cls=qualified_name(s.cls),
                fields=_fields(s.cls),
                upcasters=tuple(chains.get(s.name, ())),
            )
            for s in specs
        ]
        entries += [
            TypeInfo(
                name=name, kind="command", version=1, cls=name, fields=_fields(cls), upcasters=()
            )
            for name, cls in commands
        ]
        return entries


def _require_attrs(cls: object, decorator: str) -> None:
    if not isinstance(cls, type) or not attrs.has(cls):
        shown = qualified_name(cls) if isinstance(cls, type) else repr(cls)
        raise RegistrationError(
            f"{decorator} needs an attrs class, got {shown}; decorate it with @attrs.frozen "
            f"first (put {decorator} above @attrs.frozen)"
        )


def _fields(cls: type) -> tuple[FieldInfo, ...]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        hints = {}
    return tuple(
        FieldInfo(
            f.name,
            type_text(hints.get(f.name, f.type if f.type is not None else Any)),
            f.default is attrs.NOTHING,
        )
        for f in attrs.fields(cls)
    )


def type_text(tp: object) -> str:
    """A type hint as code would spell it, with short class names: `list[Line] | None`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None) or tp is None:
        return "None"
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(map(type_text, args))
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else type_text(a) for a in args)
        return f"{type_text(origin)}[{inner}]"
    if isinstance(tp, type):
        return tp.__qualname__
    return str(tp).replace("typing.", "")


default_registry = Registry()
