"""The training engine: determinism, resume, vmapped seeds, non-finite guards, checkpoints."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels import data
from dlmodels.mlp import mlp
from dlmodels.train import (Checkpointer, CheckpointError, NonFiniteError, TrainConfig, fit,
                            init_state, make_evaluate, make_train_step, set_hyperparams)
from dlmodels.train.objectives import classifier

MODEL = mlp((64, 32, 10), dropout_rate=0.2)  # dropout: the per-step keys matter
LOSS_FN, EVAL_FN = classifier(MODEL.apply)
TRAIN = data.load("digits", "train")
VALID = data.load("digits", "valid")
CONFIG = TrainConfig(epochs=3, batch_size=64, steps_per_call=7)  # 19 steps an epoch


def _fit(config=CONFIG, optimizer=None, **kw):
    return fit(MODEL.init, LOSS_FN, optimizer or optax.adam(3e-3), TRAIN, config, **kw)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def dataclasses_replace(config, **kw):
    return dataclasses.replace(config, **kw)


def test_same_seed_same_result_and_learning():
    a, b = _fit(eval_fn=EVAL_FN, eval_data=VALID), _fit(eval_fn=EVAL_FN, eval_data=VALID)
    _assert_trees_equal(a.state, b.state)
    assert a.history == [dict(h, seconds=a.history[i]["seconds"]) for i, h in enumerate(b.history)]
    c = _fit(dataclasses_replace(CONFIG, seed=1))
    assert not np.array_equal(c.state.params["layer_0"]["w"], a.state.params["layer_0"]["w"])
    assert a.final["accuracy"] > 0.7 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def test_step_matches_hand_written_sgd_update():
    optimizer = optax.sgd(0.1)
    state = init_state(MODEL.init, optimizer, 0)
    batch = (jnp.asarray(TRAIN[0][:16]), jnp.asarray(TRAIN[1][:16]))
    new, metrics = jax.jit(make_train_step(LOSS_FN, optimizer))(state, batch)
    key = jax.random.fold_in(state.key, 0)
    grads = jax.grad(lambda p: LOSS_FN(p, batch, key)[0])(state.params)
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, grads)
    for x, y in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert int(new.step) == 1 and bool(metrics.finite)


def _without_seconds(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_after_max_steps_is_bitwise_identical_history_included(tmp_path):
    straight = _fit(run_dir=tmp_path / "straight", eval_fn=EVAL_FN, eval_data=VALID)
    total = straight.history[-1]["step"]
    assert total == 57 and [h["epoch"] for h in straight.history] == [1, 2, 3]
    half = dataclasses_replace(CONFIG, max_steps=total // 2)     # step 28: inside epoch 2
    stopped = _fit(half, run_dir=tmp_path / "resumed", eval_fn=EVAL_FN, eval_data=VALID)
    assert Checkpointer(tmp_path / "resumed" / "checkpoints").steps() == [total // 2]
    assert stopped.history[-1]["partial"] and stopped.history[-1]["step"] == 28
    resumed = _fit(run_dir=tmp_path / "resumed", resume=True, eval_fn=EVAL_FN, eval_data=VALID)
    assert int(resumed.state.step) == total
    _assert_trees_equal(straight.state, resumed.state)   # params, opt_state, step, key
    # the history of the uninterrupted run, the mean loss of the interrupted epoch 2 included
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)
    assert resumed.final == straight.final
    for run in ("straight", "resumed"):
        assert _without_seconds(_read_jsonl(tmp_path / run / "metrics.jsonl")) == \
            _without_seconds(straight.history)
    # the checkpoint is at the last step: returns at once, the same history and evaluation
    again = _fit(run_dir=tmp_path / "resumed", resume=True, eval_fn=EVAL_FN, eval_data=VALID)
    assert again.history == resumed.history and again.final == straight.final


def test_resume_after_a_kill_with_torn_metrics_is_bitwise_identical(tmp_path):
    config = dataclasses_replace(CONFIG, checkpoint_every=10, keep_checkpoints=10)
    straight = _fit(config, run_dir=tmp_path / "straight")
    killed = tmp_path / "killed"
    _fit(config, run_dir=killed)
    # as if killed at step 45: checkpoints after 40 never written, epoch 3's line not written,
    # and a half-written line left behind
    for step in (50, 57):
        shutil.rmtree(killed / "checkpoints" / str(step))
    lines = (killed / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 3
    (killed / "metrics.jsonl").write_text("".join(lines[:2]) + lines[2][:17])
    resumed = _fit(config, run_dir=killed, resume=True)
    _assert_trees_equal(straight.state, resumed.state)
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)
    assert _without_seconds(_read_jsonl(killed / "metrics.jsonl")) == \
        _without_seconds(straight.history)
    # complete lines written after the restored checkpoint (steps 38, 57 > 30) are dropped, redone
    for step in (40, 50, 57):
        shutil.rmtree(killed / "checkpoints" / str(step))
    assert len(_read_jsonl(killed / "metrics.jsonl")) == 3
    again = _fit(config, run_dir=killed, resume=True)
    assert _without_seconds(again.history) == _without_seconds(straight.history)
    _assert_trees_equal(straight.state, again.state)


def test_fresh_run_refuses_directory_with_checkpoints(tmp_path):
    _fit(dataclasses_replace(CONFIG, epochs=1), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="resume=True"):
        _fit(dataclasses_replace(CONFIG, epochs=1), run_dir=tmp_path)


def test_vmapped_seeds_equal_separate_runs():
    seeds = [3, 0, 7]
    stacked = _fit(seeds=seeds, eval_fn=EVAL_FN, eval_data=VALID)
    for k, seed in enumerate(seeds):
        single = _fit(dataclasses_replace(CONFIG, seed=seed), eval_fn=EVAL_FN, eval_data=VALID)
        member = jax.tree.map(lambda a: a[k], stacked.state)
        for x, y in zip(jax.tree.leaves(member.params), jax.tree.leaves(single.state.params)):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(stacked.final["accuracy"][k], single.final["accuracy"],
                                   atol=1e-6)
    entry = stacked.history[-1]
    np.testing.assert_allclose(entry["eval_accuracy_mean"], np.mean(entry["eval_accuracy"]))


def test_vmapped_learning_rates_equal_separate_runs():
    rates = [1e-3, 1e-2]
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    config = dataclasses_replace(CONFIG, epochs=1)
    stacked = _fit(config, optimizer, hyperparams={"learning_rate": rates})
    for k, rate in enumerate(rates):
        single = _fit(config, optax.sgd(rate))
        for x, y in zip(jax.tree.leaves(jax.tree.map(lambda a: a[k], stacked.state.params)),
                        jax.tree.leaves(single.state.params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="inject_hyperparams"):
        set_hyperparams(optax.adam(1e-3).init({"w": jnp.zeros(2)}), learning_rate=[1.0])


def test_nonfinite_loss_raises_naming_the_step():
    # poison every example with label 9: the first batch holding one fails
    x, y = TRAIN
    poison = (y == 9).astype(np.float32)

    def loss_fn(params, batch, key):
        xb, yb, pb = batch
        value, aux = LOSS_FN(params, (xb, yb), key)
        return value + jnp.where(jnp.any(pb > 0), jnp.nan, 0.0), aux

    from dlmodels.data import batch_indices

    first_bad = next(i for i, idx in enumerate(batch_indices(jax.random.PRNGKey(0), len(y), 64))
                     if (y[idx] == 9).any())
    with pytest.raises(NonFiniteError, match=f"step {first_bad}") as info:
        fit(MODEL.init, loss_fn, optax.adam(1e-3), (x, y, poison), CONFIG)
    assert info.value.step == first_bad
    assert int(info.value.state.step) == first_bad  # kept at the last finite state
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree.leaves(info.value.state.params))

    skipped = fit(MODEL.init, loss_fn, optax.adam(1e-3), (x, y, poison),
                  dataclasses_replace(CONFIG, on_nonfinite="skip"))
    assert skipped.history[-1]["skipped_steps"] > 0
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree.leaves(skipped.state.params))


def test_corrupted_checkpoint_is_refused_and_last_good_kept(tmp_path):
    config = dataclasses_replace(CONFIG, epochs=2, checkpoint_every=19)
    _fit(config, run_dir=tmp_path)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.steps() == [19, 38]
    good = tmp_path / "checkpoints" / "19"
    before = {p: p.read_bytes() for p in good.rglob("*") if p.is_file()}
    # damage every data file of the newest checkpoint
    for p in (tmp_path / "checkpoints" / "38" / "state").rglob("*"):
        if p.is_file():
            p.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="could not be read"):
        _fit(dataclasses_replace(config, epochs=3), run_dir=tmp_path, resume=True)
    assert {p: p.read_bytes() for p in good.rglob("*") if p.is_file()} == before
    target = init_state(MODEL.init, optax.adam(3e-3), 0)
    state, saved = Checkpointer(tmp_path / "checkpoints").restore(target, step=19)
    assert int(state.step) == 19 and saved["train_config"]["epochs"] == 2


def test_a_half_removed_old_checkpoint_is_not_listed_and_resume_goes_on(tmp_path):
    """A kill while orbax removes a checkpoint beyond ``keep`` (a recursive delete, ``config``
    first) leaves ``<step>/state`` alone: the Checkpointer does not count it, resume continues from
    the newest complete one and ends where an uninterrupted run does, and asking for that step
    by name is a clear error; the leftover stays on disk."""
    config = dataclasses_replace(CONFIG, epochs=2, checkpoint_every=19)
    _fit(config, run_dir=tmp_path)
    shutil.rmtree(tmp_path / "checkpoints" / "19" / "config")
    (tmp_path / "checkpoints" / "19" / "commit_success.txt").unlink(missing_ok=True)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.steps() == [38]
    target = init_state(MODEL.init, optax.adam(3e-3), 0)
    with pytest.raises(CheckpointError, match="no checkpoint for step 19"):
        ckpt.restore(target, step=19)
    assert (tmp_path / "checkpoints" / "19" / "state").is_dir()
    resumed = _fit(dataclasses_replace(config, epochs=3), run_dir=tmp_path, resume=True)
    straight = _fit(dataclasses_replace(config, epochs=3), run_dir=tmp_path / "straight")
    assert int(resumed.state.step) == int(straight.state.step)
    for a, b in zip(jax.tree.leaves(resumed.state.params), jax.tree.leaves(straight.state.params)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    fitted = _fit(dataclasses_replace(CONFIG, epochs=1), run_dir=tmp_path)
    params, saved = Checkpointer(tmp_path / "checkpoints").restore_params()
    _assert_trees_equal(params, fitted.state.params)  # params alone, no optimizer needed
    assert saved["train_config"]["epochs"] == 1
    other = init_state(mlp((64, 16, 10)).init, optax.adam(3e-3), 0)
    with pytest.raises(CheckpointError, match="does not match"):
        Checkpointer(tmp_path / "checkpoints").restore(other)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty").restore(other)


def test_no_recompilation_across_epochs():
    traces = []

    def counting_loss(params, batch, key):
        traces.append(1)
        return LOSS_FN(params, batch, key)

    fit(MODEL.init, counting_loss, optax.adam(1e-3), TRAIN, dataclasses_replace(CONFIG, epochs=4))
    # 19 steps an epoch in calls of 7: two scan lengths (7 and 5), each traced once
    assert len(traces) == 2


def test_evaluate_masks_the_padded_batch():
    params = MODEL.init(jax.random.PRNGKey(0))
    result = make_evaluate(EVAL_FN, 64)(params, VALID)  # 180 = 2 * 64 + 52
    logits = MODEL.apply(params, jnp.asarray(VALID[0]))
    np.testing.assert_allclose(result["accuracy"],
                               np.mean(np.argmax(logits, -1) == VALID[1]), atol=1e-6)


def test_nonfinite_data_is_refused():
    x = TRAIN[0].copy()
    x[5, 3] = np.nan
    with pytest.raises(ValueError, match=r"train_data\[0\] holds 1 NaN"):
        fit(MODEL.init, LOSS_FN, optax.sgd(0.1), (x, TRAIN[1]), CONFIG)


def test_invalid_config():
    with pytest.raises(ValueError, match="on_nonfinite"):
        TrainConfig(on_nonfinite="ignore")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="larger than the training set"):
        _fit(dataclasses_replace(CONFIG, batch_size=5000))


@pytest.mark.parametrize("vmapped", [False, True])
def test_one_step_per_call_equals_the_scanned_steps(vmapped):
    """steps_per_call=1 takes the loop-free path (train/step.py); it must do the same updates."""
    from dlmodels.train import init_state, init_states, make_train_steps, make_vmapped_train_steps

    model = mlp((4, 8, 3))
    loss_fn, _ = classifier(model.apply, train_mode=False)
    optimizer = optax.sgd(0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    batches = (jnp.asarray(rng.normal(size=(32, 4)), jnp.float32), jnp.asarray(rng.integers(0, 3, 32)))
    idx = jnp.arange(24).reshape(3, 8)
    make = make_vmapped_train_steps if vmapped else make_train_steps
    state = init_states(model.init, optimizer, [0, 1]) if vmapped else init_state(model.init, optimizer, 0)
    run = jax.jit(make(loss_fn, optimizer))
    scanned, metrics = run(state, batches, idx)
    one = state
    losses = []
    for i in range(3):
        one, m = run(one, batches, idx[i:i + 1])
        assert m.loss.shape == ((2, 1) if vmapped else (1,))
        losses.append(m.loss)
    np.testing.assert_allclose(jnp.concatenate(losses, -1), metrics.loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(scanned.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_shuffle_false_takes_batches_in_order():
    """With shuffle=False the loss_fn sees batch k = examples kB..(k+1)B-1, every epoch."""
    import optax
    from dlmodels.train import TrainConfig, fit
    from dlmodels.train.estimators import GradientEstimator
    x = np.arange(12, dtype=np.float32)[:, None]

    def estimate(key, params, seen, batch):
        seen = jnp.concatenate([seen[1:], batch[:, 0][None]], 0)  # keep the last 6 batches
        return jax.tree.map(jnp.zeros_like, params), seen, jnp.float32(0), {}

    est = GradientEstimator(lambda key, params, data: jnp.zeros((6, 4)), estimate)
    res = fit(lambda k: {"w": jnp.zeros(())}, est, optax.sgd(0.1), x,
              TrainConfig(epochs=2, batch_size=4, shuffle=False, progress=False))
    np.testing.assert_array_equal(np.asarray(res.state.model_state),
                                  np.tile(np.arange(12).reshape(3, 4), (2, 1)))


@pytest.mark.parametrize("poison", [np.inf, np.nan, 1e20])
def test_a_nonfinite_gradient_with_a_finite_loss_is_skipped(poison):
    """``loss = sum(w * x) + inject(b, c)``, where ``inject`` is 0 with gradient ``c``: the loss
    stays finite while one batch's dloss/db is inf, nan or 1e20 (finite, but its square overflows
    float32: the guard reads the global gradient norm, and skips it too). That step leaves params
    and Adam's moments as they were: w follows a numpy Adam over the other steps only."""
    from dlmodels.train.state import create

    @jax.custom_vjp
    def inject(b, c):
        return b * 0.0

    inject.defvjp(lambda b, c: (b * 0.0, c), lambda c, g: (g * c, jnp.zeros_like(c)))

    def loss_fn(params, batch, key):
        return jnp.sum(params["w"] * batch[0]) + inject(params["b"], batch[1]), {}

    optimizer = optax.adam(0.1)
    state = create({"w": jnp.ones(3), "b": jnp.zeros(())}, optimizer, jax.random.PRNGKey(0))
    step = jax.jit(make_train_step(loss_fn, optimizer))
    x = np.array([1.0, 2.0, 3.0], np.float32)
    w, m, v, t = np.ones(3), np.zeros(3), np.zeros(3), 0
    for c in [1.0, poison, 1.0]:
        state, metrics = step(state, (jnp.asarray(x), jnp.float32(c)))
        assert np.isfinite(float(metrics.loss))
        assert bool(metrics.finite) == (c == 1.0)
        if c == 1.0:                                              # numpy Adam, dloss/dw = x
            t += 1
            m = 0.9 * m + 0.1 * x
            v = 0.999 * v + 0.001 * x ** 2
            w = w - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        np.testing.assert_allclose(state.params["w"], w, rtol=1e-5)
        assert np.isfinite(float(state.params["b"]))
        assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(state.opt_state))
    assert int(state.step) == 3 and int(state.opt_state[0].count) == 2


