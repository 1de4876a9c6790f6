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
    with pytest.raises(ValueError, match="valid"):
        OptimizerConfig(name="adagradish")
    with pytest.raises(ValueError, match="valid"):
        OptimizerConfig(schedule="wiggly")
    with pytest.raises(ValueError, match="learning_rate"):
        OptimizerConfig(learning_rate=-1.0)


def test_every_combination_trains_in_the_step():
    from dlmodels.train import init_state, make_train_step

    loss_fn = lambda p, b, k: (jnp.sum((p["w"] - b) ** 2), {})
    for name in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"):
        for schedule in ("constant", "cyclic", "inverse_time"):
            opt = make_optimizer(OptimizerConfig(name, 0.05, schedule=schedule, clip_norm=5.0), 50)
            state = init_state(lambda k: {"w": jnp.ones(3)}, opt, 0)
            step = jax.jit(make_train_step(loss_fn, opt))
            for _ in range(50):
                state, m = step(state, jnp.zeros(3))
            assert float(m.loss) < 3.0, (name, schedule)
