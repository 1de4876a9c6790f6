"""Suite "text": a character-LM training step through the one trainer against PyTorch and Flax,
and the linear-chain CRF's log-likelihood and gradient (and Viterbi decoding) against
``pytorch-crf``.

**Character LM** (issue 13, item 8): embedding ``[V, E]``, a 2-layer LSTM of 512 units, a softmax
over the V = 84 characters of Shakespeare, B = 64 parallel streams, windows of T = 128, float32;
truncated BPTT (the carry flows from window to window, its gradient cut), Adam (lr 2e-3) after
clipping the global gradient norm to 1. Token ids are synthetic (uniform over V): the time of a
step does not depend on the text. Each timed call is S windows (``--windows``, default 2) of
every side; the rate is ``S B T / seconds`` in tokens per second.

* ours (``dlmodels``): what ``fit`` runs for ``dlmodels.text.lm.language_model(V, cell="lstm",
  hidden=512, layers=2, embed_dim=64)`` with ``lm.tbptt(model, B)`` over
  ``batching.trainer_data(batching.streams(ids, B, T))``, ``TrainConfig(batch_size=B,
  shuffle=False, steps_per_call=S)``, ``make_optimizer(OptimizerConfig("adam", 2e-3,
  clip_norm=1))``: one call of the trainer's compiled program (``jax.jit(make_train_steps(
  estimator, optimizer))``, the S windows in one ``lax.scan`` with the non-finite guard) and the
  host work of ``fit``'s loop around it (the batch indices, fetching the finite flags and the
  losses). The suite also runs ``fit`` itself for 3 calls of S windows and records its seconds
  per window after compilation (``fit_check``) beside the timed ones, to show the timed call is
  what ``fit`` spends.
* ``torch``: ``nn.Embedding``, ``nn.LSTM(E, 512, num_layers=2, batch_first=True)``,
  ``nn.Linear(512, V)``, ``F.cross_entropy``, ``clip_grad_norm_(1.0)``, ``torch.optim.Adam``,
  the carry detached between windows, ``loss.item()`` per window (as a training loop logs it);
  ``torch.set_num_threads(cpu count)``, ``OMP_WAIT_POLICY=PASSIVE`` (set before torch is imported;
  see ``benchmarks/rnn.py``); on CUDA when JAX runs on a GPU and PyTorch sees one
  (``harness.torch_device``; pytorch-crf too), else on the CPU.
* ``flax``: Linen ``nn.Embed`` + two ``nn.RNN(nn.OptimizedLSTMCell(512), return_carry=True)`` +
  ``nn.Dense(V)``, ``optax.softmax_cross_entropy_with_integer_labels``, the same optax chain, one
  jitted train step per window called S times (the carry returned and fed back; the loss of the
  last fetched).

**CRF**: ``crf.log_likelihood`` summed over the batch and its gradient w.r.t. the emissions and
the CRF params (``jax.jit(jax.value_and_grad(..., argnums=(0, 1)))``) at B = 64, T = 50, K = 48
tags, lengths uniform in [1, T] (one of them T), against ``torchcrf.CRF(48, batch_first=True)``
with the same params and mask: ``crf(emissions, tags, mask, reduction="sum")`` and
``.backward()`` (emissions with ``requires_grad``). Secondary: ``crf.viterbi`` (jitted) against
``CRF.decode(emissions, mask)``. A timed call is ``--crf-calls`` (default 20) calls. Checks before
timing: the log-likelihood and every gradient agree with pytorch-crf's to 1e-4 (relative), the
decoded paths are equal.

All sides of a case are timed in interleaved rounds (``harness.time_interleaved``); ratios are
``peer time / our time`` (= our tokens/s over the peer's), per round; the headline of a case is
the median of the per-round ratios with their quartiles, against the fastest peer (the smallest
median time). Target: >= 1.0x on both.

Run: ``python -m dlmodels bench text [--quick] [--rounds N]`` or
``python -m dlmodels.benchmarks.text``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp; see rnn.py

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, finish,
                                         make_parser, print_table, time_interleaved,
                                         torch_device, torch_environment)
from dlmodels import backend
from dlmodels.data.batching import batch_indices
from dlmodels.extras import optional_import

SUITE = "text"
OURS = "dlmodels"
LM_PEERS = ("torch", "flax")
CRF_PEERS = ("pytorch-crf",)
PARTS = ("lm", "crf")
LEARNING_RATE = 2e-3
CLIP_NORM = 1.0
# ours vs pytorch-crf: float32 rounding of sums over <= 50 positions
MAX_REL_CRF_DIFF = 1e-4


@dataclasses.dataclass(frozen=True)
class LMShape:
    """``vocab`` V, ``batch`` B streams, ``steps`` T per window, ``embed`` E, ``hidden`` H,
    ``layers`` L, ``windows`` S per timed call."""

    vocab: int
    batch: int
    steps: int
    embed: int
    hidden: int
    layers: int
    windows: int


@dataclasses.dataclass(frozen=True)
class CRFShape:
    batch: int
    steps: int
    tags: int
    calls: int


LM_SHAPE = LMShape(vocab=84, batch=64, steps=128, embed=64, hidden=512, layers=2, windows=2)
QUICK_LM = LMShape(vocab=12, batch=4, steps=8, embed=8, hidden=16, layers=2, windows=2)
CRF_SHAPE = CRFShape(batch=64, steps=50, tags=48, calls=20)
QUICK_CRF = CRFShape(batch=4, steps=6, tags=5, calls=2)


def lm_step_flops(s: LMShape) -> float:
    """Matmul flops of one window: per LSTM layer ``2 T B (D + H) 4H`` forward (D = E for the
    first layer, H after), the softmax layer ``2 T B H V``; backward twice the forward."""
    forward = 0.0
    for l in range(s.layers):
        d = s.embed if l == 0 else s.hidden
        forward += 2.0 * s.steps * s.batch * (d + s.hidden) * 4 * s.hidden
    forward += 2.0 * s.steps * s.batch * s.hidden * s.vocab
    return 3.0 * forward


def _corpus(s: LMShape, seed: int = 0) -> np.ndarray:
    """Uniform random ids, enough for S windows of B streams (plus the last target)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, s.vocab, size=s.windows * s.batch * s.steps + 1).astype(np.int32)


