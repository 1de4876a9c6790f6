"""The main job: a fast tour of dlmodels on the embedded digits data (no download needed).

Each stop trains a model family of the framework on scikit-learn's 8x8 digits (1,257 train / 180
valid / 360 test) and prints one table. Stop ``mlp``: an MLP 64-64-10 trained by backpropagation
with ``n_seeds`` seeds in ONE vmapped, jitted program (ReLU + softmax cross-entropy + Adam), beside
the course notes' sigmoid / sum-of-squares / plain gradient-descent net, also vmapped over seeds.
Stop ``vanishing_gradients``: the short version of that experiment (T = 50, at initialisation):
||dL/dh_t|| vs lag for tanh RNN / LSTM / GRU, and the spectral-radius sweep against the bound.
Stop ``energy``: a 64-16 RBM on binarised digits by CD-1 and PCD, small enough for the exact
log Z (2^16 hidden states), so the test log-likelihood by AIS is shown beside the exact one; and a
Hopfield net of 500 units recalling patterns from 20 %-flipped probes below and above its capacity.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import optax

from dlmodels import data, rnn
from dlmodels.data.sequences import adding_problem
from dlmodels.experiment import write_json
from dlmodels.mlp import mlp
from dlmodels.plots import training_curves
from dlmodels.train import TrainConfig, fit, make_evaluate, summarize
from dlmodels.train.objectives import classifier


@dataclasses.dataclass(frozen=True)
class Config:
    n_seeds: int = 4  # seeds per MLP variant, trained as one vmapped program
    epochs: int = 40  # MLP training epochs
    hidden: int = 64  # MLP hidden units
    batch_size: int = 32  # MLP examples per update
    learning_rate: float = 3e-3  # ReLU MLP Adam learning rate
    notes_learning_rate: float = 0.5  # course-notes MLP gradient-descent step size
    vanishing_length: int = 50  # sequence length T of the vanishing-gradient stop
    rbm_epochs: int = 30  # RBM training epochs (CD-1 and PCD)

    def __post_init__(self):
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")


def _stop_mlp(config: Config, run_dir: str) -> dict:
    train, valid, test = (data.load("digits", s) for s in ("train", "valid", "test"))
    seeds = list(range(config.n_seeds))
    variants = {
        "relu+softmax-CE+Adam": (mlp((64, config.hidden, 10), activation="relu",
                                     w_init="he_normal"), "softmax_cross_entropy",
                                 optax.adam(config.learning_rate)),
        "sigmoid+sum-of-squares+GD": (mlp((64, config.hidden, 10), activation="sigmoid",
                                          output_activation="sigmoid",
                                          w_init="glorot_uniform_sigmoid"), "sum_of_squares",
                                      optax.sgd(config.notes_learning_rate)),
    }
    rows, histories = {}, {}
    for name, (model, loss, optimizer) in variants.items():
        loss_fn, eval_fn = classifier(model.apply, loss=loss, n_classes=10)
        t0 = time.perf_counter()
        fitted = fit(model.init, loss_fn, optimizer, train,
                     TrainConfig(epochs=config.epochs, batch_size=config.batch_size),
                     eval_fn=eval_fn, eval_data=valid, seeds=seeds,
                     run_dir=os.path.join(run_dir, "mlp", name.split("+")[0]), resume=True,
                     record={"experiment": "tour", "stop": "mlp", "variant": name})
        seconds = time.perf_counter() - t0
        evaluate = jax.jit(jax.vmap(make_evaluate(eval_fn, 1000), in_axes=(0, None)))
        accuracy = [float(a) for a in evaluate(fitted.state.params, test)["accuracy"]]
        rows[name] = {"test_accuracy": accuracy, "summary": summarize(accuracy),
                      "seconds": seconds}
        histories[name] = fitted.history
    print(f"\nMLP 64-{config.hidden}-10 on digits, {config.n_seeds} seeds trained as one vmapped "
          f"program, {config.epochs} epochs")
    print(f"{'variant':<28} {'test accuracy (mean ± std)':>28} {'min':>7} {'max':>7} {'time':>7}")
    for name, row in rows.items():
        s = row["summary"]
        print(f"{name:<28} {s['mean']:>20.4f} ± {s['std']:.4f} {s['min']:>7.4f} {s['max']:>7.4f} "
              f"{row['seconds']:>6.1f}s")
    training_curves(histories, os.path.join(run_dir, "mlp_curves.png"),
                    keys=("train_loss", "eval_accuracy"),
                    title="MLP on digits (eval = validation set; band: min-max over seeds)")
    write_json(os.path.join(run_dir, "mlp_histories.json"), histories)
    return {"variants": rows, "plot": "mlp_curves.png"}


def _stop_vanishing_gradients(config: Config, run_dir: str) -> dict:
    """At initialisation, T = 50: ||dL/dh_t|| vs lag per cell, and the tanh RNN radius sweep."""
    from dlmodels.experiments import vanishing_gradients as vg

    vg_config = vg.Config(length=config.vanishing_length, hidden_size=32, radii=(0.5, 1.0, 1.5),
                          n_sequences=8)
    x, y = adding_problem(jax.random.PRNGKey(1), vg_config.n_sequences, vg_config.length)
    cells = {}
    for name in vg_config.cells:
        cell = vg.adding.make_cell(name, vg_config.hidden_size)
        model = rnn.sequence_model(cell, 2, 1, head="last")
        norms = vg.gradient_norms_by_lag(cell, model.init(jax.random.PRNGKey(0)), x, y)
        cells[name] = {"lag_0": float(norms[0]), "lag_last": float(norms[-1]),
                       "rate": vg.decay_rate(norms)}
    sweep = vg.part_radius_sweep(vg_config)
    print(f"\nGradients through time at initialisation, T = {vg_config.length} "
          "(dlmodels run vanishing_gradients for the full study)")
    print(f"{'cell':<6} {'||dL/dh_T-1||':>14} {'||dL/dh_0||':>12} {'per-step rate':>14}")
    for name, r in cells.items():
        print(f"{name:<6} {r['lag_0']:>14.3g} {r['lag_last']:>12.3g} {r['rate']:>14.3f}")
    print("tanh RNN with W = r Q: measured per-step rate of ||dh_T/dh_t|| vs the bound r")
    for radius, r in sweep.items():
        print(f"  r = {radius:<4g} rate {r['measured_rate']:.3f}  bound {r['eta']:.3f}  "
              f"holds: {r['bound_holds']}")
    return {"cells": cells, "radius_sweep": {f"{k:g}": {"measured_rate": v["measured_rate"],
                                                         "bound": v["eta"],
                                                         "bound_holds": v["bound_holds"]}
                                             for k, v in sweep.items()}}


def _stop_energy(config: Config, run_dir: str) -> dict:
    """RBM: exact vs AIS test log-likelihood; Hopfield: recall overlap at low and high load."""
    import jax.numpy as jnp

    from dlmodels.energy import hopfield, rbm

    x_train, x_test = data.load("digits", "train")[0], data.load("digits", "test")[0]
    v_train, v_test = (x_train > 0.5).astype("float32"), (x_test > 0.5).astype("float32")
    bias = rbm.base_rate_bias(v_train)
    model = rbm.rbm(64, 16)
    rows = {}
    for i, method in enumerate(("cd", "pcd")):
        k_ais = jax.random.fold_in(jax.random.PRNGKey(i), 1)
        params = rbm.train(model, v_train, rbm.RBMTrainConfig(
            epochs=config.rbm_epochs, batch_size=20, method=method, learning_rate=0.05,
            learning_rate_decay=True, seed=i), run_dir=os.path.join(run_dir, f"rbm_{method}"),
            resume=True).state.params
        exact = float(model.log_likelihood(params, v_test, model.log_partition_exact(params)))
        ais = model.ais_log_partition(k_ais, params, 2000, 100, base_visible_bias=bias)
        rows[f"{method}-1"] = {"exact": exact,
                               "ais": float(model.log_likelihood(params, v_test, ais.log_z)),
                               "ais_spread": float(ais.spread)}
    n_units = 500
    hop = {}
    for n_patterns in (25, 100):                       # load 0.05 and 0.2 (capacity ~0.138)
        k_p, k_flip, k_recall = jax.random.split(jax.random.PRNGKey(n_patterns), 3)
        patterns = jnp.where(jax.random.bernoulli(k_p, 0.5, (n_patterns, n_units)), 1.0, -1.0)
        flips = jnp.where(jax.random.bernoulli(k_flip, 0.2, patterns.shape), -1.0, 1.0)
        final = hopfield.recall(k_recall, hopfield.store(patterns), patterns * flips, 50)
        hop[f"{n_patterns / n_units:g}"] = float(jnp.mean(hopfield.overlap(final, patterns)))
    print("\nEnergy models: RBM 64-16 on binarised digits, average test log-likelihood (nats)")
    print(f"{'method':<7} {'exact':>8} {'AIS':>8} {'AIS spread':>11}")
    for name, r in rows.items():
        print(f"{name:<7} {r['exact']:>8.2f} {r['ais']:>8.2f} {r['ais_spread']:>11.3f}")
    print(f"Hopfield net, {n_units} units, probes with 20 % of bits flipped: mean overlap after "
          "recall " + ", ".join(f"{v:.3f} at load {k}" for k, v in hop.items())
          + " (capacity ~0.138)")
    return {"rbm_test_log_likelihood": rows, "hopfield_overlap_by_load": hop}


STOPS = {"mlp": _stop_mlp, "vanishing_gradients": _stop_vanishing_gradients,
         "energy": _stop_energy}


def main(config: Config, run_dir: str) -> dict:
    t0 = time.perf_counter()
    results = {name: stop(config, run_dir) for name, stop in STOPS.items()}
    results["seconds"] = time.perf_counter() - t0
    print(f"\ntour finished in {results['seconds']:.0f} s; outputs in {run_dir}")
    return results
