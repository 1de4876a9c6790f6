"""FGSM and the adversarial objective against numpy on softmax regression, hand-built losses and
gradients, and a short adversarial training run through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels import losses
from dlmodels.adversarial import adversarial_classifier, adversarial_loss, fgsm
from dlmodels.cnn import lenet5
from dlmodels.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("strict_dtypes")

N, D, K = 16, 12, 4


def _softmax_regression(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": jnp.asarray(rng.normal(size=(D, K)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=K), jnp.float32)}
    x = jnp.asarray(rng.uniform(size=(N, D)), jnp.float32)
    y = jnp.asarray(rng.integers(0, K, size=N), jnp.int32)
    return params, x, y


def apply(params, x, *, key=None, train=False):
    del key, train
    return x @ params["w"] + params["b"][None]


def mean_ce(params, x, y):
    return jnp.mean(losses.softmax_cross_entropy(apply(params, x), y))


def _numpy_direction(params, x, y):
    """sign(W (p - onehot(y))) per example: the sign of d/dx of -log softmax(x W + b)_y."""
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    z = np.asarray(x, np.float64) @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return np.sign((p - np.eye(K)[np.asarray(y)]) @ w.T)


def test_fgsm_on_softmax_regression_matches_numpy():
    params, x, y = _softmax_regression()
    eps = 0.1
    x_adv = fgsm(mean_ce, params, x, y, eps, clip=None)
    np.testing.assert_allclose(x_adv - x, eps * _numpy_direction(params, x, y), atol=1e-6)
    # Unclipped: leaves [0, 1] where x is within eps of the border and the sign points outwards.
    assert float(x_adv.min()) < 0.0 or float(x_adv.max()) > 1.0
    # CE is convex in x for a linear model: J(x + d) >= J(x) + g.d = J(x) + eps ||g||_1 > J(x).
    g = jax.grad(mean_ce, argnums=1)(params, x, y)
    assert float(mean_ce(params, x_adv, y)) >= float(mean_ce(params, x, y) + eps * jnp.abs(g).sum()) - 1e-6


def test_fgsm_bounds_and_clipping():
    params, x, y = _softmax_regression(1)
    eps = 0.2
    x_adv = fgsm(mean_ce, params, x, y, eps)
    delta = np.asarray(x_adv - x)
    assert np.abs(delta).max() <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    step = np.asarray(x) + eps * _numpy_direction(params, x, y)
    inside = (step >= 0.0) & (step <= 1.0)
    assert inside.mean() > 0.3 and (~inside).any()
    np.testing.assert_allclose(np.abs(delta[inside]), eps, rtol=1e-5)     # a full step inside
    np.testing.assert_allclose(x_adv, np.clip(step, 0.0, 1.0), atol=1e-6)  # clipped at the border
    x_box = fgsm(mean_ce, params, x, y, eps, clip=(0.1, 0.8))
    assert x_box.min() >= np.float32(0.1) and x_box.max() <= np.float32(0.8)
    np.testing.assert_array_equal(fgsm(mean_ce, params, x, y, 0.0, clip=None), x)


def test_fgsm_zero_gradient_leaves_x():
    params, x, y = _softmax_regression(2)
    params = {"w": params["w"].at[3].set(0.0), "b": params["b"]}  # input 3 does not matter
    x_adv = fgsm(mean_ce, params, x, y, 0.1, clip=None)
    np.testing.assert_array_equal(x_adv[:, 3], x[:, 3])
    assert np.all(np.abs(np.asarray(x_adv - x))[:, [0, 1, 2]] > 0.09)


def test_fgsm_batched_equals_per_example_and_traced_eps():
    params, x, y = _softmax_regression(3)
    batched = fgsm(mean_ce, params, x, y, 0.05)
    looped = jnp.concatenate([fgsm(mean_ce, params, x[i:i + 1], y[i:i + 1], 0.05) for i in range(N)])
    np.testing.assert_allclose(batched, looped, atol=1e-7)
    epsilons = jnp.array([0.0, 0.05, 0.3])
    swept = jax.jit(jax.vmap(lambda e: fgsm(mean_ce, params, x, y, e)))(epsilons)
    for e, x_e in zip([0.0, 0.05, 0.3], swept):
        np.testing.assert_allclose(x_e, fgsm(mean_ce, params, x, y, e), atol=1e-6)


def test_fgsm_increases_the_loss_of_a_cnn():
    model = lenet5(3, input_shape=(12, 12, 1))
    rng = np.random.default_rng(7)
    params = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), jnp.float32),
                          jax.eval_shape(model.init, jax.random.PRNGKey(0)))
    x = jnp.asarray(rng.uniform(size=(8, 12, 12, 1)), jnp.float32)
    y = jnp.arange(8) % 3
    loss = lambda p, x, y: jnp.mean(losses.softmax_cross_entropy(model.apply(p, x), y))  # noqa: E731
    x_adv = jax.jit(lambda x: fgsm(loss, params, x, y, 0.02))(x)
    assert float(jnp.abs(x_adv - x).max()) <= 0.02 + 1e-6
    assert float(loss(params, x_adv, y)) > float(loss(params, x, y))


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf"), "0.1", [0.1, 0.2], True])
def test_bad_eps_raises(eps):
    params, x, y = _softmax_regression()
    with pytest.raises(ValueError, match="eps"):
        fgsm(mean_ce, params, x, y, eps)
    with pytest.raises(ValueError, match="eps"):
        adversarial_loss(mean_ce, eps=eps)


def test_bad_clip_alpha_and_input_raise():
    params, x, y = _softmax_regression()
    for clip in [(1.0, 0.0), (0.0,), "ab"]:
        with pytest.raises(ValueError, match="clip"):
            fgsm(mean_ce, params, x, y, 0.1, clip=clip)
    for alpha in [-0.1, 1.5]:
        with pytest.raises(ValueError, match="alpha"):
            adversarial_loss(mean_ce, alpha, eps=0.1)
        with pytest.raises(ValueError, match="alpha"):
            adversarial_classifier(apply, eps=0.1, alpha=alpha)
    with pytest.raises(ValueError, match="floating"):
        fgsm(mean_ce, params, jnp.zeros((N, D), jnp.int32), y, 0.1)


@pytest.mark.parametrize("alpha,clip", [(0.5, (0.0, 1.0)), (0.3, None), (1.0, None), (0.0, (0.0, 1.0))])
def test_adversarial_loss_value_and_gradients(alpha, clip):
    params, x, y = _softmax_regression(4)
    eps = 0.1
    objective = adversarial_loss(mean_ce, alpha, eps=eps, clip=clip)
    x_adv = fgsm(mean_ce, params, x, y, eps, clip=clip)  # a constant from here on
    want = alpha * mean_ce(params, x, y) + (1 - alpha) * mean_ce(params, x_adv, y)
    np.testing.assert_allclose(objective(params, x, y), want, rtol=1e-6)
    # d/dparams: the two terms' gradients, x_adv held fixed.
    manual = lambda p: alpha * mean_ce(p, x, y) + (1 - alpha) * mean_ce(p, x_adv, y)  # noqa: E731
    got = jax.grad(objective)(params, x, y)
    for name in ("w", "b"):
        np.testing.assert_allclose(got[name], jax.grad(manual)(params)[name], rtol=1e-5, atol=1e-7)
    # d/dx: x_adv is a constant, so only the clean term depends on x.
    np.testing.assert_allclose(jax.grad(objective, argnums=1)(params, x, y),
                               alpha * jax.grad(mean_ce, argnums=1)(params, x, y), rtol=1e-5, atol=1e-8)


def test_adversarial_classifier_loss_and_eval():
    params, x, y = _softmax_regression(5)
    eps = 0.1
    loss_fn, eval_fn = adversarial_classifier(apply, eps=eps, alpha=0.25, l2=0.01)
    value, aux = loss_fn(params, (x, y), jax.random.PRNGKey(0))
    l2 = 0.01 * (jnp.sum(params["w"] ** 2))
    x_adv = fgsm(mean_ce, params, x, y, eps)
    np.testing.assert_allclose(aux["clean_loss"], mean_ce(params, x, y) + l2, rtol=1e-6)
    np.testing.assert_allclose(aux["adversarial_loss"], mean_ce(params, x_adv, y) + l2, rtol=1e-6)
    np.testing.assert_allclose(value, 0.25 * aux["clean_loss"] + 0.75 * aux["adversarial_loss"], rtol=1e-6)
    metrics = eval_fn(params, (x, y))
    assert set(metrics) == {"loss", "accuracy", "error", "adversarial_loss", "adversarial_accuracy",
                            "adversarial_error"}
    want = (jnp.argmax(apply(params, x_adv), -1) == y).astype(jnp.float32)
    np.testing.assert_array_equal(metrics["adversarial_accuracy"], want)
    np.testing.assert_allclose(metrics["adversarial_loss"],
                               losses.softmax_cross_entropy(apply(params, x_adv), y), rtol=1e-6)
    assert float(metrics["adversarial_loss"].mean()) > float(metrics["loss"].mean())


def test_adversarial_training_with_dropout_through_the_trainer():
    model = lenet5(2, input_shape=(12, 12, 1), dropout_rate=0.2)
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=64).astype(np.int32)
    x = np.clip(rng.uniform(0, 0.5, size=(64, 12, 12, 1)) + 0.5 * y[:, None, None, None], 0, 1)
    data = (x.astype(np.float32), y)
    loss_fn, eval_fn = adversarial_classifier(model.apply, eps=0.05)
    # Same key: the same dropout masks, so the loss is a deterministic function of (params, key).
    params = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), jnp.float32),
                          jax.eval_shape(model.init, jax.random.PRNGKey(0)))
    batch = (jnp.asarray(data[0][:8]), jnp.asarray(y[:8]))
    jitted = jax.jit(loss_fn)
    first = jitted(params, batch, jax.random.PRNGKey(1))[0]
    assert float(first) == float(jitted(params, batch, jax.random.PRNGKey(1))[0])
    assert float(first) != float(jitted(params, batch, jax.random.PRNGKey(2))[0])
    with jax.numpy_dtype_promotion("standard"):  # optax's updates rely on standard promotion
        result = fit(model.init, loss_fn, optax.adam(3e-3), data,
                     TrainConfig(epochs=3, batch_size=16, steps_per_call=4, progress=False),
                     eval_fn=eval_fn, eval_data=data)
    final = result.final
    assert {"adversarial_accuracy", "adversarial_loss", "accuracy"} <= set(final)
    assert np.isfinite(final["adversarial_loss"]) and final["accuracy"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
