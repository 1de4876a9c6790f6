"""Associative memories: the binary (Willshaw / Steinbuch) memory and the linear associator.

Patterns are stored as rows: keys ``x [P, n]``, values ``y [P, m]``. A probe is ``x [..., n]``.
Every memory matrix is laid out ``[n, m]`` (inputs along rows, as ``dense``'s ``y = x W``) and
filled by the one Hebbian rule, ``perceptron.hebbian`` (``W = sum_j x^j y^jT``).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from dlmodels.classic.perceptron import hebbian
from dlmodels.nn.dropout import masking_noise
from dlmodels.validation import ShapeError, check_choice, check_in_range

DEGRADATIONS = ("noise", "erase", "occlusion")


def _pairs(name: str, x, y):
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"{name}: expected keys x [P, n] and values y [P, m] with the same P; "
                         f"got x {x.shape}, y {y.shape}")
    return x, y


def binary_store(x: jax.Array, y: jax.Array) -> jax.Array:
    """Clipped Hebbian storage of binary pairs: ``w_ir = max_j x_i^j y_r^j``.

    Steinbuch's Lernmatrix (1961), Willshaw, Buneman & Longuet-Higgins (1969); course notes'
    binary hetero-associative memory. ``x [P, n]``, ``y [P, m]`` with 0/1 entries ->
    ``w [n, m]`` 0/1 in the dtype of ``x``.
    """
    x, y = _pairs("binary_store", x, y)
    return (hebbian(x.astype(jnp.float32), y.astype(jnp.float32)) > 0).astype(x.dtype)


def binary_recall(w: jax.Array, x: jax.Array, threshold=None, *, offset: float = 0.0) -> jax.Array:
    """Recall from a binary memory: ``y_r = Theta(sum_i w_ir x_i - s)`` (``Theta(0) = 1``).

    Default threshold ``s = l - 1/2 - offset``, ``l`` the number of ones in the probe: with
    ``offset = 0`` an output fires only when every probe one connects to it, so a probe with some
    of a stored key's ones missing recalls all of its value's ones (with more false ones at high
    load than the complete key: fewer ones constrain the output); ``offset = k`` tolerates up to
    ``k`` probe ones that are not in the key (noise) at the price of more false ones. An explicit
    ``threshold`` (scalar or ``[...]`` per probe) replaces ``s``. ``w [n, m]``, ``x [..., n]``
    -> ``y [..., m]`` 0/1 in the dtype of ``w``.
    """
    w, x = jnp.asarray(w), jnp.asarray(x)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"binary_recall: expected w [n, m] and x [..., n]; got w {w.shape}, "
                         f"x {x.shape}")
    x = x.astype(jnp.float32)
    u = x @ w.astype(jnp.float32)  # [..., m]
    if threshold is None:
        s = x.sum(-1) - 0.5 - offset
    else:
        s = jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), x.shape[:-1])
    return (u >= s[..., None]).astype(w.dtype)


def linear_hebbian(x: jax.Array, y: jax.Array, *, normalise: bool = False) -> jax.Array:
    """Linear associator by Hebb's rule: ``W = sum_j x^j y^jT`` (Kohonen 1972, Anderson 1972;
    they write its transpose, ``sum_j y^j x^jT``, and recall ``W x``).

    Recall ``x^k W = y^k ||x^k||^2 + sum_{j != k} y^j (x^j . x^k)``: exact for orthonormal keys,
    crosstalk otherwise. ``normalise=True`` stores ``x^j y^jT / ||x^j||^2`` (exact for orthogonal
    keys of any length). ``x [P, n]``, ``y [P, m]`` -> ``W [n, m]``.
    """
    x, y = _pairs("linear_hebbian", x, y)
    if normalise:
        x = x / jnp.sum(x * x, axis=1, keepdims=True)
    return hebbian(x, y)


def linear_least_squares(x: jax.Array, y: jax.Array) -> jax.Array:
    """Optimal linear associator ``W* = x^+ y``, minimising ``sum_j ||x^j W - y^j||^2``.

    Kohonen & Ruohonen (1973), Kohonen (1974), who write its transpose ``Y X^+`` with the keys as
    the columns of ``X``; ``x^+`` is the Moore-Penrose pseudo-inverse of the key rows ``x``:
    recall is exact for linearly independent keys (P <= n), least squares beyond.
    ``x [P, n]``, ``y [P, m]`` -> ``W [n, m]``.
    """
    x, y = _pairs("linear_least_squares", x, y)
    return jnp.linalg.pinv(x) @ y


def linear_recall(w: jax.Array, x: jax.Array) -> jax.Array:
    """Linear associator recall ``y = x W``. ``W [n, m]``, ``x [..., n]`` -> ``[..., m]``."""
    w, x = jnp.asarray(w), jnp.asarray(x)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"linear_recall: expected W [n, m] and x [..., n]; got W {w.shape}, "
                         f"x {x.shape}")
    return x @ w


def degrade(key: jax.Array, x: jax.Array, kind: Literal["noise", "erase", "occlusion"] = "noise",
            level: float = 0.1) -> jax.Array:
    """A degraded copy of binary patterns ``x [..., n]`` (0/1 entries), to probe a memory.

    ``"noise"``: each entry flipped (``x -> 1 - x``) independently with probability ``level``;
    ``"erase"``: each entry set to 0 independently with probability ``level`` (missing ones;
    ``nn.masking_noise``);
    ``"occlusion"``: a contiguous block of ``round(level * n)`` entries set to 0, at a random
    start drawn per pattern (cyclically; for row-major images: a band of rows).
    Same shape and dtype as ``x``. ``level`` may be traced (its range is then not checked).
    """
    x = jnp.asarray(x)
    check_choice("degrade: kind", kind, DEGRADATIONS)
    check_in_range("degrade: level", level, 0.0, 1.0)
    if x.ndim < 1:
        raise ShapeError(f"degrade: expected patterns [..., n], got shape {x.shape}")
    if kind == "noise":
        flip = jax.random.bernoulli(key, level, x.shape)
        return jnp.where(flip, 1 - x, x)
    if kind == "erase":
        return masking_noise(key, x, level)
    n = x.shape[-1]
    width = jnp.round(level * n).astype(jnp.int32)
    start = jax.random.randint(key, x.shape[:-1] + (1,), 0, n)  # [..., 1]
    index = jnp.arange(n).reshape((1,) * (x.ndim - 1) + (n,))
    position = (index - start) % n  # [..., n]: distance past the block's start
    return jnp.where(position < width, jnp.zeros_like(x), x)