def _optax_chain():
    import optax

    return optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.adam(LEARNING_RATE))


# -- character LM: the sides ---------------------------------------------------------------------

def _lm_setup(s: LMShape, seed: int = 0):
    """The model, estimator, optimizer, trainer data and ``TrainConfig`` exactly as a user of
    ``fit`` builds them."""
    from dlmodels.text import batching, lm
    from dlmodels.train import OptimizerConfig, TrainConfig, make_optimizer

    model = lm.language_model(s.vocab, cell="lstm", hidden=s.hidden, layers=s.layers,
                              embed_dim=s.embed)
    estimator = lm.tbptt(model, s.batch)
    optimizer = make_optimizer(OptimizerConfig(name="adam", learning_rate=LEARNING_RATE,
                                               clip_norm=CLIP_NORM), total_steps=s.windows)
    data = batching.trainer_data(batching.streams(_corpus(s, seed), s.batch, s.steps))
    config = TrainConfig(epochs=1, batch_size=s.batch, shuffle=False, steps_per_call=s.windows,
                         seed=seed, progress=False)
    return model, estimator, optimizer, data, config


def ours_lm(s: LMShape):
    """A zero-argument call running S windows as ``fit``'s loop does (see the module docstring);
    returns the losses [S]. The state advances from call to call, as in training."""
    from dlmodels.train import init_state, make_train_steps

    model, estimator, optimizer, data, config = _lm_setup(s)
    data = jax.device_put(jax.tree.map(jnp.asarray, data))
    n = data["inputs"].shape[0]
    state = [init_state(model.init, optimizer, config.seed,
                        lambda key, params: estimator.init(key, params, data))]
    run = jax.jit(make_train_steps(estimator, optimizer, halt_on_nonfinite=True))
    key = jax.random.PRNGKey(config.data_seed)

    def step():
        idx = batch_indices(key, n, config.batch_size, epoch=0, shuffle=False)[:config.steps_per_call]
        state[0], metrics = run(state[0], data, jnp.asarray(idx))
        if not np.asarray(metrics.finite).all():
            raise FloatingPointError("non-finite loss in the LM benchmark")
        return np.asarray(metrics.loss)

    return step


