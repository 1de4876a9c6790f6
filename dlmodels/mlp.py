"""Multilayer perceptron trained by backpropagation (Rumelhart, Hinton & Williams 1986)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.nn import activations, dense, dropout
from dlmodels.validation import check_in_range, check_shape


def mlp(layer_sizes: Sequence[int], *, activation="relu", output_activation="identity",
        w_init="glorot_uniform", b_init="zeros", dropout_rate: float = 0.0) -> Model:
    """A stack of dense layers ``h_l = f(h_{l-1} W_l + b_l)``, ``h_0 = x``; the last layer uses
    ``output_activation`` (the identity by default, so the outputs are logits).

    ``layer_sizes = (n_in, n_1, ..., n_out)``. Params: ``{"layer_0": {"w": [n_in, n_1], "b": [n_1]},
    ...}``. ``apply(params, x, *, key=None, train=False, return_hidden=False)``: ``x [B, n_in] ->
    [B, n_out]``; with ``dropout_rate > 0`` and ``train=True``, inverted dropout on every hidden
    layer's output, drawn from ``key``. With ``return_hidden=True`` it returns ``(outputs,
    [h_1, ..., h_L])``, the L hidden layers' post-activation values ``h_l = f(h_{l-1} W_l + b_l)``
    ``[B, n_l]`` (before dropout; what the next layer receives is ``dropout(h_l)``).
    """
    sizes = tuple(int(n) for n in layer_sizes)
    if len(sizes) < 2 or min(sizes) <= 0:
        raise ValueError(f"layer_sizes needs at least an input and an output size, all positive; "
                         f"got {layer_sizes}")
    check_in_range("mlp: dropout_rate", dropout_rate, 0.0, 1.0, closed_high=False)
    f, f_out = activations.get(activation), activations.get(output_activation)
    layers = [dense(a, b, w_init=w_init, b_init=b_init) for a, b in zip(sizes[:-1], sizes[1:])]
    n_layers = len(layers)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        keys = jax.random.split(key, n_layers)
        return {f"layer_{i}": layer.init(k, dtype) for i, (layer, k) in enumerate(zip(layers, keys))}

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_hidden: bool = False):
        check_shape(x, (None, sizes[0]), "mlp: input x [batch, n_in]")
        drop_keys = (jax.random.split(key, n_layers) if key is not None and train and dropout_rate
                     else [None] * n_layers)
        h, hidden = x, []
        for i, layer in enumerate(layers[:-1]):
            h = f(layer.apply(params[f"layer_{i}"], h))
            hidden.append(h)
            h = dropout(h, dropout_rate, key=drop_keys[i], train=train)
        out = f_out(layers[-1].apply(params[f"layer_{n_layers - 1}"], h))
        return (out, hidden) if return_hidden else out

    return Model(init, apply)
