"""Local response normalisation across channels (Krizhevsky, Sutskever & Hinton 2012)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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
    return x / (k + scale * sum_sq) ** beta
