"""Convolutions, pooling and local response normalisation against scipy, numpy loops and PyTorch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax.test_util import check_grads

from dlmodels.nn import (avg_pool, conv1d, conv1d_layer, conv2d, conv2d_layer, flatten,
                         local_response_norm, max_pool)
from dlmodels.nn.conv import seed_batching

pytestmark = pytest.mark.usefixtures("strict_dtypes")

TOL = dict(rtol=1e-5, atol=1e-5)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _same_pads(size, k, stride, dilation=1):
    """TensorFlow's SAME rule: output ceil(size / stride), the odd pixel of padding after."""
    extent = dilation * (k - 1) + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _explicit_pads(padding, x_shape, k_shape, strides, dilations):
    if padding == "SAME":
        return [_same_pads(n, k, s, d) for n, k, s, d in zip(x_shape, k_shape, strides, dilations)]
    if padding == "VALID":
        return [(0, 0)] * len(x_shape)
    if isinstance(padding, int):
        return [(padding, padding)] * len(x_shape)
    return [tuple(p) for p in padding]


def _dilate(w, dilations):
    """Insert d - 1 zeros between kernel taps along the leading spatial axes."""
    for axis, d in enumerate(dilations):
        if d > 1:
            shape = list(w.shape)
            shape[axis] = d * (w.shape[axis] - 1) + 1
            out = np.zeros(shape, w.dtype)
            index = [slice(None)] * w.ndim
            index[axis] = slice(None, None, d)
            out[tuple(index)] = w
            w = out
    return w


