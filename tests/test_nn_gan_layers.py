"""Transposed convolution and batch normalisation (``dlmodels.nn``) against PyTorch with copied
weights, torch autograd, ``jax.test_util.check_grads`` and the adjoint of ``conv2d``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads

from dlmodels.nn import batch_norm, conv2d, conv_transpose2d, conv_transpose2d_layer
from dlmodels.validation import ShapeError

pytestmark = pytest.mark.usefixtures("strict_dtypes")

TOL = dict(rtol=1e-4, atol=1e-4)


def _torch_conv_transpose(x, w, stride, padding, output_padding, dilation):
    """PyTorch's transposed convolution of NHWC / HWIO arrays (weight [C_in, C_out, kh, kw])."""
    xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(np.asarray(w).transpose(2, 3, 0, 1), requires_grad=True)
    y = torch.nn.functional.conv_transpose2d(xt, wt, stride=stride, padding=padding,
                                             output_padding=output_padding, dilation=dilation)
    return xt, wt, y


# (kernel, stride, padding, output_padding, dilation, c_in, c_out, H, W)
TRANSPOSE_CASES = [
    ((4, 4), 2, 1, 0, 1, 3, 2, 4, 4),          # DCGAN (Radford et al. 2016): k=4, s=2, p=1
    ((5, 5), 2, 2, 1, 1, 3, 2, 4, 4),          # DCGAN's k=5 in PyTorch ports
    ((3, 3), 1, 0, 0, 1, 2, 3, 5, 4),          # full convolution
    ((3, 2), (2, 3), (1, 0), (1, 2), 1, 2, 2, 3, 4),
    ((3, 3), 2, 0, 1, 2, 2, 3, 4, 3),          # dilation, output_padding < dilation
    ((2, 2), 3, 0, 2, 1, 1, 2, 3, 3),          # k < s: output_padding rows beyond y_full are zero
    ((5, 5), 1, 3, 0, 1, 2, 2, 6, 6),          # padding > k - 1: negative conv padding
    ((4, 4), 2, 2, 1, 1, 2, 1, 3, 3),          # output_padding given back from the crop
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_matches_torch_values_and_grads(case):
    kernel, stride, padding, output_padding, dilation, c_in, c_out, h, w_ = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, h, w_, c_in)).astype(np.float32)
    w = rng.standard_normal((*kernel, c_in, c_out)).astype(np.float32)
    xt, wt, yt = _torch_conv_transpose(x, w, stride, padding, output_padding, dilation)
    y = conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=output_padding,
                         dilation=dilation)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), **TOL)
    # A loss that weights every output differently, so a wrong gradient cannot hide.
    g = rng.standard_normal(y.shape).astype(np.float32)
    (yt * torch.tensor(g.transpose(0, 3, 1, 2))).sum().backward()
    loss = lambda x, w: jnp.sum(conv_transpose2d(x, w, stride=stride, padding=padding,
                                                 output_padding=output_padding,
                                                 dilation=dilation) * g)
    dx, dw = jax.grad(loss, (0, 1))(x, w)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), **TOL)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 0, 1), **TOL)


@pytest.mark.parametrize("kernel,stride,dilation,h", [(4, 2, 1, 4), (5, 2, 1, 4), (3, 1, 1, 5),
                                                      (2, 3, 1, 3), (3, 2, 2, 4), (1, 2, 1, 3)])
