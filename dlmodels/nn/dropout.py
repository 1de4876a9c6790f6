"""Inverted dropout (Srivastava et al. 2014), and masking noise (the same mask, no rescaling)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.validation import check_in_range


def dropout(x: jax.Array, rate: float, *, key: jax.Array | None, train: bool) -> jax.Array:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    ``y = m * x / (1 - rate)``, ``m ~ Bernoulli(1 - rate)``, so ``E[y] = x``; at evaluation
    (``train=False``) or with ``rate == 0`` it is the identity. ``x``: any shape; the mask is drawn
    from ``key`` with the same shape.
    """
    check_in_range("dropout rate", rate, 0.0, 1.0, closed_high=False)
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout in training mode needs a PRNG key: apply(..., key=key, train=True)")
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


def masking_noise(key: jax.Array, x: jax.Array, rate) -> jax.Array:
    """Each entry of ``x`` set to 0 independently with probability ``rate``, the rest kept as they
    are: ``x~ = m * x``, ``m ~ Bernoulli(1 - rate)`` (no ``1 / (1 - rate)`` rescaling, unlike
    ``dropout``). The masking noise of denoising autoencoders (Vincent et al. 2010, section 4.3)
    and the "erased" probes of associative memories (missing ones).

    ``x [...]`` of any dtype -> the same shape and dtype; ``rate`` in [0, 1] (may be traced: it is
    then not checked). The mask is ``jax.random.bernoulli(key, rate, x.shape)`` (True = erased).
    """
    check_in_range("masking_noise rate", rate, 0.0, 1.0)
    x = jnp.asarray(x)
    return jnp.where(jax.random.bernoulli(key, rate, x.shape), jnp.zeros_like(x), x)
