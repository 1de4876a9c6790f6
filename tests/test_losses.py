"""Losses and metrics against numpy formulas and scikit-learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("strict_dtypes")
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from dlmodels import losses, metrics

rng = np.random.default_rng(0)
Y_HAT = rng.normal(size=(6, 4)).astype(np.float32)
Y = rng.normal(size=(6, 4)).astype(np.float32)


def _log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def test_sum_of_squares_and_mse():
    np.testing.assert_allclose(losses.sum_of_squares(Y_HAT, Y), 0.5 * ((Y - Y_HAT) ** 2).sum(-1),
                               rtol=1e-6)
    np.testing.assert_allclose(losses.mean_squared_error(Y_HAT, Y), ((Y - Y_HAT) ** 2).mean(-1),
                               rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_cross_entropy(scale):
    logits = (Y_HAT * scale).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
    expected = -_log_softmax(logits)[np.arange(6), labels]
    got = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    probs = np.eye(4, dtype=np.float32)[labels]
    np.testing.assert_allclose(losses.softmax_cross_entropy(jnp.asarray(logits), probs), expected,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 200.0])
def test_binary_cross_entropy(scale):
    z = (Y_HAT * scale).astype(np.float64)
    t = rng.uniform(size=z.shape)
    # -[t log s + (1 - t) log(1 - s)] with log s = -log(1 + e^-z), log(1 - s) = -log(1 + e^z)
    expected = (t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)).sum(-1)
    got = losses.binary_cross_entropy(jnp.asarray(z, jnp.float32), jnp.asarray(t, jnp.float32))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_penalties_on_weights_only():
    params = {"layer_0": {"w": jnp.array([[1.0, -2.0]]), "b": jnp.array([5.0])},
              "cell": {"w_h": jnp.array([[-3.0]]), "bias": jnp.array([7.0])}}
    np.testing.assert_allclose(losses.l2_penalty(params), 1 + 4 + 9)
    np.testing.assert_allclose(losses.l1_penalty(params), 1 + 2 + 3)


def test_accuracy_and_confusion_matrix_vs_sklearn():
    labels = rng.integers(0, 5, size=200)
    scores = rng.normal(size=(200, 5)).astype(np.float32)
    predicted = scores.argmax(-1)
    np.testing.assert_allclose(metrics.accuracy(scores, labels), (predicted == labels).mean())
    np.testing.assert_array_equal(
        metrics.confusion_matrix(jnp.asarray(predicted), jnp.asarray(labels), 5),
        sk_confusion_matrix(labels, predicted, labels=range(5)))
    assert jax.jit(metrics.confusion_matrix, static_argnums=2)(predicted, labels, 5).sum() == 200
