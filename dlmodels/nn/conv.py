"""Convolutions over images (NHWC) and sequences (NTC), their layers, and ``flatten``.

Weights are laid out with the spatial axes first, then input, then output channels ("HWIO"
``[kh, kw, c_in // groups, c_out]``, "WIO" ``[k, c_in // groups, c_out]``), so the initialisers'
fans are ``fan_in = kh * kw * c_in / groups`` and ``fan_out = kh * kw * c_out``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import backend
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
    im2col = (n == 2 and c_in <= IM2COL_MAX_CHANNELS and groups == 1 and strides == (1, 1)
              and dilations == (1, 1) and backend.name() == "cpu")
    if _seed_rule_in_effect():
        return _seed_looped_conv(n, strides, pads, dilations, int(groups), im2col)(x, w)
    if im2col:
        return _im2col_conv2d(x, w, pads)
    return jax.lax.conv_general_dilated(
        x, w, window_strides=strides, padding=pads, rhs_dilation=dilations,
        dimension_numbers=_DIMENSION_NUMBERS[n], feature_group_count=int(groups))


#: On the CPU a stride-1 2-D convolution of at most this many input channels (an image's first
#: layer: MNIST's one channel) runs as im2col, ``kh * kw`` shifted slices and one matmul: XLA:CPU's
#: convolution of one input channel is slow. LeNet-5's training step at B = 128 (value and
#: gradient + SGD, quiet 2-core CPU): 14.2 ms with jax's convolution, 11.1 ms with conv1 as
#: channel-major im2col. conv3 (6 channels) as im2col was 1.02x [0.99-1.05] on top (60 rounds),
#: and as XLA's convolution with im2col gradients (a custom JVP) 1.00x: no gain, hence 1. Inside
#: ``seed_batching`` each member runs as im2col too (``_seed_looped_conv``).
IM2COL_MAX_CHANNELS = 1


def _im2col_conv2d(x: jax.Array, w: jax.Array, pads) -> jax.Array:
    """``conv_general_dilated(x, w)`` at stride 1 as ``cols @ w.reshape(kh kw C_in, C_out)``:
    ``cols[n, i, j, (m kw + l) C_in + c] = x_pad[n, i + m, j + l, c]`` ``[N, H_out, W_out,
    kh kw C_in]`` (for C_in = 1 its transpose ``[kh kw, N H_out W_out]``); the same sums as the
    convolution, in another order (float32 rounding)."""
    kh, kw, c_in, c_out = w.shape
    if pads == "SAME":
        pads = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), (1, 1), "SAME")
    elif pads == "VALID":
        pads = ((0, 0), (0, 0))
    x = jnp.pad(x, ((0, 0), *[tuple(p) for p in pads], (0, 0)))
    n, h_out, w_out = x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1
    if c_in == 1:
        # channel-major: each shifted image is one contiguous row of cols^T, and the matmul's long
        # axis is N H W rather than C_out (a LeNet-5 conv1's value and gradient: 4.0 ms against
        # 6.4 ms for the channels-last columns)
        cols_t = jnp.stack([x[:, m:m + h_out, l:l + w_out, 0]
                            for m in range(kh) for l in range(kw)]).reshape(kh * kw, -1)
        y_t = w.reshape(kh * kw, c_out).T @ cols_t                    # [C_out, N H_out W_out]
        return y_t.reshape(c_out, n, h_out, w_out).transpose(1, 2, 3, 0)
    cols = jnp.concatenate([x[:, m:m + h_out, l:l + w_out, :]
                            for m in range(kh) for l in range(kw)], axis=-1)
    return cols @ w.reshape(kh * kw * c_in, c_out)              # [N, H_out, W_out, C_out]


# -- vmap over seeds on the CPU ----------------------------------------------------------------
# XLA:CPU runs a convolution whose kernel is batched over K seeds (jax's batching rule: a grouped
# convolution, feature_group_count = K * groups) ~6x slower per member than one unbatched
# convolution. On the CPU the library's convolutions therefore carry their own batching rule: when
# the kernel is batched, the K members run as K unbatched convolutions (a Python loop unrolled over
# the static K, results stacked; a one-channel member as im2col), in the forward pass and in both
# gradients (a custom VJP whose backward pass is batched by the same rule). The members are chained
# (optimization_barrier), one convolution at a time. A vmapped LeNet-5 step of 8 seeds (B=128,
# quiet 2-core CPU) still took 85-88 ms against 74 ms for 8 single-seed steps (the rest of the step
# batched: pooling, dense layers, memory), so the trainer runs a convolutional step's seeds
# unrolled instead (dlmodels.train.step, members="auto": 70-73 ms); the rule serves a plain
# jax.vmap of the library's convolutions.

#: Above this many members the rule falls back to jax's grouped convolution (the unrolled loop's
#: compile time grows linearly with K; seeds and sweeps are far smaller).
MAX_UNROLLED_MEMBERS = 64

# None: the default (jax's own convolution); True: seed_batching; False: plain_batching
_SEED_RULE = contextvars.ContextVar("dlmodels_conv_seed_rule", default=None)


@contextlib.contextmanager
def _seed_rule(value: bool):
    token = _SEED_RULE.set(value)
    try:
        yield
    finally:
        _SEED_RULE.reset(token)


def seed_batching():
    """Within this context (at trace time), on the CPU, ``conv1d``/``conv2d``/``conv_transpose2d``
    carry the seed-loop batching rule: ``vmap`` over kernels (K seeds) runs K ordinary
    convolutions, not jax's grouped convolution, in the forward pass and in reverse-mode
    gradients of any order. The trainer's vmapped steps (``fit(..., seeds=...)``,
    ``make_vmapped_train_steps``) trace under it. Inside it the convolutions have no forward-mode
    autodiff (``jax.jvp``, ``jax.jacfwd``: a custom VJP); outside it they are jax's own."""
    return _seed_rule(True)


