"""BPTT term by term: heat maps of ||(dL/dW)_{i,j}|| (output j's share of the gradient through
step i) for a tanh RNN and an LSTM, at initialisation and after training on a delayed-recall task.

Protocol. Task: a stream of random symbols s_t (``n_symbols`` of them, one-hot inputs) and, at
every step t >= delay, the target s_{t - delay} (no loss before: nothing to recall yet), so
L = sum_{j >= delay} L_j (cross-entropy) and each output j needs the input ``delay`` steps back.
Both networks (``hidden_size`` units, a linear softmax readout) train through
``dlmodels.train.fit`` for ``train_steps`` Adam updates on fresh batches. For ``n_sequences`` test
sequences (one at a time, L the sum over time of that sequence's cross-entropy) we compute the
contributions ``(dL/dW)_{i,j}`` of ``dlmodels.analysis.bptt``: for the tanh RNN the lab's delta
recursion (``elman_contributions``) and for the LSTM autodiff through per-step copies of the
weights (``contributions``; for the tanh RNN both, checked to agree), then their Frobenius norms
``[T, T]`` averaged over the sequences, for the recurrent weights W_h and the input weights W_x.
The lag profile is the mean over the outputs j >= delay of the norm at lag k = j - i; its decay
rate is the per-step factor fitted to log10(profile) over the lags; "reach" is the largest lag
whose mean norm is at least 1e-2 of the lag-0 norm.

Expected (Bengio, Simard & Frasconi 1994; Hochreiter & Schmidhuber 1997; the course's BPTT lab):
at initialisation the tanh RNN's contributions fall geometrically with the lag j - i, the LSTM's
(forget bias +1) more slowly; after training, an output's error should reach back as far as the
task needs (``delay`` steps) and fall beyond it.

Measured (reference run 2026-12-04, T = 40, delay 10, H = 32, 3,000 updates, 107 s on a shared
2-core CPU; experiments/results/bptt/): test accuracy (steps t >= delay, chance 0.25) 1.000 for the
tanh RNN and 0.993 for the LSTM. At initialisation the lag profile of ||(dL/dW_x)_{j-k,j}|| falls
by a fitted factor 0.872 per step for the tanh RNN (0.863 for W_h; 0.25 of lag 0 left at lag 10,
0.005 at lag 39) and 0.964 for the LSTM (0.942 for W_h; 0.36 at lag 10, 0.14 at lag 39). After
training both profiles are flat or rising out to the delay (W_x at lag 10: 7.6x the lag-0 norm
for the tanh RNN, 2.0x for the LSTM: the error is sent to where the needed input came in) and fall
beyond it at 0.921 (tanh RNN) and 0.910 (LSTM) per step. The lab's delta recursion and autodiff
through per-step weight copies agree to 2e-4 of the largest contribution in float32 (to 1e-11 in
float64 in tests/test_bptt.py). Orthogonally initialised tanh RNNs are good at this pure-delay
task (they learn it faster than the LSTM here); with delay 20 (T = 60) the tanh RNN reached 0.996
and the LSTM 0.75 after 3,000 updates, and with delay 30 (an earlier variant with a blank target
before the delay) the tanh RNN stayed at chance after 6,000 updates and the LSTM reached 0.36 after
4,000. The reference keeps delay 10, where both solve the task, so the trained maps compare two
working networks.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import rnn
from dlmodels.analysis import bptt
from dlmodels.experiment import write_json
from dlmodels.nn import initializers
from dlmodels.plots import figure, save
from dlmodels.text.embedding import one_hot
from dlmodels.train import OptimizerConfig, TrainConfig, fit, init_state, make_optimizer

CELLS = ("rnn", "lstm")


@dataclasses.dataclass(frozen=True)
class Config:
    length: int = 40  # sequence length T (the heat maps are T x T)
    delay: int = 10  # the target at step t is the symbol seen at step t - delay
    n_symbols: int = 4  # symbols of the input stream (one-hot inputs, softmax outputs)
    hidden_size: int = 32  # hidden units of the tanh RNN and of the LSTM
    train_steps: int = 3000  # Adam updates per network (a multiple of eval_every)
    eval_every: int = 500  # updates between test evaluations
    batch_size: int = 32  # fresh sequences per update
    learning_rate: float = 3e-3  # Adam learning rate
    clip_norm: float = 1.0  # global gradient-norm clipping
    n_sequences: int = 16  # test sequences the contribution norms are averaged over
    n_test: int = 500  # test sequences for the accuracy
    seed: int = 0  # seed of the params and data

    def __post_init__(self):
        if not 0 < self.delay < self.length:
            raise ValueError(f"delay must be in 1..length-1, got {self.delay}")
        if self.train_steps % self.eval_every:
            raise ValueError("train_steps must be a multiple of eval_every")


def delayed_recall(key: jax.Array, n: int, config: Config) -> tuple[jax.Array, jax.Array]:
    """``(x [n, T, K] one-hot, targets [n, T] int32)`` with ``targets[:, t] = s[:, t - delay]``
    and -1 (no loss) for ``t < delay``."""
    K, T, d = config.n_symbols, config.length, config.delay
    s = jax.random.randint(key, (n, T), 0, K)
    targets = jnp.concatenate([jnp.full((n, d), -1, s.dtype), s[:, :T - d]], axis=1)
    return one_hot(s, K), targets.astype(jnp.int32)


def make_model(name: str, config: Config):
    """``(cell, init(key) -> {"cell", "readout"}, logits(params, x) -> [B, T, K])``."""
    cell = {"rnn": rnn.elman, "lstm": rnn.lstm}[name](config.hidden_size)
    n_out = config.n_symbols

    def init(key):
        k_cell, k_out = jax.random.split(key)
        return {"cell": cell.init(k_cell, config.n_symbols),
                "readout": {"w": initializers.get("glorot_uniform")(
                    k_out, (config.hidden_size, n_out), jnp.float32),
                            "b": jnp.zeros((n_out,), jnp.float32)}}

    def logits(params, x):
        hs, _ = rnn.unroll(cell, params["cell"], x)               # [B, T, H]
        return hs @ params["readout"]["w"] + params["readout"]["b"][None, None]

    return cell, init, logits


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-step cross-entropy ``[B, T]``, 0 where the target is -1 (steps before the delay)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(targets, 0))
    return jnp.where(targets >= 0, ce, 0.0)


def train(name: str, config: Config, run_dir: str):
    _, init, logits = make_model(name, config)

    def loss_fn(params, batch, key):
        del batch  # fresh sequences from the step's key
        x, y = delayed_recall(key, config.batch_size, config)
        return jnp.sum(cross_entropy(logits(params, x), y)) / y[:, config.delay:].size, {}

    def eval_fn(params, batch):
        x, y = batch
        hit = (jnp.argmax(logits(params, x), -1) == y)[:, config.delay:]
        return {"accuracy": hit.mean(1).astype(jnp.float32),
                "loss": cross_entropy(logits(params, x), y)[:, config.delay:].mean(1)}

    test = delayed_recall(jax.random.PRNGKey(10_000 + config.seed), config.n_test, config)
    optimizer = make_optimizer(OptimizerConfig("adam", config.learning_rate,
                                               clip_norm=config.clip_norm), config.train_steps)
    placeholder = np.zeros((config.eval_every * config.batch_size, 1), np.float32)
    fitted = fit(init, loss_fn, optimizer, (placeholder,),
                 TrainConfig(epochs=config.train_steps // config.eval_every,
                             batch_size=config.batch_size, steps_per_call=config.eval_every,
                             eval_batch_size=config.n_test, seed=config.seed,
                             checkpoint_every=config.eval_every, progress=False),
                 eval_fn=eval_fn, eval_data=test, run_dir=os.path.join(run_dir, name),
                 resume=True)
    initial = init_state(init, optax.identity(), config.seed).params
    return initial, fitted


@functools.lru_cache(maxsize=None)
def _norms_fn(name: str, hidden_size: int):
    """Jitted ``(params, xs [N, T, K], ys [N, T]) -> {w: [N, T, T]}``, sequence by sequence."""
    cell = {"rnn": rnn.elman, "lstm": rnn.lstm}[name](hidden_size)

    def one(params, x, y):                                        # x [T, K], y [T]
        readout = params["readout"]

        def loss(hs):                                             # hs [1, T, H]
            return cross_entropy(hs @ readout["w"] + readout["b"][None, None], y[None]).sum()

        auto = bptt.contributions(cell, params["cell"], x[None], loss)
        out = {w: bptt.norms(auto, [w]) for w in ("w_h", "w_x")}
        if name == "rnn":
            lab = bptt.elman_contributions(
                {**params["cell"], "w_y": readout["w"], "b_y": readout["b"]}, x[None],
                lambda logits: cross_entropy(logits, y[None]).sum())
            scale = jnp.max(jnp.abs(auto["w_h"]))
            out["lab_vs_autodiff"] = jnp.max(jnp.abs(lab["w_h"] - auto["w_h"])) / scale
        return out

    return jax.jit(lambda params, xs, ys: jax.lax.map(lambda xy: one(params, *xy), (xs, ys)))


def contribution_norms(name: str, params, xs: jax.Array, ys: jax.Array) -> dict:
    """Mean over sequences of ``||(dL/dW)_{i,j}||`` ``[T, T]`` for ``w_h`` and ``w_x`` (L: one
    sequence's summed cross-entropy); for the tanh RNN also the largest difference between the
    lab's recursion and autodiff, relative to the largest contribution."""
    per = _norms_fn(name, int(params["cell"]["w_h"].shape[0]))(params, xs, ys)
    out = {w: np.asarray(per[w]).mean(0) for w in ("w_h", "w_x")}
    if "lab_vs_autodiff" in per:
        out["lab_vs_autodiff"] = float(np.max(per["lab_vs_autodiff"]))
    return out


def summarize(norm_matrix: np.ndarray, weight: str, delay: int) -> dict:
    """Lag profile (mean over the outputs j >= delay, which carry a loss, of the norm at lag
    j - i), per-lag ratios, fitted decay rate, reach (largest lag at >= 1e-2 of lag 0) and the
    relative norm at lag ``delay``. W_h's step 0 multiplies h_{-1} = 0 and gets no gradient, so
    pairs with i = 0 are left out for it."""
    T = np.shape(norm_matrix)[0]
    profile = bptt.lag_profile(norm_matrix, outputs=np.arange(delay, T),
                               first_step=1 if weight == "w_h" else 0)
    ratios = profile[1:] / np.where(profile[:-1] > 0, profile[:-1], np.nan)
    relative = profile / profile[0]
    beyond = profile.copy()
    beyond[:delay] = np.nan                                       # the fit skips NaN lags
    return {"lag_profile": profile, "decay_per_lag": ratios,
            "decay_rate": bptt.decay_rate(profile),
            "decay_rate_beyond_delay": bptt.decay_rate(beyond),
            "reach_1e-2": int(np.max(np.nonzero(relative >= 1e-2)[0])),
            "relative_at_delay": float(relative[delay]),
            "relative_at_2x_delay": float(relative[min(2 * delay, len(relative) - 1)]),
            "relative_at_last_lag": float(relative[-1])}


def plot_heatmaps(norms: dict, path: str, config: Config) -> None:
    fig, axes = figure(2, 4, figsize=(17, 8))
    panels = [(cell, phase) for cell in CELLS for phase in ("init", "trained")]
    for row, weight in enumerate(("w_h", "w_x")):
        for col, (cell, phase) in enumerate(panels):
            m = norms[cell][phase][weight]
            with np.errstate(divide="ignore"):
                logm = np.log10(m)
            logm[np.tril_indices_from(logm, -1)] = np.nan             # i > j: no contribution
            logm[:, :config.delay] = np.nan                           # no loss before the delay
            if weight == "w_h":
                logm[0] = np.nan                                      # h_{-1} = 0: none at i = 0
            top = np.nanmax(logm)
            ax = axes[row, col]
            image = ax.imshow(logm, origin="upper", cmap="viridis", vmin=top - 6, vmax=top,
                              interpolation="nearest")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="log10 norm")
            ax.set_title(f"{'tanh RNN' if cell == 'rnn' else 'LSTM'}, {phase}: "
                         f"||(dL/d{weight.upper().replace('_', '')})_ij||", fontsize=9)
            ax.set_xlabel("j (output)")
            ax.set_ylabel("i (step of the weight)")
    save(fig, path, f"BPTT contributions, delayed recall (delay {config.delay}, "
                    f"T = {config.length}); mean over {config.n_sequences} sequences")


