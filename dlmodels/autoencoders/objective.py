"""The autoencoder training objective: reconstruction error plus the regularisers of the family.

    J(theta) = 1/B sum_n L(x_n, g(f(x~_n))) + lambda_1 sum_i |h_i| + beta sum_j KL(rho || rho^_j)
               + lambda_c ||J_f(x_n)||_F^2 + lambda_w (||W_1||_F^2 + ||W_2||_F^2)

with x~ ~ C(x~ | x) for a denoising autoencoder (x~ = x otherwise), L the squared error
sum_i (x_i - r_i)^2 or the cross-entropy -sum_i [x_i log r_i + (1 - x_i) log(1 - r_i)] (Vincent et
al. 2010, section 2.3), and h = f(x~) the code.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels import losses
from dlmodels.validation import ShapeError, check_choice
from dlmodels.autoencoders.shallow import (CORRUPTIONS, contractive_penalty, corrupt, kl_sparsity,
                                           l1_sparsity)

RECONSTRUCTIONS = ("squared", "cross_entropy")


def reconstruction_error(r: jax.Array, x: jax.Array, kind: str = "squared", *,
                         eps: float = 1e-7) -> jax.Array:
    """Per-example error ``[B, D], [B, D] -> [B]``: ``"squared"`` sum_i (x_i - r_i)^2 (Hinton &
    Salakhutdinov's "squared error per image"), ``"cross_entropy"`` -sum_i [x_i log r_i +
    (1 - x_i) log(1 - r_i)] for r in (0, 1) (clipped to [eps, 1 - eps])."""
    check_choice("reconstruction", kind, RECONSTRUCTIONS)
    if r.shape != x.shape:
        raise ShapeError(f"reconstruction_error: reconstruction {r.shape} and input {x.shape} "
                         "differ in shape")
    if kind == "squared":
        return jnp.sum((x - r) ** 2, axis=-1)
    r = jnp.clip(r, eps, 1.0 - eps)
    return -jnp.sum(x * jnp.log(r) + (1.0 - x) * jnp.log1p(-r), axis=-1)


def objective(apply: Callable, *, reconstruction: str = "squared", corruption: str | None = None,
              level: float = 0.0, l1: float = 0.0, kl: float = 0.0, rho: float = 0.05,
              contractive: float = 0.0, weight_decay: float = 0.0):
    """``(loss_fn, eval_fn)`` for ``dlmodels.train.fit`` on batches ``x [B, D]`` of an autoencoder
    ``apply(params, x, *, return_code=True) -> (r, h)``.

    ``corruption``/``level``: a denoising autoencoder (``corrupt``'s kinds); ``l1``: weight of the
    L1 code penalty; ``kl``/``rho``: weight of the KL sparsity penalty and the target mean activation
    (sigmoid codes); ``contractive``: weight of ||J_f(x)||_F^2 (needs a one-layer sigmoid encoder
    ``params["encoder"] = {"w", "b"}``); ``weight_decay``: lambda sum ||W||_F^2 over the weight
    matrices. ``loss_fn(params, x, key) -> (J, {term: value})``; ``eval_fn(params, x)`` gives the
    per-example ``reconstruction_error`` (the chosen L on clean inputs) and ``squared_error``.
    """
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    if corruption is not None and corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be None or one of {CORRUPTIONS}, got {corruption!r}")
    for name, value in (("l1", l1), ("kl", kl), ("contractive", contractive),
                        ("weight_decay", weight_decay), ("level", level)):
        if not value >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if kl and not 0.0 < rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {rho}")

    def terms(params, x, key):
        x_in = corrupt(key, x, corruption, level) if corruption is not None else x
        r, h = apply(params, x_in, return_code=True)
        out = {"reconstruction": jnp.mean(reconstruction_error(r, x, reconstruction))}
        if l1:
            out["l1"] = l1 * jnp.mean(l1_sparsity(h))
        if kl:
            out["kl"] = kl * kl_sparsity(h, rho)
        if contractive:
            out["contractive"] = contractive * jnp.mean(contractive_penalty(params["encoder"], x))
        if weight_decay:
            out["weight_decay"] = weight_decay * losses.l2_penalty(params)
        return out

    def loss_fn(params, x, key):
        parts = terms(params, x, key)
        return sum(parts.values()), parts

    def eval_fn(params, x):
        r = apply(params, x)
        return {"reconstruction_error": reconstruction_error(r, x, reconstruction),
                "squared_error": reconstruction_error(r, x, "squared")}

    return loss_fn, eval_fn
