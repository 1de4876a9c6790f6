"""Schedules against their closed forms; clipping, momentum and weight decay against hand updates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels.train import OptimizerConfig, cyclic, inverse_time, learning_rate_schedule, make_optimizer


def test_cyclic_triangular_closed_form():
    schedule = cyclic(0.1, 1.0, step_size=4)
    expected = [0.1, 0.325, 0.55, 0.775, 1.0, 0.775, 0.55, 0.325, 0.1, 0.325]
    np.testing.assert_allclose([schedule(t) for t in range(10)], expected, rtol=1e-6)


def test_annealing_schedules():
    np.testing.assert_allclose(inverse_time(0.5, 10.0)(30), 0.5 / 4, rtol=1e-6)
    cos = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, schedule="cosine"), 100)
    np.testing.assert_allclose([cos(0), cos(50), cos(100)], [1.0, 0.5, 0.0], atol=1e-6)
    exp = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, schedule="exponential",
                                                 decay_steps=10, decay_rate=0.5), 100)
    np.testing.assert_allclose(exp(15), 0.5 ** 1.5, rtol=1e-6)
    step = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, schedule="step",
                                                  decay_steps=10, decay_rate=0.5), 100)
    np.testing.assert_allclose([step(9), step(10), step(25)], [1.0, 0.5, 0.25], rtol=1e-6)
    sgdr = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, schedule="sgdr",
                                                  decay_steps=10), 30)
    np.testing.assert_allclose([sgdr(0), sgdr(5), sgdr(10)], [1.0, 0.5, 1.0], atol=1e-6)
    warm = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, schedule="warmup_cosine",
                                                  warmup_steps=10), 110)
    np.testing.assert_allclose([warm(0), warm(5), warm(10), warm(110)], [0, 0.5, 1.0, 0.0],
                               atol=1e-6)


def _one_update(config, grads, params, steps=1):
    opt = make_optimizer(config, 100)
    state = opt.init(params)
    for _ in range(steps):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_clip_by_global_norm_is_pascanu_algorithm_1():
    params = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    grads = {"w": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # norm 5
    out = _one_update(OptimizerConfig("sgd", 1.0, clip_norm=1.0), grads, params)
    np.testing.assert_allclose(out["w"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [-0.8], rtol=1e-6)
    small = _one_update(OptimizerConfig("sgd", 1.0, clip_norm=10.0), grads, params)
    np.testing.assert_allclose(small["b"], [-4.0], rtol=1e-6)  # under the threshold: unchanged


def test_momentum_and_weight_decay_match_hand_updates():
    w0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    got = _one_update(OptimizerConfig("momentum", 0.1, momentum=0.9), {"w": jnp.asarray(g)},
                      {"w": jnp.asarray(w0)}, steps=3)
    w, v = w0.copy(), np.zeros(2)
    for _ in range(3):  # v <- mu v + g ; w <- w - lr v
        v = 0.9 * v + g
        w = w - 0.1 * v
    np.testing.assert_allclose(got["w"], w, rtol=1e-6)
    decayed = _one_update(OptimizerConfig("sgd", 0.1, weight_decay=0.01), {"w": jnp.asarray(g)},
                          {"w": jnp.asarray(w0)})
    np.testing.assert_allclose(decayed["w"], w0 - 0.1 * (g + 0.01 * w0), rtol=1e-6)


def test_invalid_optimizer_config():
    with pytest.raises(ValueError, match="adagradish"):
        OptimizerConfig(name="adagradish")
    with pytest.raises(ValueError, match="wiggly"):
        OptimizerConfig(schedule="wiggly")
    with pytest.raises(ValueError, match="learning_rate"):
        OptimizerConfig(learning_rate=-1.0)


# A quadratic bowl f(w) = 1/2 sum_i a_i (w_i - w*_i)^2 with its minimum at w*, gradient a (w - w*).
CURVATURE = np.array([1.0, 4.0, 0.5], np.float32)
MINIMUM = np.array([0.5, -1.0, 2.0], np.float32)


def _numpy_steps(name, lr, w, steps, *, momentum=0.9, weight_decay=0.0):
    """The update rules written out, on the quadratic's gradient at each iterate (float64)."""
    w = w.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = CURVATURE * (w - MINIMUM)
        if name == "sgd":                        # w <- w - lr (g + lambda w)
            w = w - lr * (g + weight_decay * w)
        elif name == "momentum":                 # v <- mu v + g; w <- w - lr v
            m = momentum * m + g
            w = w - lr * m
        elif name == "nesterov":                 # v <- mu v + g; w <- w - lr (g + mu v)
            m = momentum * m + g
            w = w - lr * (g + momentum * m)
        elif name == "rmsprop":                  # Tieleman & Hinton 2012, decay 0.9
            v = 0.9 * v + 0.1 * g ** 2
            w = w - lr * g / np.sqrt(v + 1e-8)
        else:                                    # Adam (Kingma & Ba 2015, Algorithm 1);
            m = 0.9 * m + 0.1 * g                # AdamW adds lambda w to the step
            v = 0.999 * v + 0.001 * g ** 2
            m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
            w = w - lr * (m_hat / (np.sqrt(v_hat) + 1e-8) + weight_decay * w)
    return w


@pytest.mark.parametrize("name, weight_decay", [("sgd", 0.0), ("sgd", 0.1), ("momentum", 0.0),
                                                ("nesterov", 0.0), ("adam", 0.0), ("adamw", 0.1),
                                                ("rmsprop", 0.0)])
def test_each_optimizer_matches_its_update_rule_written_in_numpy(name, weight_decay):
    config = OptimizerConfig(name, 0.05, weight_decay=weight_decay)
    opt = make_optimizer(config, 100)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    for _ in range(4):
        grads = {"w": jnp.asarray(CURVATURE) * (params["w"] - jnp.asarray(MINIMUM))}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    expected = _numpy_steps(name, 0.05, np.ones(3, np.float32), 4, weight_decay=weight_decay)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, 1.0)  # the steps moved the weights


def test_every_combination_converges_to_the_quadratic_minimum():
    """Each optimiser with each schedule (and clipping on), run by the jitted train step, ends at
    the closed-form minimum w* of the quadratic (it starts 2 away from it)."""
    from dlmodels.train import init_state, make_train_step

    loss_fn = lambda p, b, k: (0.5 * jnp.sum(jnp.asarray(CURVATURE) * (p["w"] - b) ** 2), {})
    for name in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"):
        for schedule in ("constant", "cyclic", "inverse_time"):
            # RMSprop's steps are about lr in size whatever the gradient: a smaller rate
            lr = 0.05 if name == "rmsprop" else 0.2
            opt = make_optimizer(OptimizerConfig(name, lr, schedule=schedule, clip_norm=5.0), 300)
            state = init_state(lambda k: {"w": jnp.ones(3)}, opt, 0)
            step = jax.jit(make_train_step(loss_fn, opt))
            for _ in range(300):
                state, m = step(state, jnp.asarray(MINIMUM))
            np.testing.assert_allclose(state.params["w"], MINIMUM, atol=5e-3,
                                       err_msg=f"{name}, {schedule}")
            assert float(m.loss) < 1e-4, (name, schedule)
