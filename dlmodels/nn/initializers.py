"""Weight initialisers ``init(key, shape, dtype) -> array``, and a look-up by name.

For a weight matrix of shape ``[fan_in, fan_out]``:

- ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), so Var = 2 / (fan_in + fan_out)
  (Glorot & Bengio 2010, eq. 16); ``glorot_normal``: the same variance from a (truncated) normal.
- ``glorot_uniform_sigmoid`` / ``glorot_normal_sigmoid``: 4 times the Glorot range (16 times the
  variance), the variant Glorot & Bengio recommend for logistic sigmoid units.
- ``he_uniform`` / ``he_normal``: Var = 2 / fan_in, for ReLU (He et al. 2015).
- ``lecun_normal``: Var = 1 / fan_in (LeCun et al. 1998).
- ``orthogonal``: a random orthogonal matrix (Saxe et al. 2014), times ``scale``.
- ``identity``: ``scale * I`` (Le, Jaitly & Hinton 2015 use it for ReLU RNNs).
- ``uniform(scale)``: U(-scale, scale); ``normal(stddev)``: N(0, stddev^2); ``zeros``; ``ones``.

For a convolution kernel ``[kh, kw, c_in, c_out]`` (HWIO; ``[k, c_in, c_out]`` in 1-D) the
variance-scaling initialisers take the last two axes as (in, out) and multiply both by the
receptive field: fan_in = kh kw c_in, fan_out = kh kw c_out (with groups, ``c_in`` is the per-group
``c_in / groups`` the kernel holds, as in PyTorch).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels.validation import lookup

Initializer = Callable[..., jax.Array]

_vs = jax.nn.initializers.variance_scaling

glorot_uniform = jax.nn.initializers.glorot_uniform()
glorot_normal = jax.nn.initializers.glorot_normal()
glorot_uniform_sigmoid = _vs(16.0, "fan_avg", "uniform")
glorot_normal_sigmoid = _vs(16.0, "fan_avg", "truncated_normal")
he_uniform = jax.nn.initializers.he_uniform()
he_normal = jax.nn.initializers.he_normal()
lecun_normal = jax.nn.initializers.lecun_normal()
zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


def uniform(scale: float = 0.05) -> Initializer:
    """Symmetric uniform U(-scale, scale)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def normal(stddev: float = 0.01) -> Initializer:
    """Normal N(0, stddev^2)."""
    return jax.nn.initializers.normal(stddev)


def orthogonal(scale: float = 1.0) -> Initializer:
    """Random orthogonal matrix times ``scale`` (rows or columns orthonormal)."""
    return jax.nn.initializers.orthogonal(scale)


def identity(scale: float = 1.0) -> Initializer:
    """``scale * I`` for a square ``[n, n]`` matrix; the key is unused."""

    def init(key, shape, dtype=jnp.float32):
        del key
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"identity initialiser needs a square 2-D shape, got {shape}")
        return scale * jnp.eye(shape[0], dtype=dtype)

    return init


INITIALIZERS: dict[str, Initializer] = dict(
    glorot_uniform=glorot_uniform, glorot_normal=glorot_normal,
    glorot_uniform_sigmoid=glorot_uniform_sigmoid, glorot_normal_sigmoid=glorot_normal_sigmoid,
    he_uniform=he_uniform, he_normal=he_normal, lecun_normal=lecun_normal,
    orthogonal=orthogonal(), identity=identity(), uniform=uniform(), normal=normal(),
    zeros=zeros, ones=ones)


def get(name: str | Initializer) -> Initializer:
    """The initialiser called ``name`` (a callable is returned as it is)."""
    return lookup("initialiser", name, INITIALIZERS)