def plain_batching():
    """Within this context (at trace time) the convolutions are jax's own, also inside
    :func:`seed_batching` (forward mode works; ``vmap`` over kernels is a grouped convolution)."""
    return _seed_rule(False)


def _seed_rule_in_effect() -> bool:
    """Whether the seed-loop batching rule is used: on the CPU, inside ``seed_batching`` (and
    not inside a ``plain_batching`` within it)."""
    return backend.name() == "cpu" and bool(_SEED_RULE.get())


def stack_members(fn, axis_size: int, in_batched, args):
    """``fn`` applied to member k of every batched arg (a pytree, sliced on its leading axis; the
    unbatched args shared) for k = 0 .. K-1, member k starting once member k - 1 is done, outputs
    stacked. Also the trainer's unrolled seeds (``dlmodels.train.step``)."""
    outs = []
    for k in range(axis_size):
        member = [jax.tree.map(lambda x: x[k], a) if b else a for a, b in zip(args, in_batched)]
        if outs:  # member k starts after member k - 1: one convolution at a time has both cores
            member, _ = jax.lax.optimization_barrier((member, outs[-1]))
        outs.append(fn(*member))
    return jax.tree.map(lambda *ys: jnp.stack(ys), *outs)


def _member_loop(fn, kernel_arg: int, fold=None):
    """``fn`` (positional array args) with a batching rule: when arg ``kernel_arg`` (the kernel, or
    the weights of an op) is batched, the members run one by one (``stack_members``); otherwise
    ``fold(looped, axis_size, in_batched, *args)`` if given (the batch axis folded into N), else
    ``jax.vmap`` of ``fn`` (jax's own rule). Outputs are batched."""
    looped = jax.custom_batching.custom_vmap(fn)

    @looped.def_vmap
    def rule(axis_size, in_batched, *args):
        if in_batched[kernel_arg] and axis_size <= MAX_UNROLLED_MEMBERS:
            out = stack_members(looped, axis_size, in_batched, args)
        elif fold is not None and not in_batched[kernel_arg]:
            out = fold(looped, axis_size, in_batched, *args)
        else:
            out = jax.vmap(fn, in_axes=[0 if b else None for b in in_batched])(*args)
        return out, jax.tree.map(lambda _: True, out)

    return looped