def test_convolutional_seeds_run_unrolled_on_the_cpu_and_equal_single_runs():
    """``make_vmapped_train_steps(members="auto")`` on the CPU runs a step that contains a
    convolution as K members one after another (``has_convolution``), an MLP's step vmapped. Each
    member of either program, and of the forced "vmap" / "unroll" modes, makes the updates of its
    single run (``make_train_steps``), including a member halted at a non-finite step (lr = inf)
    while the other goes on (a one-channel convolution is im2col on the CPU, and still counts)."""
    from dlmodels.cnn import convnet
    from dlmodels.train import (init_state, init_states, make_train_step, make_train_steps,
                                make_vmapped_train_steps)
    from dlmodels.train.state import set_hyperparams
    from dlmodels.train.step import has_convolution

    rng = np.random.default_rng(3)
    data = (jnp.asarray(rng.uniform(size=(24, 8, 8, 1)), jnp.float32),
            jnp.asarray(rng.integers(0, 3, 24)))
    idx = jnp.arange(24).reshape(3, 8)
    conv = convnet((2,), 3, input_shape=(8, 8, 1), hidden=5)
    dense = mlp((64, 5, 3))
    flat = lambda apply: (lambda p, x, **kw: apply(p, x.reshape(x.shape[0], -1), **kw))  # noqa: E731
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    batch = jax.tree.map(lambda a: a[:8], data)
    for model, apply, expect_conv in ((conv, conv.apply, True), (dense, flat(dense.apply), False)):
        loss_fn, _ = classifier(apply, train_mode=False)
        one = init_state(model.init, optimizer, 0)
        assert has_convolution(make_train_step(loss_fn, optimizer), one, batch) == expect_conv
        states = init_states(model.init, optimizer, [0, 1])
        # member 1 diverges: lr = inf makes its params non-finite at step 1, so step 2 halts it
        states = states._replace(opt_state=set_hyperparams(states.opt_state,
                                                           learning_rate=jnp.array([0.1, jnp.inf])))
        singles = []
        for k, lr in enumerate((0.1, jnp.inf)):
            s = init_state(model.init, optimizer, k)
            s = s._replace(opt_state=set_hyperparams(s.opt_state, learning_rate=jnp.asarray(lr)))
            singles.append(jax.jit(make_train_steps(loss_fn, optimizer))(s, data, idx))
        for members in ("auto", "vmap", "unroll"):
            got, metrics = jax.jit(make_vmapped_train_steps(loss_fn, optimizer, members=members))(
                states, data, idx)
            np.testing.assert_array_equal(np.asarray(metrics.finite), [[True] * 3, [True, False, False]])
            for k, (single, single_metrics) in enumerate(singles):
                assert int(got.step[k]) == int(single.step)
                np.testing.assert_allclose(metrics.loss[k][:1], single_metrics.loss[:1], rtol=1e-5)
                for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[k], got.params)),
                                jax.tree.leaves(single.params)):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="members"):
        make_vmapped_train_steps(loss_fn, optimizer, members="loop")


