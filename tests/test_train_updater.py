"""The trainer's third objective, ``Updater``: a step that makes its own optimizer updates.

References: a numpy loop of the same updates (two SGD steps per training step on least squares,
each on its half of the batch), closed forms for the carried state, and single runs for the
vmapped seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels.train import NonFiniteError, TrainConfig, Updater, fit

N, D, B, LR = 64, 3, 16, 0.1


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
    return x, y


def _init(key):
    return {"w": 0.1 * jax.random.normal(key, (D,)), "b": jnp.zeros(())}


def _loss(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _two_step_updater(optimizer, nan_at_step=None):
    """Two optimizer updates per training step, the first on the first half of the batch and the
    second on the other half (as a GAN's k discriminator updates use k slices); the carried state
    counts the updates made."""

    def init(key, params, data):
        return {"updates": jnp.zeros((), jnp.int32)}

    def update(key, params, opt_state, model_state, batch):
        x, y = batch
        half = x.shape[0] // 2
        for part in (slice(0, half), slice(half, None)):
            loss, grads = jax.value_and_grad(_loss)(params, x[part], y[part])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        if nan_at_step is not None:
            loss = jnp.where(model_state["updates"] == 2 * nan_at_step, jnp.nan, loss)
        return params, opt_state, {"updates": model_state["updates"] + 2}, loss, {}

    return Updater(init, update, export=lambda p, s: {"params": p, "updates": s["updates"]})


def _numpy_reference(params, x, y, order, steps):
    w, b = np.asarray(params["w"], np.float64), float(params["b"])
    for s in range(steps):
        idx = order[s]
        for part in (idx[:B // 2], idx[B // 2:]):
            xp, yp = x[part].astype(np.float64), y[part].astype(np.float64)
            r = xp @ w + b - yp
            gw, gb = 2 * xp.T @ r / len(part), 2 * r.mean()
            w, b = w - LR * gw, b - LR * gb
    return w, b


def _order(config, steps):
    from dlmodels.data.batching import batch_indices
    per_epoch = N // config.batch_size
    return np.concatenate([np.asarray(batch_indices(jax.random.PRNGKey(config.data_seed), N,
                                                    config.batch_size, epoch=e))
                           for e in range(-(-steps // per_epoch))])


def test_updater_makes_its_updates_like_a_numpy_loop():
    x, y = _data()
    config = TrainConfig(epochs=3, batch_size=B, steps_per_call=5, progress=False)
    steps = 3 * (N // B)

    def eval_fn(view, batch):
        bx, by = batch
        return {"mse": (bx @ view["params"]["w"] + view["params"]["b"] - by) ** 2,
                "updates": jnp.broadcast_to(view["updates"], by.shape).astype(jnp.float32)}

    result = fit(_init, _two_step_updater(optax.sgd(LR)), optax.sgd(LR), (x, y), config,
                 eval_fn=eval_fn, eval_data=(x, y))
    key_init, _ = jax.random.split(jax.random.PRNGKey(0))
    w, b = _numpy_reference(_init(key_init), x, y, _order(config, steps), steps)
    np.testing.assert_allclose(result.state.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.state.params["b"], b, rtol=1e-5, atol=1e-6)
    assert int(result.state.model_state["updates"]) == 2 * steps
    assert [h["eval_updates"] for h in result.history] == [2.0 * N // B * (e + 1) for e in range(3)]
    np.testing.assert_allclose(result.final["mse"], np.mean((x @ w + b - y) ** 2), rtol=1e-4)


def test_updater_seeds_equal_single_runs_and_resume_is_exact(tmp_path):
    x, y = _data()
    config = TrainConfig(epochs=2, batch_size=B, steps_per_call=3, progress=False,
                         checkpoint_every=3)
    opt = optax.adam(0.05)
    updater = _two_step_updater(opt)
    both = fit(_init, updater, opt, (x, y), config, seeds=[0, 1])
    for k in (0, 1):
        single = fit(_init, updater, opt, (x, y), TrainConfig(**{**config.__dict__, "seed": k}))
        jax.tree.map(lambda a, b_: np.testing.assert_allclose(a[k], b_, rtol=1e-6, atol=1e-7),
                     both.state.params, single.state.params)
    whole = fit(_init, updater, opt, (x, y), config, run_dir=tmp_path / "whole")
    cut = TrainConfig(**{**config.__dict__, "max_steps": 5})
    fit(_init, updater, opt, (x, y), cut, run_dir=tmp_path / "cut")
    resumed = fit(_init, updater, opt, (x, y), config, run_dir=tmp_path / "cut", resume=True)
    jax.tree.map(lambda a, b_: np.testing.assert_array_equal(a, b_),
                 (whole.state.params, whole.state.opt_state, whole.state.model_state),
                 (resumed.state.params, resumed.state.opt_state, resumed.state.model_state))


def test_updater_non_finite_step_is_dropped_or_raises():
    x, y = _data()
    config = TrainConfig(epochs=1, batch_size=B, steps_per_call=4, progress=False,
                         on_nonfinite="skip")
    updater = _two_step_updater(optax.sgd(LR), nan_at_step=2)
    result = fit(_init, updater, optax.sgd(LR), (x, y), config)
    key_init, _ = jax.random.split(jax.random.PRNGKey(0))
    order = _order(config, 4)
    # step 2 is dropped with its carried state, so the counter stays at 4 and step 3 is
    # non-finite as well: the params are those of steps 0 and 1
    w, b = _numpy_reference(_init(key_init), x, y, order[:2], 2)
    np.testing.assert_allclose(result.state.params["w"], w, rtol=1e-5, atol=1e-6)
    assert result.history[-1]["skipped_steps"] == 2
    assert int(result.state.model_state["updates"]) == 4
    with pytest.raises(NonFiniteError, match="step 2"):
        fit(_init, updater, optax.sgd(LR), (x, y),
            TrainConfig(**{**config.__dict__, "on_nonfinite": "raise"}))
