"""The event catalog of an application: every event and command type its classes use, with
stored name, kind, version, fields, upcasters, producers and consumers; saved as JSON and
compared with a later one to name the changes that would break reading the journal.

An application is a module: its Aggregate, Projection and Saga subclasses are those defined
at its top level (and at the top of a package's submodules), or the list `MODULE:NAME` names.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from reactor.domain import Aggregate, Projection, Saga, _marked
from reactor.errors import ReactorError, UnknownEventType
from reactor.registry import Registry, TypeInfo, default_registry, qualified_name

FORMAT = 1  # of the JSON document; bumped if its shape changes


class AppImportError(ReactorError, ImportError):
    """The application module given to the catalog cannot be imported or holds no app."""


@attrs.frozen(kw_only=True)
class Field:
    """One field: name, type as text, and its default as text (None: it has none)."""

    name: str
    type: str
    required: bool
    default: str | None = None


@attrs.frozen(kw_only=True)
class Entry:
    """One event or command type. `producers` are the aggregates that apply or return an
    event; `consumers` the projections and sagas that handle it, or a command's aggregate.
    Each is written `role:Name` (`aggregate:Order`, `projection:Board`, `saga:Checkout`)."""

    name: str
    kind: str  # domain | integration | system | command
    version: int
    cls: str
    fields: tuple[Field, ...]
    upcasters: tuple[int, ...] = ()
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()


@attrs.frozen
class Change:
    """A difference between two catalogs (or a flaw of one), and whether it breaks reading
    what is stored or delivering what is consumed."""

    breaking: bool
    type: str
    message: str

    def __str__(self) -> str:
        return f"{'breaking' if self.breaking else 'change'}: {self.type}: {self.message}"


@attrs.frozen(kw_only=True)
class App:
    """The classes of an application, and the registry its types are declared in."""

    name: str
    classes: tuple[type, ...]
    modules: tuple[types.ModuleType, ...]
    registry: Registry = default_registry


def load_app(spec: str, registry: str | None = None) -> App:
    """Import the application `MODULE` or `MODULE:NAME` (NAME: a list of its classes);
    `registry` names a Registry in MODULE (default: the global one). `AppImportError`,
    in one line, if it does not import or holds no Aggregate, Projection or Saga."""
    name, _, listed = spec.partition(":")
    module = _import(name)
    modules = [module] if listed else [module, *_submodules(module)]
    classes = tuple(_listed(module, listed) if listed else _defined(modules))
    if not classes:
        raise AppImportError(f"{spec} defines no Aggregate, Projection or Saga subclass")
    found = default_registry if registry is None else getattr(module, registry, None)
    if not isinstance(found, Registry):
        raise AppImportError(f"{name}.{registry} is not a reactor Registry")
    return App(name=spec, classes=classes, modules=tuple(modules), registry=found)


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as e:
        reason = (str(e).splitlines() or [""])[0]
        raise AppImportError(
            f"cannot import app module {name!r}: {type(e).__name__}: {reason} (check the module "
            "path; run from the directory that holds it, or install it)"
        ) from e


def _submodules(package: types.ModuleType) -> Iterator[types.ModuleType]:
    """The modules of a package (not `__main__`: that would run it)."""
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), f"{package.__name__}."):
        if not info.name.endswith(".__main__"):
            yield _import(info.name)


def _listed(module: types.ModuleType, attribute: str) -> Iterator[type]:
    listed = getattr(module, attribute, None)
    if not isinstance(listed, Iterable):
        raise AppImportError(f"{module.__name__}:{attribute} is not a list of classes")
    for cls in listed:
        if not _is_domain(cls):
            raise AppImportError(
                f"{module.__name__}:{attribute} holds {cls!r}, which is not an Aggregate, "
                "Projection or Saga subclass"
            )
        yield cls


def _defined(modules: Iterable[types.ModuleType]) -> Iterator[type]:
    """The Aggregate, Projection and Saga subclasses defined at the top of `modules`."""
    for module in modules:
        for value in vars(module).values():
            if _is_domain(value) and value.__module__ == module.__name__:
                yield value


def _is_domain(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Aggregate | Projection | Saga)


def build(app: App) -> list[Entry]:
    """The catalog of `app`: events first, then commands, each by name. `AppImportError` if
    a class it uses is not registered (declared in another registry?)."""
    producers: dict[type, set[str]] = {}
    consumers: dict[type, set[str]] = {}
    for cls in app.classes:
        who = f"{_role(cls)}:{cls.__reactor_name__}"  # type: ignore[attr-defined]
        if issubclass(cls, Aggregate):
            handlers = _marked(cls, "__reactor_handles__")
            for command in handlers:
                consumers.setdefault(command, set()).add(who)
            made = [*_marked(cls, "__reactor_applies__")]
            made += [t for fn in handlers.values() for t in _returned(fn)]
            for event in made:
                if _is_event(app.registry, event):
                    producers.setdefault(event, set()).add(who)
        else:
            for event in _marked(cls, "__reactor_on__"):
                consumers.setdefault(event, set()).add(who)
    infos = {info.cls: info for info in app.registry.catalog()}
    used = sorted({*producers, *consumers, *_declared(app)}, key=qualified_name)
    entries = [
        _entry(app, cls, infos, producers.get(cls, set()), consumers.get(cls, set()))
        for cls in used
    ]
    return sorted(entries, key=lambda e: (e.kind == "command", e.name))


def _role(cls: type) -> str:
    if issubclass(cls, Aggregate):
        return "aggregate"
    return "saga" if issubclass(cls, Saga) else "projection"


def _is_event(registry: Registry, cls: type) -> bool:
    try:
        registry.spec_of(cls)
    except UnknownEventType:
        return False
    return True


def _declared(app: App) -> Iterator[type]:
    """Event and command classes defined in the application's modules."""
    registry = app.registry
    for module in app.modules:
        for value in vars(module).values():
            mine = isinstance(value, type) and value.__module__ == module.__name__
            if mine and (registry.is_command(value) or _is_event(registry, value)):
                yield value


