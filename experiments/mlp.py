"""MLP trained by backpropagation on MNIST: ReLU + softmax cross-entropy vs the course notes' sigmoid net.

Two variants on the same data (50k train / 10k valid / 10k test):

- ``relu``: 784-512-512-10, ReLU, dropout, softmax cross-entropy, Adam with cosine decay. Target:
  >= 98.0 % test accuracy within 5 minutes on a 2-core CPU.
- ``notes``: the course notes' network: sigmoid hidden and output units, the sum-of-squares error
  E = 1/2 sum_k (t_k - y_k)^2 against one-hot targets, plain (minibatch) gradient descent
  w <- w - eta dE/dw, no momentum, no regularisation.

Reference: the Theano deep-learning tutorial's MLP (one hidden layer of 500 tanh units, softmax,
SGD with L1/L2 penalties) reports 1.65 % test error.

Measured here (2-core CPU, jax 0.10.2, defaults): see the README's results table.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import optax

from dlmodels import data
from dlmodels.experiment import write_json
from dlmodels.mlp import mlp
from dlmodels.plots import training_curves
from dlmodels.train import TrainConfig, fit, make_evaluate
from dlmodels.train.objectives import classifier

THEANO_MLP_TEST_ERROR = 0.0165


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    variants: tuple[str, ...] = ("relu", "notes")  # variants to train: relu, notes
    seed: int = 0  # seed of the initial params, dropout and batch order
    # relu variant
    hidden: tuple[int, ...] = (512, 512)  # relu: hidden layer sizes
    epochs: int = 20  # relu: training epochs
    batch_size: int = 128  # relu: examples per update
    learning_rate: float = 1e-3  # relu: peak Adam learning rate (cosine-decayed)
    dropout: float = 0.2  # relu: dropout rate of the hidden layers
    # notes variant
    notes_hidden: tuple[int, ...] = (500,)  # notes: hidden layer sizes
    notes_epochs: int = 20  # notes: training epochs
    notes_batch_size: int = 32  # notes: examples per update
    notes_learning_rate: float = 0.5  # notes: gradient-descent step size eta
    checkpoint_every: int = 500  # updates between checkpoints (resume point)

    def __post_init__(self):
        unknown = set(self.variants) - {"relu", "notes"}
        if unknown or not self.variants:
            raise ValueError(f"variants must be drawn from ('relu', 'notes'), got {self.variants}")


def _variant(name: str, config: Config, n_in: int, n_out: int, n_train: int):
    """(model, loss_fn, eval_fn, optimizer, TrainConfig) of one variant."""
    if name == "relu":
        model = mlp((n_in, *config.hidden, n_out), activation="relu", w_init="he_normal",
                    dropout_rate=config.dropout)
        loss_fn, eval_fn = classifier(model.apply)
        steps = config.epochs * (n_train // config.batch_size)
        optimizer = optax.adam(optax.cosine_decay_schedule(config.learning_rate, steps))
        train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                            checkpoint_every=config.checkpoint_every)
    else:
        model = mlp((n_in, *config.notes_hidden, n_out), activation="sigmoid",
                    output_activation="sigmoid", w_init="glorot_uniform_sigmoid")
        loss_fn, eval_fn = classifier(model.apply, loss="sum_of_squares", n_classes=n_out)
        optimizer = optax.sgd(config.notes_learning_rate)
        train = TrainConfig(epochs=config.notes_epochs, batch_size=config.notes_batch_size,
                            seed=config.seed, checkpoint_every=config.checkpoint_every)
    return model, loss_fn, eval_fn, optimizer, train


def main(config: Config, run_dir: str) -> dict:
    train = data.load(config.dataset, "train")
    valid = data.load(config.dataset, "valid")
    test = data.load(config.dataset, "test")
    results: dict = {"dataset": config.dataset, "n_train": len(train[0]),
                     "reference": {"theano_mlp_500_tanh_test_error": THEANO_MLP_TEST_ERROR}}
    histories = {}
    n_in, n_out = train[0].shape[1], int(train[1].max()) + 1
    for name in config.variants:
        model, loss_fn, eval_fn, optimizer, train_config = _variant(name, config, n_in, n_out,
                                                                    len(train[0]))
        vdir = os.path.join(run_dir, name)
        t0 = time.perf_counter()
        fitted = fit(model.init, loss_fn, optimizer, train, train_config, eval_fn=eval_fn,
                     eval_data=valid, run_dir=vdir, resume=True,
                     record={"experiment": "mlp", "variant": name, **dataclasses.asdict(config)})
        seconds = time.perf_counter() - t0
        final = jax.jit(make_evaluate(eval_fn, 1000))(fitted.state.params, test)
        histories[name] = fitted.history
        results[name] = {"test_accuracy": float(final["accuracy"]),
                         "test_error": float(final["error"]),
                         "valid_accuracy": fitted.final["accuracy"],
                         "train_seconds": seconds, "epochs": train_config.epochs,
                         "batch_size": train_config.batch_size}
        print(f"{name:>6}: test accuracy {final['accuracy']:.4f}  ({seconds:.0f} s)")
    write_json(os.path.join(run_dir, "histories.json"), histories)
    results["plot"] = "curves.png"  # relative to the run directory
    training_curves(histories, os.path.join(run_dir, "curves.png"),
                    keys=("train_loss", "eval_accuracy"),
                    title=f"MLP on {config.dataset} (eval = validation set)")
    return results
