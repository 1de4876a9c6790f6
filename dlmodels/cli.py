"""The ``dlmodels`` command line.

    dlmodels list                          the experiments and benchmark suites
    dlmodels run NAME [--key value ...]    run an experiment (keys are its Config's fields)
    dlmodels run NAME --help               the experiment's options: types, defaults, one line each
    dlmodels run NAME --resume RUN_DIR     continue a run that was killed, with its saved config
    dlmodels run NAME --mesh data=8        train on 8 devices (data parallel); seeds=4,data=2 also
                                           spreads a sweep's runs
    dlmodels launch --processes N -- run NAME ...
                                           N local processes that run as one (jax.distributed)
    dlmodels bench SUITE [args ...]        run a benchmark suite (benchmarks/SUITE.py)
    dlmodels data fetch NAME               fetch a data set into the cache (dlmodels data list)

Exit codes: 0 done; 2 an invalid command or option (refused before any work); 1 the library
stopped the run (missing data, a non-finite loss, a damaged checkpoint): one line and a hint,
the traceback with --debug; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

RUN_USAGE = ("dlmodels run NAME [--OPTION VALUE ...] "
             "[--root DIR | --run-dir DIR | --resume RUN_DIR] [--mesh SPEC] "
             "[--coordinator HOST:PORT --num-processes N --process-id I] [--debug]")
LAUNCH_USAGE = "dlmodels launch --processes N [--coordinator HOST:PORT] [--] run NAME ..."


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
              "  --debug           show the traceback of a library error",
              "",
              "devices and processes:",
              "  --mesh SPEC       train on a mesh of devices: data=8 (each batch split over 8",
              "                    devices), seeds=4,data=2 (a sweep's runs over 4, each on 2);",
              "                    on a CPU the devices are made (XLA host devices); recorded in",
              "                    config.json. Default: none (one device), or data=<all devices>",
              "                    with several processes",
              "  --coordinator HOST:PORT  process 0's host and a free port (env",
              "                    DLMODELS_COORDINATOR or JAX_COORDINATOR_ADDRESS)",
              "  --num-processes N the number of processes (env DLMODELS_NUM_PROCESSES or",
              "                    JAX_NUM_PROCESSES); each host runs the same command",
              "  --process-id I    this process's id, 0 .. N-1 (env DLMODELS_PROCESS_ID or",
              "                    JAX_PROCESS_ID); process 0 writes the records",
              "  (dlmodels launch --processes N -- run NAME ... starts N processes here)"]
    return "\n".join(lines)


def _library_error(name: str, e: BaseException) -> tuple[str, str] | None:
    """(one-line message, hint) for the library's own errors; None for anything else."""
    from dlmodels.data import DataError
    from dlmodels.train import CheckpointError, NonFiniteError
    from dlmodels.train.sharding import MeshError

    if isinstance(e, DataError):
        hint = "see `dlmodels data list`; `dlmodels data fetch NAME` downloads a data set into the cache"
    elif isinstance(e, NonFiniteError):
        hint = ("lower --learning_rate (or the failing phase's own rate option), or clip the "
                "gradients where the experiment has a clip_norm option, and start a new run")
    elif isinstance(e, CheckpointError):
        hint = ("continue the run with --resume RUN_DIR and the options it was started with, or "
                "start a new run directory; damaged checkpoints are left as they are")
    elif isinstance(e, MeshError):
        hint = ("choose a --mesh whose 'data' size divides the experiment's batch sizes and whose "
                "'seeds' size divides its number of runs (or change those options)")
    else:
        return None
    message = " ".join(str(e).split())
    return (f"dlmodels run {name}: {type(e).__name__}: {message}",
            f"hint: {hint} (--debug shows the traceback)")


