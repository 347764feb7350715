"""`reactor demo NAME`: run one of the demos shipped with reactor."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

from reactor.cli.common import Parents


def add_commands(commands: Any, parents: Parents) -> None:
    demo = commands.add_parser("demo", help="run a demo: " + ", ".join(_demos()))
    demo.add_argument("name", choices=sorted(_demos()))
    demo.add_argument("args", nargs=argparse.REMAINDER, help="the demo's own options")
    demo.set_defaults(run=_demo)


def _demos() -> dict[str, Path]:
    """Demos by name (a script, or a package with a __main__): shipped in the wheel
    (reactor/_demos) or beside the package (demos/)."""
    here = Path(__file__).resolve().parent.parent
    for folder in (here / "_demos", here.parent / "demos"):
        if folder.is_dir():
            found = {p.stem: p for p in folder.glob("*.py") if not p.stem.startswith("_")}
            found.update({p.parent.name: p.parent for p in folder.glob("*/__main__.py")})
            return dict(sorted(found.items()))
    return {}


def _demo(args: argparse.Namespace) -> None:
    path = _demos()[args.name]
    sys.argv = [str(path), *args.args]
    if path.is_dir():  # a package: run it as a module, from the folder that holds demos
        package = "reactor._demos" if path.parent.name == "_demos" else "demos"
        if package == "demos":
            sys.path.insert(0, str(path.parent.parent))
        runpy.run_module(f"{package}.{path.name}", run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(str(path), run_name="__main__")