def plot_lags(summaries: dict, path: str, config: Config) -> None:
    fig, axes = figure(1, 2, figsize=(12, 4.2))
    for ax, weight in zip(axes, ("w_h", "w_x")):
        for cell in CELLS:
            for phase, style in (("init", "--"), ("trained", "-")):
                p = summaries[cell][phase][weight]["lag_profile"]
                ax.semilogy(np.arange(len(p)), np.maximum(p, 1e-30), style,
                            label=f"{'tanh RNN' if cell == 'rnn' else 'LSTM'} {phase}")
        ax.axvline(config.delay, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("lag j - i")
        ax.set_ylabel(f"mean over j of ||(dL/d{weight})_(j-lag, j)||")
        ax.set_title(f"how far back each output's error reaches ({weight})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)


def main(config: Config, run_dir: str) -> dict:
    t0 = time.perf_counter()
    xs, ys = delayed_recall(jax.random.PRNGKey(20_000 + config.seed), config.n_sequences, config)
    norms, summaries, results = {}, {}, {"cells": {}}
    for name in CELLS:
        initial, fitted = train(name, config, run_dir)
        trained = fitted.state.params
        norms[name] = {"init": contribution_norms(name, initial, xs, ys),
                       "trained": contribution_norms(name, trained, xs, ys)}
        summaries[name] = {phase: {w: summarize(norms[name][phase][w], w, config.delay)
                                   for w in ("w_h", "w_x")} for phase in ("init", "trained")}
        results["cells"][name] = {
            "test_accuracy": float(fitted.final["accuracy"]),
            "test_loss": float(fitted.final["loss"]),
            "eval_accuracy_by_step": {h["step"]: h["eval_accuracy"] for h in fitted.history},
            **{f"{phase}_{w}": {k: v for k, v in summaries[name][phase][w].items()}
               for phase in ("init", "trained") for w in ("w_h", "w_x")}}
        if name == "rnn":
            results["rnn_lab_vs_autodiff_max_rel_diff"] = max(
                norms[name][p]["lab_vs_autodiff"] for p in ("init", "trained"))
    plot_heatmaps(norms, os.path.join(run_dir, "heatmaps.png"), config)
    plot_lags(summaries, os.path.join(run_dir, "lags.png"), config)
    write_json(os.path.join(run_dir, "norms.json"),
               {c: {p: {w: norms[c][p][w] for w in ("w_h", "w_x")} for p in norms[c]}
                for c in norms})
    results["chance_accuracy"] = 1.0 / config.n_symbols
    results["plots"] = ["heatmaps.png", "lags.png"]
    results["seconds"] = time.perf_counter() - t0
    print(f"{'cell':<5} {'phase':<8} {'test acc':>8} {'rate W_h':>9} {'reach W_h':>9} "
          f"{'rate W_x':>9} {'reach W_x':>9} {'W_x@delay':>10}")
    for name in CELLS:
        for phase in ("init", "trained"):
            s = summaries[name][phase]
            acc = results["cells"][name]["test_accuracy"] if phase == "trained" else float("nan")
            print(f"{name:<5} {phase:<8} {acc:>8.3f} {s['w_h']['decay_rate']:>9.3f} "
                  f"{s['w_h']['reach_1e-2']:>9d} {s['w_x']['decay_rate']:>9.3f} "
                  f"{s['w_x']['reach_1e-2']:>9d} {s['w_x']['relative_at_delay']:>10.2e}")
    return results