def scipy_conv2d(x, w, stride=1, padding="VALID", dilation=1, groups=1, flip=False):
    """Per (image, output channel): sum over the group's input channels of scipy's 2-D
    correlate (or convolve, for flip) in "valid" mode, on the padded image, subsampled."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pads = _explicit_pads(padding, x.shape[1:3], w.shape[:2], (sh, sw), (dh, dw))
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    wd = _dilate(w, (dh, dw))
    op = scipy.signal.convolve2d if flip else scipy.signal.correlate2d
    cin_g, cout = w.shape[2], w.shape[3]
    cout_g = cout // groups
    outs = np.stack([np.stack([
        sum(op(xp[n, :, :, (o // cout_g) * cin_g + c], wd[:, :, c, o], mode="valid")
            for c in range(cin_g))
        for o in range(cout)], axis=-1) for n in range(x.shape[0])])
    return outs[:, ::sh, ::sw]


CONV2D_CASES = [
    # x shape, w shape, kwargs
    ((2, 7, 9, 3), (3, 2, 3, 4), {}),
    ((1, 6, 5, 1), (1, 1, 1, 2), {}),
    ((2, 9, 10, 3), (3, 3, 3, 2), {"stride": (2, 3)}),
    ((2, 8, 8, 2), (3, 3, 2, 3), {"padding": "SAME"}),
    ((1, 9, 8, 2), (4, 4, 2, 3), {"padding": "same", "stride": 2}),  # asymmetric SAME pads
    ((2, 6, 7, 2), (3, 2, 2, 2), {"padding": ((1, 2), (0, 3))}),
    ((1, 5, 5, 2), (3, 3, 2, 2), {"padding": 2, "stride": 2}),
    ((2, 11, 10, 2), (3, 2, 2, 3), {"dilation": (2, 3)}),
    ((1, 10, 10, 2), (3, 3, 2, 2), {"dilation": 2, "padding": "SAME"}),
    ((2, 7, 7, 4), (3, 3, 2, 6), {"groups": 2}),
    ((1, 7, 6, 3), (2, 3, 1, 6), {"groups": 3, "padding": 1}),  # depthwise, multiplier 2
    ((2, 7, 8, 3), (3, 2, 3, 2), {"flip": True}),
    ((1, 9, 9, 4), (3, 3, 2, 4), {"flip": True, "stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV2D_CASES)
def test_conv2d_matches_scipy(x_shape, w_shape, kwargs):
    rng = _rng(sum(x_shape) + sum(w_shape))
    x = rng.normal(size=x_shape).astype(np.float32)
    w = rng.normal(size=w_shape).astype(np.float32)
    got = np.asarray(conv2d(x, w, **kwargs))
    ref_kwargs = dict(kwargs)
    if isinstance(ref_kwargs.get("padding"), str):
        ref_kwargs["padding"] = ref_kwargs["padding"].upper()
    want = scipy_conv2d(x, w, **ref_kwargs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)


def test_conv2d_same_keeps_size_and_flip_is_convolution():
    rng = _rng(1)
    x = rng.normal(size=(1, 9, 7, 1)).astype(np.float32)
    w = rng.normal(size=(3, 3, 1, 1)).astype(np.float32)
    same = np.asarray(conv2d(x, w, padding="SAME", flip=True))
    np.testing.assert_allclose(same[0, :, :, 0], scipy.signal.convolve2d(x[0, :, :, 0], w[:, :, 0, 0],
                                                                          mode="same"), **TOL)
    assert conv2d(x, w, padding="SAME", stride=2).shape == (1, 5, 4, 1)


@pytest.mark.parametrize("kwargs", [
    {}, {"stride": 2, "padding": (1, 2)}, {"dilation": 3}, {"groups": 2, "padding": "SAME"},
    {"stride": 3, "padding": ((2, 0),), "dilation": 2, "groups": 2},
])
def test_conv1d_matches_numpy_correlate(kwargs):
    rng = _rng(2)
    groups = kwargs.get("groups", 1)
    x = rng.normal(size=(2, 17, 4)).astype(np.float32)
    w = rng.normal(size=(3, 4 // groups, 6)).astype(np.float32)
    s, d = kwargs.get("stride", 1), kwargs.get("dilation", 1)
    padding = kwargs.get("padding", "VALID")
    if padding == "SAME":
        pads = _same_pads(17, 3, s, d)
    elif padding == "VALID":
        pads = (0, 0)
    else:
        pads = tuple(padding[0]) if isinstance(padding[0], tuple) else tuple(padding)
    xp = np.pad(x.astype(np.float64), [(0, 0), pads, (0, 0)])
    wd = _dilate(w.astype(np.float64), (d,))
    cin_g, cout_g = 4 // groups, 6 // groups
    want = np.stack([np.stack([
        sum(np.correlate(xp[n, :, (o // cout_g) * cin_g + c], wd[:, c, o], mode="valid")
            for c in range(cin_g)) for o in range(6)], axis=-1) for n in range(2)])[:, ::s]
    got = np.asarray(conv1d(x, w, **kwargs))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)
    flipped = np.asarray(conv1d(x[:1, :, :1], w[:, :1, :1], flip=True))
    np.testing.assert_allclose(flipped[0, :, 0], np.convolve(x[0, :, 0], w[:, 0, 0], mode="valid"),
                               **TOL)


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch", reason='pip install "dlmodels[bench]"')
    rng = _rng(3)
    x = rng.normal(size=(2, 11, 10, 4)).astype(np.float32)
    w = rng.normal(size=(3, 3, 2, 6)).astype(np.float32)
    got = np.asarray(conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2))
    want = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),   # NCHW
                                      torch.from_numpy(w).permute(3, 2, 0, 1),   # OIHW
                                      stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), **TOL)


@pytest.mark.parametrize("dilation", [1, 2])
def test_conv2d_translation_equivariance(dilation):
    rng = _rng(4)
    h, w_, dy, dx = 16, 15, 2, 3
    x = rng.normal(size=(1, h, w_, 2)).astype(np.float32)
    w = rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
    shifted = np.roll(x, (dy, dx), axis=(1, 2))
    y = np.asarray(conv2d(x, w, padding="SAME", dilation=dilation))
    y_shifted = np.asarray(conv2d(shifted, w, padding="SAME", dilation=dilation))
    r = dilation  # kernel half-extent: the interior sees neither padding nor wrapped pixels
    np.testing.assert_allclose(y_shifted[:, r + dy:h - r, r + dx:w_ - r], y[:, r:h - r - dy, r:w_ - r - dx],
                               **TOL)


# Pooling ----------------------------------------------------------------------------------------

def numpy_pool(x, window, stride=None, padding="VALID", op="max", count_include_pad=False):
    """Loop over output positions; padded cells are NaN and left out of max / mean."""
    kh, kw = _pair(window)
    sh, sw = _pair(stride) if stride is not None else (kh, kw)
    pads = _explicit_pads(padding, x.shape[1:3], (kh, kw), (sh, sw), (1, 1))
    xp = np.pad(x.astype(np.float64), [(0, 0), pads[0], pads[1], (0, 0)], constant_values=np.nan)
    out_h, out_w = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            if op == "max":
                out[:, i, j] = np.nanmax(patch, axis=(1, 2))
            elif count_include_pad:
                out[:, i, j] = np.nansum(patch, axis=(1, 2)) / (kh * kw)
            else:
                out[:, i, j] = np.nanmean(patch, axis=(1, 2))
    return out


POOL_CASES = [
    ((2, 13, 13, 3), 3, 2, "VALID"),            # AlexNet's overlapping pooling
    ((2, 8, 9, 2), 2, None, "VALID"),           # non-overlapping, stride = window
    ((1, 8, 8, 2), 3, 2, "SAME"),               # pads (0, 1)
    ((1, 7, 10, 2), (2, 3), (1, 2), "SAME"),
    ((2, 9, 8, 1), 3, 2, 1),
    ((1, 7, 7, 2), (3, 2), (2, 1), ((1, 0), (0, 1))),
]


@pytest.mark.parametrize("shape, window, stride, padding", POOL_CASES)
def test_max_pool_matches_numpy(shape, window, stride, padding):
    x = _rng(5).normal(size=shape).astype(np.float32)
    got = np.asarray(max_pool(x, window, stride, padding))
    np.testing.assert_allclose(got, numpy_pool(x, window, stride, padding, "max"), **TOL)


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("shape, window, stride, padding", POOL_CASES)
def test_avg_pool_matches_numpy(shape, window, stride, padding, count_include_pad):
    x = _rng(6).normal(size=shape).astype(np.float32)
    got = np.asarray(avg_pool(x, window, stride, padding, count_include_pad=count_include_pad))
    want = numpy_pool(x, window, stride, padding, "avg", count_include_pad)
    np.testing.assert_allclose(got, want, **TOL)


def test_avg_pool_same_divisor():
    x = jnp.ones((1, 4, 4, 1))
    # Real inputs only: the mean of ones is one everywhere, corners included.
    np.testing.assert_allclose(avg_pool(x, 3, 1, "SAME"), np.ones((1, 4, 4, 1)), **TOL)
    # Padding counted as zeros: a corner window sees 4 of 9 cells.
    np.testing.assert_allclose(avg_pool(x, 3, 1, "SAME", count_include_pad=True)[0, 0, 0, 0], 4 / 9,
                               **TOL)


@pytest.mark.parametrize("window, stride, padding",
                         [(3, 2, 0), (3, 2, 1), (2, 1, 1), ((3, 2), (2, 1), (1, 0))])
def test_pooling_matches_torch(window, stride, padding):
    torch = pytest.importorskip("torch", reason='pip install "dlmodels[bench]"')
    x = _rng(7).normal(size=(2, 11, 10, 3)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    back = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731
    pad = padding if isinstance(padding, int) else tuple(padding)
    np.testing.assert_allclose(max_pool(x, window, stride, pad),
                               back(torch.nn.functional.max_pool2d(xt, window, stride, pad)), **TOL)
    for include in (False, True):
        want = torch.nn.functional.avg_pool2d(xt, window, stride, pad, count_include_pad=include)
        np.testing.assert_allclose(avg_pool(x, window, stride, pad, count_include_pad=include),
                                   back(want), **TOL)


def test_pooling_1d():
    x = _rng(8).normal(size=(2, 11, 3)).astype(np.float32)
    want_max = np.stack([x[:, 2 * t:2 * t + 3].max(axis=1) for t in range(5)], axis=1)
    want_avg = np.stack([x[:, 2 * t:2 * t + 3].mean(axis=1) for t in range(5)], axis=1)
    np.testing.assert_allclose(max_pool(x, 3, 2), want_max, **TOL)
    np.testing.assert_allclose(avg_pool(x, 3, 2), want_avg, **TOL)


# Local response normalisation -------------------------------------------------------------------

def numpy_lrn(x, n, k, alpha, beta):
    """The AlexNet formula, channel by channel (odd n: j from i - n//2 to i + n//2)."""
    x = x.astype(np.float64)
    c = x.shape[-1]
    out = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - n // 2), min(c - 1, i + n // 2)
        out[..., i] = x[..., i] / (k + alpha * (x[..., lo:hi + 1] ** 2).sum(-1)) ** beta
    return out


@pytest.mark.parametrize("n, k, alpha, beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.1, 0.5), (1, 0.5, 1.0, 1.0),
                                               (7, 2.0, 0.05, 0.75)])
