"""Saturation and gradient flow in deep MLPs: sigmoid/tanh/softsign/ReLU, standard vs Glorot init.

Reproduces the measurements of Glorot & Bengio (2010), "Understanding the difficulty of training
deep feedforward neural networks": MLPs with 5 hidden layers, each activation function with the
"standard" initialisation ``W ~ U[-1/sqrt(n_in), 1/sqrt(n_in)]`` and with the normalized (Glorot)
one ``W ~ U[-sqrt(6/(n_in + n_out)), +sqrt(6/(n_in + n_out))]``, biases 0, softmax output and
negative log-likelihood, plain SGD on minibatches of 10 (as in the paper). Every ``record_every``
updates, the per-layer activation mean, std, percentiles and saturated fraction are measured on a
fixed batch of 300 test examples (the paper's Figure 2 protocol), together with the validation
error. Training runs through ``dlmodels.train.fit`` (the standard and Glorot nets of one
activation as one vmapped program: one init function per run), with a history entry every
``record_every`` updates (``eval_every``) holding the validation error and the per-layer
statistics (``probe_fn``); each activation's run is resumable in ``run_dir/<activation>``
(checkpoints every 20 records), so calling ``main`` again continues a killed run.

Departures from the paper, for a < 4 minute default run on a 2-core CPU: 256 units per hidden
layer instead of 1000, and the embedded digits data (8x8, 1,257 training images) instead of
Shapeset / MNIST (``--dataset mnist --hidden_size 1000`` is the paper's size, at about 6 ms per
update and net on this CPU, so only for longer runs). The learning rate and the number of updates
are set per activation (the paper tuned the learning rate per model on validation data): sigmoid
1.0 for 80,000 updates (636 epochs: with the standard init it takes some 45,000 updates to leave
the plateau), tanh, softsign and ReLU 0.1 for 10,000 updates (80 epochs; they converge within a
few thousand). The standard and Glorot nets of one activation start from the same random draws
(the init only scales them), see the same minibatches, and are trained as one vmapped program.

The finding tested (the paper's section 3.1 and Figure 2): with sigmoid units and the standard
initialisation, the TOP hidden layer's activations are pushed towards 0 very early in training,
while the other layers keep a mean above 0.5 that decreases from the top towards the input layer;
the top layer desaturates only much later. ``results.json["sigmoid_finding"]`` reports the top
layer's mean at the start, its minimum and when, when it first fell below
``saturation_level`` (0.1), the lower layers' means at that moment, and whether and when it
recovered (climbed back above ``saturation_level``). ``observed`` is True when the top layer's
mean fell below ``saturation_level`` within the first 10 % of the updates while every lower layer's
mean was >= 0.45 and non-increasing from layer L-1 down to layer 1 (0.01 tolerance).

Plots (in the run directory): ``sigmoid_activations.png`` (Figure 2: mean +- std per layer over
training, standard vs Glorot), ``percentiles_tanh.png`` / ``percentiles_softsign.png`` (Figure 3:
98th percentile and std per layer over training), ``activation_histograms_<act>.png`` (Figure 4/6:
per-layer histograms of the activation values at the end of training, standard vs Glorot),
``activation_histograms_init_tanh.png`` (Figure 6, at initialisation),
``gradient_histograms_tanh.png`` / ``_softsign.png`` (Figure 7: histograms of the back-propagated
gradients dL/da_l per layer at initialisation, standard vs Glorot), ``gradient_variance.png``
(Var[dL/da_l] and Var[dL/dW_l] per layer, every variant, log scale), ``curves.png`` (training loss
and validation error of every variant against epochs).

Measured here (defaults: digits 64-256x5-10, batch 10, seed 0; 2-core CPU, jax 0.10.2; the run is
deterministic on this machine):

- The paper's Figure 2 finding reproduced (``observed: true``). sigmoid + standard init: the top
  layer's mean activation fell from 0.498 to below 0.01 by the first record (step 250), to a
  minimum of 0.0007 (still 0.0013 at step 40,000), while layers 1-4 stayed at
  0.504 / 0.497 / 0.523 / 0.761: about 0.5 and rising towards the top, as the paper describes.
  The validation error stayed at chance (~0.9) until ~43,000 updates (340 epochs), then the net
  left the plateau: the top layer climbed back above 0.1 at step 48,250 and ended at 0.13 (the
  lower layers dropped to 0.11-0.29). Glorot init with sigmoid saturated the top layer just as
  fast but left the plateau ~3x sooner (top layer above 0.1 again at step 15,000).
- Test errors (360 test images; one image = 0.28 %, binomial s.e. ~0.7 %), standard / Glorot:
  sigmoid 2.8 % / 3.6 % (80,000 updates), tanh 1.9 % / 2.2 %, softsign 3.3 % / 2.2 %,
  ReLU 1.4 % / 1.4 % (10,000 updates each). At this size the init changes how long the sigmoid
  nets are stuck, not where they end; the differences between the others are within noise.
- Back-propagated gradients at initialisation (the paper's section 4.2): with tanh + standard init
  Var[dL/da_l] shrinks 100x from layer 5 (1.3e-8) down to layer 1 (1.3e-10) while Var[dL/dW_l]
  stays flat (4.2e-8 to 4.7e-8), as the paper found; with Glorot init Var[dL/da_l] varies only
  1.7x over the 5 layers (3.9e-8 to 6.8e-8). sigmoid + standard: 6e6x (7.8e-10 to 1.3e-16).
- Not reproduced: the paper's tanh + standard init saturates layer 1 first and then the layers
  above in sequence (Figure 3). Here the upper layers saturate most: fraction |h| > 0.99 at the
  end 0 / 0 / 0.5 / 2.5 / 4.4 % for layers 1-5 (Glorot: 0 / 0 / 0.1 / 0.8 / 2.1 %). softsign units
  never reach |h| > 0.9. ReLU: 48-64 % of the activations are exactly 0, 0.4-7 % of the units dead
  on all 300 examples.
- Time: 2 min 48 s of CPU time (user) for the whole run; the wall time measured was 4 min 19 s
  only because other jobs shared the 2 cores (load average 2.5 rising to 7; 5 min at ~8). The
  sigmoid pair takes most of it: ``--steps 60000,10000,10000,10000`` still shows the recovery.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import data, distributed, losses
from dlmodels.analysis import mlp_stats
from dlmodels.experiment import to_jsonable
from dlmodels.mlp import mlp
from dlmodels.plots import (plot_layer_curves, plot_layer_histograms, plot_per_layer,
                            training_curves)
from dlmodels.train import TrainConfig, fit, init_states, make_evaluate
from dlmodels.train.objectives import classifier

ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "softsign": jax.nn.soft_sign, "relu": "relu"}
INITS = {
    # U[-1/sqrt(n_in), 1/sqrt(n_in)]: Var = 1 / (3 n_in), the paper's eq. (1)
    "standard": jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
    # U[-sqrt(6 / (n_in + n_out)), ...]: Var = 2 / (n_in + n_out), the paper's eq. (16)
    "glorot": jax.nn.initializers.glorot_uniform(),
}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "digits"  # data set: digits, mnist or fashion_mnist
    activations: tuple[str, ...] = (  # hidden activations: sigmoid, tanh, softsign, relu
        "sigmoid", "tanh", "softsign", "relu")
    # one per activation (or one for all); sigmoid nets need far more updates (see above)
    learning_rates: tuple[float, ...] = (  # SGD learning rate per activation (or one for all)
        1.0, 0.1, 0.1, 0.1)
    steps: tuple[int, ...] = (  # training updates per activation (or one for all; multiples of record_every)
        80_000, 10_000, 10_000, 10_000)
    inits: tuple[str, ...] = ("standard", "glorot")  # weight initialisations: standard, glorot
    hidden_size: int = 256  # units per hidden layer
    n_hidden_layers: int = 5  # hidden layers
    batch_size: int = 10  # examples per update
    record_every: int = 250  # updates between recorded activation statistics
    n_stats_examples: int = 300  # fixed examples the statistics are measured on
    saturation_level: float = 0.1  # top layer's mean activation below which it counts as saturated
    hist_bins: int = 60  # bins of the activation and gradient histograms
    seed: int = 0  # seed of the params and batches

    def __post_init__(self):
        unknown = set(self.activations) - set(ACTIVATIONS)
        if unknown or not self.activations:
            raise ValueError(f"activations must be drawn from {tuple(ACTIVATIONS)}, got "
                             f"{self.activations}")
        for name in ("learning_rates", "steps"):
            if len(getattr(self, name)) not in (1, len(self.activations)):
                raise ValueError(f"one {name} value per activation (or one for all): "
                                 f"{len(self.activations)} activations but "
                                 f"{name}={getattr(self, name)}")
        if set(self.inits) - set(INITS) or not self.inits:
            raise ValueError(f"inits must be drawn from {tuple(INITS)}, got {self.inits}")
        for name in ("hidden_size", "n_hidden_layers", "batch_size", "record_every",
                     "n_stats_examples", "hist_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(n < 1 or n % self.record_every for n in self.steps):
            raise ValueError(f"steps ({self.steps}) must be positive multiples of record_every "
                             f"({self.record_every})")

    def per_activation(self) -> dict[str, tuple[float, int]]:
        """``{activation: (learning_rate, steps)}``."""
        k = len(self.activations)
        lrs = self.learning_rates * k if len(self.learning_rates) == 1 else self.learning_rates
        steps = self.steps * k if len(self.steps) == 1 else self.steps
        return {a: (float(lr), int(n)) for a, lr, n in zip(self.activations, lrs, steps)}


def _mean_cross_entropy(logits, y):
    return jnp.mean(losses.softmax_cross_entropy(logits, y))


def _finite_or_none(x):
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_or_none(v) for v in x]
    return None if isinstance(x, float) and not np.isfinite(x) else x


def _train_activation(activation: str, lr: float, n_steps: int, config: Config, train, valid,
                      test, stats_batch, run_dir: str) -> dict:
    """Train one net per initialisation in ``config.inits`` with this activation, as ONE vmapped
    ``fit`` over the inits (one init function per run, same seed, same minibatches), recording
    the per-layer statistics and the validation error every ``record_every`` updates (``fit``'s
    ``eval_every`` and ``probe_fn``); returns ``{init: variant}`` with each variant's records,
    summary and raw per-layer arrays. Resumable in ``run_dir`` (checkpoints every 20 records)."""
    n_in, n_out = train[0].shape[1], int(train[1].max()) + 1
    sizes = (n_in,) + (config.hidden_size,) * config.n_hidden_layers + (n_out,)
    models = {init: mlp(sizes, activation=ACTIVATIONS[activation], w_init=INITS[init])
              for init in config.inits}
    apply = models[config.inits[0]].apply  # the forward pass does not depend on the init
    loss_fn, eval_fn = classifier(apply, train_mode=False)
    optimizer = optax.sgd(lr)
    stats = functools.partial(mlp_stats.layer_statistics, apply, activation=activation,
                              percentiles=(2.0, 50.0, 98.0))
    evaluate = make_evaluate(eval_fn, 1000)
    x_stats, y_stats = stats_batch
    init_fns = [models[i].init for i in config.inits]
    seeds = [config.seed] * len(config.inits)

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(0, None, None))
    def probe(params, valid, test):  # everything measured at initialisation and at the end
        _, hidden = apply(params, x_stats, return_hidden=True)
        loss, grads, deltas = mlp_stats.gradients(apply, params, x_stats, y_stats,
                                                  _mean_cross_entropy)
        names = mlp_stats.layer_names(params)
        return {"hidden": hidden, "deltas": deltas, "stats": stats(params, x_stats),
                "valid_error": evaluate(params, valid)["error"], "test": evaluate(params, test),
                "preact_grad_var": jnp.stack([jnp.var(d) for d in deltas]),
                "weight_grad_var": jnp.stack([jnp.var(grads[n]["w"]) for n in names])}

    test = (jnp.asarray(test[0]), jnp.asarray(test[1]))
    steps_per_epoch = len(train[0]) // config.batch_size
    t0 = time.perf_counter()
    fitted = fit(init_fns, loss_fn, optimizer, train,
                 TrainConfig(epochs=-(-n_steps // steps_per_epoch), batch_size=config.batch_size,
                             seed=config.seed, data_seed=config.seed, max_steps=n_steps,
                             steps_per_call=config.record_every, eval_every=config.record_every,
                             checkpoint_every=20 * config.record_every, on_nonfinite="skip",
                             progress=False),
                 eval_fn=eval_fn, eval_data=valid, probe_fn=lambda p: stats(p, x_stats),
                 seeds=seeds, run_dir=run_dir, resume=True,
                 record={"experiment": "saturation", "activation": activation})
    start = init_states(init_fns, optimizer, seeds)
    at_init = jax.tree.map(np.asarray, probe(start.params, valid, test))
    at_end = jax.tree.map(np.asarray, probe(fitted.state.params, valid, test))
    seconds = time.perf_counter() - t0

    k_runs = len(config.inits)
    history = fitted.history
    records = [(0, np.full((k_runs,), np.nan), 0, at_init["stats"], at_init["valid_error"])]
    records += [(e["step"], np.asarray(e["train_loss"], np.float64), e.get("skipped_steps", 0),
                 {name[len("probe_"):]: np.asarray(v) for name, v in e.items()
                  if name.startswith("probe_")}, np.asarray(e["eval_error"]))
                for e in history]
    first_skip = next((r[0] for r in records if r[2]), None)
    steps = np.array([r[0] for r in records])
    loss = np.stack([np.asarray(r[1]) for r in records], axis=1)  # [K, R]
    valid_error = np.stack([np.asarray(r[4]) for r in records], axis=1)
    stacked = {k: np.stack([np.asarray(r[3][k]) for r in records], axis=1)  # [K, R, L, ...]
               for k in records[0][3]}
    out = {}
    for k, init in enumerate(config.inits):
        history = {"step": steps, "train_loss": loss[k], "valid_error": valid_error[k],
                   **{f"layer_{name}": v[k] for name, v in stacked.items()}}
        # fit skips a non-finite update (on_nonfinite="skip"); the first record that saw one
        diverged_at = first_skip
        out[init] = {
            "history": history,
            "hidden": {"init": [h[k] for h in at_init["hidden"]],
                       "end": [h[k] for h in at_end["hidden"]]},
            "deltas": {"init": [d[k] for d in at_init["deltas"]],
                       "end": [d[k] for d in at_end["deltas"]]},
            "summary": {
                "learning_rate": lr,
                "steps": n_steps,
                "test_error": float(at_end["test"]["error"][k]),
                "test_loss": float(at_end["test"]["loss"][k]),
                "valid_error": float(valid_error[k, -1]),
                "best_valid_error": float(np.min(valid_error[k])),
                "final_train_loss": float(loss[k, -1]),
                "diverged_at_step": diverged_at,
                "seconds_for_all_inits": seconds,
                "layer_mean": {"init": stacked["mean"][k, 0], "end": stacked["mean"][k, -1]},
                "layer_std": {"init": stacked["std"][k, 0], "end": stacked["std"][k, -1]},
                "layer_saturated": {"init": stacked["saturated"][k, 0],
                                    "end": stacked["saturated"][k, -1],
                                    "max": stacked["saturated"][k].max(0)},
                "layer_dead_units_end": stacked["dead_units"][k, -1],
                # Var of the back-propagated gradients dL/da_l and of dL/dW_l on the 300
                # examples, layers 1..L+1 (the last is the output layer)
                "preact_grad_var": {"init": at_init["preact_grad_var"][k],
                                    "end": at_end["preact_grad_var"][k]},
                "weight_grad_var": {"init": at_init["weight_grad_var"][k],
                                    "end": at_end["weight_grad_var"][k]},
            },
        }
    return out


def sigmoid_finding(history: dict, level: float, total_steps: int) -> dict:
    """Did the top hidden layer saturate at 0 early while the lower layers stayed >= 0.5 and
    ordered (Glorot & Bengio 2010, Figure 2)? See the module docstring for the criterion."""
    steps, mean = history["step"], history["layer_mean"]  # [R], [R, L]
    top = mean[:, -1]
    i_min = int(np.argmin(top))
    below = np.flatnonzero(top < level)
    out = {"top_mean_start": float(top[0]), "top_mean_min": float(top[i_min]),
           "top_mean_min_step": int(steps[i_min]), "top_mean_end": float(top[-1]),
           "saturation_level": level, "first_step_below_level": None,
           "lower_layers_mean_then": None, "recovered": False, "recovery_step": None,
           "observed": False}
    if below.size == 0:
        return out
    i_sat = int(below[0])
    lower = mean[i_sat, :-1]
    out["first_step_below_level"] = int(steps[i_sat])
    out["lower_layers_mean_then"] = lower.tolist()
    after = np.flatnonzero((top >= level) & (np.arange(len(top)) > i_min))
    if after.size:
        out["recovered"], out["recovery_step"] = True, int(steps[after[0]])
    ordered = bool(np.all(np.diff(lower) >= -0.01))  # layer 1 <= layer 2 <= ... <= layer L-1
    out["observed"] = bool(steps[i_sat] <= 0.1 * total_steps and lower.min() >= 0.45 and ordered)
    return out


def _symmetric_range(arrays, q=99.5) -> tuple[float, float]:
    bound = float(np.percentile(np.abs(np.concatenate([np.ravel(a) for a in arrays])), q))
    return (-bound, bound) if bound > 0 else (-1.0, 1.0)


def _plots(config: Config, variants: dict, run_dir: str, n_train: int) -> list[str]:
    files = []
    acts = list(config.activations)
    inits = list(config.inits)
    if "sigmoid" in acts:
        panels = {f"sigmoid, {init} init": {
            "steps": variants[("sigmoid", init)]["history"]["step"],
            "values": variants[("sigmoid", init)]["history"]["layer_mean"],
            "spread": variants[("sigmoid", init)]["history"]["layer_std"]} for init in inits}
        files.append(plot_layer_curves(
            panels, os.path.join(run_dir, "sigmoid_activations.png"), ylim=(0.0, 1.0),
            ylabel="activation mean (band: +- std)",
            title=f"Sigmoid activations over training on {config.dataset} "
                  f"(Glorot & Bengio Fig. 2)"))
    for act in ("tanh", "softsign"):
        if act not in acts:
            continue
        panels = {f"{act}, {init} init": {
            "steps": variants[(act, init)]["history"]["step"],
            "values": variants[(act, init)]["history"]["layer_std"],
            "markers": variants[(act, init)]["history"]["layer_percentiles"][:, :, 2]}
            for init in inits}
        files.append(plot_layer_curves(
            panels, os.path.join(run_dir, f"percentiles_{act}.png"), ylim=(0.0, 1.05),
            ylabel="98th percentile (dots), std (lines)", line_label="std",
            marker_label="98th percentile",
            title=f"{act} activations over training (Glorot & Bengio Fig. 3)"))
    for act in acts:
        ends = {f"{act}, {init} init": variants[(act, init)]["hidden"]["end"] for init in inits}
        everything = [a for layers in ends.values() for a in layers]
        if act == "relu":
            value_range = (0.0, max(float(np.percentile(np.concatenate(
                [a.ravel() for a in everything]), 99.5)), 1e-6))
        else:
            value_range = (-1.0, 1.0) if act != "sigmoid" else (0.0, 1.0)
        files.append(plot_layer_histograms(
            ends, os.path.join(run_dir, f"activation_histograms_{act}.png"), bins=config.hist_bins,
            value_range=value_range, log_y=act == "relu", xlabel="activation value",
            title=f"{act} activations at the end of training, 300 test examples "
                  f"(Glorot & Bengio Fig. 4)"))
        if act not in ("tanh", "softsign"):
            # sigmoid/relu gradients differ by orders of magnitude between layers: no common
            # linear axis shows them; gradient_variance.png compares their scales instead
            continue
        grads = {f"{act}, {init} init": variants[(act, init)]["deltas"]["init"][:-1]
                 for init in inits}
        files.append(plot_layer_histograms(
            grads, os.path.join(run_dir, f"gradient_histograms_{act}.png"), bins=config.hist_bins,
            value_range=_symmetric_range([a for g in grads.values() for a in g]), log_y=True,
            xlabel="back-propagated gradient dL/da_l",
            title=f"{act}: back-propagated gradients per hidden layer at initialisation "
                  f"(Glorot & Bengio Fig. 7)"))
    if "tanh" in acts:
        inits_h = {f"tanh, {init} init": variants[("tanh", init)]["hidden"]["init"]
                   for init in inits}
        files.append(plot_layer_histograms(
            inits_h, os.path.join(run_dir, "activation_histograms_init_tanh.png"),
            bins=config.hist_bins, value_range=(-1.0, 1.0), xlabel="activation value",
            title="tanh activations at initialisation (Glorot & Bengio Fig. 6)"))
    files.append(plot_per_layer(
        {"Var[dL/da_l] at initialisation": {
            f"{a}/{i}": v["summary"]["preact_grad_var"]["init"] for (a, i), v in variants.items()},
         "Var[dL/dW_l] at initialisation": {
            f"{a}/{i}": v["summary"]["weight_grad_var"]["init"] for (a, i), v in variants.items()},
         "Var[dL/da_l] at the end": {
            f"{a}/{i}": v["summary"]["preact_grad_var"]["end"] for (a, i), v in variants.items()}},
        os.path.join(run_dir, "gradient_variance.png"), log_y=True, ylabel="variance",
        xlabel=f"layer (1..{config.n_hidden_layers} hidden, {config.n_hidden_layers + 1} = output)",
        title="Back-propagated gradients per layer, 300 test examples (Glorot & Bengio sec. 4.2)"))
    histories = {}
    for (act, init), v in variants.items():
        h = v["history"]
        histories[f"{act}/{init}"] = [
            {"epoch": float(s) * config.batch_size / n_train, "train_loss": float(l),
             "valid_error": float(e)}
            for s, l, e in zip(h["step"][1:], h["train_loss"][1:], h["valid_error"][1:])]
    files.append(training_curves(
        histories, os.path.join(run_dir, "curves.png"), keys=("train_loss", "valid_error"),
        title=f"{config.n_hidden_layers}-hidden-layer MLPs on {config.dataset} "
              f"(train loss: mean over each {config.record_every} updates)"))
    return files


def main(config: Config, run_dir: str) -> dict:
    t_start = time.perf_counter()
    splits = data.splits(config.dataset)
    train = data.load(config.dataset, "train")
    test = data.load(config.dataset, "test")
    valid = data.load(config.dataset, "valid") if "valid" in splits else test
    n_stats = min(config.n_stats_examples, len(test[0]))
    stats_batch = (jnp.asarray(test[0][:n_stats]), jnp.asarray(test[1][:n_stats]))
    schedule = config.per_activation()
    print(f"saturation: {config.dataset}, {config.n_hidden_layers} x {config.hidden_size} units, "
          f"SGD batch {config.batch_size}, statistics every {config.record_every} updates on "
          f"{n_stats} test examples")

    variants, summaries = {}, {}
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    writer = distributed.is_main()      # with several processes, process 0 writes
    if writer:
        open(metrics_path, "w").close()    # rewritten in full by a resumed run
    for act, (lr, n_steps) in schedule.items():
        trained = _train_activation(act, lr, n_steps, config, train, valid, test, stats_batch,
                                    os.path.join(run_dir, act))
        for init, v in trained.items():
            variants[(act, init)] = v
            name = f"{act}/{init}"
            summaries[name] = v["summary"]
            h = v["history"]
            with open(metrics_path if writer else os.devnull, "a") as f:
                for r in range(len(h["step"])):
                    row = to_jsonable({"variant": name, **{k: a[r] for k, a in h.items()}})
                    f.write(json.dumps(_finite_or_none(row)) + "\n")
            s = v["summary"]
            print(f"{name:<18} lr {lr:<5g} test error {s['test_error']:.4f}  top-layer mean "
                  f"{s['layer_mean']['init'][-1]:.3f} -> {s['layer_mean']['end'][-1]:.3f}")
        print(f"  ({act}: {n_steps} updates = {n_steps * config.batch_size / len(train[0]):.0f} "
              f"epochs, {s['seconds_for_all_inits']:.1f} s for {len(trained)} inits)")

    results = {"dataset": config.dataset, "n_train": len(train[0]),
               "architecture": [train[0].shape[1]] + [config.hidden_size] * config.n_hidden_layers
               + [int(train[1].max()) + 1],
               "n_stats_examples": n_stats, "variants": summaries}
    if "sigmoid" in config.activations and "standard" in config.inits:
        finding = sigmoid_finding(variants[("sigmoid", "standard")]["history"],
                                  config.saturation_level, schedule["sigmoid"][1])
        results["sigmoid_finding"] = finding
        print(f"sigmoid/standard top layer: mean {finding['top_mean_start']:.3f} at start, "
              f"min {finding['top_mean_min']:.4f} at step {finding['top_mean_min_step']}, "
              f"below {config.saturation_level} from step {finding['first_step_below_level']}, "
              f"recovered at step {finding['recovery_step']}, end {finding['top_mean_end']:.3f}; "
              f"paper's finding observed: {finding['observed']}")
    results["plots"] = [os.path.basename(p) for p in _plots(config, variants, run_dir, len(train[0]))]
    results["seconds"] = time.perf_counter() - t_start
    print(f"saturation finished in {results['seconds']:.0f} s")
    return results