def _check_run(name: str, module, args):
    """Every check of ``dlmodels run`` made before any work (``ValueError`` on failure): returns
    ``(changes, processes, mesh shape)``; nothing is started or written."""
    from dlmodels import distributed, experiment
    from dlmodels.train import sharding

    if args.resume is not None and (args.run_dir is not None or args.root is not None):
        raise ValueError("--resume RUN_DIR continues that run: drop --run-dir and --root")
    changes = experiment.parse_overrides(module.Config, args.overrides)
    if args.resume is not None:  # the saved config, checked against the options given
        experiment.saved_config(module, name, args.resume, changes)
    else:
        experiment.make_config(module, changes)  # every check, before any work
        experiment.check_new_run_dir(args.run_dir)
    processes = distributed.settings(args.coordinator, args.num_processes, args.process_id)
    shape = None
    if args.mesh is not None:
        try:
            shape = sharding.parse_mesh(args.mesh)
        except ValueError as e:
            raise ValueError(f"--mesh: {e}") from None
        count = processes.num_processes if processes else 1
        if distributed.mesh_size(shape) % count:
            raise ValueError(f"--mesh {args.mesh} spans {distributed.mesh_size(shape)} devices, "
                             f"which {count} processes cannot share evenly")
    return changes, processes, shape


def _make_mesh(shape, processes):
    """The mesh of ``--mesh`` (CPU devices requested first: each process's share), or with
    several processes and no ``--mesh`` one ``data`` axis over every device; ``None`` for one
    process without ``--mesh``. ``ValueError`` when there are too few devices."""
    import jax

    from dlmodels import distributed
    from dlmodels.train import sharding

    if shape is not None:
        share = distributed.mesh_size(shape) // (processes.num_processes if processes else 1)
        if share > 1:
            sharding.request_cpu_devices(share)
    elif processes is not None:
        shape = {"data": jax.device_count()}
    return None if shape is None else sharding.make_mesh(shape)


def _cmd_run(args) -> int:
    from dlmodels import distributed, experiment

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
        changes, processes, shape = _check_run(name, module, args)
    except ValueError as e:
        print(f"dlmodels run {name}: {e}", file=sys.stderr)
        return 2
    if processes is not None:
        try:
            distributed.initialize(*processes)
        except (RuntimeError, ValueError) as e:
            print(f"dlmodels run {name}: cannot join the other processes: {e}", file=sys.stderr)
            return _leave(processes, 1)
    try:
        mesh = _make_mesh(shape, processes)
    except ValueError as e:
        print(f"dlmodels run {name}: --mesh: {e}", file=sys.stderr)
        return _leave(processes, 2)
    return _leave(processes, _train(name, args, changes, mesh))


def _train(name: str, args, changes, mesh) -> int:
    """Run the experiment on ``mesh`` (``None``: one device) in the agreed run directory."""
    import contextlib

    from dlmodels import distributed, experiment
    from dlmodels.train import sharding

    if args.resume is not None:
        run_dir = args.resume
    elif args.run_dir is not None:
        run_dir = args.run_dir
    else:  # process 0 names the new run directory for all
        run_dir = experiment.new_run_dir(name, args.root or "runs") if distributed.is_main() else ""
    run_dir = distributed.broadcast_str(run_dir)
    print(f"run directory: {run_dir}  (if interrupted: dlmodels run {name} --resume {run_dir})",
          flush=True)
    try:
        with sharding.use_mesh(mesh) if mesh is not None else contextlib.nullcontext():
            experiment.run(name, changes, run_dir=run_dir, resume=args.resume is not None)
        distributed.barrier("dlmodels run: done")
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: dlmodels run {name} --resume {run_dir}",
              file=sys.stderr)
        return 130
    except Exception as e:
        report = _library_error(name, e)
        if report is None or args.debug:
            if distributed.process_count() == 1:
                raise
            import traceback

            traceback.print_exc()
            message = " ".join(str(e).split())[:300]
            print(f"dlmodels run {name}: process {distributed.process_index()} of "
                  f"{distributed.process_count()} stopped: {type(e).__name__}: {message} (if "
                  f"another process died, its output says why)", file=sys.stderr)
            return 1
        print("\n".join(report), file=sys.stderr)
        return 1
    print(f"\nresults: {run_dir}/results.json")
    return 0