def _returned(fn: Any) -> Iterator[type]:
    """The classes a handler's return annotation names (`A | B | None`, `list[A]`, ...)."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve says nothing
        return
    todo = [hint]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and attrs.has(tp):
            yield tp
        todo.extend(typing.get_args(tp))


def _entry(
    app: App, cls: type, infos: dict[str, TypeInfo], producers: set[str], consumers: set[str]
) -> Entry:
    registry = app.registry
    if _is_event(registry, cls) or registry.is_command(cls):
        info = infos[qualified_name(cls)]
    elif producers or not all(who.startswith("aggregate:") for who in consumers):
        raise AppImportError(
            f"{qualified_name(cls)} (used by {', '.join(sorted(producers | consumers))}) is "
            "not a registered event type: declare it with @event, or name the app's registry "
            "with --registry NAME"
        )
    else:  # a command an aggregate handles, not declared with @command: described the same
        scratch = Registry()
        scratch.add_command(cls)
        info = scratch.catalog()[0]
    is_event = info.kind != "command"
    defaults = {a.name: _default(a.default) for a in attrs.fields(cls)}
    return Entry(
        name=info.name,
        kind=info.kind,
        version=info.version,
        cls=info.cls,
        fields=tuple(
            Field(name=f.name, type=f.type, required=f.required, default=defaults[f.name])
            for f in info.fields
        ),
        upcasters=info.upcasters,
        producers=tuple(sorted(producers)) if is_event else (),
        consumers=tuple(sorted(consumers)),
    )


def _default(default: Any) -> str | None:
    if default is attrs.NOTHING:
        return None
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return f"{getattr(default.factory, '__qualname__', repr(default.factory))}()"
    return repr(default)


# -- saving and comparing ---------------------------------------------------------------------


def to_json(app: str, entries: Iterable[Entry]) -> dict[str, Any]:
    """The catalog as a JSON document (what `reactor catalog --json` prints)."""
    return {"format": FORMAT, "app": app, "types": [attrs.asdict(e) for e in entries]}


def from_json(document: Any) -> list[Entry]:
    """The entries of a saved catalog; `ValueError` saying what is wrong with it."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a catalog of format {FORMAT} (from `reactor catalog --json`)")
    try:
        return [
            Entry(
                **{
                    **t,
                    "fields": tuple(Field(**f) for f in t["fields"]),
                    "upcasters": tuple(t["upcasters"]),
                    "producers": tuple(t["producers"]),
                    "consumers": tuple(t["consumers"]),
                }
            )
            for t in document["types"]
        ]
    except (KeyError, TypeError) as e:
        raise ValueError(f"a type entry is malformed: {e!r}") from e


