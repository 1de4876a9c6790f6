"""dlmodels.gan: the adversarial losses, the players, and the GAN step through the trainer.

References: numpy closed forms of the losses and their gradients (Goodfellow et al. 2014, eq. 1
and section 3); the GAN step against a hand-written MLP generator and maxout discriminator
differentiated by ``jax.grad`` with the other player's params as constants, updated by hand with
optax (Algorithm 1); single runs for the vmapped seeds; an uninterrupted run for resume; the
mean of a 1-D Gaussian mixture for learning.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
import optax
import pytest

from dlmodels import gan
from dlmodels.model import Model
from dlmodels.train import TrainConfig, fit
from dlmodels.validation import ShapeError


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- losses ----------------------------------------------------------------------------------

def test_losses_equal_the_value_function_in_numpy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=7).astype(np.float32), rng.normal(size=5).astype(np.float32)
    d_real, d_fake = _sigmoid(real.astype(np.float64)), _sigmoid(fake.astype(np.float64))
    value = np.mean(np.log(d_real)) + np.mean(np.log(1 - d_fake))          # V(D, G), eq. 1
    np.testing.assert_allclose(gan.discriminator_loss(real, fake), -value, rtol=1e-6)
    np.testing.assert_allclose(gan.generator_loss(fake, "minimax"), np.mean(np.log(1 - d_fake)),
                               rtol=1e-6)
    np.testing.assert_allclose(gan.generator_loss(fake, "non_saturating"),
                               -np.mean(np.log(d_fake)), rtol=1e-6)
    # D = 1/2 everywhere: 2 log 2, the value at the equilibrium p_g = p_data (section 4.1)
    np.testing.assert_allclose(gan.discriminator_loss(np.zeros(3, np.float32),
                                                      np.zeros(3, np.float32)), 2 * np.log(2),
                               rtol=1e-6)


def test_losses_are_finite_and_exact_for_confident_logits():
    # log(1 - sigmoid(100)) = -100 - log(1 + e^-100): the naive form gives log(0) = -inf
    big = np.array([100.0, -100.0], np.float32)
    np.testing.assert_allclose(gan.discriminator_loss(big, big),
                               (0.0 + 100.0) / 2 + (100.0 + 0.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(gan.generator_loss(big, "non_saturating"), 50.0, rtol=1e-6)
    np.testing.assert_allclose(gan.generator_loss(big, "minimax"), -50.0, rtol=1e-6)
    grads = jax.grad(lambda f: gan.discriminator_loss(big, f))(big)
    assert np.all(np.isfinite(grads))


def test_minimax_generator_gradient_saturates_and_non_saturating_does_not():
    # D(G(z)) -> 0: d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0, d/dl -log sigmoid(l) = -(1 -
    # sigmoid(l)) -> -1 (per example, over a batch of B: divided by B)
    logits = np.array([-12.0, -8.0, -4.0, 0.0, 3.0], np.float32)
    b, d = len(logits), _sigmoid(logits.astype(np.float64))
    g_minimax = jax.grad(lambda l: gan.generator_loss(l, "minimax"))(logits)
    g_ns = jax.grad(lambda l: gan.generator_loss(l, "non_saturating"))(logits)
    np.testing.assert_allclose(g_minimax, -d / b, rtol=1e-5)
    np.testing.assert_allclose(g_ns, -(1 - d) / b, rtol=1e-5)
    assert abs(g_minimax[0]) * b < 1e-5 and abs(g_ns[0]) * b > 0.99


def test_losses_refuse_bad_input():
    with pytest.raises(ShapeError):
        gan.discriminator_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError):
        gan.generator_loss(np.zeros(3), "wasserstein")


# --- the GAN step against a hand-written reference ------------------------------------------

LATENT, HIDDEN, UNITS, PIECES, DIM = 3, 8, 4, 3, 2


def _hand_generator(p, z):
    """The MLP generator written out: sigmoid(relu(z W0 + b0) W1 + b1)."""
    h = jnp.maximum(z @ p["layer_0"]["w"] + p["layer_0"]["b"][None, :], 0.0)
    return 1.0 / (1.0 + jnp.exp(-(h @ p["layer_1"]["w"] + p["layer_1"]["b"][None, :])))


def _hand_discriminator(p, x):
    """Maxout written out unit by unit: h_i = max_j (x W + b)[i P + j]; logit = h w + b."""
    a = x @ p["layer_0"]["w"] + p["layer_0"]["b"][None, :]
    h = jnp.stack([jnp.max(a[:, i * PIECES:(i + 1) * PIECES], axis=1) for i in range(UNITS)], 1)
    return (h @ p["output"]["w"])[:, 0] + p["output"]["b"][0]


def _hand_d_loss(p_d, x, fake):
    d_real = 1.0 / (1.0 + jnp.exp(-_hand_discriminator(p_d, x)))
    d_fake = 1.0 / (1.0 + jnp.exp(-_hand_discriminator(p_d, fake)))
    return -(jnp.mean(jnp.log(d_real)) + jnp.mean(jnp.log(1.0 - d_fake)))


def _hand_g_loss(p_g, p_d, z, kind):
    d_fake = 1.0 / (1.0 + jnp.exp(-_hand_discriminator(p_d, _hand_generator(p_g, z))))
    return jnp.mean(jnp.log(1.0 - d_fake)) if kind == "minimax" else -jnp.mean(jnp.log(d_fake))


def _tiny_mlp_gan(**kw):
    generator = gan.mlp_generator(LATENT, (HIDDEN,), image_shape=(DIM,), w_init="glorot_uniform")
    discriminator = gan.mlp_discriminator((UNITS,), pieces=PIECES, input_dropout=0.0,
                                          hidden_dropout=0.0, image_shape=(DIM,),
                                          w_init="glorot_uniform")
    return generator, discriminator


@pytest.mark.parametrize("k,kind", [(1, "minimax"), (2, "non_saturating")])
def test_step_equals_each_players_autodiff_with_the_other_fixed(k, kind):
    m = 6
    generator, discriminator = _tiny_mlp_gan()
    d_opt, g_opt = optax.sgd(0.3, momentum=0.5), optax.sgd(0.2)
    updater, optimizer, init_fn = gan.training(generator, discriminator, latent_dim=LATENT,
                                               d_optimizer=d_opt, g_optimizer=g_opt, k=k,
                                               generator_loss=kind)
    params = init_fn(jax.random.PRNGKey(1))
    opt_state = optimizer.init(params)
    model_state = updater.init(jax.random.PRNGKey(2), params, None)
    x = jax.random.uniform(jax.random.PRNGKey(3), (k * m, DIM))
    key = jax.random.PRNGKey(4)
    new_params, new_opt, _, loss, aux = jax.jit(updater.update)(key, params, opt_state,
                                                                model_state, (x,))

    @jax.jit
    def by_hand(params, x, key):
        """Algorithm 1 written out, with the noise of the step's documented key schedule."""
        key_d, key_z, _, _ = jax.random.split(key, 4)
        p_d, p_g = params["discriminator"], params["generator"]
        s_d, s_g = d_opt.init(p_d), g_opt.init(p_g)
        d_losses, d_real, d_fake = [], [], []
        for i, key_i in enumerate(jax.random.split(key_d, k)):   # slice i: its own m examples
            z_i = jax.random.normal(jax.random.split(key_i, 4)[0], (m, LATENT))
            fake = _hand_generator(p_g, z_i)                       # p_G a constant here
            x_i = x[i * m:(i + 1) * m]
            value, grads = jax.value_and_grad(_hand_d_loss)(p_d, x_i, fake)
            d_real.append(jnp.mean(jax.nn.sigmoid(_hand_discriminator(p_d, x_i))))
            d_fake.append(jnp.mean(jax.nn.sigmoid(_hand_discriminator(p_d, fake))))
            updates, s_d = d_opt.update(grads, s_d, p_d)
            p_d = optax.apply_updates(p_d, updates)
            d_losses.append(value)
        z = jax.random.normal(key_z, (m, LATENT))
        g_loss, grads = jax.value_and_grad(_hand_g_loss)(p_g, p_d, z, kind)  # p_D (updated) fixed
        updates, s_g = g_opt.update(grads, s_g, p_g)
        p_g = optax.apply_updates(p_g, updates)
        return p_d, p_g, s_d, s_g, {"d_loss": jnp.mean(jnp.stack(d_losses)), "g_loss": g_loss,
                                    "d_real": jnp.mean(jnp.stack(d_real)),
                                    "d_fake": jnp.mean(jnp.stack(d_fake))}

    p_d, p_g, s_d, s_g, want_aux = by_hand(params, x, key)
    close = dict(rtol=1e-5, atol=1e-6)
    for got, want in [(new_params["discriminator"], p_d), (new_params["generator"], p_g),
                      (new_opt["discriminator"], s_d), (new_opt["generator"], s_g)]:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **close), got, want)
    for name in ("discriminator", "generator"):   # the updates are not too small to see
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new_params[name],
                             params[name])
        assert max(jax.tree.leaves(moved)) > 1e-3
    np.testing.assert_allclose(loss, want_aux["d_loss"], **close)
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(aux[name], want_aux[name], **close)


