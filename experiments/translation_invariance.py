"""Local translation invariance from pooling: accuracy on shifted MNIST test digits, with and without pooling.

The course notes: convolution is equivariant to translation and pooling over a neighbourhood
makes the representation approximately invariant to small translations of the input. Two
networks with the same convolutions (``dlmodels.cnn.convnet``, ``channels`` 5x5 'SAME' maps with
ReLU, a dense ReLU layer, 10 logits) are trained on the unshifted training digits, one with 2x2 max
pooling after each convolution and one without (its dense layer sees every position). Both are
then tested on the test digits shifted by 0..``max_shift`` pixels (up, down, left and right,
zero fill, averaged over the four directions), ``n_seeds`` seeds each. On the CPU the seeds run
one after another, each with its own data order, as in the committed reference run
(``dlmodels.backend.vmap_conv_seeds``, which has the measurements of ``fit(..., seeds=...)``,
now as fast there); elsewhere they train as one vmapped program.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import backend
from dlmodels.cnn import convnet
from dlmodels.plots import figure, save
from dlmodels.train import make_evaluate
from dlmodels.train.objectives import classifier
from dlmodels.experiments.cnn_mnist import image_splits, train_and_test


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    channels: tuple[int, ...] = (16, 32)  # output channels of the conv layers
    hidden: int = 128  # units of the dense layer
    epochs: int = 2  # training epochs
    batch_size: int = 128  # examples per update
    learning_rate: float = 2e-3  # peak Adam learning rate (cosine-decayed)
    max_shift: int = 4  # largest shift in pixels of the test images
    n_seeds: int = 2  # seeds per network (with and without pooling)
    n_train: int = 0  # training examples used (0: the whole training split)


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images ``[N, H, W, C]`` moved down by ``dy`` and right by ``dx`` pixels (negative: up /
    left), zeros shifted in."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def main(config: Config, run_dir: str) -> dict:
    splits = image_splits(config.dataset, config.n_train)
    x_test, y_test = splits["test"]
    seeds = list(range(config.n_seeds))
    results = {"shifts": list(range(config.max_shift + 1)), "networks": {}}
    for name, pool in (("max pooling", "max"), ("no pooling", None)):
        model = convnet(config.channels, 10, input_shape=x_test.shape[1:], hidden=config.hidden,
                        pool=pool)
        _, eval_fn = classifier(model.apply)
        evaluate = jax.jit(make_evaluate(eval_fn, 1000))
        by_seed, seconds, trained = [], 0.0, []
        train = dict(epochs=config.epochs, batch_size=config.batch_size,
                     learning_rate=config.learning_rate)
        if backend.vmap_conv_seeds():
            fitted, _, seconds = train_and_test(
                model, splits, **train, seed=seeds[0], seeds=seeds,
                run_dir=os.path.join(run_dir, f"{pool or 'nopool'}_seeds"))
            trained = [jax.tree.map(lambda a, i=i: a[i], fitted.state.params)
                       for i in range(len(seeds))]
        else:
            for seed in seeds:
                fitted, _, run_seconds = train_and_test(
                    model, splits, **train, seed=seed,
                    run_dir=os.path.join(run_dir, f"{pool or 'nopool'}_seed{seed}"))
                seconds += run_seconds
                trained.append(fitted.state.params)
        for params in trained:
            accuracy = []
            for k in results["shifts"]:
                moves = [(0, 0)] if k == 0 else [(k, 0), (-k, 0), (0, k), (0, -k)]
                accuracy.append(float(np.mean([
                    evaluate(params, (jnp.asarray(shift(x_test, dy, dx)),
                                      jnp.asarray(y_test)))["accuracy"]
                    for dy, dx in moves])))
            by_seed.append(accuracy)
        by_shift = np.asarray(by_seed).T.tolist()                            # [shifts, n_seeds]
        results["networks"][name] = {
            "accuracy_by_shift": by_shift,
            "mean_accuracy_by_shift": [float(np.mean(a)) for a in by_shift],
            "train_seconds": round(seconds, 1),
            "n_params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(trained[0]))),
        }
        print(f"{name}: accuracy by shift "
              + " ".join(f"{a:.3f}" for a in results["networks"][name]["mean_accuracy_by_shift"]),
              flush=True)

    fig, ax = figure(figsize=(6, 4))
    for name, r in results["networks"].items():
        acc = np.asarray(r["accuracy_by_shift"])
        ax.plot(results["shifts"], acc.mean(1), marker="o", label=name)
        ax.fill_between(results["shifts"], acc.min(1), acc.max(1), alpha=0.2)
    ax.set_xlabel("shift of the test digits (pixels; mean over up/down/left/right)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    results["plot"] = os.path.basename(save(fig, os.path.join(run_dir, "translation_invariance.png"),
                                             f"trained on unshifted digits, {config.n_seeds} seeds"))
    return results
