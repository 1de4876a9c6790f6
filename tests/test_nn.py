"""Activations, initialisers, dropout and the dense layer against numpy formulas."""

import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("strict_dtypes")

from dlmodels.nn import activations, dense, dropout, initializers, masking_noise
from dlmodels.validation import ShapeError

X = np.linspace(-30, 30, 121, dtype=np.float32)


@pytest.mark.parametrize("name, reference", [
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x.astype(np.float64)))),
    ("tanh", np.tanh),
    ("relu", lambda x: np.maximum(x, 0)),
    ("arctan", np.arctan),
    ("softplus", lambda x: np.logaddexp(0, x.astype(np.float64))),
    ("step", lambda x: (x >= 0).astype(np.float32)),
    ("identity", lambda x: x),
])
def test_activation_matches_numpy(name, reference):
    got = np.asarray(activations.get(name)(jnp.asarray(X)))
    np.testing.assert_allclose(got, reference(X), rtol=1e-6, atol=1e-6)


def test_step_threshold_and_unknown_name():
    np.testing.assert_array_equal(activations.step(jnp.array([0.4, 0.5, 0.6]), 0.5), [0, 1, 1])
    with pytest.raises(ValueError, match="valid"):
        activations.get("swishy")


def test_softplus_large_inputs_finite():
    x = jnp.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(activations.softplus(x), [0.0, np.log(2.0), 1000.0], rtol=1e-6)


FAN_IN, FAN_OUT = 400, 600


@pytest.mark.parametrize("name, variance", [
    ("glorot_uniform", 2 / (FAN_IN + FAN_OUT)),
    ("glorot_normal", 2 / (FAN_IN + FAN_OUT)),
    ("glorot_uniform_sigmoid", 16 * 2 / (FAN_IN + FAN_OUT)),
    ("glorot_normal_sigmoid", 16 * 2 / (FAN_IN + FAN_OUT)),
    ("he_uniform", 2 / FAN_IN),
    ("he_normal", 2 / FAN_IN),
    ("lecun_normal", 1 / FAN_IN),
])
def test_initializer_variance(key, name, variance):
    w = np.asarray(initializers.get(name)(key, (FAN_IN, FAN_OUT)), dtype=np.float64)
    # 240k samples: the sample variance is within ~1 % of the true one
    assert abs(w.mean()) < 0.01 * np.sqrt(variance) * 10
    np.testing.assert_allclose(w.var(), variance, rtol=0.02)


def test_glorot_uniform_bounds(key):
    w = np.asarray(initializers.glorot_uniform(key, (FAN_IN, FAN_OUT)))
    limit = np.sqrt(6 / (FAN_IN + FAN_OUT))
    assert w.max() <= limit and w.min() >= -limit and w.max() > 0.99 * limit
    w4 = np.asarray(initializers.glorot_uniform_sigmoid(key, (FAN_IN, FAN_OUT)))
    assert w4.max() <= 4 * limit and w4.max() > 0.99 * 4 * limit


def test_orthogonal_identity_uniform_normal(key):
    q = np.asarray(initializers.orthogonal(2.0)(key, (50, 50)), dtype=np.float64)
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(50), atol=1e-4)
    np.testing.assert_array_equal(initializers.identity(0.5)(key, (3, 3)), 0.5 * np.eye(3))
    with pytest.raises(ValueError, match="square"):
        initializers.identity()(key, (3, 4))
    u = np.asarray(initializers.uniform(0.1)(key, (100_000,)))
    assert u.min() >= -0.1 and u.max() <= 0.1
    np.testing.assert_allclose(u.var(), 0.1 ** 2 / 3, rtol=0.02)
    n = np.asarray(initializers.normal(0.3)(key, (100_000,)))
    np.testing.assert_allclose(n.std(), 0.3, rtol=0.02)
    with pytest.raises(ValueError, match="valid"):
        initializers.get("xavier_magic")


def test_dropout_expectation_and_rate(key):
    x = jnp.full((200_000,), 3.0)
    y = np.asarray(dropout(x, 0.3, key=key, train=True))
    np.testing.assert_allclose((y == 0).mean(), 0.3, atol=0.005)
    np.testing.assert_allclose(y[y != 0], 3.0 / 0.7, rtol=1e-6)
    np.testing.assert_allclose(y.mean(), 3.0, rtol=0.01)  # E[y] = x (inverted dropout)


def test_dropout_eval_identity_and_errors(key):
    x = jnp.arange(5.0)
    np.testing.assert_array_equal(dropout(x, 0.5, key=key, train=False), x)
    np.testing.assert_array_equal(dropout(x, 0.0, key=None, train=True), x)
    with pytest.raises(ValueError, match="key"):
        dropout(x, 0.5, key=None, train=True)
    with pytest.raises(ValueError, match="rate"):
        dropout(x, 1.0, key=key, train=True)
    a = dropout(jnp.ones(100), 0.5, key=key, train=True)
    b = dropout(jnp.ones(100), 0.5, key=key, train=True)
    np.testing.assert_array_equal(a, b)  # same key, same mask


def test_dense_matches_numpy(key):
    layer = dense(5, 3, b_init="normal")
    p = layer.init(key)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.apply(p, x), x @ np.asarray(p["w"]) + np.asarray(p["b"]),
                               rtol=1e-5, atol=1e-6)
    assert set(dense(5, 3, use_bias=False).init(key)) == {"w"}
    with pytest.raises(ShapeError, match=r"dense: expected input x \[\.\.\., 5\], got \(4, 6\)"):
        layer.apply(p, np.zeros((4, 6), np.float32))


def test_masking_noise_erases_at_the_rate_and_keeps_the_rest(key):
    x = jnp.arange(1, 20_001, dtype=jnp.int32).reshape(100, 200)  # no zeros: an erased entry shows
    y = np.asarray(masking_noise(key, x, 0.3))
    assert y.dtype == np.int32 and y.shape == (100, 200)
    erased = y == 0
    assert abs(erased.mean() - 0.3) < 0.01  # 20,000 draws: s.e. 0.0032
    np.testing.assert_array_equal(y[~erased], np.asarray(x)[~erased])  # no 1 / (1 - rate) scaling
    np.testing.assert_array_equal(masking_noise(key, x, 0.0), x)
    np.testing.assert_array_equal(masking_noise(key, x, 1.0), np.zeros((100, 200), np.int32))
    with pytest.raises(ValueError, match="rate must be in"):
        masking_noise(key, x, 1.5)
