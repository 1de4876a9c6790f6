"""The main job: a fast tour of dlmodels on the embedded digits data (no download needed).

Each stop trains a model family of the framework on scikit-learn's 8x8 digits (1,257 train / 180
valid / 360 test) and prints one table. Stop ``mlp``: an MLP 64-64-10 trained by backpropagation
with ``n_seeds`` seeds in ONE vmapped, jitted program (ReLU + softmax cross-entropy + Adam), beside
the course notes' sigmoid / sum-of-squares / plain gradient-descent net, also vmapped over seeds.
Stop ``vanishing_gradients``: the short version of that experiment (T = 50, at initialisation):
||dL/dh_t|| vs lag for tanh RNN / LSTM / GRU, and the spectral-radius sweep against the bound.
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
    n_seeds: int = 4
    epochs: int = 40
    hidden: int = 64
    batch_size: int = 32
    learning_rate: float = 3e-3
    notes_learning_rate: float = 0.5
    vanishing_length: int = 50

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
                     run_dir=os.path.join(run_dir, "mlp", name.split("+")[0]),
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
    from experiments import vanishing_gradients as vg

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


STOPS = {"mlp": _stop_mlp, "vanishing_gradients": _stop_vanishing_gradients}


def main(config: Config, run_dir: str) -> dict:
    t0 = time.perf_counter()
    results = {name: stop(config, run_dir) for name, stop in STOPS.items()}
    results["seconds"] = time.perf_counter() - t0
    print(f"\ntour finished in {results['seconds']:.0f} s; outputs in {run_dir}")
    return results
