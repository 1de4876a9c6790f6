"""The two players: the MLP generator and maxout discriminator of Goodfellow et al. (2014) and the
DCGAN generator and discriminator of Radford, Metz & Chintala (2016), for images ``[H, W, C]``.

Every player is a :class:`~dlmodels.model.StatefulModel`,
``apply(params, state, x, *, key=None, train=False) -> (y, new_state)``; the state holds the
batch-normalisation running statistics (``{}`` for the MLP players, which have none). A generator
maps noise ``z [B, latent_dim]`` to images ``[B, *image_shape]``; a discriminator maps images
``[B, *image_shape]`` to one logit per image ``[B]`` (``D(x) = sigmoid(logit)``; the losses in
:mod:`dlmodels.gan.losses` take the logits).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from dlmodels import nn
from dlmodels.cnn import shapes
from dlmodels.mlp import mlp
from dlmodels.model import Model, StatefulModel, init_layers, stateful
from dlmodels.nn import dense, dropout, initializers
from dlmodels.validation import check_choice, check_shape

# The sizes of the paper's MNIST model (goodfeli/adversarial, mnist.yaml): G 100-1200-1200-784,
# D maxout 240 units x 5 pieces, twice, dropout on D's inputs (include 0.8 at the input, 0.5 on
# the hidden layers).
PAPER_MLP_GENERATOR = {"latent_dim": 100, "hidden_sizes": (1200, 1200)}
PAPER_MLP_DISCRIMINATOR = {"hidden_units": (240, 240), "pieces": 5, "input_dropout": 0.2,
                           "hidden_dropout": 0.5}
# DCGAN widths for 28x28 digits closer to the paper's (its 64x64 generator ends 256-128 before the
# image; its discriminator starts 128 wide): 4x the CPU defaults' channels.
LARGE_DCGAN_GENERATOR = {"latent_dim": 100, "channels": (256, 128)}
LARGE_DCGAN_DISCRIMINATOR = {"channels": (64, 128)}

OUTPUT_ACTIVATIONS = ("sigmoid", "tanh")


def _image_shape(image_shape, where: str) -> tuple[int, ...]:
    return shapes.positive_ints(image_shape, "image_shape", where)


def mlp_generator(latent_dim: int = 100, hidden_sizes: Sequence[int] = (256, 256), *,
                  image_shape: Sequence[int] = (28, 28, 1), w_init=initializers.uniform(0.05),
                  output_activation: str = "sigmoid") -> StatefulModel:
    """The paper's generator: an MLP with rectified linear hidden units and a sigmoid output
    (section 5; pylearn2 ``mnist.yaml``):

        h_1 = relu(z W_1 + b_1), ..., h_L = relu(h_{L-1} W_L + b_L),
        x = sigmoid(h_L W_out + b_out) reshaped to image_shape,

    so the pixels lie in (0, 1) like MNIST's ([-1, 1] with ``output_activation="tanh"``;
    ``"identity"`` for unbounded data, e.g. a toy mixture of Gaussians). The
    paper used ``hidden_sizes=(1200, 1200)`` (``PAPER_MLP_GENERATOR``); the default (256, 256) is
    for the CPU. Weights U(-0.05, 0.05) as the paper's code (``irange: .05``), biases 0 (the paper
    started the output biases at the logits of the data's mean pixels; not done here).

    Params ``{"layer_0": {"w": [latent_dim, n_1], "b"}, ..., "layer_L": {"w": [n_L,
    prod(image_shape)], "b"}}``; state ``{}``.
    ``apply(params, state, z [B, latent_dim]) -> ([B, *image_shape], {})``.
    """
    where = "mlp_generator"
    latent_dim = shapes.positive_int(latent_dim, "latent_dim", where)
    hidden = shapes.positive_ints(hidden_sizes, "hidden_sizes", where)
    shape = _image_shape(image_shape, where)
    check_choice(f"{where}: output_activation", output_activation,
                 OUTPUT_ACTIVATIONS + ("identity",))
    net = mlp((latent_dim, *hidden, math.prod(shape)), activation="relu",
              output_activation=output_activation, w_init=w_init)

    def apply(params: dict, z: jax.Array, *, key: jax.Array | None = None,
              train: bool = False) -> jax.Array:
        check_shape(z, (None, latent_dim), f"{where}: noise z [batch, latent_dim]")
        x = net.apply(params, z)                                   # (B, prod(shape))
        return x.reshape(x.shape[0], *shape)                       # (B, *shape)

    return stateful(Model(net.init, apply))


def _maxout(n_in: int, units: int, pieces: int, w_init) -> Model:
    """Maxout layer (Goodfellow et al. 2013): ``h_i = max_{j < pieces} (x W + b)[i * pieces + j]``,
    ``x [B, n_in] -> h [B, units]``; params ``{"w": [n_in, units * pieces], "b"}`` (the pieces of
    unit i are consecutive columns, as in pylearn2)."""
    affine = dense(n_in, units * pieces, w_init=w_init)

    def apply(params: dict, x: jax.Array) -> jax.Array:
        a = affine.apply(params, x)                                # (B, units * pieces)
        return jnp.max(a.reshape(*a.shape[:-1], units, pieces), axis=-1)   # (B, units)

    return Model(affine.init, apply)


def mlp_discriminator(hidden_units: Sequence[int] = (128, 128), *, pieces: int = 5,
                      input_dropout: float = 0.2, hidden_dropout: float = 0.5,
                      image_shape: Sequence[int] = (28, 28, 1),
                      w_init=initializers.uniform(0.005)) -> StatefulModel:
    """The paper's discriminator: maxout layers with dropout, one logit out (section 5;
    pylearn2 ``mnist.yaml``):

        h_0 = flatten(x), h_l = maxout_l(dropout(h_{l-1})), logit = dropout(h_L) w_out + b_out,

    dropout (training mode only, inverted: kept units scaled by ``1 / (1 - rate)``, pylearn2's
    ``input_scales``) with rate ``input_dropout`` on the image and ``hidden_dropout`` on each maxout
    layer's output; each maxout unit the max of ``pieces`` affine pieces. The paper used
    ``hidden_units=(240, 240), pieces=5`` with rates 0.2 / 0.5 (``PAPER_MLP_DISCRIMINATOR``); the
    default 128 units is for the CPU. Weights U(-0.005, 0.005) as the paper's code.

    Params ``{"layer_0": {"w": [prod(image_shape), units_1 * pieces], "b"}, ..., "output": {"w":
    [units_L, 1], "b": [1]}}``; state ``{}``. ``apply(params, state, x [B, *image_shape], *,
    key=None, train=False) -> (logits [B], {})``; dropout in training needs ``key``.
    """
    where = "mlp_discriminator"
    units = shapes.positive_ints(hidden_units, "hidden_units", where)
    pieces = shapes.positive_int(pieces, "pieces", where)
    rate_in = shapes.rate(input_dropout, "input_dropout", where)
    rate_hidden = shapes.rate(hidden_dropout, "hidden_dropout", where)
    shape = _image_shape(image_shape, where)
    sizes = (math.prod(shape), *units)
    layers = {f"layer_{i}": _maxout(a, b, pieces, w_init)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
    layers["output"] = dense(sizes[-1], 1, w_init=w_init)
    rates = [rate_in] + [rate_hidden] * len(units)               # on each layer's input

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None,
              train: bool = False) -> jax.Array:
        check_shape(x, (None, *shape), f"{where}: images x [batch, {', '.join(map(str, shape))}]")
        keys = shapes.dropout_keys(key, train, max(rates), len(layers), where)
        h = x.reshape(x.shape[0], -1)                              # (B, prod(shape))
        for (name, layer), rate, k in zip(layers.items(), rates, keys):
            h = layer.apply(params[name], dropout(h, rate, key=k, train=train))
        return h[:, 0]                                             # (B,) logits

    return stateful(Model(init_layers(layers), apply))


def _dcgan_plan(image_shape, where: str) -> tuple[int, int, int]:
    shape = shapes.image_shape(image_shape, where)
    if shape[0] % 4 or shape[1] % 4:
        raise ValueError(f"{where}: image height and width must be multiples of 4 (two stride-2 "
                         f"layers), got image_shape {tuple(image_shape)}")
    return shape


def dcgan_generator(latent_dim: int = 100, channels: Sequence[int] = (64, 32), *,
                    image_shape: Sequence[int] = (28, 28, 1), output_activation: str = "sigmoid",
                    momentum: float = 0.9) -> StatefulModel:
    """The DCGAN generator (Radford, Metz & Chintala 2016, section 3 and figure 1) for
    ``image_shape = (H, W, C)`` (28x28x1 digits by default):

        h_0 = relu(BN(reshape(z W_0)))                   [B, H/4, W/4, channels[0]]
        h_1 = relu(BN(convT_{4x4, stride 2}(h_0)))       [B, H/2, W/2, channels[1]]
        x   = sigmoid(convT_{4x4, stride 2}(h_1) + b)    [B, H, W, C]

    ("project and reshape", then fractionally strided convolutions with padding 1, so each doubles
    the size; batch normalisation and ReLU everywhere but the output; no pooling, no dense hidden
    layers). Output: a SIGMOID by default, for data in [0, 1] as the MLP GAN and the Parzen
    evaluation use; ``output_activation="tanh"`` is the paper's choice, for data scaled to [-1, 1].
    Weights N(0, 0.02^2) (the paper's initialisation); the layers before a batch norm have no bias
    (BN's shift replaces it). ``channels=(64, 32)`` is for the CPU; ``(256, 128)``
    (``LARGE_DCGAN_GENERATOR``) is nearer the paper's widths. ``momentum``: the batch norms'
    running-average momentum (``dlmodels.nn.batch_norm``).

    Params ``{"project": {"w": [latent_dim, H/4 W/4 channels[0]]}, "bn_0": {"scale", "bias"},
    "up_1": {"w": [4, 4, channels[0], channels[1]]}, "bn_1", "up_2": {"w": [4, 4, channels[1], C],
    "b": [C]}}``; state ``{"bn_0": {"mean", "var"}, "bn_1": {...}}``. ``apply(params, state,
    z [B, latent_dim], *, train=False) -> (images [B, H, W, C], new_state)``: training mode
    normalises with the batch's statistics and updates the running ones; eval mode uses the
    running statistics and returns the state unchanged.
    """
    where = "dcgan_generator"
    latent_dim = shapes.positive_int(latent_dim, "latent_dim", where)
    c0, c1 = shapes.positive_ints(channels, "channels", where, length=2)
    height, width, c_out = _dcgan_plan(image_shape, where)
    check_choice(f"{where}: output_activation", output_activation, OUTPUT_ACTIVATIONS)
    out = jax.nn.sigmoid if output_activation == "sigmoid" else jnp.tanh
    h0, w0 = height // 4, width // 4
    w_init = initializers.normal(0.02)
    layers = {
        "project": dense(latent_dim, h0 * w0 * c0, w_init=w_init, use_bias=False),
        "up_1": nn.conv_transpose2d_layer(4, 4, c0, c1, stride=2, padding=1, output_padding=0,
                                          use_bias=False, w_init=w_init, b_init="zeros"),
        "up_2": nn.conv_transpose2d_layer(4, 4, c1, c_out, stride=2, padding=1, output_padding=0,
                                          use_bias=True, w_init=w_init, b_init="zeros"),
    }
    norms = {"bn_0": nn.batch_norm(c0, momentum=momentum),
             "bn_1": nn.batch_norm(c1, momentum=momentum)}
    init_plain = init_layers(layers)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_layers, key_norms = jax.random.split(key)
        return {**init_plain(key_layers, dtype), **init_layers(norms)(key_norms, dtype)}

    def init_state(dtype=jnp.float32) -> dict:
        return {name: bn.init_state(dtype) for name, bn in norms.items()}

    def apply(params: dict, state: dict, z: jax.Array, *, key: jax.Array | None = None,
              train: bool = False):
        check_shape(z, (None, latent_dim), f"{where}: noise z [batch, latent_dim]")
        new_state = {}
        h = layers["project"].apply(params["project"], z)          # (B, h0 w0 c0)
        h = h.reshape(z.shape[0], h0, w0, c0)                      # (B, 7, 7, c0)
        h, new_state["bn_0"] = norms["bn_0"].apply(params["bn_0"], state["bn_0"], h, train=train)
        h = jax.nn.relu(h)
        h = layers["up_1"].apply(params["up_1"], h)                # (B, 14, 14, c1)
        h, new_state["bn_1"] = norms["bn_1"].apply(params["bn_1"], state["bn_1"], h, train=train)
        h = jax.nn.relu(h)
        x = out(layers["up_2"].apply(params["up_2"], h))           # (B, 28, 28, C)
        return x, new_state

    return StatefulModel(init, init_state, apply)


def dcgan_discriminator(channels: Sequence[int] = (32, 64), *,
                        image_shape: Sequence[int] = (28, 28, 1), negative_slope: float = 0.2,
                        momentum: float = 0.9) -> StatefulModel:
    """The DCGAN discriminator (Radford, Metz & Chintala 2016, section 3) for images
    ``(H, W, C)``:

        h_1 = lrelu(conv_{4x4, stride 2}(x) + b_1)            [B, H/2, W/2, channels[0]]
        h_2 = lrelu(BN(conv_{4x4, stride 2}(h_1)))            [B, H/4, W/4, channels[1]]
        logit = flatten(h_2) w + b                            [B]

    strided convolutions (padding 1) instead of pooling, leaky ReLU with slope 0.2, batch
    normalisation on every layer but the first (the paper: not on D's input layer), one logit
    from the flattened last map. Weights N(0, 0.02^2). ``channels=(32, 64)`` is for the CPU;
    ``(64, 128)`` (``LARGE_DCGAN_DISCRIMINATOR``) is nearer the paper's widths.

    Params ``{"conv_1": {"w": [4, 4, C, channels[0]], "b"}, "conv_2": {"w": [4, 4, channels[0],
    channels[1]]}, "bn_2": {"scale", "bias"}, "output": {"w": [H/4 W/4 channels[1], 1],
    "b": [1]}}``; state ``{"bn_2": {"mean", "var"}}``.
    ``apply(params, state, x [B, H, W, C], *, train=False) -> (logits [B], new_state)`` (batch
    norm as in :func:`dcgan_generator`).
    """
    where = "dcgan_discriminator"
    c1, c2 = shapes.positive_ints(channels, "channels", where, length=2)
    shape = _dcgan_plan(image_shape, where)
    height, width, c_in = shape
    w_init = initializers.normal(0.02)
    layers = {
        "conv_1": nn.conv2d_layer(4, 4, c_in, c1, stride=2, padding=1, w_init=w_init),
        "conv_2": nn.conv2d_layer(4, 4, c1, c2, stride=2, padding=1, w_init=w_init,
                                  use_bias=False),
        "output": dense((height // 4) * (width // 4) * c2, 1, w_init=w_init),
    }
    norm = nn.batch_norm(c2, momentum=momentum)
    init_plain = init_layers(layers)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_layers, key_norm = jax.random.split(key)
        return {**init_plain(key_layers, dtype), "bn_2": norm.init(key_norm, dtype)}

    def init_state(dtype=jnp.float32) -> dict:
        return {"bn_2": norm.init_state(dtype)}

    def apply(params: dict, state: dict, x: jax.Array, *, key: jax.Array | None = None,
              train: bool = False):
        check_shape(x, (None, *shape), f"{where}: images x [batch, {height}, {width}, {c_in}]")
        h = jax.nn.leaky_relu(layers["conv_1"].apply(params["conv_1"], x), negative_slope)
        h = layers["conv_2"].apply(params["conv_2"], h)            # (B, 7, 7, c2)
        h, bn_state = norm.apply(params["bn_2"], state["bn_2"], h, train=train)
        h = jax.nn.leaky_relu(h, negative_slope)
        logits = layers["output"].apply(params["output"], nn.flatten(h))   # (B, 1)
        return logits[:, 0], {"bn_2": bn_state}

    return StatefulModel(init, init_state, apply)