def test_local_response_norm_matches_numpy(n, k, alpha, beta):
    x = (3 * _rng(9).normal(size=(2, 4, 3, 9))).astype(np.float32)
    got = np.asarray(local_response_norm(x, size=n, k=k, alpha=alpha, beta=beta))
    np.testing.assert_allclose(got, numpy_lrn(x, n, k, alpha, beta), **TOL)
    # AlexNet defaults are the default arguments.
    if (n, k, alpha, beta) == (5, 2.0, 1e-4, 0.75):
        np.testing.assert_allclose(local_response_norm(x), got, **TOL)


@pytest.mark.parametrize("size", [5, 4, 3])
def test_local_response_norm_matches_torch(size):
    torch = pytest.importorskip("torch", reason='pip install "dlmodels[bench]"')
    x = (3 * _rng(10).normal(size=(2, 5, 4, 8))).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    alpha, beta, k = 0.02, 0.75, 1.5
    # PyTorch averages the squares: its alpha is alpha_paper * size.
    want = torch.nn.functional.local_response_norm(xt, size, alpha=alpha * size, beta=beta, k=k)
    want = want.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(local_response_norm(x, size=size, k=k, alpha=alpha, beta=beta), want, **TOL)
    got = local_response_norm(x, size=size, k=k, alpha=alpha * size, beta=beta, divide_alpha_by_size=True)
    np.testing.assert_allclose(got, want, **TOL)


