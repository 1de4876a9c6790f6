"""The ``dlmodels`` command line.

    dlmodels list                         the experiments and benchmark suites
    dlmodels run NAME [--key value ...]   run an experiment (keys are its Config's fields)
    dlmodels bench SUITE [args ...]       run a benchmark suite (benchmarks/SUITE.py)
    dlmodels data fetch NAME              fetch a data set into the cache (mnist, fashion_mnist)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import sys


def _suites() -> list[str]:
    from dlmodels import benchmarks

    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                  if not m.name.startswith("_") and m.name != "harness")


def _cmd_list(args) -> int:
    from dlmodels import experiment

    print("experiments (dlmodels run NAME):")
    for name, doc in experiment.available().items():
        print(f"  {name:<24} {doc}")
    print("benchmark suites (dlmodels bench SUITE):")
    for name in _suites():
        print(f"  {name}")
    return 0


def _cmd_run(args) -> int:
    from dlmodels import experiment

    module = experiment.load(args.name)
    try:
        changes = experiment.parse_overrides(module.Config, args.overrides)
        dataclasses.replace(module.Config(), **changes)  # the Config's own checks, before any work
    except (ValueError, TypeError) as e:
        print(f"dlmodels run {args.name}: {e}", file=sys.stderr)
        return 2
    from dlmodels.data import DataError

    try:
        run_dir, _ = experiment.run(args.name, changes, root=args.root, run_dir=args.run_dir)
    except DataError as e:
        print(f"dlmodels run {args.name}: {e}", file=sys.stderr)
        return 1
    print(f"\nresults: {run_dir}/results.json")
    return 0


def _cmd_bench(args) -> int:
    suites = _suites()
    if args.suite not in suites:
        print(f"unknown benchmark suite {args.suite!r}; available: {', '.join(suites)}",
              file=sys.stderr)
        return 2
    return int(importlib.import_module(f"dlmodels.benchmarks.{args.suite}").main(args.args) or 0)


def _cmd_data(args) -> int:
    from dlmodels import data

    if args.action == "list":
        for name in data.DATASETS:
            print(name)
        return 0
    if not args.names:
        print(f"dlmodels data fetch: name a data set: {', '.join(data.DATASETS)}", file=sys.stderr)
        return 2
    for name in args.names:
        try:
            print(data.fetch(name))
        except data.DataError as e:
            print(f"dlmodels data fetch {name}: {e}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlmodels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list experiments and benchmark suites").set_defaults(fn=_cmd_list)
    p = sub.add_parser("run", help="run an experiment")
    p.add_argument("name")
    p.add_argument("--root", default="runs", help="where run directories are made (default: runs)")
    p.add_argument("--run-dir", default=None, help="use this run directory instead of a new one")
    p.set_defaults(fn=_cmd_run)
    p = sub.add_parser("bench", help="run a benchmark suite")
    p.add_argument("suite")
    p.set_defaults(fn=_cmd_bench)
    p = sub.add_parser("data", help="fetch or list data sets")
    p.add_argument("action", choices=["fetch", "list"])
    p.add_argument("names", nargs="*")
    p.set_defaults(fn=_cmd_data)
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        args.overrides = rest
    elif args.command == "bench":
        args.args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
