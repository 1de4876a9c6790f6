"""Inverted dropout (Srivastava et al. 2014)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dropout(x: jax.Array, rate: float, *, key: jax.Array | None, train: bool) -> jax.Array:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    ``y = m * x / (1 - rate)``, ``m ~ Bernoulli(1 - rate)``, so ``E[y] = x``; at evaluation
    (``train=False``) or with ``rate == 0`` it is the identity. ``x``: any shape; the mask is drawn
    from ``key`` with the same shape.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout in training mode needs a PRNG key: apply(..., key=key, train=True)")
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
