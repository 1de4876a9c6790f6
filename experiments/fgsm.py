"""Adversarial examples by the fast gradient sign method on MNIST, and adversarial training.

Goodfellow, Shlens & Szegedy (2014), "Explaining and harnessing adversarial examples": the
perturbation eta = eps sign(grad_x J(theta, x, y)) makes a shallow softmax classifier misclassify
99.9 % of MNIST test examples at eps = 0.25 (mean confidence 79.3 %), and a maxout network 89.4 %
(97.6 % confidence); training on J~ = a J(x) + (1 - a) J(x + eps sign grad_x J), a = 0.5, cut the
maxout net's adversarial error to 17.9 % (section 6).

Here: softmax regression (784 -> 10) and LeNet-5 (ReLU, max pooling) trained on the 50,000
training images, each plainly and adversarially (a = 0.5, ``train_eps``), adversarial examples
clipped to [0, 1]. For every model: test error on the clean test set and on FGSM test sets made
against that model for each eps, with the mean confidence (max softmax probability) on the
adversarial examples; a PNG of clean / perturbation / adversarial digits with the predictions.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import backend, losses
from dlmodels.adversarial import adversarial_classifier, fgsm
from dlmodels.cnn import lenet5
from dlmodels.mlp import mlp
from dlmodels.plots import figure, save
from dlmodels.train import TrainConfig, fit
from dlmodels.train.objectives import classifier
from dlmodels.experiments.cnn_mnist import image_splits

PUBLISHED = {"source": "Goodfellow, Shlens & Szegedy 2014, sections 5-6 (MNIST, eps = 0.25)",
             "softmax_adversarial_error": 0.999, "softmax_confidence": 0.793,
             "maxout_adversarial_error": 0.894, "maxout_confidence": 0.976,
             "maxout_adversarially_trained_error": 0.179}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    models: tuple[str, ...] = ("softmax", "cnn")  # models to attack: softmax, cnn
    eps: tuple[float, ...] = (0.05, 0.1, 0.25)  # attack strengths epsilon (pixels in [0, 1])
    train_eps: float = 0.25  # epsilon of the adversarial training examples
    alpha: float = 0.5  # adversarial training: alpha J(x) + (1 - alpha) J(x_adv)
    softmax_epochs: int = 10  # training epochs of the softmax regression
    cnn_epochs: int = 6  # training epochs of the CNN
    batch_size: int = 128  # examples per update
    learning_rate: float = 2e-3  # peak Adam learning rate (cosine-decayed)
    seed: int = 0  # seed of the initial params and batch order
    n_train: int = 0  # training examples used (0: the whole training split)
    n_test: int = 0  # test examples attacked (0: the whole test split)

    def __post_init__(self):
        if not self.models or set(self.models) - {"softmax", "cnn"}:
            raise ValueError(f"models must be drawn from ('softmax', 'cnn'), got {self.models}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def _model(name: str, input_shape):
    if name == "softmax":
        return mlp((int(np.prod(input_shape)), 10))
    return lenet5(10, input_shape=input_shape, activation="relu", pool="max")


def _inputs(name: str, x):
    return x.reshape(x.shape[0], -1) if name == "softmax" else x


def attack_metrics(apply, params, x, y, eps_values, batch_size: int = 1000) -> dict:
    """Test error and mean confidence (max softmax probability) on the clean set (eps = 0) and on
    FGSM sets made against ``params`` for each eps, in batches."""
    def mean_loss(p, x, y):
        return jnp.mean(losses.softmax_cross_entropy(apply(p, x), y))

    @jax.jit
    def batch_stats(params, x, y, eps):
        x_adv = fgsm(mean_loss, params, x, y, eps)
        probs = jax.nn.softmax(apply(params, x_adv))
        wrong = (jnp.argmax(probs, -1) != y).astype(jnp.float32)
        return jnp.sum(wrong), jnp.sum(jnp.max(probs, -1))

    out = {}
    for eps in (0.0, *eps_values):
        wrong = confidence = 0.0
        for i in range(0, len(y), batch_size):
            w, c = batch_stats(params, x[i:i + batch_size], y[i:i + batch_size], eps)
            wrong, confidence = wrong + float(w), confidence + float(c)
        out["clean" if eps == 0.0 else f"eps={eps:g}"] = {"error": wrong / len(y),
                                                          "confidence": confidence / len(y)}
    return out


def _examples_png(apply, params, x, y, eps_values, path):
    """Clean digits, the perturbation and the adversarial digit per eps, titled with predictions."""
    def mean_loss(p, x, y):
        return jnp.mean(losses.softmax_cross_entropy(apply(p, x), y))

    n = x.shape[0]
    rows = 1 + 2 * len(eps_values)
    fig, axes = figure(rows, n, figsize=(1.3 * n, 1.45 * rows))
    side = int(round(np.sqrt(np.prod(x.shape[1:]))))
    clean_pred = np.argmax(np.asarray(apply(params, x)), -1)
    for j in range(n):
        axes[0, j].imshow(np.asarray(x[j]).reshape(side, side), cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(f"{clean_pred[j]}", fontsize=8)
    for r, eps in enumerate(eps_values):
        x_adv = fgsm(mean_loss, params, x, y, eps)
        pred = np.argmax(np.asarray(apply(params, x_adv)), -1)
        for j in range(n):
            delta = np.asarray(x_adv[j] - x[j]).reshape(side, side)
            axes[1 + 2 * r, j].imshow(delta, cmap="RdBu", vmin=-0.25, vmax=0.25)
            axes[2 + 2 * r, j].imshow(np.asarray(x_adv[j]).reshape(side, side), cmap="gray",
                                      vmin=0, vmax=1)
            axes[2 + 2 * r, j].set_title(f"{pred[j]}", fontsize=8,
                                         color="red" if pred[j] != y[j] else "black")
        axes[1 + 2 * r, 0].set_ylabel(f"eta, eps={eps:g}", fontsize=8)
        axes[2 + 2 * r, 0].set_ylabel("x + eta", fontsize=8)
    axes[0, 0].set_ylabel("clean", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return save(fig, path, "FGSM against LeNet-5 (titles: predicted class; red: wrong)")


def main(config: Config, run_dir: str) -> dict:
    splits = image_splits(config.dataset, config.n_train)
    x_test, y_test = splits["test"]
    if config.n_test:
        x_test, y_test = x_test[:config.n_test], y_test[:config.n_test]
    input_shape = splits["train"][0].shape[1:]
    results = {"published": PUBLISHED, "train_eps": config.train_eps, "alpha": config.alpha,
               "models": {}}
    trained = {}
    for name in config.models:
        model = _model(name, input_shape)
        x_train = _inputs(name, splits["train"][0])
        epochs = config.softmax_epochs if name == "softmax" else config.cnn_epochs
        steps = epochs * (len(x_train) // config.batch_size)
        for training in ("plain", "adversarial"):
            if training == "plain":
                loss_fn, _ = classifier(model.apply)
            else:
                loss_fn, _ = adversarial_classifier(model.apply, eps=config.train_eps,
                                                    alpha=config.alpha)
            start = time.perf_counter()
            result = fit(model.init, loss_fn,
                         optax.adam(optax.cosine_decay_schedule(config.learning_rate, steps)),
                         (x_train, splits["train"][1]),
                         TrainConfig(epochs=epochs, batch_size=config.batch_size, seed=config.seed,
                                     progress=False, checkpoint_every=500,
                                     steps_per_call=backend.conv_steps_per_call(100)),
                         run_dir=os.path.join(run_dir, f"{name}_{training}"), resume=True)
            seconds = time.perf_counter() - start
            params = result.state.params
            metrics = attack_metrics(model.apply, params, _inputs(name, jnp.asarray(x_test)),
                                     jnp.asarray(y_test), config.eps)
            results["models"][f"{name}, {training}"] = {"epochs": epochs,
                                                        "train_seconds": round(seconds, 1),
                                                        **metrics}
            trained[(name, training)] = (model, params)
            print(f"{name}, {training} training ({seconds:.0f} s): "
                  + ", ".join(f"{k} {v['error']:.3f}" for k, v in metrics.items()), flush=True)
    pngs = []
    for training in ("plain", "adversarial"):
        if ("cnn", training) in trained:
            model, params = trained[("cnn", training)]
            path = os.path.join(run_dir, f"fgsm_examples_{training}.png")
            pngs.append(os.path.basename(_examples_png(
                model.apply, params, jnp.asarray(x_test[:10]), jnp.asarray(y_test[:10]),
                tuple(e for e in config.eps if e >= 0.1), path)))
    results["examples_png"] = pngs
    return results
