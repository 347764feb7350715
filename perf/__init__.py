"""Benchmarks: `python -m perf <scenario>`. Each figure is printed next to a baseline
measured in the same run, as a ratio. Speed is measured here, never asserted by a test."""
