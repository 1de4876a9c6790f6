"""Suite "rnn": the LSTM and GRU training step of ``dlmodels.rnn`` against Flax, Equinox, Haiku and
PyTorch, plus compile time and peak memory.

What is timed is one training step: the value and gradient of ``sum(ys ** 2)`` (``ys`` all the
outputs ``[B, T, H]``) w.r.t. the params and the inputs ``xs [B, T, D]``, float32, batch-major
inputs for every side, zero initial state, jitted for every JAX side:

* ours (``dlmodels``): ``unroll(rnn.lstm(H) / rnn.gru(H), params, xs)``, i.e. the fused path
  (``dlmodels.rnn.fused``: hand-written backward pass, weight gradients as large matmuls);
* ``dlmodels generic``: the same cell on the generic path (``cell._replace(fused=None)``:
  ``lax.scan`` of the step and autodiff), for context;
* ``flax OptimizedLSTMCell`` / ``flax LSTMCell`` / ``flax GRUCell``: ``nn.RNN(cell)``;
* ``equinox``: ``eqx.nn.LSTMCell`` / ``GRUCell`` under ``lax.scan``, ``jax.vmap`` over the batch;
* ``haiku``: ``hk.LSTM`` / ``hk.GRU`` with ``hk.dynamic_unroll(..., time_major=False)``;
* ``torch``: ``nn.LSTM`` / ``nn.GRU(batch_first=True)``, forward, ``loss.backward()`` (inputs with
  ``requires_grad``), ``loss.item()`` to finish; ``torch.set_num_threads(cpu count)``; on CUDA
  when JAX runs on a GPU and PyTorch sees one (``harness.torch_device``), else on the CPU.
  ``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch is imported: with
  libgomp's default spinning, torch's threads fight the other work on a shared 2-core machine and
  the JAX calls timed right after them (measured: torch's step 3-5x slower and ours 2x slower).
* ``cudnn (jax.experimental.rnn)``, LSTM only and only when JAX runs on a GPU: cuDNN's LSTM through
  ``jax.experimental.rnn.lstm`` (its own custom VJP), on the packed weight vector of our params
  (``rnn.lstm_to_cudnn``: the same function as ours, checked on the device against our outputs).
  On the CPU it has no lowering and the suite says "cuDNN peer: not measured (backend cpu)".

All sides of one case are timed in interleaved rounds (``harness.time_interleaved``), together
with a large float32 ``jnp`` matmul (``[1024, 8192] @ [8192, 1024]``) whose rate is the machine's
peak for the "% of peak" column. Matmul flops of a step: forward ``2 T B (D + H) G H``, backward
twice that (``G = 4`` for the LSTM, 3 for the GRU); elementwise work is not counted.

Also measured: compile time (``jit(step).lower(...).compile()`` wall time, median of 3, each on
a freshly built step) of our LSTM step at T = 10 and T = 1000; and the memory XLA assigns to our
LSTM step at T = 4096 with and without ``remat`` (``compiled.memory_analysis()``:
``temp_size_in_bytes`` is the peak of the temporaries (buffers of the program that are neither
arguments nor outputs) after buffer sharing; arguments and outputs are listed apart).

On a GPU the suite adds the shapes of ``GPU_SHAPES`` (B >= 64) and prints the GPU goals: our LSTM
step within 1.5x of cuDNN's (``cudnn / ours >= 1 / 1.5``) and faster than Flax's (the faster of
its two LSTM cells) at every LSTM shape with B >= 64 (``gpu_goals``: met / NOT met, recorded under
``"gpu_goals"``; a goal is not a failed check).

Run: ``python -m dlmodels.benchmarks.rnn [--repeats N] [--quick] [--out PATH]`` or ``dlmodels bench rnn``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp; see above

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, make_parser, matmul_peak,
                                print_table, time_interleaved, torch_device, torch_environment,
                                write_json)
from dlmodels import backend, rnn
from dlmodels.extras import optional_import

SUITE = "rnn"
OURS = "dlmodels"
CUDNN = "cudnn (jax.experimental.rnn)"
PEERS = ("dlmodels generic", "torch", "flax OptimizedLSTMCell", "flax LSTMCell", "flax GRUCell",
         "equinox", "haiku", CUDNN)
FLAX_LSTM = ("flax OptimizedLSTMCell", "flax LSTMCell")
# GPU goals, LSTM at B >= GOAL_MIN_BATCH: cudnn / ours >= 1 / CUDNN_FACTOR, flax / ours > 1
GOAL_MIN_BATCH, CUDNN_FACTOR = 64, 1.5
GATES = {"lstm": 4, "gru": 3}
# fused vs generic gradients (float32, sum of squares over B*T outputs): rounding only
MAX_REL_GRAD_DIFF = 1e-4


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    steps: int
    input_size: int
    hidden_size: int


SHAPES = (Shape("T256-H256", 32, 256, 128, 256), Shape("T64-H512", 32, 64, 128, 512))
# added on a GPU, where the goals are set at B >= 64
GPU_SHAPES = (Shape("B64-T256-H256", 64, 256, 128, 256), Shape("B256-T64-H512", 256, 64, 128, 512))
QUICK_SHAPES = (Shape("tiny", 4, 8, 8, 16),)


def step_flops(kind: str, s: Shape) -> float:
    """Matmul flops of one training step: forward ``2 T B (D + H) G H``, backward twice that."""
    forward = 2.0 * s.steps * s.batch * (s.input_size + s.hidden_size) * GATES[kind] * s.hidden_size
    return 3.0 * forward


def _inputs(s: Shape, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (s.batch, s.steps, s.input_size))


# -- the sides: each returns a zero-argument callable running one training step ------------------

def ours(kind: str, s: Shape, *, generic: bool = False, remat: bool = False):
    """``(step, params, xs)``: the jitted value-and-grad of our cell on the fused (default) or the
    generic path."""
    cell = {"lstm": rnn.lstm, "gru": rnn.gru}[kind](s.hidden_size)
    if generic:
        cell = cell._replace(fused=None)
    params = cell.init(jax.random.PRNGKey(1), s.input_size)

    def loss(p, xs):
        return jnp.sum(rnn.unroll(cell, p, xs, remat=remat)[0] ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), params, _inputs(s)


def _flax(kind: str, s: Shape, cell_name: str):
    import flax.linen as nn

    model = nn.RNN(getattr(nn, cell_name)(s.hidden_size))
    xs = _inputs(s)
    params = model.init(jax.random.PRNGKey(1), xs)
    step = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(model.apply(p, x) ** 2),
                                      argnums=(0, 1)))
    return lambda: step(params, xs)


def _equinox(kind: str, s: Shape):
    eqx = optional_import("equinox", needed_for="the Equinox side of the RNN benchmark")

    cls = eqx.nn.LSTMCell if kind == "lstm" else eqx.nn.GRUCell
    cell = cls(s.input_size, s.hidden_size, key=jax.random.PRNGKey(1))
    zeros = jnp.zeros((s.hidden_size,))
    initial = (zeros, zeros) if kind == "lstm" else zeros

    def loss(model_and_xs):
        model, xs = model_and_xs

        def sequence(x):                                        # [T, D] -> [T, H]
            def step(carry, x_t):
                carry = model(x_t, carry)
                return carry, carry[0] if kind == "lstm" else carry
            return jax.lax.scan(step, initial, x)[1]

        return jnp.sum(jax.vmap(sequence)(xs) ** 2)

    step = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    xs = _inputs(s)
    return lambda: step((cell, xs))


def _haiku(kind: str, s: Shape):
    hk = optional_import("haiku", needed_for="the Haiku side of the RNN benchmark")

    def forward(xs):
        core = hk.LSTM(s.hidden_size) if kind == "lstm" else hk.GRU(s.hidden_size)
        ys, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[0]), time_major=False)
        return ys

    model = hk.without_apply_rng(hk.transform(forward))
    xs = _inputs(s)
    params = model.init(jax.random.PRNGKey(1), xs)
    step = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(model.apply(p, x) ** 2),
                                      argnums=(0, 1)))
    return lambda: step(params, xs)


def _torch(kind: str, s: Shape):
    torch = optional_import("torch", needed_for="the PyTorch side of the RNN benchmark")

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    device = torch_device()
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    module = cls(s.input_size, s.hidden_size, batch_first=True).to(device)
    xs = torch.randn(s.batch, s.steps, s.input_size, device=device, requires_grad=True)

    def step():
        module.zero_grad(set_to_none=True)
        xs.grad = None
        ys, _ = module(xs)
        loss = (ys ** 2).sum()
        loss.backward()
        return loss.item()                                      # waits for the step

    return step


def cudnn_lstm(s: Shape):
    """``(step, weights, xs)``: the jitted value-and-grad (w.r.t. the packed weights and the inputs)
    of ``sum(ys ** 2)`` for cuDNN's LSTM (``jax.experimental.rnn.lstm``, zero initial state, every
    sequence of full length) on ``rnn.lstm_to_cudnn`` of our initial params. Runs on a GPU only."""
    from jax.experimental import rnn as jax_rnn

    H, D = s.hidden_size, s.input_size
    weights = rnn.lstm_to_cudnn(rnn.lstm(H).init(jax.random.PRNGKey(1), D))
    xs = _inputs(s)
    zeros = jnp.zeros((1, s.batch, H))
    lengths = jnp.full((s.batch,), s.steps, jnp.int32)

    def loss(w, xs):
        ys, _, _ = jax_rnn.lstm(xs, zeros, zeros, w, lengths, input_size=D, hidden_size=H,
                                num_layers=1, dropout=0.0, bidirectional=False)
        return jnp.sum(ys ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), weights, xs


def _cudnn(kind: str, s: Shape):
    step, weights, xs = cudnn_lstm(s)
    return lambda: step(weights, xs)


def cudnn_unavailable(kind: str, backend_name: str | None = None) -> str | None:
    """Why the cuDNN peer does not run here (None when it does): it is an LSTM only, and
    ``jax.experimental.rnn`` lowers to cuDNN on a GPU only."""
    if kind != "lstm":
        return "LSTM only"
    name = backend.name(backend_name)
    return None if name == "gpu" else f"not measured (backend {name})"


def _ours_side(kind: str, s: Shape, generic: bool = False):
    step, params, xs = ours(kind, s, generic=generic)
    return lambda: step(params, xs)


def make_sides(kind: str, s: Shape, peers) -> tuple[dict[str, Callable], dict]:
    """The zero-argument step of each side available here, and the peers skipped (with why)."""
    sides = {OURS: _ours_side(kind, s)}
    skipped = {}
    factories = {
        "dlmodels generic": lambda: _ours_side(kind, s, generic=True),
        "torch": lambda: _torch(kind, s),
        "flax OptimizedLSTMCell": lambda: _flax(kind, s, "OptimizedLSTMCell"),
        "flax LSTMCell": lambda: _flax(kind, s, "LSTMCell"),
        "flax GRUCell": lambda: _flax(kind, s, "GRUCell"),
        "equinox": lambda: _equinox(kind, s),
        "haiku": lambda: _haiku(kind, s),
        CUDNN: lambda: _cudnn(kind, s),
    }
    for name in peers:
        if name.startswith("flax") and (("GRU" in name) != (kind == "gru")):
            continue                                            # not this cell's peer
        if name == CUDNN and cudnn_unavailable(kind):
            if kind == "lstm":
                skipped[name] = cudnn_unavailable(kind)
            continue
        try:
            sides[name] = factories[name]()
        except ImportError as e:
            skipped[name] = f"not installed ({e.name})"
            print(f"  skipped {name}: not installed ({e.name})", flush=True)
    return sides, skipped


def peer_label(kind: str, name: str) -> str:
    if name == "torch":
        return f"torch nn.{kind.upper()}"
    if name in ("equinox", "haiku"):
        return f"{name} {kind.upper()}"
    return name


# -- checks, compile time, memory ----------------------------------------------------------------

def fused_vs_generic(sides: dict) -> float | None:
    """Largest ``|fused - generic| / max|generic|`` over the loss and every gradient leaf (same
    params and inputs on both sides), or None without the generic side."""
    if "dlmodels generic" not in sides:
        return None
    a, b = sides[OURS](), sides["dlmodels generic"]()
    return max(float(jnp.max(jnp.abs(x - y)) / jnp.maximum(jnp.max(jnp.abs(y)), 1e-30))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def cudnn_vs_ours(sides: dict) -> float | None:
    """Largest ``|cudnn - ours| / max|ours|`` over the loss, the input gradient and the weight
    gradient (ours packed as cuDNN packs it: ``b_ih`` and ``b_hh`` both get our ``b``'s gradient),
    or None without the cuDNN side."""
    if CUDNN not in sides:
        return None
    value, (grads, d_xs) = sides[OURS]()
    c_value, (c_dw, c_dxs) = sides[CUDNN]()
    packed = rnn.lstm_to_cudnn(grads)
    packed = packed.at[-grads["b"].shape[0]:].set(grads["b"])
    return max(float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))
               for a, b in ((c_value, value), (c_dxs, d_xs), (c_dw, packed)))


def gpu_goals(summary: list[dict]) -> list[dict]:
    """The GPU goals at each LSTM case with ``B >= GOAL_MIN_BATCH`` among ``summary`` (the
    suite's per-case rows): ``cudnn / ours >= 1 / CUDNN_FACTOR`` (ours within 1.5x of cuDNN) and
    ``flax / ours > 1`` against the faster Flax LSTM cell, each with ``met`` (None when that peer
    did not run)."""
    goals = []
    for case in summary:
        if case["cell"] != "lstm" or case["shape"]["batch"] < GOAL_MIN_BATCH:
            continue
        ratios = {row["side"]: row.get("ratio_peer_over_ours") for row in case["sides"]}
        cudnn = ratios.get(CUDNN)
        flax = [ratios[n] for n in FLAX_LSTM if ratios.get(n) is not None]
        goals.append({"case": case["case"], "goal": f"within {CUDNN_FACTOR}x of cuDNN",
                      "ratio_peer_over_ours": cudnn, "target": 1 / CUDNN_FACTOR,
                      "met": None if cudnn is None else cudnn >= 1 / CUDNN_FACTOR})
        goals.append({"case": case["case"], "goal": "faster than Flax",
                      "ratio_peer_over_ours": min(flax) if flax else None, "target": 1.0,
                      "met": min(flax) > 1.0 if flax else None})
    return goals


def compile_seconds(kind: str, s: Shape, *, generic: bool = False, repeats: int = 3) -> float:
    """Median wall time of ``jax.jit(step).lower(params, xs).compile()``, each time on a step
    built afresh (a new function, so no compilation cache is hit)."""
    times = []
    for _ in range(repeats):
        step, params, xs = ours(kind, s, generic=generic)
        t0 = time.perf_counter()
        step.lower(params, xs).compile()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def memory(kind: str, s: Shape, *, remat: bool, generic: bool = False) -> dict:
    step, params, xs = ours(kind, s, remat=remat, generic=generic)
    stats = step.lower(params, xs).compile().memory_analysis()
    return {"temp_bytes": int(stats.temp_size_in_bytes),
            "argument_bytes": int(stats.argument_size_in_bytes),
            "output_bytes": int(stats.output_size_in_bytes),
            "alias_bytes": int(stats.alias_size_in_bytes)}


# -- main ---------------------------------------------------------------------------------------

def _mib(n: int) -> str:
    return f"{n / 2 ** 20:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "LSTM/GRU training step vs Flax, Equinox, Haiku and PyTorch; "
                                "compile time and memory.")
    parser.add_argument("--cells", nargs="+", choices=sorted(GATES), default=sorted(GATES))
    parser.add_argument("--shapes", nargs="+", choices=[s.name for s in SHAPES + GPU_SHAPES],
                        help="which shapes (default SHAPES, and GPU_SHAPES on a GPU; "
                             "ignored with --quick)")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--compile-steps", nargs=2, type=int, default=None, metavar=("T1", "T2"),
                        help="T of the compile-time comparison (default 10 1000; quick 10 100)")
    parser.add_argument("--memory-steps", type=int, default=None,
                        help="T of the memory comparison (default 4096; quick 64)")
    args = parser.parse_args(argv)
    on_gpu = backend.name() == "gpu"
    if args.quick:
        shapes, repeats, warmup = QUICK_SHAPES, 1, 1
        compile_steps, memory_steps, compile_repeats = (10, 100), 64, 1
    else:
        if args.shapes:                                     # named shapes run anywhere
            shapes = [s for s in SHAPES + GPU_SHAPES if s.name in args.shapes]
        else:
            shapes = list(SHAPES + GPU_SHAPES if on_gpu else SHAPES)
        repeats, warmup, compile_repeats = args.repeats, args.warmup, 3
        compile_steps, memory_steps = (10, 1000), 4096
    compile_steps = tuple(args.compile_steps or compile_steps)
    memory_steps = args.memory_steps or memory_steps
    if repeats < 1:
        parser.error("--repeats must be >= 1")

    env = environment()
    torch_info = torch_environment() if "torch" in args.peers else {}
    max_rel_grad_diff = backend.matmul_rtol(MAX_REL_GRAD_DIFF)
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, {env['date']}; medians of {repeats} interleaved rounds "
          f"after {warmup} warm-up calls; torch: {torch_info or 'not run'}", flush=True)

    peak_fn, peak_flops = matmul_peak(args.quick)
    results: list[Result] = []
    summary, skipped_all, failed = [], {}, []
    for kind in args.cells:
        for s in shapes:
            shapes_d = {"B": s.batch, "T": s.steps, "D": s.input_size, "H": s.hidden_size}
            print(f"\n{kind} {s.name} ({', '.join(f'{k}={v}' for k, v in shapes_d.items())}):",
                  flush=True)
            sides, skipped = make_sides(kind, s, args.peers)
            diff = fused_vs_generic(sides)
            if diff is not None and diff > max_rel_grad_diff:
                failed.append(f"{kind} {s.name}: fused vs generic {diff:.1e}")
            cudnn_diff = cudnn_vs_ours(sides)
            if cudnn_diff is not None and not cudnn_diff <= max_rel_grad_diff:
                failed.append(f"{kind} {s.name}: cuDNN vs ours {cudnn_diff:.1e}")
            skipped_all.update({f"{kind}: {k}": v for k, v in skipped.items()})
            timings = time_interleaved({**sides, "peak matmul": peak_fn}, warmup=warmup,
                                       repeats=repeats)
            peak_rate = peak_flops / timings.pop("peak matmul").median
            flops = step_flops(kind, s)
            case = Case(f"{kind} {s.name}", shapes_d,
                        {"cell": kind, "gates": GATES[kind], "step_gflop": flops / 1e9})
            ours_m = Measurement(OURS, timings[OURS])
            rows = []
            for name, t in timings.items():
                rate = flops / t.median
                row = {"side": name, "label": peer_label(kind, name), "ms": t.median * 1e3,
                       "gflops": rate / 1e9, "percent_of_peak": 100 * rate / peak_rate}
                if name != OURS:
                    result = Result(case, ours_m, Measurement(peer_label(kind, name), t),
                                    {"fused_vs_generic_rel_diff": diff,
                                     "cudnn_vs_ours_rel_diff": cudnn_diff})
                    results.append(result)
                    row["ratio_peer_over_ours"] = result.ratio
                    q = result.ratio_quartiles()
                    row["ratio_q25_q75"] = list(q) if q else None
                rows.append(row)
            for row in rows:
                ratio = row.get("ratio_peer_over_ours")
                print(f"  {row['label']:<26} {row['ms']:9.2f} ms  {row['gflops']:7.1f} GFLOP/s "
                      f"{row['percent_of_peak']:5.1f}% of peak"
                      + (f"   peer/ours {ratio:5.2f}x" if ratio else ""), flush=True)
            print(f"  (peak matmul {peak_rate / 1e9:.1f} GFLOP/s in these rounds; fused vs "
                  f"generic loss and gradients within {diff if diff is None else f'{diff:.1e}'}"
                  f" relative" + ("" if cudnn_diff is None else
                                  f"; cuDNN vs ours within {cudnn_diff:.1e}") + ")", flush=True)
            summary.append({"case": case.name, "cell": kind, "shape": dataclasses.asdict(s),
                            "step_gflop": flops / 1e9, "peak_gflops": peak_rate / 1e9,
                            "sides": rows, "fused_vs_generic_rel_diff": diff,
                            "cudnn_vs_ours_rel_diff": cudnn_diff})

    print()
    for label in dict.fromkeys(r.peer.label for r in results):
        print_table(f"{label} vs {OURS}", [r for r in results if r.peer.label == label])
        print()
    goals = gpu_goals(summary) if on_gpu else []          # GPU goals, judged on a GPU only
    if "lstm" in args.cells and not on_gpu:
        print(f"cuDNN peer: {cudnn_unavailable('lstm')}; the GPU goals (LSTM within "
              f"{CUDNN_FACTOR}x of cuDNN and faster than Flax at B >= {GOAL_MIN_BATCH}) are not "
              f"measured here", flush=True)
    elif "lstm" in args.cells and not goals:
        print(f"GPU goals: not measured (no LSTM shape with B >= {GOAL_MIN_BATCH} in this run)",
              flush=True)
    for g in goals:
        r = g["ratio_peer_over_ours"]
        verdict = "not measured" if g["met"] is None else ("met" if g["met"] else "NOT met")
        print(f"GPU goal, {g['case']}: {g['goal']}: peer/ours "
              f"{'-' if r is None else f'{r:.2f}x'} (target >= {g['target']:.2f}x): {verdict}",
              flush=True)
    print()

    # compile time of our LSTM step, T short vs long
    base = shapes[0]
    compile_rows = {}
    context = (False,) if args.quick else (False, True)      # the generic path for context
    for generic in context:
        side = "dlmodels generic" if generic else OURS
        secs = {T: compile_seconds("lstm", dataclasses.replace(base, steps=T), generic=generic,
                                   repeats=compile_repeats) for T in compile_steps}
        t1, t2 = compile_steps
        compile_rows[side] = {"seconds": {str(T): v for T, v in secs.items()},
                              "ratio_long_over_short": secs[t2] / secs[t1]}
        print(f"compile (lower + compile) lstm {side}: T={t1} {secs[t1]:.2f} s, T={t2} "
              f"{secs[t2]:.2f} s, ratio {secs[t2] / secs[t1]:.2f} (target <= 1.5)", flush=True)

    # memory at long T, with and without remat
    mem_shape = dataclasses.replace(base, steps=memory_steps)
    memory_rows = {}
    for generic in context:
        for remat in (False, True):
            side = ("dlmodels generic" if generic else OURS) + (" remat" if remat else "")
            m = memory("lstm", mem_shape, remat=remat, generic=generic)
            memory_rows[side] = m
            print(f"memory lstm T={memory_steps} {side:<24} temp {_mib(m['temp_bytes']):>8} MiB "
                  f"(arguments {_mib(m['argument_bytes'])} MiB, outputs "
                  f"{_mib(m['output_bytes'])} MiB)", flush=True)

    config = {"repeats": repeats, "warmup": warmup, "quick": args.quick, "cells": args.cells,
              "peers": args.peers, "shapes": [dataclasses.asdict(s) for s in shapes],
              "loss": "sum(ys ** 2), value_and_grad w.r.t. params and inputs, float32",
              "torch": torch_info, "compile_steps": list(compile_steps),
              "memory_shape": dataclasses.asdict(mem_shape),
              "max_rel_grad_diff": max_rel_grad_diff}
    extra = {"cases": summary, "compile": compile_rows, "memory": memory_rows,
             "skipped": skipped_all, "gpu_goals": goals, "failed_checks": failed}
    path = write_json(SUITE, results, out=args.out, config=config, extra=extra)
    print(f"wrote {path}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
