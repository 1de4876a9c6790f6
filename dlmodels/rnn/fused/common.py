"""What every fused loop shares: the static settings of a run and small array helpers."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import lax


class FusedSettings(NamedTuple):
    """Static settings of one fused run: ``time_axis`` 0 (``[T, B, .]``) or 1 (``[B, T, .]``),
    ``reverse`` (steps from the last to the first), ``steps_per_iteration`` (of the
    rematerialised chunks' inner scans; the loops that update whole-sequence buffers in place
    are never unrolled: in an unrolled body XLA fuses the reads of a buffer into consumers it
    cannot order before the next write, and then copies the whole buffer every iteration),
    ``chunk`` (steps per chunk with rematerialisation; 0: none)."""

    time_axis: int
    reverse: bool
    steps_per_iteration: int
    chunk: int


def dot(a, w):
    """``a [..., K] @ w [K, M] -> [..., M]``."""
    return lax.dot_general(a, w, (((a.ndim - 1,), (0,)), ((), ())))


def gram(a, b):
    """``a^T b`` summed over all rows: ``a [..., K]``, ``b [..., M]`` (same leading shape) ->
    ``[K, M]``, as one 2-D matmul (no 3-D contraction for XLA to lower to transposes)."""
    a2 = a.reshape(-1, a.shape[-1])
    b2 = b.reshape(-1, b.shape[-1])
    return lax.dot_general(a2, b2, (((0,), (0,)), ((), ())))


def rowsum(a):
    return jnp.sum(a.reshape(-1, a.shape[-1]), axis=0)


def row(v, ndim: int):
    """A ``[n]`` vector shaped to broadcast against ``[..., n]`` of rank ``ndim``."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def zero(x):
    return jnp.zeros((), x.dtype)


def where(valid, a, b):
    """``a`` where the step is valid (``valid [B, 1]`` or ``[K, B, 1]``; None: everywhere)."""
    return a if valid is None else jnp.where(valid, a, b)


def masked(valid, a):
    """``a`` at valid steps, zero elsewhere."""
    return where(valid, a, zero(a))


def passed_through(valid, grad, cotangent):
    """``grad`` plus, at invalid steps (where the carry was copied through unchanged), the carry's
    ``cotangent`` itself."""
    return grad if valid is None else grad + jnp.where(valid, zero(cotangent), cotangent)


def empty_seq(xs, width: int):
    return jnp.zeros(xs.shape[:-1] + (width,), xs.dtype)