def _fold_into_batch(op, axis_size, in_batched, x, w):
    """``op`` of ``x [K, N, ...]`` (only x batched) as one call on ``[K * N, ...]``."""
    del axis_size, in_batched
    y = op(x.reshape(-1, *x.shape[2:]), w)
    return y.reshape(*x.shape[:2], *y.shape[1:])


def _with_looped_vjp(fn, fold=None):
    """``fn(*arrays)`` (arg 1 the kernel) as a custom-VJP function whose forward pass is batched by
    ``_member_loop`` and whose backward pass, ``jax.vjp`` of the unbatched ``fn``, is again such a
    function (built when differentiated), so ``vmap(grad)`` and ``grad(grad)`` of any order keep
    the rule. Reverse mode only: a custom VJP has no forward mode (see ``plain_batching``)."""
    forward = _member_loop(fn, 1, fold)

    @jax.custom_vjp
    def f(*args):
        return forward(*args)

    def f_fwd(*args):
        return f(*args), args  # f, not forward: differentiable again when grad(grad) runs f_fwd

    def f_bwd(args, ct):
        n, tree = len(args), jax.tree.structure(ct)

        def pullback(*args_and_cts):
            return jax.vjp(fn, *args_and_cts[:n])[1](jax.tree.unflatten(tree, args_and_cts[n:]))

        return _with_looped_vjp(pullback)(*args, *jax.tree.leaves(ct))

    f.defvjp(f_fwd, f_bwd)
    return f