def fit_check(s: LMShape, calls: int = 3) -> dict:
    """``fit`` itself for ``calls`` calls of S windows (an entry every S windows): its seconds per
    window in each entry after the first (which includes compilation)."""
    from dlmodels.train import fit

    model, estimator, optimizer, data, config = _lm_setup(s)
    n_windows = data["inputs"].shape[0] // s.batch
    # the same S windows, ``calls`` times over: epochs of S windows each
    config = dataclasses.replace(config, epochs=calls, eval_every=s.windows)
    assert n_windows == s.windows
    result = fit(model.init, estimator, optimizer, data, config)
    per_window = [e["seconds"] / s.windows for e in result.history[1:]]
    return {"calls": calls, "seconds_per_window_after_compile": per_window,
            "median_seconds_per_window": statistics.median(per_window) if per_window else None,
            "first_entry_seconds": result.history[0]["seconds"],
            "train_loss": [e["train_loss"] for e in result.history]}


def torch_lm(s: LMShape):
    torch = optional_import("torch", needed_for="the PyTorch side of the text benchmark")
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    device = torch_device()
    embed = torch.nn.Embedding(s.vocab, s.embed).to(device)
    lstm = torch.nn.LSTM(s.embed, s.hidden, num_layers=s.layers, batch_first=True).to(device)
    out = torch.nn.Linear(s.hidden, s.vocab).to(device)
    params = [*embed.parameters(), *lstm.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=LEARNING_RATE)
    ids = torch.from_numpy(_corpus(s).astype(np.int64)).to(device)
    n = s.windows * s.batch * s.steps
    # B contiguous streams cut into windows of T, as batching.streams does
    inputs = ids[:n].reshape(s.batch, s.windows, s.steps).transpose(0, 1).contiguous()
    targets = ids[1:n + 1].reshape(s.batch, s.windows, s.steps).transpose(0, 1).contiguous()
    zeros = torch.zeros(s.layers, s.batch, s.hidden, device=device)
    carry = [(zeros, zeros)]

    def step():
        losses = []
        for w in range(s.windows):
            h, c = (zeros, zeros) if w == 0 else (carry[0][0].detach(), carry[0][1].detach())
            opt.zero_grad(set_to_none=True)
            ys, carry[0] = lstm(embed(inputs[w]), (h, c))
            logits = out(ys)
            loss = F.cross_entropy(logits.reshape(-1, s.vocab), targets[w].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            opt.step()
            losses.append(loss.item())
        return np.asarray(losses)

    return step


def flax_lm(s: LMShape):
    import flax.linen as nn
    import optax

    class CharLM(nn.Module):
        @nn.compact
        def __call__(self, tokens, carry):
            x = nn.Embed(s.vocab, s.embed)(tokens)                      # [B, T, E]
            new = []
            for l in range(s.layers):
                c, x = nn.RNN(nn.OptimizedLSTMCell(s.hidden), return_carry=True)(
                    x, initial_carry=carry[l])
                new.append(c)
            return nn.Dense(s.vocab)(x), tuple(new)

    model = CharLM()
    zeros = jnp.zeros((s.batch, s.hidden))
    zero_carry = tuple((zeros, zeros) for _ in range(s.layers))
    ids = _corpus(s)
    n = s.windows * s.batch * s.steps
    inputs = jnp.asarray(ids[:n].reshape(s.batch, s.windows, s.steps).transpose(1, 0, 2))
    targets = jnp.asarray(ids[1:n + 1].reshape(s.batch, s.windows, s.steps).transpose(1, 0, 2))
    params = model.init(jax.random.PRNGKey(0), inputs[0], zero_carry)
    tx = _optax_chain()
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, carry, x, y):
        carry = jax.lax.stop_gradient(carry)

        def loss_fn(p):
            logits, new = model.apply(p, x, carry)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new, loss

    state = [params, opt_state]

    def step():
        carry = zero_carry
        losses = []
        for w in range(s.windows):
            state[0], state[1], carry, loss = train_step(state[0], state[1], carry, inputs[w],
                                                         targets[w])
            losses.append(loss)
        return np.asarray(jnp.stack(losses))

    return step


# -- CRF: the sides ------------------------------------------------------------------------------