# Gradients (float64) ----------------------------------------------------------------------------

def test_gradients():
    rng = _rng(11)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, 6, 5, 4)))
        w = jnp.asarray(rng.normal(size=(3, 2, 2, 4)))
        conv_2 = lambda x, w: conv2d(x, w, stride=2, padding=1, dilation=(1, 2), groups=2)  # noqa: E731
        conv_1 = lambda x, w: conv1d(x, w, padding="SAME", stride=2, groups=2)  # noqa: E731
        # jax's own convolution (the default) and, inside seed_batching, the custom VJP that
        # carries the CPU's seed rule (reverse mode only)
        check_grads(conv_2, (x, w), order=2, modes=("fwd", "rev"))
        check_grads(conv_1, (x[:, 0], w[0]), order=1, modes=("fwd", "rev"))
        with seed_batching():
            check_grads(conv_2, (x, w), order=2, modes=("rev",))
            check_grads(conv_1, (x[:, 0], w[0]), order=1, modes=("rev",))
        # Distinct values 0.1 apart: no ties, so the finite differences never switch the argmax.
        distinct = jnp.asarray(0.1 * rng.permutation(2 * 7 * 7 * 3).reshape(2, 7, 7, 3))
        check_grads(lambda x: max_pool(x, 3, 2, "SAME"), (distinct,), order=2, modes=("fwd", "rev"))
        for include in (False, True):
            check_grads(lambda x: avg_pool(x, 3, 2, "SAME", count_include_pad=include), (x,), order=2,
                        modes=("fwd", "rev"))
        for beta in (0.75, 0.5, 0.6):   # the square-root forms and pow
            check_grads(lambda x: local_response_norm(x, size=3, k=1.0, alpha=0.5, beta=beta), (x,),
                        order=2, modes=("fwd", "rev"))


# Layers -----------------------------------------------------------------------------------------

