"""Fully connected (affine) layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.nn import initializers
from dlmodels.validation import ShapeError


def dense(in_features: int, out_features: int, *, w_init="glorot_uniform", b_init="zeros",
          use_bias: bool = True) -> Model:
    """Affine map ``y = x W + b``.

    Params: ``{"w": [in_features, out_features], "b": [out_features]}`` (no ``"b"`` without bias).
    ``apply(params, x)``: ``x [..., in_features] -> y [..., out_features]``.
    """
    if in_features <= 0 or out_features <= 0:
        raise ValueError(f"dense sizes must be positive, got {in_features} -> {out_features}")
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_w, key_b = jax.random.split(key)
        params = {"w": w_init(key_w, (in_features, out_features), dtype)}
        if use_bias:
            params["b"] = b_init(key_b, (out_features,), dtype)
        return params

    def apply(params: dict, x: jax.Array) -> jax.Array:
        if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != in_features:
            raise ShapeError(f"dense: expected input x [..., {in_features}], got {jnp.shape(x)}")
        y = x @ params["w"]
        if not use_bias:
            return y
        return y + jnp.expand_dims(params["b"], tuple(range(y.ndim - 1)))

    return Model(init, apply)