def test_k_slices_are_used_in_order():
    """With k = 2 the first discriminator update sees the first half of the batch: swapping the
    halves changes the result (the reference test above pins which half goes first)."""
    generator, discriminator = _tiny_mlp_gan()
    updater, optimizer, init_fn = gan.training(generator, discriminator, latent_dim=LATENT,
                                               d_optimizer=optax.sgd(0.5),
                                               g_optimizer=optax.sgd(0.5), k=2)
    params = init_fn(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, DIM))
    args = (jax.random.PRNGKey(2), params, optimizer.init(params), updater.init(None, params, None))
    a = updater.update(*args, (x,))[0]["discriminator"]
    b = updater.update(*args, (jnp.concatenate([x[4:], x[:4]]),))[0]["discriminator"]
    assert not np.allclose(a["layer_0"]["w"], b["layer_0"]["w"])
    with pytest.raises(ValueError, match="multiple of k=2"):
        updater.update(*args, (x[:7],))


def test_training_refuses_bad_arguments():
    generator, discriminator = _tiny_mlp_gan()
    opt = optax.sgd(0.1)
    with pytest.raises(ValueError):
        gan.training(generator, discriminator, latent_dim=LATENT, d_optimizer=opt,
                     g_optimizer=opt, generator_loss="hinge")
    with pytest.raises(ValueError):
        gan.training(generator, discriminator, latent_dim=LATENT, d_optimizer=opt,
                     g_optimizer=opt, k=0)
    plain = Model(lambda key, dtype=jnp.float32: {}, lambda params, x, **kw: x)
    with pytest.raises(TypeError, match="StatefulModel"):
        gan.training(plain, discriminator, latent_dim=LATENT, d_optimizer=opt, g_optimizer=opt)
    with pytest.raises(ShapeError):
        generator.apply(generator.init(jax.random.PRNGKey(0)), {}, jnp.zeros((2, LATENT + 1)))
    with pytest.raises(ValueError, match="key"):     # dropout in training needs a key
        d = gan.mlp_discriminator((4,), image_shape=(DIM,))
        d.apply(d.init(jax.random.PRNGKey(0)), {}, jnp.zeros((2, DIM)), train=True)