def test_conv2d_layer_shapes_jit_and_bias(key):
    layer = conv2d_layer(3, 2, 4, 6, stride=2, padding="SAME", groups=2, b_init="normal")
    params = layer.init(key)
    assert params["w"].shape == (3, 2, 2, 6) and params["b"].shape == (6,)
    x = jnp.asarray(_rng(12).normal(size=(2, 9, 8, 4)), jnp.float32)
    y = layer.apply(params, x)
    assert jax.eval_shape(layer.apply, params, x).shape == y.shape == (2, 5, 4, 6)
    np.testing.assert_allclose(jax.jit(layer.apply)(params, x), y, **TOL)
    bias = np.asarray(params["b"]).reshape(1, 1, 1, 6)
    want = conv2d(x, params["w"], stride=2, padding="SAME", groups=2) + bias
    np.testing.assert_allclose(y, want, **TOL)
    assert set(conv2d_layer(3, 3, 4, 6, use_bias=False).init(key)) == {"w"}
    assert conv2d_layer(3, 3, 4, 6).init(key, jnp.bfloat16)["w"].dtype == jnp.bfloat16


def test_conv1d_layer(key):
    layer = conv1d_layer(5, 3, 8, padding="SAME", dilation=2)
    params = layer.init(key)
    assert params["w"].shape == (5, 3, 8) and params["b"].shape == (8,)
    x = jnp.asarray(_rng(13).normal(size=(4, 20, 3)), jnp.float32)
    assert jax.eval_shape(layer.apply, params, x).shape == layer.apply(params, x).shape == (4, 20, 8)


@pytest.mark.parametrize("groups", [1, 4])
def test_conv_layer_he_variance(key, groups):
    w = np.asarray(conv2d_layer(5, 5, 64, 128, groups=groups).init(key)["w"], np.float64)
    fan_in = 5 * 5 * 64 / groups
    assert w.shape == (5, 5, 64 // groups, 128)
    np.testing.assert_allclose(w.var(), 2 / fan_in, rtol=0.03)
    w1 = np.asarray(conv1d_layer(9, 64, 256).init(key)["w"], np.float64)
    np.testing.assert_allclose(w1.var(), 2 / (9 * 64), rtol=0.03)


def test_flatten():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(flatten(x), x.reshape(2, 60))


# Errors -----------------------------------------------------------------------------------------

def test_errors(key):
    x = np.zeros((2, 8, 8, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"rank 4 \[N, H, W, C\], got shape \(8, 8, 3\)"):
        conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"kernel w of rank 4"):
        conv2d(x, w[0])
    with pytest.raises(ValueError, match=r"kernel expects 2 input channels.*x has 3 channels.*"
                                         r"x shape \(2, 8, 8, 3\), w shape \(3, 3, 2, 4\)"):
        conv2d(x, w[:, :, :2])
    with pytest.raises(ValueError, match="groups=2 does not divide the 3 input channels"):
        conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="padding must be 'SAME', 'VALID'"):
        conv2d(x, w, padding="FULL")
    with pytest.raises(ValueError, match="padding must be non-negative"):
        conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="stride must be an int or 2 ints"):
        conv2d(x, w, stride="2")
    with pytest.raises(ValueError, match="stride must be positive"):
        conv2d(x, w, stride=(1, 0))
    with pytest.raises(ValueError, match="kernel extent 9.*exceeds the padded input size 8"):
        conv2d(x, w, dilation=4)
    with pytest.raises(ValueError, match=r"rank 3 \[N, T, C\]"):
        conv1d(x, w)
    with pytest.raises(ValueError, match="dividing both"):
        conv2d_layer(3, 3, 4, 6, groups=4)
    layer = conv2d_layer(3, 3, 4, 6)
    with pytest.raises(ValueError, match="kernel expects 4 input channels"):
        layer.apply(layer.init(key), x)
    with pytest.raises(ValueError, match=r"max_pool: expected input \[N, H, W, C\]"):
        max_pool(x[0, 0], 2)
    with pytest.raises(ValueError, match="padding must be 'SAME'"):
        avg_pool(x, 2, padding="valid-ish")
    with pytest.raises(ValueError, match="padding .* must be smaller than the window"):
        avg_pool(x, 2, padding=2)
    with pytest.raises(ValueError, match="window must be positive"):
        max_pool(x, 0)
    with pytest.raises(ValueError, match="size must be a positive int"):
        local_response_norm(x, size=0)


