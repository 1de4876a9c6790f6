"""The ``dlmodels`` command line.

    dlmodels list                          the experiments and benchmark suites
    dlmodels run NAME [--key value ...]    run an experiment (keys are its Config's fields)
    dlmodels run NAME --help               the experiment's options: types, defaults, one line each
    dlmodels run NAME --resume RUN_DIR     continue a run that was killed, with its saved config
    dlmodels bench SUITE [args ...]        run a benchmark suite (benchmarks/SUITE.py)
    dlmodels data fetch NAME               fetch a data set into the cache (dlmodels data list)

Exit codes: 0 done; 2 an invalid command or option (refused before any work); 1 the library
stopped the run (missing data, a non-finite loss, a damaged checkpoint): one line and a hint,
the traceback with --debug; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

RUN_USAGE = ("dlmodels run NAME [--OPTION VALUE ...] "
             "[--root DIR | --run-dir DIR | --resume RUN_DIR] [--debug]")


def _suites() -> list[str]:
    from dlmodels import benchmarks

    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                  if not m.name.startswith("_") and m.name != "harness")


def _cmd_list(args) -> int:
    from dlmodels import experiment

    print("experiments (dlmodels run NAME; dlmodels run NAME --help for its options):")
    for name, doc in experiment.available().items():
        print(f"  {name:<24} {doc}")
    print("benchmark suites (dlmodels bench SUITE):")
    for name in _suites():
        print(f"  {name}")
    return 0


def _run_help(name: str, module) -> str:
    from dlmodels import experiment

    doc = (module.__doc__ or "").strip().splitlines()
    lines = [f"usage: {RUN_USAGE.replace('NAME', name)}", ""]
    if doc:
        lines += [doc[0], ""]
    lines += [f"options of {name} (its Config; --a_b and --a-b are the same option):",
              *experiment.options_help(module.Config), "",
              "run options:",
              "  --root DIR        new run directories go to DIR/NAME/<time> (default: runs)",
              "  --run-dir DIR     run in DIR (which must not hold a run yet)",
              "  --resume RUN_DIR  continue the run in RUN_DIR with the config saved there",
              "                    (options given again must agree); finished phases return at once",
              "  --debug           show the traceback of a library error"]
    return "\n".join(lines)


def _library_error(name: str, e: BaseException) -> tuple[str, str] | None:
    """(one-line message, hint) for the library's own errors; None for anything else."""
    from dlmodels.data import DataError
    from dlmodels.train import CheckpointError, NonFiniteError

    if isinstance(e, DataError):
        hint = "see `dlmodels data list`; `dlmodels data fetch NAME` downloads a data set into the cache"
    elif isinstance(e, NonFiniteError):
        hint = ("lower --learning_rate (or the failing phase's own rate option), or clip the "
                "gradients where the experiment has a clip_norm option, and start a new run")
    elif isinstance(e, CheckpointError):
        hint = ("continue the run with --resume RUN_DIR and the options it was started with, or "
                "start a new run directory; damaged checkpoints are left as they are")
    else:
        return None
    message = " ".join(str(e).split())
    return (f"dlmodels run {name}: {type(e).__name__}: {message}",
            f"hint: {hint} (--debug shows the traceback)")


def _cmd_run(args) -> int:
    from dlmodels import experiment

    name = args.name
    try:
        module = experiment.load(name)
    except ValueError as e:
        print(f"dlmodels run: {e}", file=sys.stderr)
        return 2
    if args.help:
        print(_run_help(name, module))
        return 0
    try:
        if args.resume is not None and (args.run_dir is not None or args.root is not None):
            raise ValueError("--resume RUN_DIR continues that run: drop --run-dir and --root")
        changes = experiment.parse_overrides(module.Config, args.overrides)
        if args.resume is not None:  # the saved config, checked against the options given
            experiment.saved_config(module, name, args.resume, changes)
            run_dir = args.resume
        else:
            experiment.make_config(module, changes)  # every check, before any work
            experiment.check_new_run_dir(args.run_dir)
            run_dir = args.run_dir or experiment.new_run_dir(name, args.root or "runs")
    except ValueError as e:
        print(f"dlmodels run {name}: {e}", file=sys.stderr)
        return 2
    print(f"run directory: {run_dir}  (if interrupted: dlmodels run {name} --resume {run_dir})",
          flush=True)
    try:
        experiment.run(name, changes, run_dir=run_dir, resume=args.resume is not None)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: dlmodels run {name} --resume {run_dir}",
              file=sys.stderr)
        return 130
    except Exception as e:
        report = _library_error(name, e)
        if report is None or args.debug:
            raise
        print("\n".join(report), file=sys.stderr)
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

    names = data.DATASETS + data.TEXT_DATASETS
    if args.action == "list":
        for name in names:
            print(name)
        return 0
    if not args.names:
        print(f"dlmodels data fetch: name a data set: {', '.join(names)}", file=sys.stderr)
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
    # --help of `run` needs the experiment's options, so `run` prints its own help.
    p = sub.add_parser("run", help="run an experiment (dlmodels run NAME --help)", add_help=False,
                       usage=RUN_USAGE)
    p.add_argument("name", nargs="?")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--root", default=None)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", default=None, metavar="RUN_DIR")
    p.add_argument("--debug", action="store_true")
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
        if args.name is None:
            if args.help:
                from dlmodels import experiment

                print(f"usage: {RUN_USAGE}\n\nexperiments (dlmodels list describes them): "
                      + ", ".join(experiment.names()))
                return 0
            parser.error("run: name an experiment (dlmodels list shows them)")
        args.overrides = rest
    elif args.command == "bench":
        args.args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
