"""Dropout against overfitting: the same convolutional network with and without dropout, several seeds vmapped.

Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov (2014): dropping hidden units with
probability p during training (and using the full network, with inverted scaling, at test time)
reduces overfitting. Here ``dlmodels.cnn.convnet(channels, hidden)`` is trained on a small MNIST
training subset (``n_train`` digits, so that it can overfit) for ``epochs`` epochs, with dropout
rate 0 and ``dropout`` on its dense layer, ``n_seeds`` seeds of each in ONE vmapped program
(``fit(..., seeds=...)``). Reported per seed: training and test accuracy and loss at the end,
and the train/test gap; curves of the test error per epoch.

On the CPU the trainer runs a convolutional step's seeds one after another inside the one
compiled program (``make_vmapped_train_steps(members="auto")``): one training step of 2 seeds of
the default 16-32 convnet (batch 100, Adam, quiet 2-core CPU) took 45 / 55 ms (dropout 0 / 0.5)
against 55 ms for the 2 single-seed steps (sequential / in-one-program 1.23x [1.20-1.30] and
1.02x [0.98-1.13]); jax's grouped convolution had made the vmapped step ~5x slower. On a GPU
the seeds are one vmapped program.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.cnn import convnet
from dlmodels.plots import training_curves
from dlmodels.train import make_evaluate
from dlmodels.train.objectives import classifier
from dlmodels.experiments.cnn_mnist import image_splits, train_and_test


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    channels: tuple[int, ...] = (16, 32)  # output channels of the conv layers
    hidden: int = 256  # units of the dense layer
    dropout: float = 0.5  # dropout rate of the regularised network (the other has none)
    n_train: int = 3000  # training examples (small, so that the plain network overfits)
    epochs: int = 10  # training epochs
    batch_size: int = 100  # examples per update
    learning_rate: float = 1e-3  # peak Adam learning rate (cosine-decayed)
    n_seeds: int = 2  # seeds per network, trained as one vmapped program


def main(config: Config, run_dir: str) -> dict:
    splits = image_splits(config.dataset, config.n_train)
    train = tuple(jnp.asarray(a) for a in splits["train"])
    seeds = list(range(config.n_seeds))
    results, histories = {"n_train": len(train[1]), "variants": {}}, {}
    for name, rate in (("no dropout", 0.0), (f"dropout {config.dropout:g}", config.dropout)):
        model = convnet(config.channels, 10, input_shape=train[0].shape[1:], hidden=config.hidden,
                        dropout_rate=rate)
        fitted, test, seconds = train_and_test(
            model, splits, epochs=config.epochs, batch_size=config.batch_size,
            learning_rate=config.learning_rate, seed=0, seeds=seeds,
            run_dir=os.path.join(run_dir, "dropout" if rate else "plain"))
        _, eval_fn = classifier(model.apply)
        on_train = jax.vmap(make_evaluate(eval_fn, 1000), in_axes=(0, None))(fitted.state.params, train)
        train_acc, test_acc = np.asarray(on_train["accuracy"]), np.asarray(test["accuracy"])
        results["variants"][name] = {
            "dropout_rate": rate, "train_seconds": round(seconds, 1),
            "train_accuracy": train_acc.tolist(), "test_accuracy": test_acc.tolist(),
            "train_loss": np.asarray(on_train["loss"]).tolist(), "test_loss": test["loss"],
            "gap": (train_acc - test_acc).tolist(),
            "test_accuracy_mean": float(test_acc.mean()), "gap_mean": float((train_acc - test_acc).mean()),
        }
        histories[name] = fitted.history
        print(f"{name}: train {train_acc.mean():.4f}, test {test_acc.mean():.4f} "
              f"(gap {(train_acc - test_acc).mean():.4f}) over {config.n_seeds} seeds in "
              f"{seconds:.0f} s", flush=True)
    results["curves_png"] = os.path.basename(training_curves(
        histories, os.path.join(run_dir, "dropout.png"), keys=("train_loss", "eval_error"),
        title=f"{config.n_train} training digits, {config.n_seeds} seeds each (band: min-max)"))
    return results
