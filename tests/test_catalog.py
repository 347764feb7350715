"""The catalog: `reactor catalog --app MODULE` lists an application's event and command
types (fields, defaults, upcasters, producers, consumers) as a table, JSON or Markdown;
`reactor catalog check` names each breaking change since a saved catalog and exits 1;
a module that does not import is one line and exit status 2."""

from __future__ import annotations

import importlib
import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reactor.catalog import AppImportError, Change, build, check, from_json, load_app, to_json
from reactor.cli import main

_names = itertools.count()

HEAD = """
import attrs
from reactor import (Aggregate, Projection, Registry, Saga, applies, command, event, handles,
                     on, upcaster)

registry = Registry()
"""

APP = (
    HEAD
    + """
@event("t.Placed", registry=registry)
@attrs.frozen
class Placed:
    order_id: str
    amount: int
    note: str = ""
    tags: list = attrs.Factory(list)

@event("t.Shipped", version=2, registry=registry)
@attrs.frozen
class Shipped:
    order_id: str
    carrier: str | None = "post"

@upcaster("t.Shipped", from_version=1, registry=registry)
def _(data):
    return {**data, "carrier": "post"}

@event("t.Paid", kind="integration", registry=registry)
@attrs.frozen
class Paid:
    order_id: str

@event("t.Audited", registry=registry)
@attrs.frozen
class Audited:
    order_id: str

@command(registry=registry)
@attrs.frozen
class Place:
    order_id: str
    amount: int

@attrs.frozen
class Ship:
    order_id: str

class Order(Aggregate, key="order_id"):
    def __init__(self):
        self.state = "new"

    @handles(Place)
    def place(self, c: Place) -> Placed:
        return Placed(c.order_id, c.amount)

    @handles(Ship)
    def ship(self, c: Ship) -> Shipped | None:
        return Shipped(c.order_id)

    @applies(Placed)
    def _placed(self, e):
        self.state = "placed"

class Board(Projection):
    @on(Placed)
    def _placed(self, e, env):
        pass

    @on(Shipped)
    def _shipped(self, e, env):
        pass

class Checkout(Saga, key="order_id"):
    @on(Placed, start=True)
    def placed(self, e, ctx):
        pass

    @on(Paid)
    def paid(self, e, ctx):
        pass

CLASSES = [Order, Board]
"""
)


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Write a module of this source (under a fresh name, or again under `name`, forgetting
    the one imported); returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewrite is never read stale
    written: set[str] = set()

    def write(source: str, package: bool = False, name: str | None = None) -> str:
        name = name or f"catalog_app_{next(_names)}"
        path = tmp_path / name / "__init__.py" if package else tmp_path / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        written.add(name)
        return name

    yield write
    for name in list(sys.modules):
        if name.split(".")[0] in written:
            del sys.modules[name]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def saved(capsys: pytest.CaptureFixture[str], tmp_path: Path, module: str) -> str:
    status, out, _ = run(capsys, "catalog", "--app", module, "--registry", "registry", "--json")
    assert status == 0
    path = tmp_path / f"{module}.json"
    path.write_text(out)
    return str(path)


def test_the_catalog_lists_fields_upcasters_producers_and_consumers(
    write: Callable[..., str],
) -> None:
    """Events before commands, each with what produces and what consumes it."""
    module = write(APP)
    entries = {e.name: e for e in build(load_app(module, "registry"))}
    commands = [f"{module}.Place", f"{module}.Ship"]  # named by class, as Registry.catalog()
    assert list(entries) == ["t.Audited", "t.Paid", "t.Placed", "t.Shipped", *commands]
    placed = entries["t.Placed"]
    assert placed.producers == ("aggregate:Order",)
    assert placed.consumers == ("projection:Board", "saga:Checkout")
    assert [(f.name, f.type, f.required, f.default) for f in placed.fields] == [
        ("order_id", "str", True, None),
        ("amount", "int", True, None),
        ("note", "str", False, "''"),
        ("tags", "list", False, "list()"),
    ]
    shipped = entries["t.Shipped"]
    assert (shipped.version, shipped.upcasters) == (2, (1,))
    assert shipped.producers == ("aggregate:Order",)  # from the handler's return annotation
    assert entries["t.Paid"].kind == "integration" and entries["t.Paid"].producers == ()
    assert entries["t.Audited"].consumers == ()  # declared in the app, used by none of it
    assert entries[f"{module}.Place"].consumers == ("aggregate:Order",)
    ship = entries[f"{module}.Ship"]  # handled, not declared with @command
    assert ship.kind == "command" and ship.consumers == ("aggregate:Order",)


