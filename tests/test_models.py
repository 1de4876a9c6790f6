"""Every model under test, checked the same way: the shape ``jax.eval_shape`` predicts is the shape
``apply`` produces, outputs are finite, jit equals no-jit, vmap equals a loop, a second jitted call
does not retrace, and a wrongly shaped input names the expected and actual shapes.

A new model family adds one row to ``MODELS``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("strict_dtypes")

from dlmodels.cnn import lenet5, resnet, vgg
from dlmodels.mlp import mlp

MODELS = {
    # name: (factory, input shape for a batch of 4, wrong input shape)
    "mlp_relu": (lambda: mlp((12, 16, 8, 3)), (4, 12), (4, 11)),
    "mlp_sigmoid_dropout": (lambda: mlp((12, 16, 3), activation="sigmoid",
                                        output_activation="sigmoid", dropout_rate=0.3), (4, 12),
                            (12,)),
    # The CNNs as small as their layouts allow: every distinct kernel shape costs an eager PRNG
    # compilation here (twice, with the vmapped init). AlexNet's eight layers cost ~30 s on a busy
    # 2-core CPU, so it is left to tests/test_cnn.py (jitted, against PyTorch, dropout keys).
    "lenet5_tanh_avg": (lambda: lenet5(3, input_shape=(12, 12, 1)), (4, 12, 12, 1), (4, 12, 12, 2)),
    "vgg_tiny": (lambda: vgg(((4,),), 3, input_shape=(4, 4, 2), fc=(8,)), (4, 4, 4, 2), (4, 2, 4, 4)),
    "resnet_tiny": (lambda: resnet((1, 1), (4, 4), 3, input_shape=(6, 6, 3)), (4, 6, 6, 3),
                    (4, 6, 6)),
}


@pytest.fixture(params=sorted(MODELS))
def case(request):
    factory, shape, wrong = MODELS[request.param]
    model = factory()
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    return model, params, x, wrong


def test_eval_shape_matches_apply(case):
    model, params, x, _ = case
    predicted = jax.eval_shape(model.apply, params, x)
    out = model.apply(params, x)
    assert predicted.shape == out.shape and predicted.dtype == out.dtype
    init_shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    assert jax.tree.map(lambda s: s.shape, init_shapes) == jax.tree.map(jnp.shape, params)
    chex.assert_tree_all_finite(out)


def test_jit_equals_eager_and_no_retrace(case):
    model, params, x, _ = case
    traces = []

    def forward(p, x, k):
        traces.append(1)
        return model.apply(p, x, key=k, train=True)

    f = jax.jit(forward)
    key = jax.random.PRNGKey(2)
    np.testing.assert_allclose(f(params, x, key), model.apply(params, x, key=key, train=True),
                               rtol=1e-5, atol=1e-6)
    f(params, x + 1.0, jax.random.PRNGKey(3))  # same shapes: must not trace again
    assert len(traces) == 1


def test_vmap_equals_loop(case):
    model, params, x, _ = case
    stacked = jax.vmap(model.apply, in_axes=(None, 0))(params, x[:, None])
    looped = jnp.stack([model.apply(params, x[i:i + 1]) for i in range(x.shape[0])])
    np.testing.assert_allclose(stacked, looped, rtol=1e-5, atol=1e-6)
    seeds = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(3), 3))
    over_params = jax.vmap(model.apply, in_axes=(0, None))(seeds, x)
    for k in range(3):
        one = jax.tree.map(lambda a: a[k], seeds)
        np.testing.assert_allclose(over_params[k], model.apply(one, x), rtol=1e-5, atol=1e-6)


def test_wrong_shape_names_expected_and_actual(case):
    model, params, _, wrong = case
    # chex's AssertionError (mlp) or a ValueError (the CNNs check [N, H, W, C] themselves).
    with pytest.raises((AssertionError, ValueError), match=rf"expected.*{wrong[-1]}|got \({wrong[0]}"):
        model.apply(params, jnp.zeros(wrong))
