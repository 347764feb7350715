"""`python -m perf [scenario ...]`: run the named benchmark scenarios (default: all)."""

from __future__ import annotations

import argparse
import importlib

SCENARIOS = {"journal": "perf.journal"}

parser = argparse.ArgumentParser(prog="python -m perf", description=__doc__)
parser.add_argument("scenarios", nargs="*", metavar="scenario", help=", ".join(SCENARIOS))
chosen = parser.parse_args().scenarios or list(SCENARIOS)
unknown = sorted(set(chosen) - set(SCENARIOS))
if unknown:
    parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
for name in chosen:
    importlib.import_module(SCENARIOS[name]).main()
