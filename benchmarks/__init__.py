"""Benchmark suites: each module ``benchmarks.<suite>`` has ``main(argv) -> int`` and writes
``benchmarks/out/<suite>.json``; ``harness`` holds the timing, environment and report helpers."""