def test_same_is_the_adjoint_of_conv2d_same(kernel, stride, dilation, h):
    """``SAME``: output H * s, the vector-Jacobian product of conv2d(..., padding="SAME") (whose
    values PyTorch and numpy tests of conv2d pin down), and PyTorch's full output cropped."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, h, h + 1, 3)).astype(np.float32)
    w = rng.standard_normal((kernel, kernel, 3, 2)).astype(np.float32)
    y = conv_transpose2d(x, w, stride=stride, padding="SAME", dilation=dilation)
    assert y.shape == (2, h * stride, (h + 1) * stride, 2)
    z = jnp.zeros((2, h * stride, (h + 1) * stride, 2), jnp.float32)
    _, vjp = jax.vjp(lambda z: conv2d(z, w.swapaxes(2, 3), stride=stride, padding="SAME",
                                      dilation=dilation), z)
    np.testing.assert_allclose(y, vjp(x)[0], **TOL)
    # PyTorch's full (padding 0) output, cropped by TensorFlow's SAME split (1 top, 2 bottom for
    # k=5, s=2) and zero-extended where the full output is shorter than H * s.
    full = _torch_conv_transpose(x, w, stride, 0, 0, dilation)[2].detach().numpy()
    full = full.transpose(0, 2, 3, 1)
    top = max(dilation * (kernel - 1) + 1 - stride, 0) // 2
    full = np.pad(full, ((0, 0), (0, stride), (0, stride), (0, 0)))
    np.testing.assert_allclose(y, full[:, top:top + h * stride, top:top + (h + 1) * stride], **TOL)


def test_same_k5_is_torch_p2_op1_shifted_by_one_pixel():
    """The docstring's claim: DCGAN's k=5, s=2 SAME has PyTorch's (padding=2, output_padding=1)
    size, cropped one pixel less at the top/left (so its output is torch's moved down/right)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    w = rng.standard_normal((5, 5, 2, 3)).astype(np.float32)
    same = conv_transpose2d(x, w, stride=2, padding="SAME")
    torch_p2 = _torch_conv_transpose(x, w, 2, 2, 1, 1)[2].detach().numpy().transpose(0, 2, 3, 1)
    assert same.shape == torch_p2.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(same[:, 1:, 1:], torch_p2[:, :-1, :-1], **TOL)
    assert not np.allclose(same, torch_p2, **TOL)


def test_conv_transpose2d_dcgan_sizes_and_layer_init():
    layer = conv_transpose2d_layer(4, 4, 128, 64, stride=2, padding=1)
    params = layer.init(jax.random.PRNGKey(0))
    assert params["w"].shape == (4, 4, 128, 64) and params["b"].shape == (64,)
    assert layer.apply(params, jnp.zeros((3, 7, 7, 128))).shape == (3, 14, 14, 64)
    # he_normal reads the HWIO kernel as conv2d's: fan_in = kh kw c_in = 2048, Var = 2 / 2048;
    # a fan_in of kh kw c_out (PyTorch's reading) would give twice that.
    np.testing.assert_allclose(np.var(np.asarray(params["w"])), 2 / (4 * 4 * 128), rtol=0.03)
    glorot = conv_transpose2d_layer(5, 5, 16, 48, padding="SAME", stride=2, w_init="glorot_uniform",
                                    use_bias=False).init(jax.random.PRNGKey(1))
    assert set(glorot) == {"w"}
    np.testing.assert_allclose(np.var(np.asarray(glorot["w"])), 2 / (25 * 16 + 25 * 48), rtol=0.05)
    assert conv_transpose2d_layer(5, 5, 16, 48, padding="SAME", stride=2).apply(
        conv_transpose2d_layer(5, 5, 16, 48).init(jax.random.PRNGKey(1)),
        jnp.ones((1, 7, 7, 16))).shape == (1, 14, 14, 48)
    # The layer adds the bias to the function's output.
    p = {"w": params["w"], "b": jnp.arange(64.0)}
    x = jax.random.normal(jax.random.PRNGKey(2), (1, 3, 3, 128))
    np.testing.assert_allclose(layer.apply(p, x), conv_transpose2d(x, p["w"], stride=2, padding=1)
                               + jnp.arange(64.0).reshape(1, 1, 1, 64), **TOL)


def test_conv_transpose2d_errors():
    x, w = jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 2))
    with pytest.raises(ShapeError, match=r"\(4, 4, 3\)"):
        conv_transpose2d(jnp.zeros((4, 4, 3)), w)
    with pytest.raises(ShapeError, match="rank 4"):
        conv_transpose2d(x, jnp.zeros((3, 3, 3)))
    with pytest.raises(ShapeError, match="input channels"):
        conv_transpose2d(jnp.zeros((1, 4, 4, 2)), w)
    with pytest.raises(ValueError, match="stride"):
        conv_transpose2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding"):
        conv_transpose2d(x, w, padding="FULL")
    with pytest.raises(ValueError, match="padding"):
        conv_transpose2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d(x, w, stride=2, padding="SAME", output_padding=1)
    with pytest.raises(ShapeError, match="not positive"):
        conv_transpose2d(jnp.zeros((1, 1, 1, 3)), w, padding=2)
    with pytest.raises(ValueError, match="sizes"):
        conv_transpose2d_layer(0, 3, 3, 2)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_layer(3, 3, 3, 2, stride=1, output_padding=1)


