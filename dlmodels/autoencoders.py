"""Autoencoder building blocks: corruption processes for denoising and the contractive penalty.

Denoising autoencoders (Vincent, Larochelle, Bengio & Manzagol 2008; Vincent et al. 2010) learn to
reconstruct x from a corrupted x~ ~ C(x~ | x); contractive autoencoders (Rifai, Vincent, Muller,
Glorot & Bengio 2011) add lambda ||J_f(x)||_F^2, the squared Frobenius norm of the encoder's
Jacobian, to the reconstruction error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CORRUPTIONS = ("mask", "gaussian", "salt_pepper")


def corrupt(key: jax.Array, x: jax.Array, kind: str, level: float, *,
            low: float = 0.0, high: float = 1.0) -> jax.Array:
    """A corrupted copy x~ ~ C(x~ | x) of ``x [..., D]`` (Vincent et al. 2010, section 4.3):

    - ``"mask"`` (masking noise): each input is set to 0 independently with probability ``level``;
    - ``"gaussian"`` (isotropic additive noise): x~ = x + N(0, level^2 I);
    - ``"salt_pepper"``: each input is, with probability ``level``, set to ``low`` or ``high``
      (each with probability 1/2), else kept.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")
    if not isinstance(level, jax.core.Tracer):
        level = float(level)
        if kind == "gaussian" and not level >= 0.0:
            raise ValueError(f"gaussian corruption needs level (the noise std) >= 0, got {level}")
        if kind != "gaussian" and not 0.0 <= level <= 1.0:
            raise ValueError(f"{kind} corruption needs level (a probability) in [0, 1], got {level}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"corrupt expects floating-point inputs, got {x.dtype}")
    if kind == "gaussian":
        return x + level * jax.random.normal(key, x.shape, x.dtype)
    k_hit, k_value = jax.random.split(key)
    hit = jax.random.bernoulli(k_hit, level, x.shape)
    if kind == "mask":
        return jnp.where(hit, jnp.zeros_like(x), x)
    salt = jax.random.bernoulli(k_value, 0.5, x.shape)
    return jnp.where(hit, jnp.where(salt, jnp.asarray(high, x.dtype), jnp.asarray(low, x.dtype)), x)


def contractive_penalty(params: dict, x: jax.Array) -> jax.Array:
    """||J_f(x)||_F^2 of a sigmoid encoder layer h = sigmoid(x W + b), params ``{"w": [D, H],
    "b": [H]}``, in closed form (Rifai et al. 2011, eq. 4 and section 3):

        ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2

    ``x [D]`` -> a scalar, or ``x [B, D]`` -> ``[B]`` (one penalty per example; average it)."""
    w, b = params["w"], params["b"]
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x must have shape [..., {w.shape[0]}] for w {w.shape}, got {x.shape}")
    pre = x @ w
    h = jax.nn.sigmoid(pre + jnp.reshape(b, (1,) * (pre.ndim - 1) + b.shape))
    column_norms = jnp.sum(w ** 2, axis=0)                                  # sum_i W_ij^2, [H]
    return jnp.sum((h * (1.0 - h)) ** 2 * jnp.reshape(column_norms, (1,) * (h.ndim - 1) + (-1,)),
                   axis=-1)