def breakdown_sides(s: LMShape) -> dict[str, Callable]:
    """Parts of the step, each run S times per call, for ``--breakdown``: our model's loss and
    gradient alone (no optimizer, no trainer), our two LSTM layers alone (``rnn.unroll`` on the
    fused path, time-major as the model runs them, loss ``sum(ys ** 2)``), and torch's
    ``nn.LSTM`` alone (the same loss)."""
    from dlmodels import rnn
    from dlmodels.text import lm

    model, _, _, data, _ = _lm_setup(s)
    params = model.init(jax.random.PRNGKey(0))
    x = jnp.asarray(data["inputs"][:s.batch])
    y = jnp.asarray(data["targets"][:s.batch])
    carry = lm.initial_carry(model, params, s.batch)

    def loss(p):
        logits, _ = model.apply(p, x, carry)
        return jnp.mean(lm.token_nats(logits, y))

    model_grad = jax.jit(jax.value_and_grad(loss))
    cells = [rnn.lstm(s.hidden) for _ in range(s.layers)]
    xs = jax.random.normal(jax.random.PRNGKey(2), (s.steps, s.batch, s.embed))

    def lstm_loss(p, xs):
        for l, c in enumerate(cells):
            xs, _ = rnn.unroll(c, p["rnn"][f"layer_{l}"], xs, time_major=True)
        return jnp.sum(xs ** 2)

    lstm_grad = jax.jit(jax.value_and_grad(lstm_loss))
    sides = {"dlmodels model value_and_grad": _repeat(lambda: model_grad(params), s.windows),
             "dlmodels LSTM layers only": _repeat(lambda: lstm_grad(params, xs), s.windows)}
    try:
        torch = optional_import("torch", needed_for="the breakdown's torch side")
    except ImportError:
        return sides
    torch.manual_seed(0)
    module = torch.nn.LSTM(s.embed, s.hidden, num_layers=s.layers)
    xt = torch.randn(s.steps, s.batch, s.embed)

    def torch_lstm():
        module.zero_grad(set_to_none=True)
        loss = (module(xt)[0] ** 2).sum()
        loss.backward()
        return loss.item()

    sides["torch nn.LSTM layers only"] = _repeat(torch_lstm, s.windows)
    return sides


def _crf_inputs(s: CRFShape, seed: int = 0):
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(s.batch, s.steps, s.tags)).astype(np.float32)
    lengths = rng.integers(1, s.steps + 1, size=s.batch).astype(np.int32)
    lengths[0] = s.steps
    tags = rng.integers(0, s.tags, size=(s.batch, s.steps)).astype(np.int32)
    tags[np.arange(s.steps)[None, :] >= lengths[:, None]] = 0
    return emissions, tags, lengths


def ours_crf(s: CRFShape):
    """``(likelihood_and_grad, decode, params, emissions, tags, lengths)``; both jitted."""
    from dlmodels.text import crf

    params = crf.init(jax.random.PRNGKey(0), s.tags)
    emissions, tags, lengths = (jnp.asarray(a) for a in _crf_inputs(s))

    def total(p, e, y, l):
        return jnp.sum(crf.log_likelihood(p, e, y, l))

    grad = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))
    decode = jax.jit(crf.viterbi)
    return grad, decode, params, emissions, tags, lengths


def torch_crf(s: CRFShape, params):
    """``(likelihood_and_backward, decode, module, emissions, tags, mask)``: pytorch-crf with our
    ``params`` copied in."""
    torch = optional_import("torch", needed_for="the pytorch-crf side of the text benchmark")
    torchcrf = optional_import("torchcrf", needed_for="the pytorch-crf side of the text benchmark")

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch_device()
    module = torchcrf.CRF(s.tags, batch_first=True)
    with torch.no_grad():
        module.transitions.copy_(torch.from_numpy(np.array(params["transitions"])))
        module.start_transitions.copy_(torch.from_numpy(np.array(params["start"])))
        module.end_transitions.copy_(torch.from_numpy(np.array(params["end"])))
    module = module.to(device)
    emissions, tags, lengths = _crf_inputs(s)
    em = torch.from_numpy(emissions).to(device).requires_grad_(True)
    y = torch.from_numpy(tags.astype(np.int64)).to(device)
    mask = torch.from_numpy(np.arange(s.steps)[None, :] < lengths[:, None]).to(device)

    def grad():
        module.zero_grad(set_to_none=True)
        em.grad = None
        ll = module(em, y, mask, reduction="sum")
        ll.backward()
        return ll.item()

    def decode():
        with torch.no_grad():
            return module.decode(em, mask)

    return grad, decode, module, em, mask


