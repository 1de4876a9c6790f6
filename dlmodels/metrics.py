"""Classification metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def predictions(scores: jax.Array) -> jax.Array:
    """Predicted class ``argmax_k scores[..., k]``; ``[..., K] -> [...]`` int."""
    return jnp.argmax(scores, axis=-1)


def accuracy(scores: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose argmax score is the label. ``scores [B, K]``, ``labels [B]``."""
    return jnp.mean(predictions(scores) == labels)


def confusion_matrix(predicted: jax.Array, labels: jax.Array, n_classes: int) -> jax.Array:
    """Counts ``C[i, j]`` of examples with true class ``i`` predicted as ``j``; ``[K, K]`` int32.

    ``predicted, labels: [B]`` integer classes in ``[0, n_classes)``.
    """
    index = labels.astype(jnp.int32) * n_classes + predicted.astype(jnp.int32)
    counts = jnp.bincount(index.ravel(), length=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(jnp.int32)