def _leave(processes, status: int) -> int:
    """``status``; with several processes a failure ends this process at once (``os._exit``):
    its heartbeats stop, so the others abort within the heartbeat timeout instead of waiting
    in jax.distributed's shutdown barrier."""
    if processes is not None and status != 0:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _cmd_launch(args) -> int:
    from dlmodels import distributed, experiment

    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(f"usage: {LAUNCH_USAGE}\ndlmodels launch: name the command to run, e.g. "
              f"-- run mlp --mesh data=2", file=sys.stderr)
        return 2
    if args.processes < 1:
        print(f"dlmodels launch: --processes must be >= 1, got {args.processes}", file=sys.stderr)
        return 2
    try:
        if args.coordinator is not None:
            distributed.check_address(args.coordinator, "--coordinator")
        taken = {"--coordinator", "--num-processes", "--process-id"} & {
            a.partition("=")[0] for a in argv}
        if taken:
            raise ValueError(f"{', '.join(sorted(taken))}: the launcher sets these for each "
                             f"process; drop them from the command")
    except ValueError as e:
        print(f"dlmodels launch: {e}", file=sys.stderr)
        return 2
    log_dir = None
    if argv[0] == "run":  # check the options here, once, and agree on the run directory
        parsed, rest = _parser().parse_known_args(argv)
        if parsed.help or parsed.name is None:
            return main(argv)
        parsed.overrides = rest
        # checked as each process will check it (the address is made below)
        parsed.num_processes, parsed.process_id = args.processes, 0
        parsed.coordinator = args.coordinator or "127.0.0.1:1"
        try:
            module = experiment.load(parsed.name)
            _check_run(parsed.name, module, parsed)
        except ValueError as e:
            print(f"dlmodels run {parsed.name}: {e}", file=sys.stderr)
            return 2
        run_dir = parsed.resume or parsed.run_dir
        if run_dir is None:
            run_dir = experiment.new_run_dir(parsed.name, parsed.root or "runs")
            argv = [*argv, "--run-dir", run_dir]
        log_dir = os.path.join(run_dir, "logs")
    return distributed.launch(args.processes, argv, coordinator=args.coordinator, log_dir=log_dir)


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


def _parser() -> argparse.ArgumentParser:
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
    p.add_argument("--mesh", default=None)
    p.add_argument("--coordinator", default=None)
    p.add_argument("--num-processes", default=None)
    p.add_argument("--process-id", default=None)
    p.set_defaults(fn=_cmd_run)
    p = sub.add_parser("launch", usage=LAUNCH_USAGE,
                       help="run a command as N local processes (dlmodels launch --help)",
                       description="Start N local processes of `dlmodels ARGS...` that run as "
                       "one (jax.distributed, CPU collectives over gloo). Process 0's output "
                       "shows here, the others' go to RUN_DIR/logs/process-<i>.log. When one "
                       "process fails, the others are stopped and its exit code returned.")
    p.add_argument("--processes", type=int, required=True, metavar="N")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="the coordinator's address (default: a free port of 127.0.0.1)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the command for each process, e.g. -- run mlp --mesh data=2")
    p.set_defaults(fn=_cmd_launch)
    p = sub.add_parser("bench", help="run a benchmark suite")
    p.add_argument("suite")
    p.set_defaults(fn=_cmd_bench)
    p = sub.add_parser("data", help="fetch or list data sets")
    p.add_argument("action", choices=["fetch", "list"])
    p.add_argument("names", nargs="*")
    p.set_defaults(fn=_cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dlmodels import distributed

    distributed.die_with_launcher()
    parser = _parser()
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
