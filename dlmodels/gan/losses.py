"""The adversarial losses of Goodfellow et al. (2014), "Generative adversarial nets", on the
discriminator's logits.

The discriminator outputs a logit ``l`` and ``D(x) = sigmoid(l(x))``, the probability that ``x``
came from the data rather than from the generator. The two players play the minimax game (eq. 1)

    min_G max_D V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))].

Every log is written with the softplus, which neither overflows nor loses the gradient when
``|l|`` is large: ``log D = log sigmoid(l) = -softplus(-l)`` and ``log(1 - D) = log sigmoid(-l) =
-softplus(l)``. Expectations are means over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.validation import ShapeError, check_choice

GENERATOR_LOSSES = ("non_saturating", "minimax")


def _logits(x, what: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ShapeError(f"{what}: expected discriminator logits of shape [B], got {x.shape}")
    return x


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """The discriminator's loss, ``-V(D, G)`` estimated on a minibatch (Algorithm 1's ascent on V
    written as a descent):

        L_D = -[mean_i log D(x_i) + mean_j log(1 - D(G(z_j)))]
            = mean_i softplus(-l(x_i)) + mean_j softplus(l(G(z_j))),

    the binary cross-entropy of labelling data 1 and samples 0. ``2 log 2`` when ``D = 1/2``
    everywhere (the equilibrium ``p_g = p_data``, section 4.1). ``real_logits [B_real]``,
    ``fake_logits [B_fake]`` -> scalar.
    """
    real = _logits(real_logits, "discriminator_loss: real_logits")
    fake = _logits(fake_logits, "discriminator_loss: fake_logits")
    return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def generator_loss(fake_logits: jax.Array, kind: str = "non_saturating") -> jax.Array:
    """The generator's loss on the discriminator's logits for its samples ``G(z_j)``:

    - ``"minimax"``: ``mean_j log(1 - D(G(z_j))) = -mean_j softplus(l_j)``, the generator's term
      of V (eq. 1), minimised. Its gradient ``dL/dl_j = -D(G(z_j)) / B`` vanishes when D rejects
      the samples confidently (``D -> 0``), as early in training (section 3).
    - ``"non_saturating"``: ``-mean_j log D(G(z_j)) = mean_j softplus(-l_j)``, the paper's
      practical alternative ("train G to maximize log D(G(z))", same fixed point, strong gradients
      early): ``dL/dl_j = -(1 - D(G(z_j))) / B`` -> ``-1 / B`` when ``D -> 0``.

    ``fake_logits [B]`` -> scalar.
    """
    check_choice("generator_loss: kind", kind, GENERATOR_LOSSES)
    fake = _logits(fake_logits, "generator_loss: fake_logits")
    if kind == "minimax":
        return -jnp.mean(jax.nn.softplus(fake))
    return jnp.mean(jax.nn.softplus(-fake))
