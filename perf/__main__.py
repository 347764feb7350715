"""`python -m perf [scenario ...] [--quick]`: run benchmark scenarios (default: all)."""

from __future__ import annotations

import argparse
import importlib

SCENARIOS = {
    "journal": "perf.journal",
    "runtime": "perf.runtime",
    "faults": "perf.faults",
    "shop": "perf.shop",
    "backpressure": "perf.backpressure",
    "metrics": "perf.metrics",
    "observed": "perf.observed",
    "postgres": "perf.postgres",
    "bus": "perf.bus",
    "cluster": "perf.cluster",
}

parser = argparse.ArgumentParser(prog="python -m perf", description=__doc__)
parser.add_argument("scenarios", nargs="*", metavar="scenario", help=", ".join(SCENARIOS))
parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
args = parser.parse_args()
chosen = args.scenarios or list(SCENARIOS)
unknown = sorted(set(chosen) - set(SCENARIOS))
if unknown:
    parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
for name in chosen:
    module = importlib.import_module(SCENARIOS[name])
    module.main(quick=args.quick) if name != "journal" else module.main()
