"""MLP gradients against check_grads and against the course notes' backpropagation in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels import losses
from dlmodels.mlp import mlp
from dlmodels.validation import ShapeError


def _numpy_backprop(weights, biases, x, t):
    """Backpropagation for sigmoid units and E = 1/2 sum (t - y)^2, written out as in the notes:
    delta_out = (y - t) * y (1 - y); delta_l = (delta_{l+1} W_{l+1}^T) * h_l (1 - h_l);
    dE/dW_l = h_{l-1}^T delta_l; dE/db_l = sum over examples of delta_l."""
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    hs = [x]
    for w, b in zip(weights, biases):
        hs.append(sig(hs[-1] @ w + b))
    y = hs[-1]
    error = 0.5 * ((t - y) ** 2).sum()
    delta = (y - t) * y * (1 - y)
    grads_w, grads_b = [None] * len(weights), [None] * len(weights)
    for l in reversed(range(len(weights))):
        grads_w[l] = hs[l].T @ delta
        grads_b[l] = delta.sum(0)
        if l:
            delta = (delta @ weights[l].T) * hs[l] * (1 - hs[l])
    return error, grads_w, grads_b


def test_sum_of_squares_sigmoid_net_matches_numpy_backprop():
    with jax.enable_x64(True):
        model = mlp((5, 7, 6, 3), activation="sigmoid", output_activation="sigmoid",
                    w_init="glorot_normal_sigmoid", b_init="normal")
        params = model.init(jax.random.PRNGKey(0), jnp.float64)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(9, 5))
        t = rng.uniform(size=(9, 3))
        total = lambda p: jnp.sum(losses.sum_of_squares(model.apply(p, x), t))
        error, grads = jax.value_and_grad(total)(params)
        ws = [np.asarray(params[f"layer_{i}"]["w"]) for i in range(3)]
        bs = [np.asarray(params[f"layer_{i}"]["b"]) for i in range(3)]
        ref_error, ref_w, ref_b = _numpy_backprop(ws, bs, x, t)
        np.testing.assert_allclose(error, ref_error, rtol=1e-12)
        for i in range(3):
            np.testing.assert_allclose(grads[f"layer_{i}"]["w"], ref_w[i], rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(grads[f"layer_{i}"]["b"], ref_b[i], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus", "arctan"])
def test_check_grads(activation):
    with jax.enable_x64(True):
        model = mlp((4, 5, 3), activation=activation)
        params = model.init(jax.random.PRNGKey(1), jnp.float64)
        x = jax.random.normal(jax.random.PRNGKey(2), (6, 4), jnp.float64) + 0.1
        y = jnp.array([0, 1, 2, 0, 1, 2])
        loss = lambda p, x: jnp.mean(losses.softmax_cross_entropy(model.apply(p, x), y))
        check_grads(loss, (params, x), order=2, modes=("rev", "fwd"), atol=1e-5, rtol=1e-5)


def test_wrong_input_shape_raises_shape_error():
    model = mlp((5, 3))
    params = model.init(jax.random.PRNGKey(0))
    for bad in [(4, 6), (5,), (2, 4, 5)]:
        with pytest.raises(ShapeError, match=rf"mlp: .*\[\*, 5\], got \({bad[0]},"):
            model.apply(params, jnp.zeros(bad))


def test_invalid_hyperparameters():
    with pytest.raises(ValueError, match="layer_sizes"):
        mlp((5,))
    with pytest.raises(ValueError, match="dropout_rate"):
        mlp((5, 3), dropout_rate=1.5)
    with pytest.raises(ValueError, match="activation"):
        mlp((5, 3), activation="gelu-ish")
