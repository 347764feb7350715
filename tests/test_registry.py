"""The registry: declaring events, commands and upcasters; its errors and its catalog."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from reactor import (
    Projection,
    RegistrationError,
    Registry,
    Runtime,
    UnknownEventType,
    command,
    event,
    on,
    upcaster,
)


def test_event_registers_name_version_and_kind() -> None:
    reg = Registry()

    @event("shop.OrderPlaced", version=3, kind="integration", registry=reg)
    @attrs.frozen
    class OrderPlaced:
        order_id: str

    spec = reg.spec_of(OrderPlaced)
    assert (spec.name, spec.version, spec.kind, spec.cls) == (
        "shop.OrderPlaced",
        3,
        "integration",
        OrderPlaced,
    )
    assert reg.spec_named("shop.OrderPlaced") is spec
    assert reg.type_names([OrderPlaced, "other.Name"]) == ["shop.OrderPlaced", "other.Name"]


def test_two_classes_under_one_name_are_refused() -> None:
    reg = Registry()

    @event("x.Same", registry=reg)
    @attrs.frozen
    class First:
        a: int

    with pytest.raises(RegistrationError, match=r"'x.Same' is already registered to .*First"):

        @event("x.Same", registry=reg)
        @attrs.frozen
        class Second:
            a: int


def test_redefining_the_same_class_replaces_it() -> None:
    """A class re-defined under its own qualified name (a re-run notebook cell) replaces."""
    reg = Registry()
    classes = []
    for _ in range(2):

        @event("x.Again", registry=reg)
        @attrs.frozen
        class Again:
            a: int

        classes.append(Again)
    assert reg.spec_named("x.Again").cls is classes[1]
    with pytest.raises(
        UnknownEventType, match="defined again after it was registered as 'x.Again'"
    ):
        reg.spec_of(classes[0])


@attrs.frozen
class Plain:
    a: int


class Loose:
    pass


@event("x.InDefault")
@attrs.frozen
class InDefault:
    a: int


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (
            Plain,
            "the class is not an event type, it lacks @event; declare it with "
            '@event("tests.Plain") above @attrs.frozen',
        ),
        (Loose, '@event("tests.Loose") above @attrs.frozen (it is not an attrs class yet either)'),
        (InDefault, "registered in the default registry, not in this one"),
        (int, "a built-in type is not an event type"),
        (Plain(1), "that is not a class; pass the event class itself"),
    ],
)
def test_a_class_that_is_not_an_event_type_says_why(cls: object, reason: str) -> None:
    """Not "import the module that declares it": the class is at hand, it lacks @event."""
    with pytest.raises(UnknownEventType) as info:
        Registry().spec_of(cls)  # type: ignore[arg-type]
    message = str(info.value)
    assert reason in message and "import the module" not in message, message
    assert isinstance(info.value, LookupError)


def test_an_unknown_stored_name_still_says_to_import_its_module() -> None:
    with pytest.raises(UnknownEventType, match="'x.Gone': .* import the module that declares it"):
        Registry().spec_named("x.Gone")


def test_on_a_class_without_event_says_it_lacks_the_decorator() -> None:
    """`@on(Plain)` in a projection names the class and the decorator to add, at register()."""

    class Totals(Projection):
        @on(Plain)
        def _plain(self, e: Plain, env: object) -> None:
            pass

    with Runtime("memory://", registry=Registry()) as rt, pytest.raises(UnknownEventType) as info:
        rt.register(Totals)
    assert "tests.test_registry.Plain" in str(info.value)
    assert '@event("tests.Plain") above @attrs.frozen' in str(info.value)


def test_non_attrs_classes_are_refused() -> None:
    reg = Registry()
    with pytest.raises(RegistrationError, match="@event needs an attrs class.*Plain"):

        @event("x.Plain", registry=reg)
        class Plain:
            pass

    with pytest.raises(RegistrationError, match="@command needs an attrs class"):
        command(registry=reg)(type("Loose", (), {}))


@pytest.mark.parametrize(
    ("name", "version", "kind", "message"),
    [
        ("", 1, "domain", "non-empty string"),
        ("x.A", 0, "domain", "version must be an int >= 1, got 0"),
        ("x.A", "2", "domain", "version must be an int"),
        ("x.A", 1, "weird", "kind must be one of domain, integration, system, got 'weird'"),
    ],
)
def test_bad_declarations_are_refused(name: str, version: object, kind: str, message: str) -> None:
    @attrs.frozen
    class A:
        a: int

    with pytest.raises(RegistrationError, match=message):
        Registry().add_event(A, name, version, kind)  # type: ignore[arg-type]


def test_upcaster_chain_gaps_are_reported_by_check() -> None:
    reg = Registry()

    @event("x.Doc", version=5, registry=reg)
    @attrs.frozen
    class Doc:
        a: int

    for v in (2, 4):
        upcaster("x.Doc", from_version=v, registry=reg)(lambda d: d)
    upcaster("x.Ghost", from_version=1, registry=reg)(lambda d: d)
    upcaster("x.Doc", from_version=5, registry=reg)(lambda d: d)
    problems = reg.problems()
    assert problems == [
        "event type 'x.Doc' is at version 5, but has upcasters from version(s) [5]; "
        "an upcaster from k makes version k + 1",
        "event type 'x.Doc': the upcaster chain to version 5 misses from_version 3",
        "upcasters are registered for 'x.Ghost', but no event class is",
    ]
    with pytest.raises(RegistrationError, match="misses from_version 3"):
        reg.check()


def test_a_sound_chain_passes_check() -> None:
    reg = Registry()

    @event("x.Doc", version=3, registry=reg)
    @attrs.frozen
    class Doc:
        a: int

    upcaster("x.Doc", from_version=2, registry=reg)(lambda d: d)
    reg.check()  # from 2 up: versions below the lowest upcaster are taken never to exist


def test_duplicate_upcasters_are_refused() -> None:
    reg = Registry()

    def one(d: dict) -> dict:
        return d

    def two(d: dict) -> dict:
        return d

    upcaster("x.Doc", from_version=1, registry=reg)(one)
    with pytest.raises(RegistrationError, match="already has an upcaster from version 1"):
        upcaster("x.Doc", from_version=1, registry=reg)(two)


def test_catalog_lists_types_fields_versions_upcasters_and_commands() -> None:
    reg = Registry()

    @event("bank.Deposited", version=2, registry=reg)
    @attrs.frozen
    class Deposited:
        account_id: str
        amount: Decimal
        note: str | None = None

    @upcaster("bank.Deposited", from_version=1, registry=reg)
    def _up(d: dict) -> dict:
        return d

    @command(registry=reg)
    @attrs.frozen
    class Deposit:
        account_id: str

    entries = {e.name: e for e in reg.catalog()}
    dep = entries["bank.Deposited"]
    assert (dep.kind, dep.version, dep.upcasters) == ("domain", 2, (1,))
    assert dep.cls.endswith("Deposited")
    assert [(f.name, f.type, f.required) for f in dep.fields] == [
        ("account_id", "str", True),
        ("amount", "Decimal", True),
        ("note", "str | None", False),
    ]
    (cmd,) = [e for e in entries.values() if e.kind == "command"]
    assert cmd.name.endswith("Deposit") and [f.name for f in cmd.fields] == ["account_id"]
    assert reg.is_command(Deposit) and not reg.is_command(Deposited)
