"""Local response normalisation across channels (Krizhevsky, Sutskever & Hinton 2012) and batch
normalisation with running statistics (Ioffe & Szegedy 2015)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.model import StatefulModel
from dlmodels.validation import ShapeError


def local_response_norm(x: jax.Array, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4,
                        beta: float = 0.75, divide_alpha_by_size: bool = False) -> jax.Array:
    """AlexNet's local response normalisation over the last (channel) axis.

    ``b^i = a^i / (k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} (a^j)^2)^beta``
    (Krizhevsky et al. 2012, section 3.3; n = 5, k = 2, alpha = 1e-4, beta = 0.75 there), with
    ``N`` channels and ``n = size`` adjacent channels in the sum: ``j`` runs from ``i - size // 2``
    to ``i + (size - 1) // 2`` clipped to ``[0, N - 1]`` (the paper's limits for odd ``size``; for
    even ``size`` one channel fewer above, as in PyTorch). TensorFlow's ``depth_radius`` r is
    ``size = 2 r + 1`` with ``bias = k``.

    ``alpha`` is NOT divided by ``size`` by default, as in the paper and TensorFlow's
    ``tf.nn.local_response_normalization``; ``divide_alpha_by_size=True`` uses ``alpha / size``
    (the mean of the squares), as PyTorch's ``LocalResponseNorm`` and Caffe's LRN do.
    ``x [..., N]`` -> the same shape.

    ``beta`` = 0.75 (or 0.5) is computed with square roots instead of ``pow``: the value and
    gradient of AlexNet's two LRN layers (B = 32, 64x64 input, 2-core CPU) took 18.5 ms with
    ``pow`` and 5.5 ms so (same values to float32 rounding, tests/test_conv.py).
    """
    if not (isinstance(size, int) and size > 0):
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ShapeError(f"local_response_norm: expected an input with a channel axis, got {x.shape}")
    scale = alpha / size if divide_alpha_by_size else alpha
    ones = (1,) * (x.ndim - 1)
    pads = ((0, 0),) * (x.ndim - 1) + ((size // 2, (size - 1) // 2),)
    # Sliding sum of squares over the channel axis, zero-padded at both ends.
    sum_sq = jax.lax.reduce_window(x * x, np.array(0, x.dtype), jax.lax.add, ones + (size,),
                                   ones + (1,), pads)
    base = k + scale * sum_sq
    if beta == 0.75:   # the paper's: base^-3/4 = r sqrt(r), r = base^-1/2 (no exp / log)
        r = jax.lax.rsqrt(base)
        return x * (r * jnp.sqrt(r))
    if beta == 0.5:
        return x * jax.lax.rsqrt(base)
    return x / base ** beta


def batch_norm(features: int, *, momentum: float = 0.9, eps: float = 1e-5, axis: int = -1,
               scale: bool = True, center: bool = True) -> StatefulModel:
    """Batch normalisation (Ioffe & Szegedy 2015, algorithms 1 and 2) of ``features`` channels.

    Training (``train=True``), with ``mu_B`` and the BIASED ``sigma_B^2`` over every axis of ``x``
    but ``axis`` (batch and, for images, spatial axes: ``m`` values per feature)::

        y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta
        running_mean <- momentum * running_mean + (1 - momentum) * mu_B
        running_var  <- momentum * running_var  + (1 - momentum) * sigma_B^2 * m / (m - 1)

    (the running variance takes the UNBIASED batch variance, as PyTorch and the paper's
    algorithm 2 do). Evaluation (``train=False``) normalises with the running statistics and returns
    the state unchanged. ``momentum`` is the weight of the old average (Keras' and Flax's
    convention); PyTorch's ``BatchNorm(momentum=...)`` is ``1 - momentum`` (0.1 there = 0.9 here).

    Params ``{"scale": gamma [features] (ones), "bias": beta [features] (zeros)}`` (without
    ``"scale"`` if ``scale=False``, without ``"bias"`` if ``center=False``); state
    ``{"mean": [features] (zeros), "var": [features] (ones)}``.
    ``apply(params, state, x, *, key=None, train=False) -> (y, new_state)``: ``x [B, features]`` or
    ``[B, H, W, features]`` (any rank >= 2 with ``x.shape[axis] == features``) -> the same shape.
    Pure: vmapping over seeds or models needs nothing special (no cross-device statistics).
    """
    where = "batch_norm"
    if not (isinstance(features, (int, np.integer)) and not isinstance(features, bool)
            and features > 0):
        raise ValueError(f"{where}: features must be a positive int, got {features!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"{where}: momentum must be in [0, 1) (the weight of the old running "
                         f"average; PyTorch's momentum is 1 - this), got {momentum!r}")
    if not eps > 0.0:
        raise ValueError(f"{where}: eps must be positive, got {eps!r}")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise ValueError(f"{where}: axis must be an int, got {axis!r}")

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        del key  # ones and zeros, as in the paper
        params = {}
        if scale:
            params["scale"] = jnp.ones((features,), dtype)
        if center:
            params["bias"] = jnp.zeros((features,), dtype)
        return params

    def init_state(dtype=jnp.float32) -> dict:
        return {"mean": jnp.zeros((features,), dtype), "var": jnp.ones((features,), dtype)}

    def apply(params: dict, state: dict, x: jax.Array, *, key=None, train: bool = False):
        del key
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ShapeError(f"{where}: expected an input with a batch axis and a feature axis "
                             f"(rank >= 2), got shape {x.shape}")
        if not -x.ndim <= axis < x.ndim or axis % x.ndim == 0:
            raise ShapeError(f"{where}: axis {axis} must be a non-batch axis of x, got shape "
                             f"{x.shape}")
        feature_axis = axis % x.ndim
        if x.shape[feature_axis] != features:
            raise ShapeError(f"{where}: expected {features} features on axis {axis}, got shape "
                             f"{x.shape}")
        reduce = tuple(a for a in range(x.ndim) if a != feature_axis)
        shape = tuple(features if a == feature_axis else 1 for a in range(x.ndim))
        if train:
            count = x.size // features
            if count < 2:
                raise ShapeError(f"{where}: training needs more than one value per feature for "
                                 f"the batch variance, got shape {x.shape}")
            mean = jnp.mean(x, axis=reduce)                                     # [F]
            var = jnp.mean(jnp.square(x - mean.reshape(shape)), axis=reduce)   # biased, [F]
            unbiased = var * (count / (count - 1))
            old_mean, old_var = state["mean"], state["var"]
            new_state = {
                "mean": momentum * old_mean + (1 - momentum) * mean.astype(old_mean.dtype),
                "var": momentum * old_var + (1 - momentum) * unbiased.astype(old_var.dtype)}
        else:
            mean, var = state["mean"].astype(x.dtype), state["var"].astype(x.dtype)
            new_state = state
        y = (x - mean.reshape(shape)) * jax.lax.rsqrt(var.reshape(shape) + eps)
        if scale:
            y = y * params["scale"].reshape(shape)
        if center:
            y = y + params["bias"].reshape(shape)
        return y, new_state

    return StatefulModel(init, init_state, apply)