def crf_checks(s: CRFShape, ours, peer) -> dict:
    """Our log-likelihood, gradients and Viterbi paths against pytorch-crf's on the same inputs."""
    grad, decode, params, emissions, tags, lengths = ours
    t_grad, t_decode, module, em, _ = peer
    value, (g_params, g_em) = grad(params, emissions, tags, lengths)
    t_value = t_grad()

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))

    diffs = {"log_likelihood": rel(value, t_value),
             "d_emissions": rel(g_em, em.grad.cpu().numpy()),
             "d_transitions": rel(g_params["transitions"], module.transitions.grad.cpu().numpy()),
             "d_start": rel(g_params["start"], module.start_transitions.grad.cpu().numpy()),
             "d_end": rel(g_params["end"], module.end_transitions.grad.cpu().numpy())}
    paths, _ = decode(params, emissions, lengths)
    paths = np.asarray(paths)
    t_paths = t_decode()
    same = all(list(paths[b, :int(lengths[b])]) == list(t_paths[b]) for b in range(s.batch))
    return {"max_rel_diff": diffs, "viterbi_paths_equal": bool(same)}


def _repeat(fn: Callable, n: int) -> Callable:
    def go():
        out = None
        for _ in range(n):
            out = fn()
        return out
    return go


# -- report --------------------------------------------------------------------------------------

def headline(results: list[Result]) -> dict | None:
    """The comparison with the fastest peer (smallest median time): the median of the per-round
    ratios ``peer / ours`` and their quartiles."""
    if not results:
        return None
    fastest = min(results, key=lambda r: r.peer.timing.median)
    summary = fastest.summary()
    return {"case": fastest.case.name, "fastest_peer": fastest.peer.label, **summary,
            "per_peer": {r.peer.label: {k: v or [] if k == "round_ratio_q25_q75" else v
                                        for k, v in r.summary().items()
                                        if k != "ratio_of_medians"}
                         for r in results},
            "target": 1.0, "met": summary["median_round_ratio"] >= 1.0}


def _print_headline(title: str, h: dict | None) -> None:
    if h is None:
        print(f"{title}: no peer ran", flush=True)
        return
    q = h["round_ratio_q25_q75"]
    print(f"{title}: vs the fastest peer ({h['fastest_peer']}) {h['median_round_ratio']:.2f}x "
          f"[per-round q25-q75 {q[0]:.2f}-{q[1]:.2f}]; target >= 1.0x: "
          f"{'met' if h['met'] else 'NOT met'}", flush=True)


