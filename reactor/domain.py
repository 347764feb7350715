"""The user API for the domain: `Aggregate`, `Projection`, `Saga`, and the `handles`,
`applies` and `on` decorators that mark their methods.

Classes declare; `Runtime.register` turns them into the specs the actors run.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

import attrs

from reactor.errors import RegistrationError
from reactor.faults import RetryPolicy
from reactor.registry import Registry, qualified_name
from reactor.sagas import Dispatch, SagaHandler, SagaManager
from reactor.specs import AggregateType, ConsumerKind, ConsumerType

F = TypeVar("F", bound=Callable[..., Any])


def handles(command_type: type) -> Callable[[F], F]:
    """Mark an Aggregate method as the handler of `command_type`.

    It gets `(self, command)` and returns an event, a list of events or None; it must not
    change `self` (appliers do). `raise Rejected(...)` refuses the command.
    """

    def mark(fn: F) -> F:
        fn.__reactor_handles__ = command_type  # type: ignore[attr-defined]
        return fn

    return mark


def applies(event_type: type) -> Callable[[F], F]:
    """Mark an Aggregate method as the applier of `event_type`: `(self, event) -> None`.

    Appliers run on replay too, so they only change state: no side effects, no raising.
    """

    def mark(fn: F) -> F:
        fn.__reactor_applies__ = event_type  # type: ignore[attr-defined]
        return fn

    return mark


def on(event_type: type, *, start: bool = False) -> Callable[[F], F]:
    """Mark a Projection method (`(self, event, envelope)`) as the handler of `event_type`.

    `start=True` is for sagas: the event starts a new instance.
    """

    def mark(fn: F) -> F:
        fn.__reactor_on__ = (event_type, start)  # type: ignore[attr-defined]
        return fn

    return mark


def _marked(cls: type, attribute: str) -> dict[Any, Callable[..., Any]]:
    """Methods of `cls` (and its bases) carrying `attribute`, by what they are marked with."""
    found: dict[Any, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for member in vars(klass).values():
            mark = getattr(member, attribute, None)
            if mark is not None:
                found[mark[0] if isinstance(mark, tuple) else mark] = member
    return found


def _require_key(cls: type, handled: Iterable[type], key: str, role: str) -> None:
    """Every class `cls` handles must carry its key field."""
    for t in handled:
        if not attrs.has(t) or key not in attrs.fields_dict(t):
            raise RegistrationError(
                f"{qualified_name(cls)} handles {qualified_name(t)}, which has no "
                f"field {key!r} (the {role}'s key)"
            )


def _state_hints(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:
        raise RegistrationError(
            f"cannot resolve the annotations of {qualified_name(cls)}: {e}"
        ) from e
    return {k: v for k, v in hints.items() if typing.get_origin(v) is not ClassVar}


class _Keyed:
    """`key=` (the field naming the instance) and `name=` (default: the class name), as
    class keyword arguments."""

    __reactor_key__: ClassVar[str | None] = None
    __reactor_name__: ClassVar[str] = ""

    def __init_subclass__(cls, *, key: str | None = None, name: str | None = None, **kw: Any):
        super().__init_subclass__(**kw)
        if key is not None:
            cls.__reactor_key__ = key
        cls.__reactor_name__ = name or cls.__name__

    @classmethod
    def _key(cls, base: str, field: str) -> str:
        """The declared key; `RegistrationError` saying how to declare it if there is none."""
        if cls.__reactor_key__ is None:
            raise RegistrationError(
                f"{qualified_name(cls)} has no key: declare it as "
                f'class {cls.__name__}({base}, key="<{field}>")'
            )
        return cls.__reactor_key__


class Aggregate(_Keyed):
    """Base of event-sourced aggregates: `class Account(Aggregate, key="account_id")`.

    `key` names the command field that picks the instance; the stream id is
    `"<name>-<key value>"`, `name` defaulting to the class name. `__init__` takes no
    arguments and sets the initial state. `snapshot_every = N` snapshots every N events.
    Class-level annotations give state attributes their types for snapshots.
    """

    snapshot_every: ClassVar[int | None] = None

    @classmethod
    def __reactor_type__(cls, snapshot_every: int | None) -> AggregateType:
        key = cls._key("Aggregate", "command field")
        handlers = _marked(cls, "__reactor_handles__")
        if not handlers:
            raise RegistrationError(f"{qualified_name(cls)} has no @handles(Command) method")
        _require_key(cls, handlers, key, "aggregate")
        return AggregateType(
            cls=cls,
            name=cls.__reactor_name__ or cls.__name__,
            key=key,
            handlers=handlers,
            appliers=_marked(cls, "__reactor_applies__"),
            snapshot_every=cls.snapshot_every if cls.snapshot_every is not None else snapshot_every,
            state_hints=_state_hints(cls),
        )


class Projection:
    """Base of read models: `@on(Event)` methods `(self, event, envelope)` build state and
    public methods answer queries (`rt.query(Projection, after=position).method(...)`).

    `durable = True` saves state and checkpoint together in the store (every
    `checkpoint_every` events and at stop), so a restart resumes without replay; otherwise
    the projection replays the journal at every start. A handler that raises is retried
    by `retry` (a RetryPolicy; default: the Runtime's), then dead-lettered. Class-level
    annotations give state attributes their types.
    """

    durable: ClassVar[bool] = False
    checkpoint_every: ClassVar[int] = 100
    retry: ClassVar[RetryPolicy | None] = None  # None: the Runtime's retry policy
    __reactor_name__: ClassVar[str] = "Projection"

    def __init_subclass__(cls, *, name: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.__reactor_name__ = name or cls.__name__

    @classmethod
    def __reactor_type__(cls, registry: Registry) -> ConsumerType:
        marked = _marked(cls, "__reactor_on__")
        if not marked:
            raise RegistrationError(f"{qualified_name(cls)} has no @on(Event) method")
        handlers = {registry.spec_of(t).name: fn for t, fn in marked.items()}
        queries = frozenset(
            n
            for n in dir(cls)
            if not n.startswith("_")
            and callable(getattr(cls, n))
            and not hasattr(getattr(cls, n), "__reactor_on__")
        )
        return ConsumerType(
            kind=ConsumerKind.PROJECTION,
            cls=cls,
            label=cls.__reactor_name__,
            handlers=handlers,
            types=frozenset(handlers),
            durable=cls.durable,
            checkpoint_every=cls.checkpoint_every,
            state_hints=_state_hints(cls),
            queries=queries,
            retry=cls.retry,
        )


class Saga(_Keyed):
    """Base of sagas (process managers): `class Checkout(Saga, key="order_id")`.

    One instance per value of the `key` field of the events it handles. `@on(Event,
    start=True)` handlers start an instance; other `@on` handlers act on started ones.
    Handlers get `(event, ctx)`: `ctx.send(cmd)`, `ctx.schedule(delay, event)` (a deadline,
    handed back to this instance), `ctx.cancel(timer_id)`, `ctx.done()`. A handler is all or
    nothing; its state (class-level annotations give the types), handled positions and
    deadlines are saved with its checkpoint (every `checkpoint_every` events and at stop),
    so a restart resumes each instance where it stood; events since are redelivered, and
    the commands and deadlines they cause carry derived ids, so nothing happens twice.
    """

    retry: ClassVar[RetryPolicy | None] = None  # None: the Runtime's retry policy
    # Events between checkpoints: redelivered after a crash, which is safe (derived ids).
    checkpoint_every: ClassVar[int] = 100

    @classmethod
    def __reactor_type__(cls, registry: Registry, send: Dispatch) -> ConsumerType:
        """The consumer that runs this saga's instances, sending commands through `send`;
        `RegistrationError` if the class is ill-formed."""
        key = cls._key("Saga", "event field")
        handlers = {
            t: SagaHandler(fn, fn.__reactor_on__[1])  # type: ignore[attr-defined]
            for t, fn in _marked(cls, "__reactor_on__").items()
        }
        if not any(h.start for h in handlers.values()):
            raise RegistrationError(f"{qualified_name(cls)} has no @on(Event, start=True) handler")
        _require_key(cls, handlers, key, "saga")
        hints = _state_hints(cls)
        names = frozenset(registry.spec_of(t).name for t in handlers)
        label = cls.__reactor_name__

        def factory() -> SagaManager:
            return SagaManager(cls, label, key, handlers, hints, send)

        return ConsumerType(
            kind=ConsumerKind.SAGA,
            cls=cls,
            label=label,
            handlers=dict.fromkeys(names, SagaManager.on_event),
            types=names,
            durable=True,
            checkpoint_every=cls.checkpoint_every,
            state_hints=hints,
            retry=cls.retry,
            factory=factory,
        )