# --- through fit -----------------------------------------------------------------------------

def _mixture(n, seed=0):
    """1-D mixture 0.5 N(2, 0.2^2) + 0.5 N(4, 0.2^2): mean 3."""
    rng = np.random.default_rng(seed)
    centres = np.where(rng.integers(0, 2, n) == 1, 4.0, 2.0)
    return (centres + 0.2 * rng.normal(size=n)).astype(np.float32)[:, None]


def _toy_gan(lr=1e-2):
    generator = gan.mlp_generator(4, (16,), image_shape=(1,), output_activation="identity")
    discriminator = gan.mlp_discriminator((16,), pieces=2, input_dropout=0.1, hidden_dropout=0.1,
                                          image_shape=(1,))
    opt = optax.adam(lr, b1=0.5)
    return generator, discriminator, gan.training(generator, discriminator, latent_dim=4,
                                                  d_optimizer=opt, g_optimizer=opt)


N_TOY, TOY_CONFIG = 1024, dict(batch_size=32, steps_per_call=8, progress=False)


def test_fit_seeds_equal_single_runs_and_resume_is_exact(tmp_path):
    """Two seeds as one vmapped program equal two single runs; a run cut by max_steps and resumed
    from its checkpoint equals the uninterrupted one bitwise (dropout masks in D included)."""
    x = _mixture(N_TOY)
    _, _, (updater, optimizer, init_fn) = _toy_gan()
    config = TrainConfig(epochs=1, checkpoint_every=16, **TOY_CONFIG)
    both = fit(init_fn, updater, optimizer, (x,), config, seeds=[0, 1], run_dir=tmp_path / "a")
    for i, seed in enumerate([0, 1]):
        single = fit(init_fn, updater, optimizer, (x,), TrainConfig(epochs=1, seed=seed,
                                                                    **TOY_CONFIG))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6),
                     both.state.params, single.state.params)
        np.testing.assert_allclose(both.history[-1]["train_loss"][i],
                                   single.history[-1]["train_loss"], rtol=1e-5)
    cut = TrainConfig(**{**config.__dict__, "max_steps": 20})
    fit(init_fn, updater, optimizer, (x,), cut, seeds=[0, 1], run_dir=tmp_path / "b")
    resumed = fit(init_fn, updater, optimizer, (x,), config, seeds=[0, 1],
                  run_dir=tmp_path / "b", resume=True)
    jax.tree.map(np.testing.assert_array_equal,
                 (both.state.params, both.state.opt_state, both.state.model_state),
                 (resumed.state.params, resumed.state.opt_state, resumed.state.model_state))
    assert both.history == [{**h, "seconds": e["seconds"]}
                            for h, e in zip(resumed.history, both.history)]