def bench_lm(s: LMShape, peers, *, warmup: int, repeats: int, run_fit_check: bool,
             breakdown: bool = False):
    sides = {OURS: ours_lm(s)}
    skipped = {}
    factories = {"torch": lambda: torch_lm(s), "flax": lambda: flax_lm(s)}
    labels = {"torch": "torch nn.LSTM", "flax": "flax OptimizedLSTMCell"}
    for name in peers:
        try:
            sides[name] = factories[name]()
        except ImportError as e:
            skipped[name] = f"not installed: {e}"
            print(f"  skipped {name}: not installed: {e}", flush=True)
    # the first call of each side (compilation) is the first warm-up call
    first_losses = {name: float(fn()[0]) for name, fn in sides.items()}
    parts = breakdown_sides(s) if breakdown else {}
    for fn in parts.values():
        jax.block_until_ready(fn())
    timings = time_interleaved({**sides, **parts}, warmup=max(warmup - 1, 0), repeats=repeats)
    part_timings = {name: timings.pop(name) for name in parts}
    tokens = s.windows * s.batch * s.steps
    flops = lm_step_flops(s)
    shapes = {"V": s.vocab, "B": s.batch, "T": s.steps, "E": s.embed, "H": s.hidden,
              "layers": s.layers, "windows_per_call": s.windows}
    case = Case("char-LM train step", shapes,
                {"tokens_per_call": tokens, "matmul_gflop_per_window": flops / 1e9,
                 "optimizer": f"clip_by_global_norm({CLIP_NORM}) + adam({LEARNING_RATE})",
                 "ours": "train.make_train_steps(lm.tbptt(lm.language_model(...)), make_optimizer"
                         "(OptimizerConfig('adam', clip_norm=1))), fit's host work per call"})
    ours_m = Measurement(OURS, timings[OURS])
    checks = {"first_call_losses": first_losses, "log_vocab": math.log(s.vocab)}
    if run_fit_check:
        checks["fit_check"] = fit_check(s)
    results = [Result(case, ours_m, Measurement(labels[name], timings[name]), checks)
               for name in sides if name != OURS]
    rows = []
    for name, t in timings.items():
        row = {"side": name, "label": labels.get(name, OURS), "seconds_per_call": t.median,
               "tokens_per_s": tokens / t.median,
               "tokens_per_s_rounds": [tokens / x for x in t.times],
               "gflops": flops * s.windows / t.median / 1e9}
        rows.append(row)
        print(f"  {row['label']:<24} {t.median:8.3f} s / {s.windows} windows  "
              f"{row['tokens_per_s']:9.0f} tokens/s  {row['gflops']:6.1f} GFLOP/s", flush=True)
    parts_report = {}
    for name, t in part_timings.items():
        per_round = [a / b for a, b in zip(t.times, timings[OURS].times)]
        parts_report[name] = {"seconds_per_call": t.median, "times_s": list(t.times),
                              "fraction_of_ours_per_round": per_round,
                              "median_fraction_of_ours": statistics.median(per_round)}
        print(f"  part: {name:<32} {t.median:8.3f} s / {s.windows} windows  "
              f"{statistics.median(per_round):.2f} of our step (median per round)", flush=True)
    if run_fit_check:
        fc = checks["fit_check"]
        print(f"  fit itself: {fc['median_seconds_per_window']:.3f} s per window after compiling "
              f"(timed call: {timings[OURS].median / s.windows:.3f} s per window)", flush=True)
    return results, rows, skipped, parts_report