def test_pooling_and_lrn_differentiate_under_jit():
    """Inside a jitted gradient (as in every training step) reduce_window's init values are
    constants that autodiff recognises; the gradients equal the eager ones."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 3))
    for f in (lambda x: max_pool(x, 3, 2, "SAME"), lambda x: avg_pool(x, 2),
              lambda x: local_response_norm(x)):
        loss = lambda x: jnp.sum(f(x) ** 2)  # noqa: E731
        np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), jax.grad(loss)(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape, window", [((3, 8, 6, 5), 2), ((2, 9, 7, 3), (3, 2)), ((4, 10, 3), 2),
                                           ((2, 10, 10, 2), 5)])
def test_tiled_max_pool_shares_the_gradient_among_tied_maxima(shape, window):
    """Non-overlapping max pooling (the tiled path, its own JVP): on inputs with many exact ties
    (small integers) the value is numpy's window max and the gradient is the upstream gradient
    split equally among each window's tied maxima, from a numpy loop; the 5x5 window (25 > 16)
    counts ties with a reduction instead of unrolled adds."""
    rng = _rng(21)
    x = rng.integers(0, 3, size=shape).astype(np.float32)
    y = np.asarray(max_pool(jnp.asarray(x), window))
    g = rng.normal(size=y.shape).astype(np.float32)
    windows = (window,) * (len(shape) - 2) if isinstance(window, int) else window
    expected_y = np.zeros(y.shape, np.float32)
    expected_dx = np.zeros(shape, np.float32)
    for out in np.ndindex(*y.shape[1:-1]):
        region = tuple(slice(o * k, (o + 1) * k) for o, k in zip(out, windows))
        block = x[(slice(None), *region, slice(None))]          # [N, k..., C]
        flat = block.reshape(block.shape[0], -1, block.shape[-1])
        top = flat.max(1)
        expected_y[(slice(None), *out, slice(None))] = top
        mask = flat == top[:, None]
        share = mask * (g[(slice(None), *out, slice(None))] / mask.sum(1))[:, None]
        expected_dx[(slice(None), *region, slice(None))] = share.reshape(block.shape)
    np.testing.assert_array_equal(y, expected_y)
    dx = jax.grad(lambda x: jnp.sum(max_pool(x, window) * g))(jnp.asarray(x))
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-6, atol=1e-7)
    # forward mode too (the JVP is the rule itself)
    t = rng.normal(size=shape).astype(np.float32)
    _, dy = jax.jvp(lambda x: max_pool(x, window), (jnp.asarray(x),), (jnp.asarray(t),))
    np.testing.assert_allclose(np.sum(np.asarray(dy) * g), np.sum(expected_dx * t), rtol=1e-5)
    with jax.enable_x64(True):
        distinct = jnp.asarray(0.1 * rng.permutation(int(np.prod(shape))).reshape(shape))
        check_grads(lambda x: max_pool(x, window), (distinct,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("padding", ["VALID", "SAME", 2, ((1, 0), (2, 3))])
def test_one_channel_im2col_equals_xla_convolution(padding):
    """A one-channel stride-1 conv2d (on the CPU: im2col, ``IM2COL_MAX_CHANNELS``) equals jax's
    own convolution on values, input and kernel gradients, and passes check_grads."""
    from dlmodels.nn.conv import IM2COL_MAX_CHANNELS, normalize_padding
    assert IM2COL_MAX_CHANNELS >= 1
    rng = _rng(12)
    x = jnp.asarray(rng.normal(size=(3, 9, 8, 1)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 4, 1, 5)), jnp.float32)
    pads = normalize_padding(padding, 2, "test")

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), pads,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ours = lambda x, w: conv2d(x, w, padding=padding)  # noqa: E731
    np.testing.assert_allclose(ours(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    for got, want in zip(jax.jit(jax.grad(loss(ours), (0, 1)))(x, w),
                         jax.grad(loss(xla), (0, 1))(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with jax.enable_x64(True):
        check_grads(ours, (x.astype(jnp.float64), w.astype(jnp.float64)), order=2,
                    modes=("fwd", "rev"))
