"""Max and average pooling over the spatial axes of channels-last inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.nn.conv import IntOrPair, Padding, _positive_ints, normalize_padding
from dlmodels.validation import ShapeError


def _pool_args(x, window, stride, padding, where: str):
    x = jnp.asarray(x)
    if x.ndim not in (3, 4):
        raise ShapeError(f"{where}: expected input [N, H, W, C] (or [N, T, C]), got shape {x.shape}")
    n = x.ndim - 2
    windows = _positive_ints(window, n, "window", where)
    strides = windows if stride is None else _positive_ints(stride, n, "stride", where)
    pads = normalize_padding(padding, n, where)
    if pads == "SAME":
        pads = tuple(jax.lax.padtype_to_pads(x.shape[1:-1], windows, strides, "SAME"))
    elif pads == "VALID":
        pads = ((0, 0),) * n
    for axis, (size, k, (lo, hi)) in enumerate(zip(x.shape[1:-1], windows, pads)):
        if k > size + lo + hi:
            raise ShapeError(f"{where}: window {k} exceeds the padded input size {size + lo + hi} "
                             f"on spatial axis {axis}: x shape {x.shape}, padding {padding!r}")
        if max(lo, hi) >= k:  # a window of padding alone would give -inf / 0 / 0
            raise ValueError(f"{where}: padding {(lo, hi)} must be smaller than the window {k} "
                             f"on spatial axis {axis}")
    full = lambda t, fill: (fill, *t, fill)  # noqa: E731  (batch and channel axes untouched)
    return x, full(windows, 1), full(strides, 1), full(pads, (0, 0))


def max_pool(x: jax.Array, window: IntOrPair, stride: IntOrPair | None = None,
             padding: Padding = "VALID") -> jax.Array:
    """Max pooling ``y[n, i, j, c] = max_{m < kh, l < kw} x_pad[n, s_h i + m, s_w j + l, c]``.

    ``x [N, H, W, C]`` (or ``[N, T, C]``) -> ``[N, H_out, W_out, C]``, ``H_out = floor((H + pads -
    kh) / s_h) + 1``; ``window``, ``stride``: an int or a pair, ``stride`` defaults to ``window``
    (non-overlapping); overlapping pooling (AlexNet: 3x3 windows, stride 2; Krizhevsky et al. 2012,
    section 3.4) is ``stride < window``. Padding (as in ``conv2d``) is with ``-inf``, so a padded
    position never wins. Non-overlapping unpadded windows (stride = window, 'VALID') take a faster
    path with the same values (``_tiled_max``).
    """
    x, windows, strides, pads = _pool_args(x, window, stride, padding, "max_pool")
    if windows == strides and all(p == (0, 0) for p in pads) and jnp.issubdtype(x.dtype, jnp.floating):
        return _tiled_max(x, windows[1:-1])             # the spatial windows
    # numpy (not jax) init values: under a trace, autodiff recognises reduce_window with a
    # constant -inf / 0 init as a max / sum pool and differentiates it
    if jnp.issubdtype(x.dtype, jnp.floating):
        lowest = np.array(-np.inf, x.dtype)
    else:
        lowest = np.array(jnp.iinfo(x.dtype).min, x.dtype)
    return jax.lax.reduce_window(x, lowest, jax.lax.max, windows, strides, pads)


def _tiled_max(x: jax.Array, windows: tuple[int, ...]) -> jax.Array:
    """Non-overlapping, unpadded max pooling as a max over the window axes of a reshape
    ``[N, H/kh, kh, W/kw, kw, C]`` (a trailing remainder that fills no window is dropped, as in
    ``reduce_window``). Same values; its gradient is an elementwise mask of the maxima, where
    ``reduce_window``'s goes through a select-and-scatter that XLA:CPU runs as an argmax window
    reduction and a scatter (about 20 % of a LeNet-5 training step, ``benchmarks/conv.py``). At
    exactly tied maxima the gradient is shared equally among them instead of going to one."""
    n, c = x.shape[0], x.shape[-1]
    outs = [size // k for size, k in zip(x.shape[1:-1], windows)]
    x = x[(slice(None), *(slice(0, o * k) for o, k in zip(outs, windows)), slice(None))]
    split = [d for o, k in zip(outs, windows) for d in (o, k)]
    return _window_max(x.reshape(n, *split, c))


#: Windows of up to this many elements count their tied maxima by unrolled adds (below).
_UNROLLED_TIE_COUNT = 16


@jax.custom_jvp
def _window_max(xr: jax.Array) -> jax.Array:
    """``max`` over axes 2, 4, ... of ``xr [N, o_1, k_1, o_2, k_2, ..., C]``."""
    return jnp.max(xr, axis=_window_axes(xr))


def _window_axes(xr) -> tuple[int, ...]:
    return tuple(range(2, xr.ndim - 1, 2))


@_window_max.defjvp
def _window_max_jvp(primals, tangents):
    """jax's own JVP of ``max`` (the tangent averaged over the tied maxima:
    ``dy = sum_w [x_w = y] dx_w / #{w : x_w = y}``), with the tie count written as unrolled adds
    of the window's slices instead of a ``reduce_sum``: XLA:CPU ran that reduction as a separate
    kernel of ~1 ms on LeNet-5's [128, 28, 28, 6] maps, and with it the pooling's value and
    gradient took 2.35 ms, against 1.37 ms so (same values and gradients, tests/test_conv.py)."""
    (xr,), (dxr,) = primals, tangents
    axes = _window_axes(xr)
    y = jnp.max(xr, axis=axes)
    y_b = jnp.expand_dims(y, axes)
    eq = (xr == y_b).astype(xr.dtype)
    sizes = [xr.shape[a] for a in axes]
    if int(np.prod(sizes)) <= _UNROLLED_TIE_COUNT:
        count = None
        for index in np.ndindex(*sizes):
            at = [slice(None)] * xr.ndim
            for a, i in zip(axes, index):
                at[a] = i
            term = eq[tuple(at)]
            count = term if count is None else count + term
    else:
        count = jnp.sum(eq, axis=axes)
    return y, jnp.sum(dxr * (eq / jnp.expand_dims(count, axes)), axis=axes)


def avg_pool(x: jax.Array, window: IntOrPair, stride: IntOrPair | None = None,
             padding: Padding = "VALID", *, count_include_pad: bool = False) -> jax.Array:
    """Average pooling ``y[n, i, j, c] = (1 / D_ij) sum_{m < kh, l < kw} x_pad[n, s_h i + m, s_w j + l, c]``.

    The divisor: with ``count_include_pad=False`` (default; TensorFlow's "SAME" average pooling)
    ``D_ij`` is the number of real (unpadded) inputs under window ``(i, j)``, so border outputs are
    means of the inputs they see; with ``count_include_pad=True`` (PyTorch's default) ``D_ij = kh
    kw`` always, the padding counting as zeros. Without padding both are ``kh kw``.
    ``x [N, H, W, C]`` (or ``[N, T, C]``) -> ``[N, H_out, W_out, C]``; ``window``, ``stride``,
    ``padding`` as in ``max_pool``.
    """
    x, windows, strides, pads = _pool_args(x, window, stride, padding, "avg_pool")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"avg_pool: expected a floating-point input, got {x.dtype}")
    zero = np.array(0, x.dtype)
    total = jax.lax.reduce_window(x, zero, jax.lax.add, windows, strides, pads)
    if count_include_pad or all(p == (0, 0) for p in pads):
        return total / float(np.prod(windows))
    # Count of real inputs per window: a constant [1, H_out, W_out, 1], folded under jit.
    ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
    count = jax.lax.reduce_window(ones, zero, jax.lax.add, windows, strides, pads)
    return total / count
