"""First-layer filters and feature maps of a convolutional network trained on MNIST, as PNG grids.

``dlmodels.cnn.convnet(channels)`` (5x5 'SAME' convolutions, ReLU, 2x2 max pooling) is trained for
a few epochs; ``filters.png`` shows the first layer's kernels at initialisation and after training
(grey = 0, each kernel scaled to its own largest weight), ``feature_maps.png`` the maps that two
test digits produce after the first and second convolution (after ReLU and pooling). The first
maps are edge- and stroke-sensitive copies of the digit (Zeiler & Fergus 2014 show the same for
deeper nets). ``kernel_relative_change`` = ||W - W_0|| / ||W_0|| per kernel measures how far
training moved each kernel from its random start (the one ``fit`` drew from ``seed``).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.cnn import convnet
from dlmodels.plots import image_grid
from dlmodels.experiments.cnn_mnist import image_splits, train_and_test


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    channels: tuple[int, ...] = (16, 32)  # output channels of the conv layers
    hidden: int = 256  # units of the dense layer
    epochs: int = 2  # training epochs
    batch_size: int = 128  # examples per update
    learning_rate: float = 2e-3  # peak Adam learning rate (cosine-decayed)
    seed: int = 0  # seed of the initial params and batch order
    n_train: int = 0  # training examples used (0: the whole training split)


def kernels(w: np.ndarray) -> np.ndarray:
    """First-layer kernels ``[kh, kw, 1, C_out]`` as ``C_out`` images ``[C_out, kh, kw]``
    (the mean over input channels for colour inputs)."""
    return np.transpose(np.asarray(w).mean(axis=2), (2, 0, 1))


def main(config: Config, run_dir: str) -> dict:
    splits = image_splits(config.dataset, config.n_train)
    x_test = splits["test"][0]
    model = convnet(config.channels, 10, input_shape=x_test.shape[1:], hidden=config.hidden)
    initial = model.init(jax.random.split(jax.random.PRNGKey(config.seed))[0])  # fit's init key
    fitted, test, seconds = train_and_test(
        model, splits, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, seed=config.seed,
        run_dir=os.path.join(run_dir, "convnet"))
    params = fitted.state.params
    filters_png = image_grid(
        {"first-layer kernels at initialisation": kernels(initial["conv_0"]["w"]),
         f"after {config.epochs} epochs (test accuracy {test['accuracy']:.3f})":
             kernels(params["conv_0"]["w"])},
        os.path.join(run_dir, "filters.png"), n_cols=8, symmetric=True,
        title="first-layer 5x5 kernels (grey 0, white positive, black negative)")
    _, features = model.apply(params, jnp.asarray(x_test[:2]), return_features=True)
    panels = {}
    for i in range(2):
        panels[f"digit {i}"] = x_test[i:i + 1, :, :, 0]
        for layer in ("conv_0", "conv_1"):
            maps = np.transpose(np.asarray(features[layer][i]), (2, 0, 1))[:32]
            panels[f"digit {i}: {layer} ({maps.shape[1]}x{maps.shape[2]})"] = maps
    maps_png = image_grid(panels, os.path.join(run_dir, "feature_maps.png"), n_cols=8,
                          title="feature maps after ReLU and 2x2 max pooling (first 32 channels)")
    w0 = np.asarray(params["conv_0"]["w"]).reshape(-1, params["conv_0"]["w"].shape[-1])
    w_init = np.asarray(initial["conv_0"]["w"]).reshape(w0.shape)
    change = np.linalg.norm(w0 - w_init, axis=0) / np.linalg.norm(w_init, axis=0)
    return {"test_accuracy": test["accuracy"], "train_seconds": seconds,
            "first_layer_kernel_norms": np.linalg.norm(w0, axis=0).tolist(),
            "kernel_relative_change": change.tolist(),
            "kernel_relative_change_mean": float(change.mean()),
            "filters_png": os.path.basename(filters_png), "feature_maps_png": os.path.basename(maps_png)}
