"""VGG networks (Simonyan & Zisserman 2014, "Very deep convolutional networks for large-scale image
recognition", Table 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.cnn import shapes
from dlmodels.model import Model
from dlmodels.nn import conv2d_layer, dense, dropout, flatten, max_pool, relu

WHERE = "vgg"

# Table 1's configurations: the 3x3 conv channels of each block (a 2x2 max pool after each block).
VGG11 = ((64,), (128,), (256, 256), (512, 512), (512, 512))                    # "A"
VGG13 = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))             # "B"
VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))  # "D"
VGG19 = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)           # "E"


def vgg(config=VGG11, n_classes: int = 1000, *, input_shape=(224, 224, 3), fc=(4096, 4096),
        dropout_rate: float = 0.5, batch_norm: bool = False) -> Model:
    """A VGG net: blocks of 3x3 convolutions (stride 1, padding 1) with ReLU, each block followed
    by 2x2 max pooling (stride 2), then fully connected ReLU layers with dropout and a logits layer.

    ``h = relu(conv3x3(h) + b)`` for each conv of block ``i``; ``h = maxpool2x2(h)`` at its end;
    then ``h = dropout(relu(h W + b))`` for each size in ``fc``; ``logits = h W_out + b_out``.
    ``config``: per block, the channels of its convolutions (``VGG11`` = configuration "A", the
    default; ``VGG13``, ``VGG16``, ``VGG19``; or small ones such as ``((16,), (32,))`` for 28x28 or
    32x32 inputs). Each pool halves the maps (floor), so H and W need at least
    ``2 ** len(config)`` pixels; at 224x224 the last maps are 7x7. ``fc=()`` puts the logits layer
    right after the flattened maps. VGG-16 with 1000 classes has 138,357,544 parameters.

    ``batch_norm=True`` is refused: batch normalisation needs running statistics carried as state
    between steps, which the ``Model(init, apply)`` contract has no place for yet.
    Init: He normal weights and zero biases (the paper initialised from N(0, 0.01^2) and from the
    trained configuration "A").

    Params: ``{"block1": {"conv1": {"w": [3, 3, C, c], "b": [c]}, ...}, ..., "fc1": {"w", "b"},
    ..., "output": {"w": [n, K], "b": [K]}}`` (blocks, convs and fc layers numbered from 1).

    ``apply(params, x, *, key=None, train=False, return_features=False)``: ``x [N, H, W, C] ->
    logits [N, n_classes]``; with ``return_features=True`` it returns ``(logits, features)``,
    ``features = {"block1_conv1", ..., "block1_pool", ..., "fc1", ...}`` (after ReLU, before
    dropout).
    """
    if (not isinstance(config, (tuple, list)) or not config
            or not all(isinstance(block, (tuple, list)) and block for block in config)):
        raise ValueError(f"{WHERE}: config must be a non-empty sequence of non-empty sequences of "
                         f"channel counts, got {config!r}")
    config = tuple(shapes.positive_ints(block, f"config block {i + 1}", WHERE)
                   for i, block in enumerate(config))
    n_classes = shapes.positive_int(n_classes, "n_classes", WHERE)
    height, width, channels = shapes.image_shape(input_shape, WHERE)
    fc = tuple(fc)
    if fc:
        fc = shapes.positive_ints(fc, "fc", WHERE)
    dropout_rate = shapes.rate(dropout_rate, "dropout_rate", WHERE)
    if batch_norm:
        raise NotImplementedError(f"{WHERE}: batch_norm=True needs running statistics as state, "
                                  "which Model(init, apply) does not carry; use batch_norm=False")
    need = 2 ** len(config)
    if height < need or width < need:
        raise ValueError(f"{WHERE}: input_shape {tuple(input_shape)} is too small for {len(config)} "
                         f"2x2 pools: H and W must be at least {need}")

    layers: dict[str, object] = {}
    c_in = channels
    for i, block in enumerate(config, 1):
        for j, c_out in enumerate(block, 1):
            layers[f"block{i}/conv{j}"] = conv2d_layer(3, 3, c_in, c_out, padding=1)
            c_in = c_out
    n_in = (height >> len(config)) * (width >> len(config)) * c_in
    for j, n_out in enumerate(fc, 1):
        layers[f"fc{j}"] = dense(n_in, n_out, w_init="he_normal")
        n_in = n_out
    layers["output"] = dense(n_in, n_classes)
    shape = (height, width, channels)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        keys = jax.random.split(key, len(layers))
        params: dict = {}
        for (name, layer), k in zip(layers.items(), keys):
            if "/" in name:
                block, conv = name.split("/")
                params.setdefault(block, {})[conv] = layer.init(k, dtype)
            else:
                params[name] = layer.init(k, dtype)
        return params

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_features: bool = False):
        shapes.check_input(x, shape, WHERE)
        drop_keys = shapes.dropout_keys(key, train, dropout_rate, len(fc), WHERE)
        features = {}
        h = x
        for i, block in enumerate(config, 1):
            for j in range(1, len(block) + 1):
                h = relu(layers[f"block{i}/conv{j}"].apply(params[f"block{i}"][f"conv{j}"], h))
                features[f"block{i}_conv{j}"] = h                    # (N, H / 2^(i-1), ., c)
            h = features[f"block{i}_pool"] = max_pool(h, 2)          # (N, H / 2^i, ., c)
        h = flatten(h)                                               # (N, h w c)
        for j, k in enumerate(drop_keys, 1):
            h = features[f"fc{j}"] = relu(layers[f"fc{j}"].apply(params[f"fc{j}"], h))
            h = dropout(h, dropout_rate, key=k, train=train)
        logits = layers["output"].apply(params["output"], h)         # (N, n_classes)
        return (logits, features) if return_features else logits

    return Model(init, apply)
