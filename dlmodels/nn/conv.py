"""Convolutions over images (NHWC) and sequences (NTC), their layers, and ``flatten``.

Weights are laid out with the spatial axes first, then input, then output channels ("HWIO"
``[kh, kw, c_in // groups, c_out]``, "WIO" ``[k, c_in // groups, c_out]``), so the initialisers'
fans are ``fan_in = kh * kw * c_in / groups`` and ``fan_out = kh * kw * c_out``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.model import Model
from dlmodels.nn import initializers
from dlmodels.validation import ShapeError

IntOrPair = int | Sequence[int]
Padding = str | int | Sequence[int] | Sequence[Sequence[int]]

_SPATIAL_NAMES = {1: "[N, T, C]", 2: "[N, H, W, C]"}
_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _positive_ints(value, n: int, name: str, where: str) -> tuple[int, ...]:
    """``value`` (an int or a length-``n`` sequence of ints) as an ``n``-tuple of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == n
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        values = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{where}: {name} must be an int or {n} ints, got {value!r}")
    if min(values) <= 0:
        raise ValueError(f"{where}: {name} must be positive, got {value!r}")
    return values


def normalize_padding(padding: Padding, n: int, where: str) -> str | tuple[tuple[int, int], ...]:
    """``"SAME"``/``"VALID"`` (any case), or explicit ``((lo, hi),) * n`` non-negative pads.

    Accepted: a string; an int ``p`` (``p`` on both sides of every spatial axis); ``n`` ints (one
    symmetric pad per axis; for ``n == 1`` a pair of ints is read as ``(lo, hi)``); ``n`` pairs.
    """
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{where}: padding must be 'SAME', 'VALID', an int or explicit "
                             f"(lo, hi) pairs, got {padding!r}")
        return padding.upper()

    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    pads = None
    if is_int(padding):
        pads = ((int(padding), int(padding)),) * n
    elif isinstance(padding, Sequence):
        items = list(padding)
        if n == 1 and len(items) == 2 and all(is_int(v) for v in items):
            pads = ((int(items[0]), int(items[1])),)
        elif len(items) == n and all(is_int(v) for v in items):
            pads = tuple((int(v), int(v)) for v in items)
        elif len(items) == n and all(isinstance(v, Sequence) and len(v) == 2
                                     and all(is_int(u) for u in v) for v in items):
            pads = tuple((int(lo), int(hi)) for lo, hi in items)
    if pads is None:
        raise ValueError(f"{where}: padding must be 'SAME', 'VALID', an int, {n} ints or {n} "
                         f"(lo, hi) pairs, got {padding!r}")
    if min(min(p) for p in pads) < 0:
        raise ValueError(f"{where}: padding must be non-negative, got {padding!r}")
    return pads