def test_a_list_of_classes_names_the_app(write: Callable[..., str]) -> None:
    """MODULE:NAME takes the classes listed, and the types they (and MODULE) declare."""
    module = write(APP)
    entries = {e.name: e for e in build(load_app(f"{module}:CLASSES", "registry"))}
    assert entries["t.Placed"].consumers == ("projection:Board",)  # Checkout is not listed
    with pytest.raises(AppImportError, match="registry is not a list of classes"):
        load_app(f"{module}:registry", "registry")


def test_json_round_trips_and_a_catalog_equals_itself(write: Callable[..., str]) -> None:
    """A saved catalog reads back equal; checked against itself, nothing changed."""
    module = write(APP)
    entries = build(load_app(module, "registry"))
    document = json.loads(json.dumps(to_json(module, entries)))
    assert from_json(document) == entries
    assert check(entries, entries) == []
    with pytest.raises(ValueError, match="not a catalog of format 1"):
        from_json({"types": []})


def test_the_table_and_markdown(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rich table names every type; Markdown escapes the pipe of `str | None`."""
    monkeypatch.setenv("COLUMNS", "200")  # rich's width when not on a terminal
    module = write(APP)
    status, out, _ = run(capsys, "catalog", "--app", module, "--registry", "registry")
    assert status == 0 and f"{module}: 4 event types, 2 commands" in out
    for name in ("t.Placed", "t.Shipped", "aggregate:Order", "saga:Checkout"):
        assert name in out
    status, out, _ = run(capsys, "catalog", "--app", module, "--registry", "registry", "--markdown")
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith("| type | kind | v | fields")
    shipped = next(line for line in lines if line.startswith("| t.Shipped"))
    assert "carrier: str \\| None = 'post'" in shipped and "| from 1 |" in shipped
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines[2:])


BREAKING = (
    HEAD
    + """
@event("t.Placed", registry=registry)
@attrs.frozen
class Placed:
    order_id: str
    memo: str = ""
    amount: str = "0"
    tags: list = attrs.Factory(list)
    express: bool = False
    customer: str = attrs.field(kw_only=True)

@event("t.Shipped", version=4, registry=registry)
@attrs.frozen
class Shipped:
    order_id: str

@upcaster("t.Shipped", from_version=1, registry=registry)
def _(data):
    return data

@upcaster("t.Shipped", from_version=3, registry=registry)
def _(data):
    return data

@event("t.Refunded", registry=registry)
@attrs.frozen
class Refunded:
    order_id: str

@attrs.frozen
class Place:
    order_id: str

class Order(Aggregate, key="order_id"):
    @handles(Place)
    def place(self, c):
        return None

    @applies(Placed)
    def _placed(self, e):
        pass

class Board(Projection):
    @on(Placed)
    def _placed(self, e, env):
        pass

    @on(Shipped)
    def _shipped(self, e, env):
        pass

    @on(Refunded)
    def _refunded(self, e, env):
        pass
"""
)


def test_check_names_each_breaking_change_and_exits_1(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Removed, renamed, retyped and required-added fields at the same version; a version
    raised past a missing upcaster; a removed event type; a consumed type nothing makes."""
    before = saved(capsys, tmp_path, module := write(APP))
    after = write(BREAKING, name=module)
    status, out, _ = run(
        capsys, "catalog", "check", "--against", before, "--app", after, "--registry", "registry"
    )
    assert status == 1, _
    lines = out.splitlines()
    expected_breaking = [
        "breaking: t.Audited: domain type removed",
        "breaking: t.Paid: integration type removed",
        "breaking: t.Placed: field 'note' renamed to 'memo' at the same version 1",
        "breaking: t.Placed: field 'amount' retyped from int to str at the same version 1",
        "breaking: t.Placed: field 'customer' added without a default at the same version 1",
        "breaking: t.Shipped: version raised from 2 to 4 without an @upcaster from version 2",
        "breaking: t.Refunded: consumed by projection:Board but nothing produces it",
        "breaking: t.Shipped: consumed by projection:Board but nothing produces it",
    ]
    for text in expected_breaking:
        assert any(line.startswith(text) for line in lines), text
    assert "raise the version and add @upcaster(from_version=1)" in out
    assert "change: t.Placed: new optional field 'express' = False" in lines
    assert "change: t.Refunded: new domain type, version 1" in lines
    assert f"change: {module}.Ship: command type removed" in lines
    assert f"change: {module}.Place: field 'amount' removed (a command is not stored" in out
    assert lines[-1] == f"{len(expected_breaking)} breaking change(s) since {before}"
    first_change = next(i for i, line in enumerate(lines) if line.startswith("change:"))
    assert all(line.startswith("breaking:") for line in lines[:first_change])


def test_a_field_removed_at_the_same_version_is_breaking() -> None:
    """A field gone with nothing of its type in its place is a removal, not a rename."""
    from reactor.catalog import Entry, Field

    def entry(*fields: Field, version: int = 1, upcasters: tuple[int, ...] = ()) -> Entry:
        return Entry(
            name="t.E",
            kind="domain",
            version=version,
            cls="m.E",
            fields=fields,
            upcasters=upcasters,
            producers=("aggregate:A",),
        )

    a, b = Field(name="a", type="int", required=True), Field(name="b", type="str", required=True)
    assert check([entry(a, b)], [entry(a)]) == [
        Change(
            True,
            "t.E",
            "field 'b' removed at the same version 1: raise the version and "
            "add @upcaster(from_version=1)",
        )
    ]
    assert check([entry(a, version=2)], [entry(a, version=1)])[0].breaking  # lowered
    raised = check([entry(a)], [entry(b, version=3, upcasters=(1, 2))])
    assert raised == [Change(False, "t.E", "version raised from 1 to 3")]


def test_check_without_breaking_changes_exits_0(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A new optional field and a new type are listed; the exit status is 0."""
    before = saved(capsys, tmp_path, module := write(APP))
    grown = APP.replace('    note: str = ""\n', '    note: str = ""\n    gift: bool = False\n')
    grown += '\n@event("t.Noted", registry=registry)\n@attrs.frozen\nclass Noted:\n    n: int\n'
    status, out, _ = run(
        capsys,
        "catalog",
        "check",
        "--against",
        before,
        "--app",
        write(grown, name=module),
        "--registry",
        "registry",
    )
    assert status == 0
    assert out.splitlines() == [
        "change: t.Noted: new domain type, version 1",
        "change: t.Placed: new optional field 'gift' = False",
        f"no breaking change since {before} (2 change(s))",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--app", "no_such_app_module"],
            "cannot import app module 'no_such_app_module': ModuleNotFoundError",
        ),
        ([], "catalog needs --app MODULE"),
        (
            ["check", "--against", "missing.json", "--app", "json"],
            "cannot read the saved catalog missing.json",
        ),
        (["--app", "json"], "json defines no Aggregate, Projection or Saga subclass"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A module that does not import (or holds no app), no --app, an unreadable file."""
    status, out, err = run(capsys, "catalog", *argv)
    assert status == 2 and out == ""
    assert err.startswith(f"reactor: {message}") and err.count("\n") == 1


def test_a_module_that_raises_on_import_is_one_line(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The error's type and first line, and what to check."""
    module = write("import attrs\nraise RuntimeError('no database\\nsecond line')\n")
    status, _, err = run(capsys, "catalog", "--app", module)
    assert status == 2 and err.count("\n") == 1
    assert f"cannot import app module {module!r}: RuntimeError: no database (check" in err


def test_an_event_of_another_registry_is_named(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --registry the app's events are unknown: the error says which and what to do."""
    status, _, err = run(capsys, "catalog", "--app", write(APP))
    assert status == 2 and ".Paid (used by saga:Checkout) is not a registered event type" in err
    assert "--registry NAME" in err


def test_a_package_brings_its_submodules_but_never_runs_main(
    write: Callable[..., str], tmp_path: Path
) -> None:
    """The classes of every submodule are found; __main__ is not imported."""
    package = write("", package=True)
    (tmp_path / package / "domain.py").write_text(textwrap.dedent(APP))
    (tmp_path / package / "__main__.py").write_text("raise SystemExit('ran the app')\n")
    importlib.invalidate_caches()
    app = load_app(package, None)
    assert {c.__name__ for c in app.classes} == {"Order", "Board", "Checkout"}
    with pytest.raises(AppImportError, match="is not a reactor Registry"):
        load_app(package, "registry")  # the registry lives in .domain, not in the package


def test_the_command_finds_the_app_where_it_runs(tmp_path: Path) -> None:
    """`reactor catalog --app MODULE` run from MODULE's directory imports it (as `python -m`
    would), with the default registry."""
    (tmp_path / "standalone_app.py").write_text(
        textwrap.dedent(APP).replace(", registry=registry", "").replace("(registry=registry)", "")
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from reactor.cli import main; sys.exit(main())",
            "catalog",
            "--app",
            "standalone_app",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert [t["name"] for t in json.loads(out.stdout)["types"]][:4] == [
        "t.Audited",
        "t.Paid",
        "t.Placed",
        "t.Shipped",
    ]


def test_without_rich_the_table_points_to_json_and_the_extra(
    write: Callable[..., str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table needs the `cli` extra; --json and --markdown do not."""
    module = write(APP)
    monkeypatch.setitem(sys.modules, "rich", None)
    status, _, err = run(capsys, "catalog", "--app", module, "--registry", "registry")
    assert status == 2 and "(or use --json or --markdown) needs rich" in err
    assert "pip install 'reactor-actors[cli]'" in err
    assert run(capsys, "catalog", "--app", module, "--registry", "registry", "--markdown")[0] == 0
