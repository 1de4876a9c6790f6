"""Residual networks with basic blocks (He, Zhang, Ren & Sun 2016, "Deep residual learning for
image recognition"), the CIFAR-10 layout of section 4.2, without batch normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.cnn import shapes
from dlmodels.model import Model
from dlmodels.nn import conv2d_layer, dense, relu

WHERE = "resnet"


def resnet(blocks=(2, 2, 2), widths=(16, 32, 64), n_classes: int = 10, *, input_shape=(32, 32, 3),
           zero_init_residual: bool = True) -> Model:
    """A residual network: a 3x3 conv stem, stages of basic blocks, global average pooling, logits.

    Stem: ``h = relu(conv3x3(x))`` with ``widths[0]`` channels. Stage ``s`` holds ``blocks[s]``
    basic blocks of ``widths[s]`` channels (eq. 1-2 of the paper):
    ``y = relu(F(h) + shortcut(h))``, ``F(h) = conv3x3(relu(conv3x3(h)))`` (padding 1).
    The first block of every stage after the first halves the maps (its first conv has stride 2);
    where a block changes the shape its shortcut is a 1x1 stride-2 (or stride-1, for a change of
    width only) projection ``h W_s + b_s`` (option B; the paper's CIFAR nets used option A, zero-padded
    identity shortcuts), elsewhere the identity. Then
    ``pool = mean_{i, j} h[:, i, j, :]`` ``[N, widths[-1]]`` and ``logits = pool W + b``.
    The defaults are the paper's CIFAR ResNet-14 (n = 2: 6n + 2 layers); ``(3, 3, 3)`` is ResNet-20.
    Stride-2 maps have ``ceil(H / 2)`` pixels, so any input size works.

    No batch normalisation (the paper puts it after every conv). Instead, with
    ``zero_init_residual=True`` (default) the second conv of every block starts at zero, weights
    and bias, so ``F = 0`` and every block starts as ``relu(shortcut(h))``: the identity for the
    non-negative maps of identity blocks, as in Goyal et al. (2017)'s zero-initialised last BN
    scale and Fixup (Zhang, Dauphin & Ma 2019); the network at init is the stem, the projections
    and the head. Other convs: He normal; head: Glorot uniform.

    Params: ``{"stem": {"w": [3, 3, C, w0], "b"}, "stage1": {"block1": {"conv1": {...}, "conv2":
    {...}[, "shortcut": {"w": [1, 1, c_in, c_out], "b"}]}, ...}, ..., "head": {"w": [w_last, K],
    "b": [K]}}`` (stages and blocks numbered from 1).

    ``apply(params, x, *, key=None, train=False, return_features=False)``: ``x [N, H, W, C] ->
    logits [N, n_classes]`` (``key`` and ``train`` are accepted for the common interface; nothing
    is random); with ``return_features=True`` it returns ``(logits, features)``, ``features =
    {"stem", "stage1_block1", ..., "pool"}`` (each block's output after its final ReLU).
    """
    blocks = shapes.positive_ints(blocks, "blocks", WHERE)
    widths = shapes.positive_ints(widths, "widths", WHERE)
    if len(blocks) != len(widths) or not blocks:
        raise ValueError(f"{WHERE}: blocks and widths need one entry per stage, got {len(blocks)} "
                         f"blocks {blocks} and {len(widths)} widths {widths}")
    n_classes = shapes.positive_int(n_classes, "n_classes", WHERE)
    height, width, channels = shapes.image_shape(input_shape, WHERE)

    # (name, stride, c_in, c_out) of each block.
    plan, c_in = [], widths[0]
    for s, (n_blocks, c_out) in enumerate(zip(blocks, widths), 1):
        for b in range(1, n_blocks + 1):
            stride = 2 if s > 1 and b == 1 else 1
            plan.append((f"stage{s}", f"block{b}", stride, c_in, c_out))
            c_in = c_out

    stem = conv2d_layer(3, 3, channels, widths[0], padding=1)
    block_layers = {}
    for stage, block, stride, c_in, c_out in plan:
        layers = {"conv1": conv2d_layer(3, 3, c_in, c_out, stride=stride, padding=1),
                  "conv2": conv2d_layer(3, 3, c_out, c_out, padding=1,
                                        w_init="zeros" if zero_init_residual else "he_normal")}
        if stride != 1 or c_in != c_out:
            layers["shortcut"] = conv2d_layer(1, 1, c_in, c_out, stride=stride)
        block_layers[stage, block] = layers
    head = dense(widths[-1], n_classes)
    shape = (height, width, channels)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_stem, key_head, key_blocks = jax.random.split(key, 3)
        params = {"stem": stem.init(key_stem, dtype)}
        for ((stage, block), layers), k in zip(block_layers.items(),
                                               jax.random.split(key_blocks, len(plan))):
            keys = jax.random.split(k, len(layers))
            params.setdefault(stage, {})[block] = {
                name: layer.init(kk, dtype) for (name, layer), kk in zip(layers.items(), keys)}
        params["head"] = head.init(key_head, dtype)
        return params

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_features: bool = False):
        del key, train  # deterministic: no dropout, no batch statistics
        shapes.check_input(x, shape, WHERE)
        h = relu(stem.apply(params["stem"], x))                      # (N, H, W, w0)
        features = {"stem": h}
        for (stage, block), layers in block_layers.items():
            p = params[stage][block]
            residual = relu(layers["conv1"].apply(p["conv1"], h))   # (N, H_s, W_s, c_out)
            residual = layers["conv2"].apply(p["conv2"], residual)
            shortcut = layers["shortcut"].apply(p["shortcut"], h) if "shortcut" in layers else h
            h = features[f"{stage}_{block}"] = relu(residual + shortcut)
        pooled = features["pool"] = jnp.mean(h, axis=(1, 2))        # (N, w_last)
        logits = head.apply(params["head"], pooled)                  # (N, n_classes)
        return (logits, features) if return_features else logits

    return Model(init, apply)