def _conv(x, w, n: int, stride, padding, dilation, groups, flip, where: str) -> jax.Array:
    """Cross-correlation over ``n`` spatial axes, channels last; see ``conv2d``."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    if x.ndim != n + 2:
        raise ShapeError(f"{where}: expected input x of rank {n + 2} {_SPATIAL_NAMES[n]}, "
                         f"got shape {x.shape}")
    if w.ndim != n + 2:
        kernel = "[kh, kw, C_in // groups, C_out]" if n == 2 else "[k, C_in // groups, C_out]"
        raise ShapeError(f"{where}: expected kernel w of rank {n + 2} {kernel}, got shape {w.shape}")
    if not (isinstance(groups, (int, np.integer)) and not isinstance(groups, bool) and groups > 0):
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[-1], w.shape[-1]
    if c_in % groups:
        raise ShapeError(f"{where}: groups={groups} does not divide the {c_in} input channels "
                         f"(x shape {x.shape})")
    if c_out % groups:
        raise ShapeError(f"{where}: groups={groups} does not divide the {c_out} output channels "
                         f"(w shape {w.shape})")
    if w.shape[-2] != c_in // groups:
        raise ShapeError(f"{where}: kernel expects {w.shape[-2]} input channels per group but x has "
                         f"{c_in} channels / groups={groups} = {c_in // groups}: x shape {x.shape}, "
                         f"w shape {w.shape} (expected w[..., {c_in // groups}, C_out])")
    strides = _positive_ints(stride, n, "stride", where)
    dilations = _positive_ints(dilation, n, "dilation", where)
    pads = normalize_padding(padding, n, where)
    if pads != "SAME":
        lohi = ((0, 0),) * n if pads == "VALID" else pads
        for axis, (size, k, d, (lo, hi)) in enumerate(zip(x.shape[1:-1], w.shape[:n], dilations, lohi)):
            if d * (k - 1) + 1 > size + lo + hi:
                raise ShapeError(f"{where}: kernel extent {d * (k - 1) + 1} (size {k}, dilation {d}) "
                                 f"exceeds the padded input size {size + lo + hi} on spatial axis "
                                 f"{axis}: x shape {x.shape}, w shape {w.shape}, padding {padding!r}")
    dtype = jnp.result_type(x, w)  # obeys the promotion mode (raises under strict promotion)
    x, w = x.astype(dtype), w.astype(dtype)
    if flip:
        w = jnp.flip(w, axis=tuple(range(n)))
    return jax.lax.conv_general_dilated(
        x, w, window_strides=strides, padding=pads, rhs_dilation=dilations,
        dimension_numbers=_DIMENSION_NUMBERS[n], feature_group_count=int(groups))


def conv2d(x: jax.Array, w: jax.Array, *, stride: IntOrPair = 1, padding: Padding = "VALID",
           dilation: IntOrPair = 1, groups: int = 1, flip: bool = False) -> jax.Array:
    """2-D convolution as cross-correlation, as in convolutional networks (LeCun et al. 1989, 1998).

    ``s[n, i, j, o] = sum_{m, l, c} x_pad[n, s_h i + d_h m, s_w j + d_w l, g(o) + c] w[m, l, c, o]``
    with ``c`` over the ``C_in / groups`` channels of output ``o``'s group ``g(o)``; with
    ``flip=True`` the kernel is flipped in both spatial axes, giving true convolution
    ``sum x[i - m, j - l] w[m, l]`` (up to the output offset).

    ``x [N, H, W, C_in]``, ``w [kh, kw, C_in // groups, C_out]`` (HWIO) ->
    ``[N, H_out, W_out, C_out]``, ``H_out = floor((H + pad_top + pad_bottom - d_h (kh - 1) - 1) / s_h)
    + 1`` (``"SAME"``: ``ceil(H / s_h)``, padding split as in TensorFlow, the extra pixel at the
    bottom/right). ``stride``, ``dilation``: an int or ``(h, w)``. ``padding``: ``"SAME"``,
    ``"VALID"``, an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``. ``groups``: feature
    groups (Krizhevsky et al. 2012 split AlexNet's layers into 2); ``groups == C_in`` is depthwise.
    """
    return _conv(x, w, 2, stride, padding, dilation, groups, flip, "conv2d")


def conv1d(x: jax.Array, w: jax.Array, *, stride: int = 1, padding: Padding = "VALID",
           dilation: int = 1, groups: int = 1, flip: bool = False) -> jax.Array:
    """1-D convolution (cross-correlation) over time, as in time-delay networks (Waibel et al. 1989).

    ``s[n, t, o] = sum_{m, c} x_pad[n, s t + d m, g(o) + c] w[m, c, o]``; ``flip=True`` reverses
    the kernel (true convolution). ``x [N, T, C_in]``, ``w [k, C_in // groups, C_out]`` ->
    ``[N, T_out, C_out]``, ``T_out = floor((T + lo + hi - d (k - 1) - 1) / s) + 1``. ``padding``:
    ``"SAME"``, ``"VALID"``, an int, ``(lo, hi)`` or ``((lo, hi),)``.
    """
    return _conv(x, w, 1, stride, padding, dilation, groups, flip, "conv1d")


def _conv_layer(kernel_size: tuple[int, ...], c_in: int, c_out: int, *, stride, padding, dilation,
                groups, w_init, b_init, use_bias, conv, where: str) -> Model:
    if min(kernel_size) <= 0 or c_in <= 0 or c_out <= 0:
        raise ValueError(f"{where}: sizes must be positive, got kernel {kernel_size}, "
                         f"{c_in} -> {c_out} channels")
    if not (isinstance(groups, int) and groups > 0) or c_in % groups or c_out % groups:
        raise ValueError(f"{where}: groups={groups!r} must be a positive int dividing both "
                         f"c_in={c_in} and c_out={c_out}")
    n = len(kernel_size)
    _positive_ints(stride, n, "stride", where)
    _positive_ints(dilation, n, "dilation", where)
    normalize_padding(padding, n, where)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    w_shape = (*kernel_size, c_in // groups, c_out)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_w, key_b = jax.random.split(key)
        params = {"w": w_init(key_w, w_shape, dtype)}
        if use_bias:
            params["b"] = b_init(key_b, (c_out,), dtype)
        return params

    def apply(params: dict, x: jax.Array) -> jax.Array:
        y = conv(x, params["w"], stride=stride, padding=padding, dilation=dilation, groups=groups)
        if not use_bias:
            return y
        return y + params["b"].reshape((1,) * (y.ndim - 1) + (c_out,))

    return Model(init, apply)


def conv2d_layer(kh: int, kw: int, c_in: int, c_out: int, *, stride: IntOrPair = 1,
                 padding: Padding = "VALID", dilation: IntOrPair = 1, groups: int = 1,
                 w_init="he_normal", b_init="zeros", use_bias: bool = True) -> Model:
    """Convolutional layer ``y = conv2d(x, w) + b`` (see ``conv2d``); no activation.

    Params: ``{"w": [kh, kw, c_in // groups, c_out], "b": [c_out]}`` (no ``"b"`` without bias);
    ``he_normal`` by default, Var(w) = 2 / fan_in, fan_in = kh kw c_in / groups (He et al. 2015).
    ``apply(params, x)``: ``x [N, H, W, c_in] -> [N, H_out, W_out, c_out]``.
    """
    return _conv_layer((kh, kw), c_in, c_out, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, w_init=w_init, b_init=b_init, use_bias=use_bias, conv=conv2d,
                       where="conv2d_layer")


def conv1d_layer(k: int, c_in: int, c_out: int, *, stride: int = 1, padding: Padding = "VALID",
                 dilation: int = 1, groups: int = 1, w_init="he_normal", b_init="zeros",
                 use_bias: bool = True) -> Model:
    """Temporal convolutional layer ``y = conv1d(x, w) + b`` (see ``conv1d``); no activation.

    Params: ``{"w": [k, c_in // groups, c_out], "b": [c_out]}`` (no ``"b"`` without bias);
    ``he_normal`` by default (fan_in = k c_in / groups).
    ``apply(params, x)``: ``x [N, T, c_in] -> [N, T_out, c_out]``.
    """
    return _conv_layer((k,), c_in, c_out, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, w_init=w_init, b_init=b_init, use_bias=use_bias, conv=conv1d,
                       where="conv1d_layer")


def flatten(x: jax.Array) -> jax.Array:
    """Flatten all but the batch axis, row-major (C order): ``x [N, ...] -> [N, prod(...)]``."""
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ShapeError(f"flatten: expected an input with a batch axis, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)
