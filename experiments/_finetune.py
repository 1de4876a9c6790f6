"""Shared by the pretraining experiments (``dbn_mnist``, ``sdae``): fine-tune a sigmoid MLP
classifier from given initial params, by SGD with momentum and a cosine-decayed rate, and score it
on the test split; summaries over seeds."""

from __future__ import annotations

import os
import time
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import data
from dlmodels.energy import dbn
from dlmodels.mlp import mlp
from dlmodels.model import Model
from dlmodels.train import TrainConfig, fit, make_evaluate
from dlmodels.train.objectives import classifier


def load_splits(dataset: str, n_train: int = 0) -> tuple[tuple, tuple, tuple]:
    """``(train, valid, test)``, each ``(x, y)`` from ``data.load``; ``n_train > 0`` keeps the first
    ``n_train`` training examples."""
    x_train, y_train = data.load(dataset, "train")
    if n_train:
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    return (x_train, y_train), data.load(dataset, "valid"), data.load(dataset, "test")


def make_finetune(sizes: Sequence[int], train, valid, test, *, epochs: int, batch_size: int,
                  learning_rate: float, momentum: float, log: Callable[..., None],
                  run_dir: str | None = None, checkpoint_every: int = 0) -> tuple[Model, Callable]:
    """``(model, finetune)``: the MLP ``sizes`` (sigmoid hidden units; random init is Glorot's
    uniform with the 4x sigmoid scale) and ``finetune(name, init_fn, seed) -> (row, history)``,
    which trains from ``init_fn``'s params on ``train = (x, y)`` (validation error per epoch on
    ``valid``), logs every epoch through ``log(phase="finetune", init=name, seed=seed, ...)``
    (without the wall-clock seconds) and returns the test error, the last validation error and
    the seconds taken. With ``run_dir`` each fine-tuning is a resumable ``fit`` phase in
    ``run_dir/seed_<seed>/finetune_<name>``."""
    model = mlp(sizes, activation="sigmoid", w_init="glorot_uniform_sigmoid")
    loss_fn, eval_fn = classifier(model.apply, train_mode=False)
    steps = epochs * (len(train[0]) // batch_size)
    optimizer = optax.sgd(optax.cosine_decay_schedule(learning_rate, steps), momentum=momentum)
    evaluate = make_evaluate(eval_fn, 1000)
    test = tuple(jnp.asarray(a) for a in test)

    def finetune(name: str, init_fn: Callable, seed: int) -> tuple[dict, list]:
        start = time.perf_counter()
        phase_dir = (None if run_dir is None
                     else os.path.join(run_dir, f"seed_{seed}", f"finetune_{name}"))
        result = fit(init_fn, loss_fn, optimizer, train,
                     TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, progress=False,
                                 checkpoint_every=checkpoint_every),
                     eval_fn=eval_fn, eval_data=valid, run_dir=phase_dir,
                     resume=phase_dir is not None)
        seconds = time.perf_counter() - start
        test_metrics = {k: float(v) for k, v in evaluate(result.state.params, test).items()}
        for record in result.history:
            log(phase="finetune", init=name, seed=seed,
                **{k: v for k, v in record.items() if k != "seconds"})
        print(f"seed {seed} {name}: test error {test_metrics['error']:.4f} "
              f"({seconds:.0f} s fine-tuning)", flush=True)
        row = {"seed": seed, "test_error": test_metrics["error"],
               "valid_error": float(result.history[-1]["eval_error"]),
               "finetune_seconds": round(seconds, 1)}
        return row, result.history

    return model, finetune


def pretrained_vs_random(finetune: Callable, model: Model, layers: list, n_classes: int, key,
                         seed: int, pretrain_seconds: float, runs: dict, histories: dict) -> None:
    """Fine-tune the pretrained stack ``layers`` (encoders plus a new softmax layer drawn from
    ``key``, ``dbn.to_mlp_params``) and ``model`` from random weights with the same budget; append
    each row to ``runs["pretrained"]`` / ``runs["random"]`` and each history to ``histories``."""
    pretrained = dbn.to_mlp_params(layers, key, n_classes)
    for name, init_fn in (("pretrained", lambda k: pretrained), ("random", model.init)):
        row, history = finetune(name, init_fn, seed)
        if name == "pretrained":
            row["pretrain_seconds"] = round(pretrain_seconds, 1)
        runs[name].append(row)
        histories[f"{name} (seed {seed})"] = history


def summary(rows: list[dict]) -> dict:
    """Mean and std (ddof 0) of the runs' test errors, the errors and the rows themselves."""
    errors = np.array([r["test_error"] for r in rows])
    return {"test_error_mean": float(errors.mean()), "test_error_std": float(errors.std()),
            "test_errors": errors.tolist(), "runs": rows}
