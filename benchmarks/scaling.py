"""Suite "scaling": training throughput on 1, 2, 4 and 8 devices against the plain single-device
path, and a sweep of 8 seeds as one sharded program against 8 sequential runs (issue 16, item 7).

**Data parallel.** A tanh MLP (784-256-10, batch 256) and LeNet-5 (28x28x1, batch 128) train through
:func:`dlmodels.train.fit` with ``mesh=sharding.make_mesh({"data": n})`` (the first n devices)
and with ``mesh=None`` (the plain path, the baseline), all sides timed in interleaved rounds in one
process. The ratio of a round is ``plain time / time on n devices`` = ``examples/s on n devices /
plain examples/s``; the headline is the median over rounds, with quartiles. Two paths are timed:

* ``fit``: whole ``fit`` calls of a fixed number of steps, as users run them. ``fit`` compiles its
  step program on every call (a new ``jax.jit`` of new closures; the sharded path compiles a
  second program that gathers the final state), so each call pays its compiles; the suite
  records the compile seconds of each side (``jax.monitoring``) next to the times.
* ``steps``: the trainer's compiled programs, compiled once, called on the same batches in the same
  chunks as ``fit`` makes them: ``jax.jit(make_train_steps(...))`` with the data on the device
  (plain) and ``make_sharded_train_steps(...)`` as ``fit`` runs it (mesh: in one process the data
  replicated on the mesh and each batch gathered there from indices sharded over the data axis;
  in several, the rows ``Layout.load_batches`` places per call); after each call the host reads ``metrics.finite``, as ``fit``
  does. The throughput of a long run, without the compile.

Conv nets take ``dlmodels.backend.conv_steps_per_call`` steps per call (1 on the CPU).

**Sweep.** 8 seeds of the MLP: ``fit(..., seeds=range(8), mesh=make_mesh({"seeds": 8}))`` (ours)
against 8 sequential ``fit`` calls on the plain path (peer), and the unsharded vmapped sweep
``fit(..., seeds=range(8))`` for context; ratio ``sequential time / sweep time``. The same three
on the ``steps`` path.

**Checks** (a failure makes the suite exit 1): after the timed calls the params on n devices equal
the plain path's, and member k of the sharded sweep equals sequential run k, to ``1e-5`` on the
CPU (``backend.matmul_rtol``: looser where matmuls may use TF32).

**Devices.** On the CPU the suite asks for 8 devices before JAX starts
(``sharding.request_cpu_devices``); they share the machine's cores, so the table measures the
overhead of sharding, not speed-up. On a GPU machine it uses the real devices
(``jax.device_count()``); cases needing more devices than present are skipped with a note.

Run: ``dlmodels bench scaling [--devices 1,2,4,8] [--repeats N] [--quick] [--out PATH]``.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import backend
from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, finish,
                                         make_parser, print_table, time_interleaved)
from dlmodels.cnn.lenet import lenet5
from dlmodels.data.batching import batch_indices
from dlmodels.mlp import mlp
from dlmodels.train import (TrainConfig, as_estimator, fit, init_state, init_states,
                            make_train_steps, make_vmapped_train_steps, sharding)
from dlmodels.train.objectives import classifier
from dlmodels.train.step import make_sharded_train_steps

SUITE = "scaling"
DEVICES = (1, 2, 4, 8)
SWEEP_SEEDS = 8
TOLERANCE = 1e-5   # params on n devices vs one device, after the timed calls (CPU)


@dataclasses.dataclass(frozen=True)
class Shape:
    """A model and its training run: ``steps`` updates of ``batch_size`` (one epoch of
    ``steps * batch_size`` synthetic examples), ``steps_per_call`` scanned per compiled call."""

    name: str
    model: str              # "mlp" or "lenet5"
    sizes: tuple[int, ...]  # MLP layer sizes, or the LeNet-5 input (H, W, C)
    batch_size: int
    steps: int
    steps_per_call: int


SHAPES = (Shape("mlp", "mlp", (784, 256, 10), 256, 100, 50),
          Shape("lenet5", "lenet5", (28, 28, 1), 128, 40, 20))
QUICK_SHAPES = (Shape("mlp", "mlp", (32, 16, 4), 16, 8, 4),
                Shape("lenet5", "lenet5", (28, 28, 1), 16, 2, 2))


def _parse_devices(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise ValueError(f"--devices wants distinct counts >= 1 like 1,2,4,8, got {text!r}")
    return counts


def _max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _member(tree, k: int):
    return jax.tree.map(lambda a: a[k], tree)


class _CompileClock:
    """Seconds of XLA compilation (``jax.monitoring``'s backend-compile events) while it runs."""

    def __init__(self):
        self.seconds, self.count = 0.0, 0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if "backend_compile" in event:
            self.seconds += duration
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


class _Side:
    """One timed side: ``fn()`` does one timed call and keeps its final state in ``last``; the
    compile seconds of each call are recorded."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.last, self.compile_s = fn, None, []

    def __call__(self):
        with _CompileClock() as clock:
            self.last = jax.block_until_ready(self.fn())
        self.compile_s.append(clock.seconds)
        return self.last


def build_problem(shape: Shape):
    """``(model, loss_fn, optimizer, (x, y) host arrays)`` for ``shape``: standard normal inputs and
    uniform labels (the timing does not depend on the values); SGD with momentum.

    The MLP uses tanh: with ReLU a unit whose pre-activation sits at 0 can flip on a rounding
    difference (another order of the float additions), after which the two runs train apart by
    far more than rounding (784-256-10, 100 steps: 2.3e-4 on 4 devices, 1.3e-3 between sweep
    members and sequential runs), and the check could no longer tell that from other work."""
    n = shape.steps * shape.batch_size
    rng = np.random.default_rng(0)
    if shape.model == "mlp":
        model = mlp(shape.sizes, activation="tanh")
        x = rng.standard_normal((n, shape.sizes[0]), dtype=np.float32)
        n_classes = shape.sizes[-1]
    else:
        model = lenet5(10, input_shape=shape.sizes)
        x = rng.standard_normal((n, *shape.sizes), dtype=np.float32)
        n_classes = 10
    y = rng.integers(0, n_classes, n).astype(np.int32)
    loss_fn, _ = classifier(model.apply)
    return model, loss_fn, optax.sgd(0.05, momentum=0.9), (x, y)


def _steps_per_call(shape: Shape) -> int:
    return (backend.conv_steps_per_call(shape.steps_per_call) if shape.model == "lenet5"
            else shape.steps_per_call)


def _chunks(shape: Shape, per_call: int):
    """The example indices of each call ``[S, B]``, as ``fit`` cuts its one epoch."""
    idx = batch_indices(jax.random.PRNGKey(0), shape.steps * shape.batch_size, shape.batch_size,
                        epoch=0)
    return [idx[i:i + per_call] for i in range(0, shape.steps, per_call)]


def fit_side(shape: Shape, problem, config, mesh=None, **kw) -> _Side:
    """A whole ``fit`` call; its ``last`` is the final :class:`TrainState`."""
    model, loss_fn, optimizer, data = problem
    return _Side(lambda: fit(model.init, loss_fn, optimizer, data, config, mesh=mesh,
                             **kw).state)


def steps_side(shape: Shape, problem, per_call: int, mesh=None, seeds=None, *, seed: int = 0,
               program=None) -> _Side:
    """The trainer's compiled program (compiled on its first call) over the calls of one epoch:
    plain (``mesh=None``: the run from ``seed``, or K vmapped runs with ``seeds``; ``program``: an
    already jitted ``make_train_steps`` to share), or sharded on ``mesh``."""
    model, loss_fn, optimizer, (x, y) = problem
    estimator = as_estimator(loss_fn)
    chunks = _chunks(shape, per_call)
    state0 = (init_state(model.init, optimizer, seed) if seeds is None
              else init_states(model.init, optimizer, list(seeds)))
    if mesh is None:
        run = program or jax.jit(make_vmapped_train_steps(estimator, optimizer)
                                 if seeds is not None else make_train_steps(estimator, optimizer))
        data = jax.device_put((jnp.asarray(x), jnp.asarray(y)))
        device_chunks = [jnp.asarray(c) for c in chunks]

        def go():
            state = state0
            for chunk in device_chunks:
                state, metrics = run(state, data, chunk)
                np.asarray(metrics.finite)   # the trainer reads it after every call
            return state
        return _Side(go)

    layout = sharding.Layout(mesh, None if seeds is None else len(seeds), shape.batch_size)
    run = make_sharded_train_steps(estimator, optimizer, layout)
    placed = layout.place_state(state0)
    if layout.on_device:   # one process: data replicated on the mesh, batches gathered there
        mesh_data = layout.place((x, y), layout.replicated)
        mesh_chunks = [jax.device_put(c, layout.batches) for c in chunks]
        call = lambda state, i: run(state, mesh_data, mesh_chunks[i])  # noqa: E731
    else:
        call = lambda state, i: run(state, layout.load_batches((x, y), chunks[i]))  # noqa: E731

    def go_sharded():
        state = placed
        for i in range(len(chunks)):
            state, metrics = call(state, i)
            np.asarray(metrics.finite)
        return state
    return _Side(go_sharded)


def sequential_side(sides: list[_Side]) -> _Side:
    """The K runs one after another; ``last`` is the list of their final states."""
    return _Side(lambda: [side() for side in sides])


def _summary(result) -> str:
    s = result.summary()
    q = s["round_ratio_q25_q75"]
    return f"{s['median_round_ratio']:.2f}x [{q[0]:.2f}-{q[1]:.2f}]" if q else "-"


def bench_data_parallel(shape: Shape, counts: tuple[int, ...], *, warmup: int, repeats: int,
                        tolerance: float):
    """Results (ours: n devices, peer: plain) for each path and n, and the check rows."""
    problem = build_problem(shape)
    per_call = _steps_per_call(shape)
    config = TrainConfig(epochs=1, batch_size=shape.batch_size, steps_per_call=per_call,
                         progress=False)
    meshes = {n: sharding.make_mesh({"data": n}) for n in counts}
    results, checks = [], []
    for path in ("fit", "steps"):
        if path == "fit":
            sides = {"plain": fit_side(shape, problem, config)}
            sides.update({f"data={n}": fit_side(shape, problem, config, m)
                          for n, m in meshes.items()})
        else:
            sides = {"plain": steps_side(shape, problem, per_call)}
            sides.update({f"data={n}": steps_side(shape, problem, per_call, m)
                          for n, m in meshes.items()})
        timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
        print(f"  timed {shape.name} on the {path} path", flush=True)
        plain = sides["plain"]
        for n in counts:
            side = sides[f"data={n}"]
            diff = _max_diff(plain.last.params, side.last.params)
            check = {"max_abs_param_diff_vs_plain": diff, "tolerance": tolerance,
                     "passed": diff <= tolerance}
            checks.append((f"{shape.name} {path} data={n}", check))
            examples = shape.steps * shape.batch_size
            details = {
                "path": path, "devices": n, "steps": shape.steps, "steps_per_call": per_call,
                "examples_per_call": examples,
                "examples_per_s": {"plain": examples / timings["plain"].median,
                                   "sharded": examples / timings[f"data={n}"].median},
                "compile_s_per_call": {"plain": _median(plain.compile_s[warmup:]),
                                       "sharded": _median(side.compile_s[warmup:])},
                "ours": (f"fit(..., mesh=make_mesh({{'data': {n}}}))" if path == "fit"
                         else "make_sharded_train_steps as fit runs it"),
                "peer": ("fit(..., mesh=None)" if path == "fit"
                         else "jit(make_train_steps) on device data")}
            results.append(Result(
                Case(f"{shape.name} {path} data={n}", _shapes(shape), details),
                Measurement("sharded", timings[f"data={n}"]),
                Measurement("plain", timings["plain"]), check))
    return results, checks


def bench_sweep(shape: Shape, mesh_size: int, *, warmup: int, repeats: int, tolerance: float):
    """Results (ours: the sharded sweep, and the vmapped sweep for context; peer: K sequential
    plain runs) on the fit and steps paths, and the check rows."""
    problem = build_problem(shape)
    per_call = shape.steps_per_call
    seeds = list(range(SWEEP_SEEDS))
    mesh = sharding.make_mesh({"seeds": mesh_size})
    results, checks = [], []
    for path in ("fit", "steps"):
        if path == "fit":
            configs = [TrainConfig(epochs=1, batch_size=shape.batch_size,
                                   steps_per_call=per_call, seed=s, progress=False) for s in seeds]
            sequential = sequential_side([fit_side(shape, problem, c) for c in configs])
            sides = {"sequential": sequential,
                     "sharded": fit_side(shape, problem, configs[0], mesh, seeds=seeds),
                     "vmapped": fit_side(shape, problem, configs[0], seeds=seeds)}
        else:
            program = jax.jit(make_train_steps(as_estimator(problem[1]), problem[2]))
            runs = [steps_side(shape, problem, per_call, seed=k, program=program) for k in seeds]
            sides = {"sequential": sequential_side(runs),
                     "sharded": steps_side(shape, problem, per_call, mesh, seeds=seeds),
                     "vmapped": steps_side(shape, problem, per_call, seeds=seeds)}
        timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
        print(f"  timed the sweep on the {path} path", flush=True)
        singles = sides["sequential"].last
        for name in ("sharded", "vmapped"):
            stacked = sides[name].last
            diff = max(_max_diff(_member(stacked.params, k), singles[k].params) for k in seeds)
            check = {"max_abs_param_diff_member_vs_sequential": diff, "tolerance": tolerance,
                     "passed": diff <= tolerance}
            if name == "sharded":
                checks.append((f"sweep {path} sharded", check))
            total = SWEEP_SEEDS * shape.steps * shape.batch_size
            details = {
                "path": path, "seeds": SWEEP_SEEDS, "mesh": {"seeds": mesh_size} if name ==
                "sharded" else None, "steps": shape.steps, "steps_per_call": per_call,
                "examples_per_s": {"sequential": total / timings["sequential"].median,
                                   name: total / timings[name].median},
                "compile_s_per_call": {
                    "sequential": _median(sides["sequential"].compile_s[warmup:]),
                    name: _median(sides[name].compile_s[warmup:])},
                "checked": name == "sharded"}
            label = f"{name} sweep"
            case = (f"sweep {path} seeds={mesh_size}" if name == "sharded"
                    else f"sweep {path} vmapped")
            results.append(Result(Case(case, _shapes(shape) | {"seeds": SWEEP_SEEDS}, details),
                                  Measurement(label, timings[name]),
                                  Measurement(f"sequential x{SWEEP_SEEDS}",
                                              timings["sequential"]), check))
    return results, checks


def _median(values) -> float | None:
    return statistics.median(values) if values else None


def _shapes(shape: Shape) -> dict:
    if shape.model == "mlp":
        return {"model": "mlp", "layers": shape.sizes, "activation": "tanh",
                "batch": shape.batch_size, "steps": shape.steps}
    return {"model": shape.model, "input": shape.sizes, "batch": shape.batch_size,
            "steps": shape.steps}


def format_tables(results, counts, backend: str) -> str:
    """The markdown tables: examples/s per path and device count, with the median round ratio to
    the plain path and its quartiles; then the sweep."""
    note = ("CPU with forced devices: the devices share the machine's cores, so this measures "
            "the overhead of sharding, not speed-up" if backend == "cpu"
            else f"{backend}: one device per mesh position")
    lines = [f"Data parallel ({note}). Cells: examples/s on n devices, and the median per-round "
             f"ratio to the plain path (n-device throughput / plain) [q25-q75].", "",
             "| model | path | plain ex/s | " + " | ".join(f"data={n}" for n in counts) + " |",
             "|---|---|---|" + "---|" * len(counts)]
    dp = [r for r in results if "devices" in r.case.details]
    for model in dict.fromkeys(r.case.shapes["model"] for r in dp):
        for path in ("fit", "steps"):
            row = [r for r in dp if r.case.shapes["model"] == model and r.case.details["path"]
                   == path]
            if not row:
                continue
            by_n = {r.case.details["devices"]: r for r in row}
            plain = row[0].case.details["examples_per_s"]["plain"]
            cells = [f"{by_n[n].case.details['examples_per_s']['sharded']:,.0f}: "
                     f"{_summary(by_n[n])}" if n in by_n else "skipped" for n in counts]
            lines.append(f"| {model} | {path} | {plain:,.0f} | " + " | ".join(cells) + " |")
    sweep = [r for r in results if "seeds" in r.case.details]
    if sweep:
        lines += ["", f"Sweep of {SWEEP_SEEDS} seeds (ratio: sequential time / sweep time, "
                  "median per round [q25-q75]).", "",
                  "| path | sweep | sequential ex/s | sweep ex/s | ratio |",
                  "|---|---|---|---|---|"]
        for r in sweep:
            eps = r.case.details["examples_per_s"]
            name = [k for k in eps if k != "sequential"][0]
            what = (f"sharded, mesh seeds={r.case.details['mesh']['seeds']}" if name == "sharded"
                    else "vmapped, no mesh")
            lines.append(f"| {r.case.details['path']} | {what} | {eps['sequential']:,.0f} | "
                         f"{eps[name]:,.0f} | {_summary(r)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "Training throughput on 1, 2, 4, 8 devices (fit(..., mesh=...)) "
                         "against one device, and 8 seeds as one sharded program against 8 "
                         "sequential runs.")
    parser.add_argument("--devices", default=",".join(map(str, DEVICES)),
                        help="data-parallel device counts, comma separated (default 1,2,4,8)")
    parser.add_argument("--models", nargs="+", choices=[s.name for s in SHAPES],
                        default=[s.name for s in SHAPES], help="which models to time")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep comparison")
    args = parser.parse_args(argv)
    try:
        counts = _parse_devices(args.devices)
    except ValueError as e:
        parser.error(str(e))
    if args.repeats < 1 or args.warmup < 1:
        parser.error("--repeats and --warmup must be >= 1 (the warm-up call compiles)")

    skipped: dict[str, str] = {}
    try:   # before anything starts JAX's backends; a GPU machine's devices are unchanged
        sharding.request_cpu_devices(max(counts + (SWEEP_SEEDS,)))
    except ValueError as e:
        skipped["cpu devices"] = str(e)

    env = environment()
    available = jax.device_count()
    run_counts = tuple(n for n in counts if n <= available)
    for n in counts:
        if n > available:
            skipped[f"data={n}"] = f"needs {n} devices, {available} present"
    if args.quick:
        shapes, repeats, warmup = QUICK_SHAPES, 1, 0   # a smoke test: no warm-up call
    else:
        shapes, repeats, warmup = SHAPES, args.repeats, args.warmup
    shapes = [s for s in shapes if s.name in args.models]
    tolerance = backend.matmul_rtol(TOLERANCE)
    cpu = env["backend"] == "cpu"
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {available} devices"
          f"{' (forced CPU devices sharing ' + str(env['cpu_count']) + ' cores)' if cpu else ''}, "
          f"jax {env['versions']['jax']}, {env['date']}; median of {repeats} interleaved rounds "
          f"after {warmup} warm-up calls", flush=True)
    if cpu:
        print(f"NOTE: the {available} CPU devices share {env['cpu_count']} cores: this measures "
              "the overhead of sharding, not speed-up.", flush=True)

    results, checks = [], []
    for shape in shapes:
        r, c = bench_data_parallel(shape, run_counts, warmup=warmup, repeats=repeats,
                                   tolerance=tolerance)
        results += r
        checks += c
    if not args.no_sweep:
        mlp_shape = next(s for s in (QUICK_SHAPES if args.quick else SHAPES) if s.model == "mlp")
        fits = [n for n in run_counts if SWEEP_SEEDS % n == 0] or [1]
        mesh_size = max(fits)
        if mesh_size < SWEEP_SEEDS:
            skipped[f"sweep seeds={SWEEP_SEEDS}"] = (f"{available} devices present; the sweep "
                                                    f"runs on a mesh seeds={mesh_size}")
        r, c = bench_sweep(mlp_shape, mesh_size, warmup=warmup, repeats=repeats,
                           tolerance=tolerance)
        results += r
        checks += c

    print()
    print_table("data parallel: n devices (sharded) vs mesh=None (plain); ratio = examples/s on "
                "n devices / plain" + (" [CPU: overhead, not speed-up]" if cpu else ""),
                [r for r in results if "devices" in r.case.details])
    if not args.no_sweep:
        print()
        print_table(f"sweep of {SWEEP_SEEDS} seeds vs {SWEEP_SEEDS} sequential runs",
                    [r for r in results if "seeds" in r.case.details])
    table = format_tables(results, counts, env["backend"])
    print("\n" + table)
    print("\nchecks (params after the timed calls, max |difference|):")
    for name, check in checks:
        diff = check.get("max_abs_param_diff_vs_plain",
                         check.get("max_abs_param_diff_member_vs_sequential"))
        print(f"  {name}: {diff:.2e} <= {check['tolerance']:.0e}: "
              f"{'ok' if check['passed'] else 'FAILED'}")
    for what, why in skipped.items():
        print(f"skipped {what}: {why}")
    failed = [name for name, check in checks if not check["passed"]]
    config = {"devices": list(counts), "devices_run": list(run_counts), "repeats": repeats,
              "warmup": warmup, "quick": args.quick, "sweep_seeds": SWEEP_SEEDS,
              "shapes": [dataclasses.asdict(s) for s in shapes], "tolerance": tolerance,
              "forced_cpu_devices": cpu,
              "ratio": "plain (or sequential) time / sharded time = throughput ratio"}
    return finish(SUITE, results, out=args.out, config=config, markdown=table,
                  extra={"checks": dict(checks), "failed_checks": failed, "skipped": skipped,
                         "markdown": table})


if __name__ == "__main__":
    sys.exit(main())