# -- batch normalisation ---------------------------------------------------------------------

def _torch_bn(shape, momentum):
    features = shape[-1]
    bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        features, momentum=1 - momentum, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, features))
        bn.bias.copy_(torch.linspace(-1.0, 1.0, features))
    return bn


def _to_torch(x):  # NHWC -> NCHW
    return torch.tensor(np.asarray(x).transpose(0, 3, 1, 2) if x.ndim == 4 else np.asarray(x))


def _from_torch(y):
    y = y.detach().numpy()
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 6)], ids=["BatchNorm1d", "BatchNorm2d"])
def test_batch_norm_matches_torch_train_then_eval(shape):
    momentum = 0.8
    model = batch_norm(shape[-1], momentum=momentum)
    params = {"scale": jnp.linspace(0.5, 1.5, shape[-1]),
              "bias": jnp.linspace(-1.0, 1.0, shape[-1])}
    state = model.init_state()
    bn = _torch_bn(shape, momentum).train()
    rng = np.random.default_rng(3)
    step = jax.jit(lambda p, s, x: model.apply(p, s, x, train=True))
    for i in range(3):
        x = (rng.standard_normal(shape) * (1 + i) + i).astype(np.float32)
        y, state = step(params, state, x)
        np.testing.assert_allclose(y, _from_torch(bn(_to_torch(x))), **TOL)
        np.testing.assert_allclose(state["mean"], bn.running_mean.numpy(), **TOL)
        np.testing.assert_allclose(state["var"], bn.running_var.numpy(), **TOL)
    bn.eval()
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    y, same_state = model.apply(params, state, x)
    assert same_state is state
    np.testing.assert_allclose(y, _from_torch(bn(_to_torch(x))), **TOL)
    # A fresh torch module with the running statistics loaded gives the same eval output.
    fresh = _torch_bn(shape, momentum).eval()
    fresh.running_mean.copy_(torch.tensor(np.asarray(state["mean"])))
    fresh.running_var.copy_(torch.tensor(np.asarray(state["var"])))
    np.testing.assert_allclose(y, _from_torch(fresh(_to_torch(x))), **TOL)


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 5)], ids=["BatchNorm1d", "BatchNorm2d"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batch_norm_grads_match_torch(shape, train):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 1
    g = rng.standard_normal(shape).astype(np.float32)
    model = batch_norm(shape[-1])
    bn = _torch_bn(shape, 0.9).train(train)
    state = {"mean": jnp.asarray(rng.standard_normal(shape[-1]), jnp.float32),
             "var": jnp.asarray(rng.uniform(0.5, 2.0, shape[-1]), jnp.float32)}
    if not train:
        bn.running_mean.copy_(torch.tensor(np.asarray(state["mean"])))
        bn.running_var.copy_(torch.tensor(np.asarray(state["var"])))
    params = {"scale": jnp.linspace(0.5, 1.5, shape[-1]),
              "bias": jnp.linspace(-1.0, 1.0, shape[-1])}
    xt = _to_torch(x).requires_grad_(True)
    (bn(xt) * _to_torch(g)).sum().backward()
    loss = lambda p, x: jnp.sum(model.apply(p, state, x, train=train)[0] * g)
    dp, dx = jax.grad(loss, (0, 1))(params, x)
    np.testing.assert_allclose(dx, _from_torch(xt.grad), **TOL)
    np.testing.assert_allclose(dp["scale"], bn.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(dp["bias"], bn.bias.grad.numpy(), **TOL)


def test_batch_norm_check_grads_train_mode():
    model = batch_norm(3, axis=1)   # features on axis 1 of [B, C, L]
    x = np.random.default_rng(5).standard_normal((4, 3, 2))
    with jax.enable_x64(True):
        params = {"scale": jnp.array([0.5, 1.0, 2.0], jnp.float64),
                  "bias": jnp.array([0.1, -0.2, 0.3], jnp.float64)}
        state = model.init_state(jnp.float64)
        f = jax.jit(lambda p, x: model.apply(p, state, x, train=True)[0])
        check_grads(f, (params, jnp.asarray(x)), order=2, modes=("rev", "fwd"), eps=1e-4)


def test_batch_norm_numpy_and_options():
    """The paper's algorithm in numpy, for axis=1, scale/center off, momentum 0 (batch stats)."""
    x = np.random.default_rng(6).standard_normal((5, 4, 3)).astype(np.float32)
    model = batch_norm(4, axis=1, momentum=0.0, scale=False, center=False)
    params = model.init(jax.random.PRNGKey(0))
    assert params == {}
    y, state = model.apply(params, model.init_state(), x, train=True)
    mean = x.mean(axis=(0, 2), keepdims=True)
    var = x.var(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), **TOL)
    np.testing.assert_allclose(state["mean"], mean.ravel(), **TOL)
    np.testing.assert_allclose(state["var"], x.var(axis=(0, 2), ddof=1), **TOL)
    full = batch_norm(4, axis=1).init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(full["scale"], np.ones(4))
    np.testing.assert_array_equal(full["bias"], np.zeros(4))


def test_batch_norm_vmap_over_seeds_equals_loop():
    """A vmapped program over seeds (params, state and data per seed) equals a loop over them."""
    model = batch_norm(3, momentum=0.5)
    keys = jax.random.split(jax.random.PRNGKey(7), 4)

    def run(key):
        k_p, k_x = jax.random.split(key)
        params = {"scale": 1 + jax.random.normal(k_p, (3,)), "bias": jnp.zeros(3)}
        xs = jax.random.normal(k_x, (2, 6, 2, 2, 3))
        state = model.init_state()
        y, state = model.apply(params, state, xs[0], train=True)
        y, state = model.apply(params, state, xs[1], train=True)
        return y, state, model.apply(params, state, xs[0])[0]

    batched = jax.vmap(run)(keys)
    for i, key in enumerate(keys):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, **TOL), batched, run(key))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(3, momentum=1.0)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(3, momentum=-0.1)
    with pytest.raises(ValueError, match="features"):
        batch_norm(0)
    model = batch_norm(3)
    params, state = model.init(jax.random.PRNGKey(0)), model.init_state()
    with pytest.raises(ShapeError, match=r"\(4, 2\)"):
        model.apply(params, state, jnp.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        model.apply(params, state, jnp.zeros((3,)))
    with pytest.raises(ShapeError, match="more than one value"):
        model.apply(params, state, jnp.zeros((1, 3)), train=True)
    with pytest.raises(ShapeError, match="batch axis"):
        batch_norm(4, axis=0).apply({}, state, jnp.zeros((4, 3)))


def test_conv_transpose2d_grads_vmapped_over_seeds_equal_loop():
    """The custom VJP under vmap (many seeds in one program, as the GAN trainer runs them)."""
    layer = conv_transpose2d_layer(4, 4, 3, 2, stride=2, padding=1)
    seeds = jax.vmap(layer.init)(jax.random.split(jax.random.PRNGKey(8), 3))
    xs = jax.random.normal(jax.random.PRNGKey(9), (3, 2, 4, 4, 3))
    grad = jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x))), (0, 1))
    batched = jax.jit(jax.vmap(grad))(seeds, xs)
    for i in range(3):
        one = grad(jax.tree.map(lambda a: a[i], seeds), xs[i])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, **TOL), batched, one)
