"""The convolutions' batching rule on the CPU (``dlmodels.nn.conv._member_loop``): ``jax.vmap``
over seeds (kernels batched) equals a Python loop over the seeds, on values and on the gradients
(dx, dw) of a scalar loss, under jit; vmap over examples only, and nested vmaps (seeds x
examples), still equal the loop; the compiled program has no grouped convolution; check_grads on
the custom VJP; ``plain_batching`` gives jax's grouped convolution back. Every test runs inside
``seed_batching`` (the trainer's vmapped steps trace there); outside it the convolutions are
jax's own, forward mode included."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels import backend
from dlmodels.nn import conv1d, conv2d, conv_transpose2d
from dlmodels.nn import conv
from dlmodels.nn.conv import plain_batching, seed_batching

pytestmark = [pytest.mark.usefixtures("strict_dtypes"),
              pytest.mark.skipif(backend.name() != "cpu", reason="the rule is CPU-only")]

K = 3


@pytest.fixture(autouse=True)
def _inside_seed_batching():
    with seed_batching():
        yield

TOL = dict(rtol=1e-5, atol=1e-5)  # float32 rounding of sums taken in another order

# (name, op, x shape [N, ..., C], w shape, settings)
CASES = [
    ("conv2d", conv2d, (2, 9, 8, 4), (3, 3, 4, 5), dict()),
    ("conv2d strided", conv2d, (2, 9, 8, 4), (3, 2, 4, 6), dict(stride=2, padding=1)),
    ("conv2d dilated SAME", conv2d, (2, 9, 8, 4), (3, 3, 4, 5),
     dict(padding="SAME", dilation=(2, 1))),
    ("conv2d groups", conv2d, (2, 9, 8, 4), (3, 3, 2, 6),
     dict(stride=(1, 2), padding=((1, 0), (2, 1)), groups=2)),
    ("conv2d flip", conv2d, (2, 7, 7, 3), (2, 3, 3, 4), dict(flip=True, padding="SAME")),
    ("conv1d", conv1d, (2, 11, 4), (3, 4, 5), dict(padding="SAME", stride=2)),
    ("conv1d groups dilated", conv1d, (2, 11, 4), (3, 2, 4), dict(dilation=2, groups=2)),
    ("conv_transpose2d", conv_transpose2d, (2, 5, 4, 4), (4, 4, 4, 3), dict(stride=2, padding=1)),
    ("conv_transpose2d SAME dilated", conv_transpose2d, (2, 5, 4, 4), (3, 3, 4, 3),
     dict(stride=2, padding="SAME", dilation=(1, 2))),
]
IDS = [c[0] for c in CASES]


def _inputs(x_shape, w_shape, seed=0, k=K):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(k, *x_shape)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, *w_shape)) / np.sqrt(np.prod(w_shape[:-1])), jnp.float32)
    return x, w


def _loss(op, settings):
    """A scalar of the output that weights every position differently."""
    def loss(x, w):
        y = op(x, w, **settings)
        return jnp.sum(jnp.sin(y) * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size)
    return loss


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _group_counts(hlo: str) -> set[int]:
    return {int(g) for g in re.findall(r"(?:feature|batch)_group_count\s*=\s*(\d+)", hlo)}


@pytest.mark.parametrize("name, op, x_shape, w_shape, settings", CASES, ids=IDS)
def test_vmap_over_seeds_equals_loop_values_and_gradients(name, op, x_shape, w_shape, settings):
    x, w = _inputs(x_shape, w_shape)
    f = lambda x, w: op(x, w, **settings)  # noqa: E731
    grad = jax.grad(_loss(op, settings), argnums=(0, 1))
    y = jax.jit(jax.vmap(f))(x, w)
    dx, dw = jax.jit(jax.vmap(grad))(x, w)
    # the old path: each seed's unbatched convolution (jax's own primitive), one after another
    with plain_batching():
        want_y = _stack([jax.jit(f)(x[k], w[k]) for k in range(K)])
        want_dx, want_dw = _stack([jax.jit(grad)(x[k], w[k]) for k in range(K)])
    np.testing.assert_allclose(y, want_y, **TOL)
    np.testing.assert_allclose(dx, want_dx, **TOL)
    np.testing.assert_allclose(dw, want_dw, **TOL)
    # shared input, batched kernels (the first layer of K seeds on one batch)
    np.testing.assert_allclose(jax.jit(jax.vmap(f, in_axes=(None, 0)))(x[0], w),
                               _stack([f(x[0], w[k]) for k in range(K)]), **TOL)


@pytest.mark.parametrize("name, op, x_shape, w_shape, settings", CASES, ids=IDS)
def test_compiled_vmap_over_seeds_has_no_grouped_convolution(name, op, x_shape, w_shape, settings):
    x, w = _inputs(x_shape, w_shape)
    grad = jax.grad(_loss(op, settings), argnums=(0, 1))
    groups = settings.get("groups", 1)
    for fn in (jax.vmap(lambda x, w: op(x, w, **settings)), jax.vmap(grad)):
        hlo = jax.jit(fn).lower(x, w).compile().as_text()
        assert "convolution(" in hlo
        assert max(_group_counts(hlo) | {1}) <= groups, sorted(_group_counts(hlo))
        with plain_batching():  # jax's rule: a grouped convolution over the K seeds
            old = jax.jit(lambda x, w: fn(x, w)).lower(x, w).compile().as_text()
        assert max(_group_counts(old)) >= K * groups


@pytest.mark.parametrize("name, op, x_shape, w_shape, settings", CASES[::2], ids=IDS[::2])
def test_vmap_over_examples_and_nested_vmap_equal_loops(name, op, x_shape, w_shape, settings):
    x, w = _inputs(x_shape, w_shape)
    f = lambda x, w: op(x, w, **settings)  # noqa: E731
    # examples only: each example its own batch of one, the kernel shared
    per_example = jax.jit(jax.vmap(f, in_axes=(0, None)))(x[0][:, None], w[0])
    np.testing.assert_allclose(per_example[:, 0], f(x[0], w[0]), **TOL)
    # seeds x examples, both orders of nesting
    examples = x[0][:, None]                                 # [N, 1, ...]
    want = _stack([_stack([f(e, w[k]) for e in examples]) for k in range(K)])
    seeds_outer = jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(None, 0))
    examples_outer = jax.vmap(jax.vmap(f, in_axes=(None, 0)), in_axes=(0, None))
    np.testing.assert_allclose(jax.jit(seeds_outer)(examples, w), want, **TOL)
    np.testing.assert_allclose(jax.jit(examples_outer)(examples, w), want.swapaxes(0, 1), **TOL)
    # gradients of the nested program: per seed and per example
    grad = jax.grad(_loss(op, settings), argnums=(0, 1))
    dx, dw = jax.jit(jax.vmap(jax.vmap(grad, in_axes=(0, None)), in_axes=(None, 0)))(examples, w)
    with plain_batching():
        want_dx, want_dw = _stack([_stack([grad(e, w[k]) for e in examples]) for k in range(K)])
    np.testing.assert_allclose(dx, want_dx, **TOL)
    np.testing.assert_allclose(dw, want_dw, **TOL)
    # grad of a vmap over examples (the cotangents of the shared kernel summed)
    total = lambda w: jnp.sum(jnp.tanh(jax.vmap(f, in_axes=(0, None))(examples, w)))  # noqa: E731
    with plain_batching():
        want_total = jax.grad(total)(w[0])
    np.testing.assert_allclose(jax.jit(jax.grad(total))(w[0]), want_total, **TOL)


@pytest.mark.parametrize("name, op, x_shape, w_shape, settings",
                         [CASES[1], CASES[3], CASES[5], CASES[7]], ids=[IDS[i] for i in (1, 3, 5, 7)])
def test_check_grads_of_the_custom_vjp(name, op, x_shape, w_shape, settings):
    x, w = _inputs(x_shape, w_shape, k=2)
    with jax.enable_x64(True):
        x64, w64 = jnp.asarray(x, jnp.float64), jnp.asarray(w, jnp.float64)
        f = lambda x, w: op(x, w, **settings)  # noqa: E731
        check_grads(f, (x64[0], w64[0]), order=2, modes=("rev",))
        check_grads(jax.vmap(f), (x64, w64), order=2, modes=("rev",))


def test_forward_mode_outside_seed_batching_and_under_plain_batching_refused_inside():
    x, w = _inputs((2, 6, 6, 3), (3, 3, 3, 4), k=1)
    f = lambda x: conv2d(x, w[0])  # noqa: E731
    want = conv2d(jnp.ones_like(x[0]), w[0])                 # the convolution is linear in x
    with plain_batching():
        _, tangent = jax.jvp(f, (x[0],), (jnp.ones_like(x[0]),))
    np.testing.assert_allclose(tangent, want, **TOL)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(f, (x[0],), (jnp.ones_like(x[0]),))
    token = conv._SEED_RULE.set(None)                         # the default, outside the context
    try:
        _, tangent = jax.jvp(f, (x[0],), (jnp.ones_like(x[0]),))
        hlo = jax.jit(jax.vmap(lambda x, w: conv2d(x, w))).lower(*_inputs((2, 6, 6, 3), (3, 3, 3, 4))).as_text()
    finally:
        conv._SEED_RULE.reset(token)
    np.testing.assert_allclose(tangent, want, **TOL)
    assert max(_group_counts(hlo)) >= K                       # jax's own grouped convolution


def test_argument_checks_unchanged_under_vmap():
    x, w = _inputs((2, 6, 6, 4), (3, 3, 3, 4))
    with pytest.raises(ValueError, match="groups=2 does not divide|input channels per group"):
        jax.vmap(lambda x, w: conv2d(x, w, groups=2))(x, w)
    with pytest.raises(ValueError, match="kernel expects 3 input channels"):
        jax.vmap(lambda x, w: conv_transpose2d(x, w))(x, w)
