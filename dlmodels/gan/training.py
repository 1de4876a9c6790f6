"""Adversarial training through the one trainer (Goodfellow et al. 2014, Algorithm 1), and
sampling from a trained generator.

:func:`training` returns what ``dlmodels.train.fit`` takes: an
:class:`~dlmodels.train.Updater` whose jitted step makes k discriminator updates and one
generator update, each player with its own optax optimizer; the optimizer whose ``init`` builds
both players' optimizer states; and the ``init_fn`` of both players' params::

    updater, optimizer, init_fn = gan.training(G, D, latent_dim=100,
                                               d_optimizer=optax.adam(2e-4, b1=0.5),
                                               g_optimizer=optax.adam(2e-4, b1=0.5))
    result = fit(init_fn, updater, optimizer, (x_train,), TrainConfig(batch_size=64),
                 seeds=[0, 1, 2, 3])
    images = gan.sample(key, G, result.state.params["generator"][0],
                        result.state.model_state["generator"][0], 64, latent_dim=100)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from dlmodels.cnn import shapes
from dlmodels.gan import losses
from dlmodels.model import StatefulModel
from dlmodels.train import Updater
from dlmodels.validation import ShapeError, check_choice

PLAYERS = ("discriminator", "generator")


def noise(key: jax.Array, n: int, latent_dim: int, dtype=jnp.float32) -> jax.Array:
    """The prior ``p_z``: ``z ~ N(0, I)``, ``[n, latent_dim]`` (the Gaussian default of the
    paper's code, goodfeli/adversarial)."""
    return jax.random.normal(key, (n, latent_dim), dtype)


def generate(generator: StatefulModel, params: Any, state: Any, z: jax.Array, *,
             train: bool = False) -> jax.Array:
    """``G(z)``: images ``[n, *image_shape]`` for noise ``z [n, latent_dim]`` (deterministic).

    ``train=False`` (default): batch normalisation uses the running statistics gathered in
    training (``state``), so each image depends on its own ``z`` alone and any ``n`` works, the
    network every evaluation sees. ``train=True``: it normalises with the statistics of these
    ``n`` images, as the generator ran in training (the running statistics lag a generator that
    changes quickly; compare both when eval-mode samples look worse). The updated state is
    dropped either way.
    """
    images, _ = generator.apply(params, state, z, train=train)
    return images


def sample(key: jax.Array, generator: StatefulModel, params: Any, state: Any, n: int, *,
           latent_dim: int, train: bool = False) -> jax.Array:
    """``n`` images ``G(z)``, ``z ~ N(0, I)`` drawn from ``key``: ``generate(generator, params,
    state, noise(key, n, latent_dim), train=train)`` (see :func:`generate` for ``train``)."""
    n = shapes.positive_int(n, "n", "sample")
    dtype = jax.tree.leaves(params)[0].dtype
    return generate(generator, params, state, noise(key, n, latent_dim, dtype), train=train)


def two_player_optimizer(d_optimizer: optax.GradientTransformation,
                         g_optimizer: optax.GradientTransformation
                         ) -> optax.GradientTransformation:
    """An optax transformation over ``{"discriminator": ..., "generator": ...}`` params that runs
    each player's own optimizer on its part: state ``{"discriminator": d_optimizer.init(params_D),
    "generator": g_optimizer.init(params_G)}``. ``fit`` builds the opt_state with its ``init``;
    the GAN step calls the two optimizers one at a time (its ``update`` updates both at once)."""
    optimizers = {"discriminator": d_optimizer, "generator": g_optimizer}

    def init(params):
        return {name: opt.init(params[name]) for name, opt in optimizers.items()}

    def update(updates, state, params=None):
        out = {name: opt.update(updates[name], state[name],
                                None if params is None else params[name])
               for name, opt in optimizers.items()}
        return ({name: u for name, (u, _) in out.items()},
                {name: s for name, (_, s) in out.items()})

    return optax.GradientTransformation(init, update)


def training(generator: StatefulModel, discriminator: StatefulModel, *, latent_dim: int,
             d_optimizer: optax.GradientTransformation, g_optimizer: optax.GradientTransformation,
             k: int = 1, generator_loss: str = "non_saturating"):
    """``(updater, optimizer, init_fn)`` to train a GAN with ``dlmodels.train.fit`` on batches
    ``(x,)`` of ``k * m`` real images, following Algorithm 1 of Goodfellow et al. (2014):

    for each of the k discriminator updates (slice i of the batch: real ``x_{i,1..m}``, fresh noise
    ``z_{i,1..m} ~ N(0, I)``), the generator's params held fixed::

        theta_D <- d_optimizer step on  grad_D -[mean_j log D(x_ij) + mean_j log(1 - D(G(z_ij)))]

    then one generator update on fresh noise ``z_1..m``, the (updated) discriminator held fixed::

        theta_G <- g_optimizer step on  grad_G L_G,
        L_G = mean_j log(1 - D(G(z_j)))   ("minimax", eq. 1)
           or -mean_j log D(G(z_j))      ("non_saturating", the paper's practical choice).

    All of it is one jitted step without a loop (the k updates a fully unrolled ``lax.scan``:
    XLA:CPU runs convolutions inside a loop far slower, ``dlmodels.backend.conv_steps_per_call``;
    so train conv GANs with ``steps_per_call=1`` on the CPU); under
    ``fit(..., seeds=...)`` K GANs train as one vmapped program.

    Batch normalisation: every training-mode pass updates the running statistics of the network
    it runs through (as PyTorch modules do), so the generator's are updated in the discriminator
    updates and in its own, the discriminator's in both too. The discriminator sees the real and
    the generated images as two separate batches (two passes, each normalised with its own batch
    statistics), as in the DCGAN reference code. Dropout masks (MLP discriminator) are drawn from
    the step's key, a different mask for every pass.

    Returns:

    - ``updater``: a :class:`dlmodels.train.Updater`. Its ``loss`` (the trainer's ``train_loss``)
      is the discriminator's loss averaged over the k updates, ``-V_hat(D, G)`` (``2 log 2 ~
      1.386`` at the equilibrium ``D = 1/2``), made non-finite when the generator's loss is, so
      the trainer's non-finite guard (loss, new params, new batch-norm state) drops the step.
      ``aux`` per step: ``{"d_loss", "g_loss", "d_real": mean D(x), "d_fake": mean D(G(z))}``
      (means over the k discriminator updates; ``g_loss`` from the generator's update).
      ``export(params, model_state) = {"params": params, "state": model_state}`` is what ``fit``
      gives ``eval_fn`` and ``probe_fn``.
    - ``optimizer``: :func:`two_player_optimizer` of the two; ``fit`` calls its ``init``.
    - ``init_fn(key) -> {"generator": params_G, "discriminator": params_D}``. The carried state
      (``TrainState.model_state``) is ``{"generator": state_G, "discriminator": state_D}``.

    Raises ValueError when the batch size is not a multiple of ``k``.
    """
    k = shapes.positive_int(k, "k", "gan.training")
    latent_dim = shapes.positive_int(latent_dim, "latent_dim", "gan.training")
    check_choice("gan.training: generator_loss", generator_loss, losses.GENERATOR_LOSSES)
    for name, model in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(model, StatefulModel):
            raise TypeError(f"gan.training: the {name} must be a StatefulModel (lift a plain "
                            f"Model with dlmodels.model.stateful), got {type(model).__name__}")
    g_loss_kind = generator_loss
    G, D = generator, discriminator

    def init_fn(key: jax.Array) -> dict:
        key_g, key_d = jax.random.split(key)
        return {"generator": G.init(key_g), "discriminator": D.init(key_d)}

    def init(key, params, train_data) -> dict:
        dtype = jax.tree.leaves(params)[0].dtype
        return {"generator": G.init_state(dtype), "discriminator": D.init_state(dtype)}

    def d_update(params_g, carry, inputs):
        """One discriminator update on one slice of real images, params_G fixed."""
        params_d, opt_d, state_g, state_d = carry
        key, x_real = inputs
        key_z, key_g, key_real, key_fake = jax.random.split(key, 4)
        m = x_real.shape[0]
        z = noise(key_z, m, latent_dim, x_real.dtype)
        fake, state_g = G.apply(params_g, state_g, z, key=key_g, train=True)

        def loss_fn(p):
            real_logits, s = D.apply(p, state_d, x_real, key=key_real, train=True)
            fake_logits, s = D.apply(p, s, fake, key=key_fake, train=True)
            return losses.discriminator_loss(real_logits, fake_logits), (
                s, jnp.mean(jax.nn.sigmoid(real_logits)), jnp.mean(jax.nn.sigmoid(fake_logits)))

        (loss, (state_d, d_real, d_fake)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(params_d)
        updates, opt_d = d_optimizer.update(grads, opt_d, params_d)
        params_d = optax.apply_updates(params_d, updates)
        return (params_d, opt_d, state_g, state_d), (loss, d_real, d_fake)

    def update(key, params, opt_state, model_state, batch):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if x.shape[0] % k:
            raise ValueError(f"gan.training: the batch of {x.shape[0]} real images is not a "
                             f"multiple of k={k} (each discriminator update takes its own slice "
                             f"of batch_size / k); choose batch_size = k * m")
        if x.ndim < 2:
            raise ShapeError(f"gan.training: expected real images [batch, ...], got {x.shape}")
        m = x.shape[0] // k
        slices = x.reshape(k, m, *x.shape[1:])                     # (k, m, ...)
        key_d, key_z, key_g, key_disc = jax.random.split(key, 4)
        params_g = params["generator"]       # fixed: only params_D are differentiated
        carry = (params["discriminator"], opt_state["discriminator"], model_state["generator"],
                 model_state["discriminator"])
        # the k updates unrolled (no while loop: XLA:CPU runs convolutions inside one up to 20x
        # slower, dlmodels.backend.conv_steps_per_call); scan's unroll=True still emits a loop
        # for length 1, so k = 1 calls the update directly
        keys = jax.random.split(key_d, k)
        if k == 1:
            carry, out = d_update(params_g, carry, (keys[0], slices[0]))
            d_losses, d_real, d_fake = (a[None] for a in out)
        else:
            carry, (d_losses, d_real, d_fake) = jax.lax.scan(
                lambda c, xs: d_update(params_g, c, xs), carry, (keys, slices), unroll=True)
        params_d, opt_d, state_g, state_d = carry

        z = noise(key_z, m, latent_dim, x.dtype)

        def g_loss_fn(p):
            fake, s_g = G.apply(p, state_g, z, key=key_g, train=True)
            logits, s_d = D.apply(params_d, state_d, fake, key=key_disc, train=True)
            return losses.generator_loss(logits, g_loss_kind), (s_g, s_d)

        (g_loss, (state_g, state_d)), grads = jax.value_and_grad(
            g_loss_fn, has_aux=True)(params["generator"])
        updates, opt_g = g_optimizer.update(grads, opt_state["generator"], params["generator"])
        params_g = optax.apply_updates(params["generator"], updates)

        d_loss = jnp.mean(d_losses)
        loss = jnp.where(jnp.isfinite(g_loss), d_loss, g_loss)
        aux = {"d_loss": d_loss, "g_loss": g_loss, "d_real": jnp.mean(d_real),
               "d_fake": jnp.mean(d_fake)}
        return ({"generator": params_g, "discriminator": params_d},
                {"generator": opt_g, "discriminator": opt_d},
                {"generator": state_g, "discriminator": state_d}, loss, aux)

    def export(params, model_state):
        return {"params": params, "state": model_state}

    updater = Updater(init, update, export=export)
    return updater, two_player_optimizer(d_optimizer, g_optimizer), init_fn