def check(old: Iterable[Entry], new: Iterable[Entry]) -> list[Change]:
    """What changed from the saved catalog `old` to `new`, breaking changes first:
    an event type removed or its version lowered; a field removed, renamed, retyped or added
    without a default at the same version; a version raised without an upcaster from each
    older one; a domain event consumed that nothing produces. Commands are not stored, so
    their changes are listed but never breaking."""
    before, after = {e.name: e for e in old}, {e.name: e for e in new}
    changes = [_removed(before[n]) for n in sorted(before.keys() - after.keys())]
    changes += [
        Change(False, n, f"new {after[n].kind} type, version {after[n].version}")
        for n in sorted(after.keys() - before.keys())
    ]
    for n in sorted(before.keys() & after.keys()):
        changes += _changed(before[n], after[n])
    changes += unproduced(after.values())
    return sorted(changes, key=lambda c: not c.breaking)


def _removed(was: Entry) -> Change:
    if was.kind == "command":
        return Change(False, was.name, "command type removed")
    why = "events of it stored in the journal can no longer be read"
    return Change(True, was.name, f"{was.kind} type removed: {why}")


def _changed(was: Entry, now: Entry) -> list[Change]:
    name, stored = now.name, now.kind != "command"
    changes = []
    if was.kind != now.kind:
        changes.append(Change(False, name, f"kind {was.kind} -> {now.kind}"))
    if now.version < was.version:
        lowered = (
            f"version lowered from {was.version} to {now.version}: events stored at version "
            f"{was.version} cannot be read"
        )
        changes.append(Change(stored, name, lowered))
    elif now.version > was.version:
        missing = [v for v in range(was.version, now.version) if v not in now.upcasters]
        raised = f"version raised from {was.version} to {now.version}"
        if missing:
            froms = ", ".join(map(str, missing))
            raised += (
                f" without an @upcaster from version {froms}: events stored at "
                f"{'that version' if len(missing) == 1 else 'those versions'} cannot be read"
            )
        changes.append(Change(stored and bool(missing), name, raised))
    else:
        changes += _fields_changed(was, now, stored)
    return changes


def _fields_changed(was: Entry, now: Entry, stored: bool) -> list[Change]:
    """Field changes at the same version: breaking for a stored type if old data no longer
    fits (the fix: raise the version and add an @upcaster from the old one)."""
    name, v = now.name, now.version
    fix = (
        f" at the same version {v}: raise the version and add @upcaster(from_version={v})"
        if stored
        else " (a command is not stored: only its senders change with it)"
    )
    old = {f.name: f for f in was.fields}
    new = {f.name: f for f in now.fields}
    removed = [f for f in was.fields if f.name not in new]
    added = [f for f in now.fields if f.name not in old]
    changes = []
    for f in removed:
        twin = next((a for a in added if a.type == f.type), None)
        if twin is not None:  # the same type in place of the old name: a rename
            added.remove(twin)
            changes.append(Change(stored, name, f"field {f.name!r} renamed to {twin.name!r}{fix}"))
        else:
            changes.append(Change(stored, name, f"field {f.name!r} removed{fix}"))
    for f in now.fields:
        if f.name in old and old[f.name].type != f.type:
            retyped = f"field {f.name!r} retyped from {old[f.name].type} to {f.type}{fix}"
            changes.append(Change(stored, name, retyped))
    for f in added:
        if f.required:
            changes.append(Change(stored, name, f"field {f.name!r} added without a default{fix}"))
        else:
            changes.append(Change(False, name, f"new optional field {f.name!r} = {f.default}"))
    return changes


def unproduced(entries: Iterable[Entry]) -> list[Change]:
    """Domain events that a projection or saga consumes but no aggregate produces: nothing
    would ever deliver them. Integration events (imported from another service) and system
    events (a saga's deadlines) come from elsewhere."""
    return [
        Change(
            True,
            e.name,
            f"consumed by {', '.join(e.consumers)} but nothing produces it: no aggregate applies "
            "it or returns it (annotate the handler's return type), and it is not "
            'kind="integration" (imported from another service)',
        )
        for e in entries
        if e.kind == "domain" and e.consumers and not e.producers
    ]
