"""Loss functions. Each returns one value per example (shape ``[...]``, the batch shape);
average or sum over the batch at the call site.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def sum_of_squares(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """``E = 1/2 sum_k (y_k - y_hat_k)^2`` per example, as in the course notes' backpropagation.

    ``y_hat, y: [..., K] -> [...]``. The total error over a training set is the sum over examples.
    """
    return 0.5 * jnp.sum(jnp.square(y - y_hat), axis=-1)


def mean_squared_error(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """``1/K sum_k (y_k - y_hat_k)^2`` per example. ``y_hat, y: [..., K] -> [...]``."""
    return jnp.mean(jnp.square(y - y_hat), axis=-1)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``-log softmax(z)_y = logsumexp(z) - z_y`` per example, stable for any logits.

    ``logits: [..., K]``; ``labels``: integer class indices ``[...]`` or a distribution ``[..., K]``.
    """
    if labels.ndim == logits.ndim:
        return optax.softmax_cross_entropy(logits, labels)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``-sum_k [t_k log sigma(z_k) + (1 - t_k) log(1 - sigma(z_k))]`` per example, from logits.

    Computed as ``softplus(z) - t z`` (no overflow for large ``|z|``). ``logits, targets: [..., K]
    -> [...]``; targets in [0, 1].
    """
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)


def _is_weight(path) -> bool:
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", None))
    return isinstance(name, str) and name.startswith("w")


def l2_penalty(params, *, select: Callable = _is_weight) -> jax.Array:
    """``sum_l ||W_l||_F^2`` over the weight leaves (keys starting with ``w``; biases excluded).

    The weight-decay term of the notes' regularised objective is ``lambda * l2_penalty(params)``.
    """
    leaves = [x for p, x in jax.tree_util.tree_leaves_with_path(params) if select(p)]
    return sum((jnp.sum(jnp.square(x)) for x in leaves), jnp.zeros(()))


def l1_penalty(params, *, select: Callable = _is_weight) -> jax.Array:
    """``sum_l sum_ij |W_l,ij|`` over the weight leaves (keys starting with ``w``)."""
    leaves = [x for p, x in jax.tree_util.tree_leaves_with_path(params) if select(p)]
    return sum((jnp.sum(jnp.abs(x)) for x in leaves), jnp.zeros(()))
