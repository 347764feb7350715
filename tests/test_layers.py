"""The house rules a refactoring must keep: imports point down the layer table of
DESIGN.md, the EventStore is the only door to storage, pykka's private names live in one
adapter, and no module grows past 400 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reactor"

# Each module's layer, bottom up (the first matching prefix wins).
LAYERS = [
    ("model", ["errors", "events", "registry", "faults", "specs", "security.policy"]),
    (
        "codec",
        ["codec", "converters", "sagas", "security.pii", "security.crypto", "security.snapshots"],
    ),
    ("storage", ["store", "security.chain", "security.audit"]),
    ("actors", ["actors"]),
    ("links", ["metrics", "prometheus", "tracing", "bus", "cluster"]),
    ("user API", ["domain", "runtime"]),
    ("edges", ["cli", "testing", "catalog", "__init__", "__main__", "security"]),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__") or "__init__"
        found[name] = path
    return found


def _rank(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"reactor.{module} is in no layer: add it to LAYERS")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.removeprefix("reactor.") for n in names if n.startswith("reactor.")}


def test_imports_point_down_the_layer_table() -> None:
    wrong = []
    for module, path in _modules().items():
        for target in _imports(path):
            if _rank(target) > _rank(module):
                layer, up = LAYERS[_rank(module)][0], LAYERS[_rank(target)][0]
                wrong.append(f"reactor.{module} ({layer}) imports reactor.{target} ({up})")
    assert not wrong, "\n".join(wrong)


def test_domain_knows_no_actor() -> None:
    assert not {t for t in _imports(PACKAGE / "domain.py") if t.startswith("actors")}


def test_the_event_store_is_the_only_door_to_storage() -> None:
    door = re.compile(r"\.storage\.|\.codec\.")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for module, path in _modules().items()
        if not module.startswith("store")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if door.search(line)
    ]
    assert not found, "\n".join(found)


def test_pykka_private_names_live_in_one_adapter() -> None:
    private = re.compile(r"pykka\._|_actor_loop|_start_actor_loop|_actor_weakref|actor_inbox")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for module, path in _modules().items()
        if module != "actors.pooled"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not found, found


def test_no_module_is_over_400_lines() -> None:
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