@pytest.mark.parametrize("vmapped", [False, True])
def test_halted_steps_report_not_finite_and_leave_the_state_frozen(vmapped):
    """With the non-finite halt, ``finite`` is True up to the first non-finite step and False from
    it on, also for later steps whose batches are finite (they make no update); the state after
    the call equals the state after the last finite step, computed separately."""
    from dlmodels.train import init_state, init_states, make_train_steps, make_vmapped_train_steps

    model = mlp((4, 8, 3))
    loss_fn, _ = classifier(model.apply, train_mode=False)
    optimizer = optax.sgd(0.1)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    x[16] = np.nan                      # in step 2's batch only
    data = (jnp.asarray(x), jnp.asarray(rng.integers(0, 3, 32)))
    idx = jnp.arange(32).reshape(4, 8)
    make = make_vmapped_train_steps if vmapped else make_train_steps
    state = init_states(model.init, optimizer, [0, 1]) if vmapped else init_state(model.init, optimizer, 0)
    got, metrics = jax.jit(make(loss_fn, optimizer))(state, data, idx)
    expected = [True, True, False, False]
    np.testing.assert_array_equal(np.asarray(metrics.finite), [expected] * 2 if vmapped else expected)
    good, _ = jax.jit(make(loss_fn, optimizer))(state, data, idx[:2])
    assert np.all(np.asarray(got.step) == 2)
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(good.params)):
        np.testing.assert_array_equal(a, b)