def bench_crf(s: CRFShape, peers, *, warmup: int, repeats: int):
    ours = ours_crf(s)
    grad, decode, params, emissions, tags, lengths = ours
    sides_grad = {OURS: _repeat(lambda: grad(params, emissions, tags, lengths), s.calls)}
    sides_decode = {OURS: _repeat(lambda: decode(params, emissions, lengths), s.calls)}
    skipped, checks = {}, {}
    if "pytorch-crf" in peers:
        try:
            peer = torch_crf(s, params)
        except ImportError as e:
            skipped["pytorch-crf"] = f"not installed: {e}"
            print(f"  skipped pytorch-crf: not installed: {e}", flush=True)
        else:
            checks = crf_checks(s, ours, peer)
            sides_grad["pytorch-crf"] = _repeat(peer[0], s.calls)
            sides_decode["pytorch-crf"] = _repeat(peer[1], s.calls)
    shapes = {"B": s.batch, "T": s.steps, "K": s.tags, "calls_per_round": s.calls}
    details = {"lengths": "uniform in [1, T], one of them T"}
    results = {}
    for what, sides, label in (("log-likelihood + gradient", sides_grad, "pytorch-crf forward+backward"),
                               ("Viterbi decode", sides_decode, "pytorch-crf decode")):
        timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
        case = Case(f"CRF {what}", shapes, details)
        results[what] = [Result(case, Measurement(OURS, timings[OURS]),
                                Measurement(label, timings[name]), checks)
                         for name in sides if name != OURS]
        for name, t in timings.items():
            print(f"  {what:<26} {name:<12} {t.median / s.calls * 1e3:8.3f} ms per call",
                  flush=True)
    return results, checks, skipped


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "Character-LM training step (embedding, 2-layer LSTM 512, softmax) "
                                "vs PyTorch and Flax; CRF log-likelihood + gradient and Viterbi "
                                "vs pytorch-crf.")
    parser.add_argument("--rounds", type=int, dest="repeats", default=argparse.SUPPRESS,
                        help="interleaved timed rounds (the same as --repeats)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--peers", nargs="+", choices=LM_PEERS + CRF_PEERS,
                        default=list(LM_PEERS + CRF_PEERS))
    parser.add_argument("--windows", type=int, default=None,
                        help=f"LM windows per timed call (default {LM_SHAPE.windows})")
    parser.add_argument("--crf-calls", type=int, default=None,
                        help=f"CRF calls per timed call (default {CRF_SHAPE.calls})")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time parts of the LM step in the same rounds: our model's "
                             "loss and gradient alone, our LSTM layers alone, torch's nn.LSTM alone")
    parser.add_argument("--no-fit-check", action="store_true",
                        help="skip running fit itself beside the timed LM calls")
    args = parser.parse_args(argv)
    if args.quick:
        lm_shape, crf_shape, repeats, warmup = QUICK_LM, QUICK_CRF, min(args.repeats, 2), 1
    else:
        lm_shape, crf_shape, repeats, warmup = LM_SHAPE, CRF_SHAPE, args.repeats, args.warmup
    if args.windows:
        lm_shape = dataclasses.replace(lm_shape, windows=args.windows)
    if args.crf_calls:
        crf_shape = dataclasses.replace(crf_shape, calls=args.crf_calls)
    if repeats < 1 or warmup < 0 or lm_shape.windows < 1 or crf_shape.calls < 1:
        parser.error("--rounds, --windows and --crf-calls must be >= 1, --warmup >= 0")

    env = environment()
    torch_info = torch_environment()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, {env['date']}; {repeats} interleaved rounds after "
          f"{warmup} warm-up calls; load average {load}", flush=True)

    results: list[Result] = []
    extra: dict = {"headlines": {}, "skipped": {}, "failed_checks": []}
    if "lm" in args.parts:
        print(f"\nchar-LM: {dataclasses.asdict(lm_shape)}", flush=True)
        lm_results, rows, skipped, parts = bench_lm(
            lm_shape, [p for p in args.peers if p in LM_PEERS], warmup=warmup, repeats=repeats,
            run_fit_check=not args.no_fit_check, breakdown=args.breakdown)
        results += lm_results
        extra["lm_sides"] = rows
        if parts:
            extra["lm_breakdown"] = parts
        extra["skipped"].update({f"lm: {k}": v for k, v in skipped.items()})
        extra["headlines"]["lm"] = headline(lm_results)
    if "crf" in args.parts:
        print(f"\nCRF: {dataclasses.asdict(crf_shape)}", flush=True)
        crf_results, checks, skipped = bench_crf(
            crf_shape, [p for p in args.peers if p in CRF_PEERS], warmup=warmup, repeats=repeats)
        for rs in crf_results.values():
            results += rs
        extra["skipped"].update({f"crf: {k}": v for k, v in skipped.items()})
        extra["headlines"]["crf"] = headline(crf_results["log-likelihood + gradient"])
        extra["headlines"]["crf_viterbi"] = headline(crf_results["Viterbi decode"])
        if checks:
            tolerance = backend.matmul_rtol(MAX_REL_CRF_DIFF)
            bad = {k: v for k, v in checks["max_rel_diff"].items() if not v <= tolerance}
            if bad:
                extra["failed_checks"].append(f"CRF vs pytorch-crf: {bad}")
            if not checks["viterbi_paths_equal"]:
                extra["failed_checks"].append("CRF Viterbi paths differ from pytorch-crf's")

    print()
    for name, label in dict.fromkeys((r.case.name, r.peer.label) for r in results):
        print_table(f"{name}: {label} vs {OURS}",
                    [r for r in results if (r.case.name, r.peer.label) == (name, label)])
        print()
    for key, title in (("lm", "char-LM tokens/s"), ("crf", "CRF log-likelihood + gradient"),
                       ("crf_viterbi", "CRF Viterbi (secondary)")):
        if key in extra["headlines"]:
            _print_headline(title, extra["headlines"][key])

    config = {"repeats": repeats, "warmup": warmup, "quick": args.quick, "parts": args.parts,
              "peers": args.peers, "lm_shape": dataclasses.asdict(lm_shape),
              "crf_shape": dataclasses.asdict(crf_shape), "learning_rate": LEARNING_RATE,
              "breakdown": args.breakdown,
              "clip_norm": CLIP_NORM, "dtype": "float32", "torch": torch_info,
              "load_average_at_start": list(load) if load else None,
              "max_rel_crf_diff": backend.matmul_rtol(MAX_REL_CRF_DIFF)}
    return finish(SUITE, results, out=args.out, config=config, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
