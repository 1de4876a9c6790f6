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
from dlmodels.train import NonFiniteError, TrainConfig, fit
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


@pytest.mark.parametrize("k,kind", [(1, "non_saturating"), (1, "minimax"), (2, "non_saturating")])
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

    # by hand, with the noise of the step's documented key schedule
    key_d, key_z, _, _ = jax.random.split(key, 4)
    p_d, p_g = params["discriminator"], params["generator"]
    s_d, s_g = d_opt.init(p_d), g_opt.init(p_g)
    d_losses = []
    for i, key_i in enumerate(jax.random.split(key_d, k)):       # slice i: its own m examples
        z_i = jax.random.normal(jax.random.split(key_i, 4)[0], (m, LATENT))
        fake = _hand_generator(p_g, z_i)                           # p_G a constant here
        value, grads = jax.value_and_grad(_hand_d_loss)(p_d, x[i * m:(i + 1) * m], fake)
        updates, s_d = d_opt.update(grads, s_d, p_d)
        p_d = optax.apply_updates(p_d, updates)
        d_losses.append(value)
    z = jax.random.normal(key_z, (m, LATENT))
    grads = jax.grad(_hand_g_loss)(p_g, p_d, z, kind)              # p_D (updated) a constant
    updates, s_g = g_opt.update(grads, s_g, p_g)
    p_g = optax.apply_updates(p_g, updates)

    close = dict(rtol=1e-5, atol=1e-6)
    for got, want in [(new_params["discriminator"], p_d), (new_params["generator"], p_g),
                      (new_opt["discriminator"], s_d), (new_opt["generator"], s_g)]:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **close), got, want)
    for name in ("discriminator", "generator"):   # the updates are not too small to see
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new_params[name],
                             params[name])
        assert max(jax.tree.leaves(moved)) > 1e-3
    np.testing.assert_allclose(loss, np.mean(d_losses), **close)
    np.testing.assert_allclose(aux["d_loss"], np.mean(d_losses), **close)
    # the generator's loss is evaluated before its update, on the updated discriminator
    np.testing.assert_allclose(aux["g_loss"], _hand_g_loss(params["generator"], p_d, z, kind),
                               **close)


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


def test_fit_with_two_seeds_equals_two_single_runs():
    x = _mixture(256)
    _, _, (updater, optimizer, init_fn) = _toy_gan()
    config = TrainConfig(epochs=2, batch_size=32, steps_per_call=8, progress=False)
    both = fit(init_fn, updater, optimizer, (x,), config, seeds=[0, 1])
    for i, seed in enumerate([0, 1]):
        single = fit(init_fn, updater, optimizer, (x,), TrainConfig(
            epochs=2, batch_size=32, steps_per_call=8, progress=False, seed=seed))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6),
                     both.state.params, single.state.params)
        np.testing.assert_allclose([h["train_loss"][i] for h in both.history],
                                   [h["train_loss"] for h in single.history], rtol=1e-5)


def test_mlp_gan_moves_the_generated_mean_to_the_data():
    x = _mixture(2048)
    generator, _, (updater, optimizer, init_fn) = _toy_gan()
    config = TrainConfig(epochs=3, batch_size=64, steps_per_call=32, progress=False)
    result = fit(init_fn, updater, optimizer, (x,), config)
    key = jax.random.PRNGKey(7)
    before = gan.sample(key, generator, init_fn(jax.random.split(jax.random.PRNGKey(0))[0])[
        "generator"], {}, 2000, latent_dim=4)
    after = gan.sample(key, generator, result.state.params["generator"],
                       result.state.model_state["generator"], 2000, latent_dim=4)
    assert abs(float(before.mean()) - 3.0) > 2.5                    # starts near 0
    assert abs(float(after.mean()) - 3.0) < 0.5, float(after.mean())
    assert 0.3 < float(after.std()) < 2.0                           # data std ~1.02


def test_nonfinite_step_is_dropped_by_the_guard():
    x = _mixture(64)
    generator, discriminator, _ = _toy_gan()
    updater, optimizer, init_fn = gan.training(generator, discriminator, latent_dim=4,
                                               d_optimizer=optax.sgd(0.1),
                                               g_optimizer=optax.sgd(jnp.nan))
    config = TrainConfig(epochs=1, batch_size=32, steps_per_call=1, progress=False)
    with pytest.raises(NonFiniteError) as err:
        fit(init_fn, updater, optimizer, (x,), config)
    assert err.value.step == 0      # G's params became NaN with a finite loss: still caught
    result = fit(init_fn, updater, optimizer, (x,), TrainConfig(
        epochs=1, batch_size=32, steps_per_call=1, progress=False, on_nonfinite="skip"))
    start = init_fn(jax.random.split(jax.random.PRNGKey(0))[0])
    jax.tree.map(np.testing.assert_array_equal, result.state.params, start)