def test_mlp_gan_moves_the_generated_mean_to_the_data():
    x = _mixture(N_TOY)
    generator, _, (updater, optimizer, init_fn) = _toy_gan()
    result = fit(init_fn, updater, optimizer, (x,), TrainConfig(epochs=3, **TOY_CONFIG))
    key = jax.random.PRNGKey(7)
    before = gan.sample(key, generator, init_fn(jax.random.split(jax.random.PRNGKey(0))[0])[
        "generator"], {}, 2000, latent_dim=4)
    after = gan.sample(key, generator, result.state.params["generator"],
                       result.state.model_state["generator"], 2000, latent_dim=4)
    assert abs(float(before.mean()) - 3.0) > 2.5                    # starts near 0
    assert abs(float(after.mean()) - 3.0) < 0.5, float(after.mean())
    assert 0.3 < float(after.std()) < 2.0                           # data std ~1.02


def test_nonfinite_step_is_dropped_by_the_guard():
    """G's params turn NaN while the loss (D's) stays finite: the guard still drops the step,
    because it checks the new params too."""
    x = _mixture(64)
    generator, discriminator, _ = _toy_gan()
    updater, optimizer, init_fn = gan.training(generator, discriminator, latent_dim=4,
                                               d_optimizer=optax.sgd(0.1),
                                               g_optimizer=optax.sgd(jnp.nan))
    result = fit(init_fn, updater, optimizer, (x,), TrainConfig(epochs=1, on_nonfinite="skip",
                                                               **TOY_CONFIG))
    assert result.history[-1]["skipped_steps"] == 2
    start = init_fn(jax.random.split(jax.random.PRNGKey(0))[0])
    jax.tree.map(np.testing.assert_array_equal, result.state.params, start)


@pytest.mark.slow   # ~15-40 s: compiling a DCGAN step (conv_transpose's custom VJP) on the CPU
def test_dcgan_resume_restores_the_batch_norm_state(tmp_path):
    """The batch-norm running statistics travel in the checkpoint: resumed = uninterrupted."""
    generator = gan.dcgan_generator(5, (4, 3), image_shape=(8, 8, 1))
    discriminator = gan.dcgan_discriminator((3, 4), image_shape=(8, 8, 1))
    data = np.random.default_rng(0).uniform(size=(48, 8, 8, 1)).astype(np.float32)
    opt = optax.adam(1e-2, b1=0.5)
    updater, optimizer, init_fn = gan.training(generator, discriminator, latent_dim=5,
                                               d_optimizer=opt, g_optimizer=opt)
    config = TrainConfig(epochs=1, batch_size=8, steps_per_call=1, progress=False,
                         checkpoint_every=2)
    whole = fit(init_fn, updater, optimizer, (data,), config, run_dir=tmp_path / "a")
    cut = TrainConfig(**{**config.__dict__, "max_steps": 3})
    fit(init_fn, updater, optimizer, (data,), cut, run_dir=tmp_path / "b")
    resumed = fit(init_fn, updater, optimizer, (data,), config, run_dir=tmp_path / "b",
                  resume=True)
    assert not np.allclose(whole.state.model_state["generator"]["bn_0"]["var"], 1.0)
    jax.tree.map(np.testing.assert_array_equal,
                 (whole.state.params, whole.state.opt_state, whole.state.model_state),
                 (resumed.state.params, resumed.state.opt_state, resumed.state.model_state))


