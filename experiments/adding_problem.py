"""The adding problem at T = 200: an LSTM learns it, a tanh RNN stays at the trivial baseline.

Hochreiter & Schmidhuber (1997, experiment 4); layout of Le, Jaitly & Hinton (2015): each input
step is (value ~ U[0, 1], marker), two markers (one per half), the target is the sum of the two
marked values. Predicting 1.0 always gives MSE 1/6 ~ 0.167; "solved" means test MSE < 0.01.

For each cell (``lstm``, ``rnn`` = tanh Elman) and each clipping threshold (0 = none; otherwise
clip the global gradient norm, Pascanu et al. 2013, Algorithm 1), ``n_seeds`` seeds train as ONE
vmapped program. Every step draws a fresh batch from the step's key (an endless stream, different
for every seed); the test set is 2,000 fixed sequences. Adam (lr 1e-2), batch 50, H = 64, MSE on
the last step's linear readout, 5,000 steps.

Measured here (2026-11-22, 2-core CPU shared with other jobs, 15 minutes in all; reference copy in
experiments/results/adding_problem/), test MSE of seeds 0, 1, 2 and the step at which each first
went below 0.01:

- LSTM, no clipping: 0.0001, 0.0005, 0.0002 (solved at steps 1,500, 3,000, 2,750);
- LSTM, clip 1:      0.0000, 0.0003 (solved at 1,000, 1,500), and seed 2 still on the plateau,
  0.165, after 5,000 steps: clipping at 1 shrinks the steps that leave the plateau;
- tanh RNN, no clipping: 0.202, 0.167, 0.177; clip 1: 0.186, 0.167, 0.187: at the baseline.

So 5 of 6 LSTM runs solve T = 200 and no tanh RNN run beats predicting 1.0 (Le et al. 2015 and
Arjovsky et al. 2016 report the same contrast). With Adam at lr 1e-3 no LSTM seed had left the
plateau after 3,000 steps (first attempt, H = 64).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import rnn
from dlmodels.data.sequences import adding_problem
from dlmodels.experiment import write_json
from dlmodels.plots import training_curves
from dlmodels.train import OptimizerConfig, TrainConfig, fit, make_optimizer, summarize

BASELINE_MSE = 1.0 / 6.0
SOLVED_MSE = 0.01


@dataclasses.dataclass(frozen=True)
class Config:
    length: int = 200  # sequence length T (the two marked numbers lie anywhere in it)
    hidden_size: int = 64  # hidden units of each recurrent cell
    cells: tuple[str, ...] = ("lstm", "rnn")  # cell types to train: lstm, rnn, gru
    clip_norms: tuple[float, ...] = (  # gradient-norm clipping thresholds compared (0: none)
        0.0, 1.0)
    n_seeds: int = 3  # seeds per (cell, clipping), trained as one vmapped program
    steps: int = 5000  # training updates per run (a multiple of eval_every)
    eval_every: int = 250  # updates between test-set evaluations (one curve point)
    batch_size: int = 50  # sequences per update, drawn fresh each step
    learning_rate: float = 1e-2  # Adam learning rate
    n_test: int = 2000  # test sequences (fixed, drawn from seed 10000 + seed)
    seed: int = 0  # first seed (runs use seed, seed + 1, ...)

    def __post_init__(self):
        if set(self.cells) - {"lstm", "rnn", "gru"}:
            raise ValueError(f"cells must be drawn from lstm, rnn, gru; got {self.cells}")
        if self.steps % self.eval_every:
            raise ValueError("steps must be a multiple of eval_every")


def make_cell(name: str, hidden_size: int) -> rnn.Cell:
    return {"lstm": rnn.lstm, "gru": rnn.gru, "rnn": rnn.elman}[name](hidden_size)


def train(config: Config, cell_name: str, clip_norm: float, run_dir: str | None):
    """Train ``n_seeds`` models of one kind in one vmapped program; returns ``(model, result)``."""
    model = rnn.sequence_model(make_cell(cell_name, config.hidden_size), 2, 1, head="last")
    length, batch_size = config.length, config.batch_size

    def loss_fn(params, batch, key):
        del batch  # the data are drawn from the step's key
        x, y = adding_problem(key, batch_size, length)
        return jnp.mean(jnp.square(model.apply(params, x)[:, 0] - y)), {}

    def eval_fn(params, batch):
        x, y = batch
        return {"mse": jnp.square(model.apply(params, x)[:, 0] - y)}

    test = adding_problem(jax.random.PRNGKey(10_000 + config.seed), config.n_test, length)
    optimizer = make_optimizer(OptimizerConfig("adam", config.learning_rate,
                                               clip_norm=clip_norm), config.steps)
    # an "epoch" of eval_every steps over placeholder examples: fit evaluates after each
    placeholder = np.zeros((config.eval_every * batch_size, 1), np.float32)
    result = fit(model.init, loss_fn, optimizer, (placeholder,),
                 TrainConfig(epochs=config.steps // config.eval_every, batch_size=batch_size,
                             steps_per_call=config.eval_every, eval_batch_size=500,
                             checkpoint_every=4 * config.eval_every),
                 eval_fn=eval_fn, eval_data=test,
                 seeds=[config.seed + k for k in range(config.n_seeds)], run_dir=run_dir,
                 resume=run_dir is not None)
    return model, result


def main(config: Config, run_dir: str) -> dict:
    results: dict = {"baseline_mse": BASELINE_MSE, "solved_below": SOLVED_MSE, "runs": {}}
    histories = {}
    for cell_name in config.cells:
        for clip in config.clip_norms:
            name = f"{cell_name}, " + (f"clip {clip:g}" if clip else "no clipping")
            t0 = time.perf_counter()
            _, fitted = train(config, cell_name, clip,
                              os.path.join(run_dir, f"{cell_name}_clip{clip:g}"))
            mse = fitted.final["mse"]
            steps_to_solve = []
            for k in range(config.n_seeds):
                hit = [h["step"] for h in fitted.history if h["eval_mse"][k] < SOLVED_MSE]
                steps_to_solve.append(hit[0] if hit else None)
            results["runs"][name] = {
                "cell": cell_name, "clip_norm": clip, "test_mse": mse,
                "summary": summarize(mse), "solved": [m < SOLVED_MSE for m in mse],
                "steps_to_solve": steps_to_solve, "seconds": time.perf_counter() - t0}
            histories[name] = fitted.history
            print(f"{name:<24} test MSE " + "  ".join(f"{m:.4f}" for m in mse)
                  + f"   ({time.perf_counter() - t0:.0f} s)")
    write_json(os.path.join(run_dir, "histories.json"), histories)
    training_curves(histories, os.path.join(run_dir, "adding_problem.png"),
                    keys=("train_loss", "eval_mse"),
                    title=f"adding problem, T = {config.length} (baseline MSE 1/6; "
                          f"band: min-max over {config.n_seeds} seeds)")
    results["plot"] = "adding_problem.png"
    lstm = [r for r in results["runs"].values() if r["cell"] == "lstm"]
    plain = [r for r in results["runs"].values() if r["cell"] == "rnn"]
    results["lstm_solves"] = bool(lstm) and all(all(r["solved"]) for r in lstm)
    results["rnn_near_baseline"] = bool(plain) and all(
        min(r["test_mse"]) > 0.5 * BASELINE_MSE for r in plain)
    return results