@functools.lru_cache(maxsize=None)
def _seed_looped_conv(n, strides, pads, dilations, groups, im2col=False):
    """``conv_general_dilated(x, w)`` for these static settings with the CPU batching rule; each
    member runs as ``_im2col_conv2d`` where ``im2col`` (as it would outside ``seed_batching``)."""
    if im2col:
        return _with_looped_vjp(functools.partial(_im2col_conv2d, pads=pads), _fold_into_batch)
    return _with_looped_vjp(functools.partial(
        jax.lax.conv_general_dilated, window_strides=strides, padding=pads,
        rhs_dilation=dilations, dimension_numbers=_DIMENSION_NUMBERS[n],
        feature_group_count=groups), _fold_into_batch)


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

    Traced inside ``seed_batching()`` (the trainer's vmapped seeds), ``jax.vmap`` with the kernel
    batched runs the K members on the CPU as K ordinary convolutions, not jax's grouped
    convolution; there the gradients are reverse mode only (any order).
    """
    return _conv(x, w, 2, stride, padding, dilation, groups, flip, "conv2d")


def conv1d(x: jax.Array, w: jax.Array, *, stride: int = 1, padding: Padding = "VALID",
           dilation: int = 1, groups: int = 1, flip: bool = False) -> jax.Array:
    """1-D convolution (cross-correlation) over time, as in time-delay networks (Waibel et al. 1989).

    ``s[n, t, o] = sum_{m, c} x_pad[n, s t + d m, g(o) + c] w[m, c, o]``; ``flip=True`` reverses
    the kernel (true convolution). ``x [N, T, C_in]``, ``w [k, C_in // groups, C_out]`` ->
    ``[N, T_out, C_out]``, ``T_out = floor((T + lo + hi - d (k - 1) - 1) / s) + 1``. ``padding``:
    ``"SAME"``, ``"VALID"``, an int, ``(lo, hi)`` or ``((lo, hi),)``. Batching and gradients on
    the CPU as in ``conv2d``.
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


def _transpose_crops(padding, output_padding, stride, dilation, kernel, where: str):
    """Per spatial axis ``(crop_lo, crop_hi)`` of the full transposed-convolution output (padding
    0), ``crop_hi`` already reduced by ``output_padding`` (negative crops append zeros)."""
    pads = normalize_padding(padding, 2, where)
    extra = _nonnegative_pair(output_padding, "output_padding", where)
    for op, s, d in zip(extra, stride, dilation):
        if op >= max(s, d):
            raise ValueError(f"{where}: output_padding must be smaller than the stride or the "
                             f"dilation (as in PyTorch), got output_padding={output_padding!r}, "
                             f"stride={tuple(stride)}, dilation={tuple(dilation)}")
    if pads == "SAME":
        if any(extra):
            raise ValueError(f"{where}: padding='SAME' fixes the output size at H * stride; "
                             f"output_padding must be 0, got {output_padding!r}")
        crops = []
        for k, s, d in zip(kernel, stride, dilation):
            total = d * (k - 1) + 1 - s          # full size minus H * s
            lo = max(total, 0) // 2              # conv2d's SAME split: the extra pixel at the end
            crops.append((lo, total - lo))
        return tuple(crops)
    if pads == "VALID":
        pads = ((0, 0), (0, 0))
    return tuple((lo, hi - op) for (lo, hi), op in zip(pads, extra))


def _nonnegative_pair(value, name: str, where: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * 2
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        values = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{where}: {name} must be an int or 2 ints, got {value!r}")
    if min(values) < 0:
        raise ValueError(f"{where}: {name} must be non-negative, got {value!r}")
    return values


def _conv_transpose_lhs_dilated(x, w, stride, dilation, crops):
    """The transposed convolution as ONE conv_general_dilated over the stride-dilated input
    (``lhs_dilation``) with the flipped kernel; ``jax.lax.conv_transpose`` is the same program."""
    kernel = w.shape[:2]
    pads = tuple((d * (k - 1) - lo, d * (k - 1) - hi)
                 for k, d, (lo, hi) in zip(kernel, dilation, crops))
    return jax.lax.conv_general_dilated(
        x, jnp.flip(w, (0, 1)), window_strides=(1, 1), padding=pads, lhs_dilation=stride,
        rhs_dilation=dilation, dimension_numbers=_DIMENSION_NUMBERS[2])


@functools.lru_cache(maxsize=None)
def _conv_transpose_ops(stride, dilation, crops, cpu: bool):
    """``(forward(x, w), input_grad(x, w, dy))`` of the transposed convolution for these static
    settings; on the CPU both carry the seed-loop batching rule (``_member_loop``)."""
    def forward(x, w):
        return _conv_transpose_lhs_dilated(x, w, stride, dilation, crops)

    def input_grad(x, w, dy):
        return jax.vjp(lambda x: forward(x, w), x)[1](dy)[0]

    if not cpu:
        return forward, input_grad
    return _member_loop(forward, 1, _fold_into_batch), _with_looped_vjp(input_grad)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_transpose_2d(x, w, stride, dilation, crops, looped):
    # looped (_seed_rule_in_effect(), decided by the caller) is a static argument so that jax's
    # cache of this function's traces keeps the two paths apart
    forward, _ = _conv_transpose_ops(stride, dilation, crops, looped)
    return forward(x, w)


def _conv_transpose_2d_fwd(x, w, stride, dilation, crops, looped):
    return _conv_transpose_2d(x, w, stride, dilation, crops, looped), (x, w)


def _conv_transpose_2d_bwd(stride, dilation, crops, looped, residuals, dy):
    # d/dx: XLA's own transpose of the lhs-dilated convolution (a strided conv2d, fast). d/dw:
    # XLA:CPU's kernel gradient of an lhs-dilated convolution is the slow part of a DCGAN layer's
    # training step, so it is computed here as kh * kw matmuls, dw[m, l] = sum_{n,i,j}
    # x[n,i,j]^T dy_full[n, s i + d m, s j + d l], with dy_full the gradient on the full
    # (uncropped) output. B=64, 7x7x128 -> 14x14x64, s=2, 2-core CPU at load ~9: forward + dx + dw
    # 869 -> 75 ms (k=4), 1460 -> 152 ms (k=5). The forward pass (conv_general_dilated with
    # lhs_dilation, 12-48 ms) measured as lax.conv_transpose (18-20 ms), which builds the same op.
    # On the CPU d/dx is batched over seeds by the seed loop (_conv_transpose_ops); the matmuls
    # of d/dw batch into batched matmuls by themselves.
    x, w = residuals
    _, input_grad = _conv_transpose_ops(stride, dilation, crops, looped)
    dx = input_grad(x, w, dy)
    n, h, wd, _ = x.shape
    zero = jnp.zeros((), dy.dtype)
    dy_full = jax.lax.pad(dy, zero, ((0, 0, 0), (crops[0][0], crops[0][1], 0),
                                     (crops[1][0], crops[1][1], 0), (0, 0, 0)))
    (sh, sw), (dh, dw_) = stride, dilation
    c_out = dy.shape[-1]
    taps = [[jax.lax.slice(dy_full, (0, dh * m, dw_ * l, 0),
                           (n, dh * m + (h - 1) * sh + 1, dw_ * l + (wd - 1) * sw + 1, c_out),
                           (1, sh, sw, 1))
             for l in range(w.shape[1])] for m in range(w.shape[0])]
    dw = jnp.stack([jnp.stack([jnp.einsum("nijc,nijo->co", x, t) for t in row]) for row in taps])
    return dx, dw.astype(w.dtype)


_conv_transpose_2d.defvjp(_conv_transpose_2d_fwd, _conv_transpose_2d_bwd)


def conv_transpose2d(x: jax.Array, w: jax.Array, *, stride: IntOrPair = 1, padding: Padding = 0,
                     output_padding: IntOrPair = 0, dilation: IntOrPair = 1) -> jax.Array:
    """Transposed ("fractionally strided") convolution: the gradient of ``conv2d`` w.r.t. its input
    (Dumoulin & Visin 2016, section 4), the up-sampling layer of DCGAN (Radford et al. 2016).

    Each input pixel scatters a weighted copy of the kernel into the output:
    ``y_full[n, s_h i + d_h m, s_w j + d_w l, o] += x[n, i, j, c] w[m, l, c, o]``, and
    ``y = y_full`` cropped by ``padding`` (top/left and bottom/right), then ``output_padding`` more
    rows/columns at the bottom/right (given back from the crop; zeros beyond ``y_full``). Written as
    a cross-correlation over the input dilated by ``s`` and padded by ``d (k - 1) - padding``, the
    kernel is FLIPPED in both spatial axes. ``conv_transpose2d(x, w)`` equals the vector-Jacobian
    product of ``conv2d(z, w.swapaxes(2, 3), stride, padding, dilation)`` with ``x``.

    ``x [N, H, W, C_in]``, ``w [kh, kw, C_in, C_out]`` (HWIO as ``conv2d``; PyTorch's
    ``ConvTranspose2d.weight [C_in, C_out, kh, kw]`` is ``w.transpose(2, 3, 0, 1)``, so
    ``w = torch_weight.permute(2, 3, 0, 1)``) -> ``[N, H_out, W_out, C_out]``,
    ``H_out = (H - 1) s_h - pad_top - pad_bottom + d_h (kh - 1) + output_padding_h + 1`` (PyTorch's
    size with ``pad_top = pad_bottom = padding``). ``stride``, ``dilation``, ``output_padding``: an
    int or ``(h, w)``; ``output_padding < max(stride, dilation)`` as in PyTorch. ``padding``: an
    int, ``(ph, pw)``, ``((top, bottom), (left, right))``, ``"VALID"`` (= 0; TensorFlow's VALID
    differs when ``k < s``) or ``"SAME"``: ``H_out = H * s``, the exact transpose of ``conv2d(...,
    padding="SAME")`` (TensorFlow's ``conv2d_transpose`` SAME; the crop's extra pixel at the
    bottom/right). For k=4, s=2, SAME is PyTorch's ``padding=1``; for k=5, s=2 PyTorch ports write
    ``padding=2, output_padding=1``, which gives the same size with the output shifted by one
    pixel (SAME crops 1 at the top and 2 at the bottom, that one 2 and 1).

    Gradients: reverse mode only (a custom VJP; see ``_conv_transpose_2d_bwd`` for why). Under
    ``jax.vmap`` with the kernel batched, the CPU runs the members one by one (as ``conv2d``).
    """
    where = "conv_transpose2d"
    x, w = jnp.asarray(x), jnp.asarray(w)
    if x.ndim != 4:
        raise ShapeError(f"{where}: expected input x of rank 4 [N, H, W, C_in], got shape "
                         f"{x.shape}")
    if w.ndim != 4:
        raise ShapeError(f"{where}: expected kernel w of rank 4 [kh, kw, C_in, C_out], got shape "
                         f"{w.shape}")
    if w.shape[2] != x.shape[-1]:
        raise ShapeError(f"{where}: kernel expects {w.shape[2]} input channels but x has "
                         f"{x.shape[-1]}: x shape {x.shape}, w shape {w.shape} (expected "
                         f"w[kh, kw, {x.shape[-1]}, C_out])")
    strides = _positive_ints(stride, 2, "stride", where)
    dilations = _positive_ints(dilation, 2, "dilation", where)
    crops = _transpose_crops(padding, output_padding, strides, dilations, w.shape[:2], where)
    for axis, (size, k, s, d, (lo, hi)) in enumerate(zip(x.shape[1:3], w.shape[:2], strides,
                                                        dilations, crops)):
        out = (size - 1) * s + d * (k - 1) + 1 - lo - hi
        if size < 1 or out < 1:
            raise ShapeError(f"{where}: output size {out} on spatial axis {axis} is not positive: "
                             f"x shape {x.shape}, w shape {w.shape}, padding {padding!r}")
    dtype = jnp.result_type(x, w)  # obeys the promotion mode (raises under strict promotion)
    return _conv_transpose_2d(x.astype(dtype), w.astype(dtype), strides, dilations, crops,
                              _seed_rule_in_effect())


def conv_transpose2d_layer(kh: int, kw: int, c_in: int, c_out: int, *, stride: IntOrPair = 1,
                           padding: Padding = 0, output_padding: IntOrPair = 0,
                           dilation: IntOrPair = 1, use_bias: bool = True, w_init="he_normal",
                           b_init="zeros") -> Model:
    """Transposed convolutional layer ``y = conv_transpose2d(x, w) + b`` (see
    ``conv_transpose2d``); no activation.

    Params: ``{"w": [kh, kw, c_in, c_out], "b": [c_out]}`` (no ``"b"`` without bias). The
    initialisers read the HWIO kernel as ``conv2d``'s: fan_in = kh kw c_in, fan_out = kh kw c_out
    (``he_normal``: Var(w) = 2 / (kh kw c_in)); PyTorch's default reads its ``[c_in, c_out, kh,
    kw]`` weight as fan_in = c_out kh kw. DCGAN draws every weight from N(0, 0.02^2):
    ``w_init=initializers.normal(0.02)``.
    ``apply(params, x)``: ``x [N, H, W, c_in] -> [N, H_out, W_out, c_out]``.
    """
    where = "conv_transpose2d_layer"
    if min(kh, kw) <= 0 or c_in <= 0 or c_out <= 0:
        raise ValueError(f"{where}: sizes must be positive, got kernel {(kh, kw)}, "
                         f"{c_in} -> {c_out} channels")
    strides = _positive_ints(stride, 2, "stride", where)
    dilations = _positive_ints(dilation, 2, "dilation", where)
    _transpose_crops(padding, output_padding, strides, dilations, (kh, kw), where)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        key_w, key_b = jax.random.split(key)
        params = {"w": w_init(key_w, (kh, kw, c_in, c_out), dtype)}
        if use_bias:
            params["b"] = b_init(key_b, (c_out,), dtype)
        return params

    def apply(params: dict, x: jax.Array) -> jax.Array:
        y = conv_transpose2d(x, params["w"], stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation)
        return y + params["b"].reshape(1, 1, 1, c_out) if use_bias else y

    return Model(init, apply)
