"""Suite "seeds": K seeds of an MLP trained as one vmapped program vs K sequential runs.

Both sides run the library's own scanned step (``lax.scan`` over ``steps_per_call`` updates per
compiled call, as :func:`dlmodels.train.fit` does), on the same batches (the trainer's
``batch_indices`` order, epoch after epoch) from the same initial states:

* sequential (peer): ``jax.jit(make_train_steps(...))`` called for seed 1, then seed 2, ... each
  run ``steps / steps_per_call`` calls; nothing is fetched to the host between calls.
* vmapped (ours): ``jax.jit(make_vmapped_train_steps(...))`` on the K stacked states, the
  program ``fit(..., seeds=...)`` runs; and, for comparison, the plain
  ``jax.jit(jax.vmap(make_train_steps(...), in_axes=(0, None, None)))`` that ``fit`` used before.

For context it also times one run's steps as a Python loop of single jitted steps (peer) against
the scanned calls (ours). The data are synthetic (standard normal inputs, uniform labels) of the
real data sets' shapes: the timing does not depend on the values. After timing, the final params
of every vmapped member are compared with the sequential run of the same seed.

Run: ``python -m dlmodels.benchmarks.seeds [--repeats N] [--quick] [--out PATH]``.
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, make_parser, print_table,
                                time_interleaved, write_json, OtherLoad, goal_row, print_goals)
from dlmodels import backend
from dlmodels.data.batching import batch_indices
from dlmodels.mlp import mlp
from dlmodels.train import (init_state, init_states, make_train_step, make_train_steps,
                            make_vmapped_train_steps)
from dlmodels.train.objectives import classifier

SUITE = "seeds"
# per-step losses of vmapped members vs sequential runs: rounding stays far below this; other
# batches or initial params would not (see the check in bench_shape)
MAX_REL_LOSS_DIFF = 1e-3


@dataclasses.dataclass(frozen=True)
class Shape:
    """One model and data size: an MLP ``layer_sizes`` trained with mini-batches of
    ``batch_size`` drawn from ``n_examples`` examples."""

    name: str
    layer_sizes: tuple[int, ...]
    batch_size: int
    n_examples: int


#: issue 18's goal: K = 8 seeds of the digits MLP as one vmapped program >= 2x the 8 sequential
#: runs (median of the per-round ratios, for each optimizer)
GOAL, GOAL_SHAPE = 2.0, "digits"

SHAPES = (Shape("digits", (64, 32, 10), 32, 1797), Shape("mnist", (784, 256, 10), 128, 60000))
QUICK_SHAPES = (Shape("tiny", (8, 8, 4), 4, 64),)

OPTIMIZERS = {"sgd-momentum": lambda: optax.sgd(0.05, momentum=0.9),
              "adam": lambda: optax.adam(1e-3)}


def synthetic_data(shape: Shape, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(x [N, n_in] float32 ~ N(0, 1), y [N] int32 uniform in 0..n_out-1)`` on the device."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.n_examples, shape.layer_sizes[0]), dtype=np.float32)
    y = rng.integers(0, shape.layer_sizes[-1], shape.n_examples).astype(np.int32)
    return jax.device_put((jnp.asarray(x), jnp.asarray(y)))


def step_indices(shape: Shape, steps: int, data_seed: int = 0) -> np.ndarray:
    """The example indices ``[steps, B]`` of the first ``steps`` updates, in the trainer's order:
    ``batch_indices(PRNGKey(data_seed), N, B, epoch=e)`` for epochs 0, 1, ..."""
    per_epoch = shape.n_examples // shape.batch_size
    epochs = -(-steps // per_epoch)
    key = jax.random.PRNGKey(data_seed)
    idx = np.concatenate([batch_indices(key, shape.n_examples, shape.batch_size, epoch=e)
                          for e in range(epochs)])
    return idx[:steps]


def _max_member_diff(stacked_params, singles) -> float:
    """Largest ``|stacked[k] - singles[k]|`` over members k and all param leaves."""
    worst = 0.0
    for k, single in enumerate(singles):
        member = jax.tree.map(lambda a: a[k], stacked_params)
        for a, b in zip(jax.tree.leaves(member), jax.tree.leaves(single), strict=True):
            worst = max(worst, float(jnp.max(jnp.abs(a - b))))
    return worst


def _max_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y)))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def bench_shape(shape: Shape, optimizer_name: str, *, n_seeds: int, steps: int,
                steps_per_call: int, warmup: int, repeats: int) -> list[Result]:
    """The seeds comparisons (library vmap and plain vmap vs sequential) and the loop-vs-scan
    comparison for one shape and optimizer."""
    model = mlp(shape.layer_sizes)
    loss_fn, _ = classifier(model.apply, train_mode=False)  # mean softmax cross-entropy
    optimizer = OPTIMIZERS[optimizer_name]()
    data = synthetic_data(shape)
    idx = step_indices(shape, steps)
    chunks = [jnp.asarray(idx[i:i + steps_per_call]) for i in range(0, steps, steps_per_call)]
    seeds = list(range(n_seeds))

    run = jax.jit(make_train_steps(loss_fn, optimizer))
    run_vmapped = jax.jit(make_vmapped_train_steps(loss_fn, optimizer))
    run_plain_vmap = jax.jit(jax.vmap(make_train_steps(loss_fn, optimizer),
                                      in_axes=(0, None, None)))
    singles = [init_state(model.init, optimizer, s) for s in seeds]
    stacked = init_states(model.init, optimizer, seeds)

    def sequential():
        finals = []
        for state in singles:
            for chunk in chunks:
                state, _ = run(state, data, chunk)
            finals.append(state)
        return finals

    def vmapped(program):
        def go():
            state = stacked
            for chunk in chunks:
                state, _ = program(state, data, chunk)
            return state
        return go

    timings = time_interleaved({"sequential": sequential, "library": vmapped(run_vmapped),
                                "plain": vmapped(run_plain_vmap)}, warmup=warmup, repeats=repeats)
    # Same work: every member's per-step losses equal its sequential run's to float rounding
    # (another batch or init would be off by ~1e-2). The params are reported, not checked: the
    # rounding of batched and single matmuls can flip a ReLU near 0, and Adam's g / sqrt(v)
    # magnifies it where g ~ 0, so the runs drift apart by more than rounding over many steps.
    def with_losses(state, program):
        losses = []
        for chunk in chunks:
            state, metrics = program(state, data, chunk)
            losses.append(metrics.loss)
        return state.params, jnp.concatenate(losses, axis=-1)  # [S] or [K, S]

    seq = [with_losses(s, run) for s in singles]
    seq_params, seq_losses = [p for p, _ in seq], jnp.stack([l for _, l in seq])
    checks = {}
    for name, program in (("library", run_vmapped), ("plain", run_plain_vmap)):
        params, losses = with_losses(stacked, program)
        checks[name] = {
            "max_rel_loss_diff": float(jnp.max(jnp.abs(losses - seq_losses) / jnp.abs(seq_losses))),
            "final_max_abs_param_diff": _max_member_diff(params, seq_params)}

    shapes = {"layers": shape.layer_sizes, "batch": shape.batch_size,
              "examples": shape.n_examples}
    details = {"comparison": "seeds", "optimizer": optimizer_name, "seeds": n_seeds,
               "steps": steps, "steps_per_call": steps_per_call, "data": "synthetic"}
    peer = Measurement(f"sequential x{n_seeds}", timings["sequential"])
    results = [
        Result(Case(f"{shape.name} {optimizer_name}: fit's vmap", shapes,
                    dict(details, ours="make_vmapped_train_steps (batch broadcast to [K, B, ...])")),
               Measurement("vmapped", timings["library"]), peer, checks["library"]),
        Result(Case(f"{shape.name} {optimizer_name}: plain jax.vmap", shapes,
                    dict(details, ours="jax.vmap(make_train_steps, in_axes=(0, None, None))")),
               Measurement("vmapped", timings["plain"]), peer, checks["plain"]),
    ]

    # context: one run's steps as a Python loop of single jitted steps vs the scanned calls
    train_step = make_train_step(loss_fn, optimizer)
    one_step = jax.jit(lambda state, data, i: train_step(state, jax.tree.map(lambda a: a[i], data)))
    rows = [jnp.asarray(row) for row in idx]

    def python_loop():
        state = singles[0]
        for row in rows:
            state, _ = one_step(state, data, row)
        return state

    def scanned():
        state = singles[0]
        for chunk in chunks:
            state, _ = run(state, data, chunk)
        return state

    t = time_interleaved({"loop": python_loop, "scan": scanned}, warmup=warmup, repeats=repeats)
    results.append(Result(
        Case(f"{shape.name} {optimizer_name}: one run", shapes,
             dict(details, comparison="loop-vs-scan", seeds=1, ours="make_train_steps (lax.scan)",
                  peer="jit(train_step) per step")),
        Measurement("scan", t["scan"]), Measurement("python loop", t["loop"]),
        {"final_max_abs_param_diff": _max_diff(python_loop().params, scanned().params)}))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "K seeds of an MLP as one vmapped program vs K sequential runs.")
    parser.add_argument("--seeds", type=int, default=8, help="K, the number of seeds")
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--steps-per-call", type=int, default=100,
                        help="steps scanned in one compiled call")
    parser.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS),
                        default=list(OPTIMIZERS))
    parser.add_argument("--shapes", nargs="+", choices=[s.name for s in SHAPES],
                        help="which shapes (default all; ignored with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        shapes, steps, per_call, repeats, warmup = QUICK_SHAPES, 4, 2, 1, 1
    else:
        shapes = [s for s in SHAPES if not args.shapes or s.name in args.shapes]
        steps, per_call, repeats, warmup = args.steps, args.steps_per_call, args.repeats, args.warmup
    if min(steps, per_call, args.seeds, repeats) < 1:
        parser.error("--steps, --steps-per-call, --seeds and --repeats must be >= 1")

    env = environment()
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, {env['date']}; median of {repeats} interleaved "
          f"repeats after {warmup} warm-up calls", flush=True)
    results: list[Result] = []
    other_load = OtherLoad().__enter__()
    for shape in shapes:
        for opt in args.optimizers:
            results += bench_shape(shape, opt, n_seeds=args.seeds, steps=steps,
                                   steps_per_call=per_call, warmup=warmup, repeats=repeats)
    seeds_results = [r for r in results if r.case.details["comparison"] == "seeds"]
    loop_results = [r for r in results if r.case.details["comparison"] == "loop-vs-scan"]
    print()
    print_table(f"{args.seeds} seeds x {steps} steps: sequential runs vs one vmapped program",
                seeds_results)
    print()
    print_table(f"one run x {steps} steps: Python loop of jitted steps vs lax.scan", loop_results)

    other_load.__exit__(None, None, None)
    goals = [goal_row(f"{r.case.name}: sequential x{args.seeds} / vmapped", r.ratio,
                      r.ratio_quartiles(), GOAL, above=True)
             for r in seeds_results
             if r.case.name.startswith(f"{GOAL_SHAPE} ") and r.case.name.endswith("fit's vmap")]
    print()
    print_goals(goals, other_load.share, quick=args.quick)
    tolerance = backend.matmul_rtol(MAX_REL_LOSS_DIFF)   # looser where matmuls may use TF32
    failed = [r.case.name for r in results
              if r.checks.get("max_rel_loss_diff", 0.0) > tolerance]
    config = {"seeds": args.seeds, "steps": steps, "steps_per_call": per_call,
              "optimizers": args.optimizers, "repeats": repeats, "warmup": warmup,
              "quick": args.quick, "shapes": [dataclasses.asdict(s) for s in shapes],
              "max_rel_loss_diff": tolerance}
    path = write_json(SUITE, results, out=args.out, config=config,
                      extra={"failed_checks": failed, "goals": goals,
                             "other_processes_cpu_share": other_load.share})

    def worst(key):
        return max((r.checks[key] for r in seeds_results), default=0.0)

    print(f"\nvmapped members vs sequential runs: per-step losses within "
          f"{worst('max_rel_loss_diff'):.1e} (relative); final params within "
          f"{worst('final_max_abs_param_diff'):.1e} (rounding, amplified by training); wrote {path}")
    if failed:
        print(f"FAILED: the vmapped members' losses differ from the sequential runs' by more than "
              f"{tolerance} (relative), so they did different work: {failed}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
