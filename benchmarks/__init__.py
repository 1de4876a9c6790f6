"""Benchmark suites, installed as ``dlmodels.benchmarks``: each module ``<suite>`` has
``main(argv) -> int`` and writes ``runs/bench/<suite>.json`` under the current directory; ``harness`` holds the timing, environment and report helpers."""