# --- DCGAN -----------------------------------------------------------------------------------

def test_dcgan_shapes_params_and_batch_norm_state():
    generator, discriminator = gan.dcgan_generator(), gan.dcgan_discriminator()
    p_g, p_d = generator.init(jax.random.PRNGKey(0)), discriminator.init(jax.random.PRNGKey(1))
    shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)   # noqa: E731
    assert shapes(p_g) == {"project": {"w": (100, 7 * 7 * 64)},
                           "bn_0": {"scale": (64,), "bias": (64,)},
                           "up_1": {"w": (4, 4, 64, 32)}, "bn_1": {"scale": (32,), "bias": (32,)},
                           "up_2": {"w": (4, 4, 32, 1), "b": (1,)}}
    assert shapes(p_d) == {"conv_1": {"w": (4, 4, 1, 32), "b": (32,)},   # no BN on D's input
                           "conv_2": {"w": (4, 4, 32, 64)}, "bn_2": {"scale": (64,), "bias": (64,)},
                           "output": {"w": (7 * 7 * 64, 1), "b": (1,)}}
    np.testing.assert_allclose(np.std(p_g["up_1"]["w"]), 0.02, rtol=0.1)   # N(0, 0.02^2)
    s_g, s_d = generator.init_state(), discriminator.init_state()
    z = jax.random.normal(jax.random.PRNGKey(2), (5, 100))
    g_train = jax.jit(lambda p, s, z: generator.apply(p, s, z, train=True))
    images, new_s_g = g_train(p_g, s_g, z)
    assert images.shape == (5, 28, 28, 1) and images.dtype == jnp.float32
    assert float(images.min()) > 0.0 and float(images.max()) < 1.0      # sigmoid, data in [0, 1]
    logits, new_s_d = jax.jit(lambda p, s, x: discriminator.apply(p, s, x, train=True))(
        p_d, s_d, images)
    assert logits.shape == (5,)
    # training mode moves the running statistics, evaluation mode leaves them
    assert not np.allclose(new_s_g["bn_0"]["mean"], s_g["bn_0"]["mean"])
    assert not np.allclose(new_s_d["bn_2"]["var"], s_d["bn_2"]["var"])
    _, same = jax.jit(lambda p, s, z: generator.apply(p, s, z))(p_g, new_s_g, z)
    jax.tree.map(np.testing.assert_array_equal, same, new_s_g)
    tanh = gan.dcgan_generator(output_activation="tanh")
    out, _ = jax.jit(lambda p, s, z: tanh.apply(p, s, z, train=True))(
        tanh.init(jax.random.PRNGKey(0)), tanh.init_state(), z)
    assert float(out.min()) < 0.0 < float(out.max()) and float(jnp.abs(out).max()) < 1.0
    with pytest.raises(ValueError, match="multiples of 4"):
        gan.dcgan_generator(image_shape=(30, 30, 1))
    with pytest.raises(ShapeError):
        discriminator.apply(p_d, s_d, jnp.zeros((2, 28, 28, 3)))


def test_sampling_in_eval_mode_draws_each_image_alone():
    """Eval mode (running statistics): an image depends on its own z only; training mode
    (batch statistics) on the whole batch."""
    generator = gan.dcgan_generator(8, (8, 4), image_shape=(8, 8, 1))
    params, state = generator.init(jax.random.PRNGKey(0)), generator.init_state()
    z = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    _, state = jax.jit(lambda p, s, z: generator.apply(p, s, z, train=True))(params, state, z)
    gen = jax.jit(lambda z, train: gan.generate(generator, params, state, z, train=train),
                  static_argnums=1)
    np.testing.assert_allclose(gen(z[:2], False), gen(z, False)[:2], rtol=1e-6)
    assert not np.allclose(gen(z[:2], True), gen(z, True)[:2])
    key = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(
        jax.jit(lambda k: gan.sample(k, generator, params, state, 4, latent_dim=8))(key),
        gen(jax.random.normal(key, (4, 8)), False))
