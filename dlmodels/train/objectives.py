"""Ready-made ``loss_fn``/``eval_fn`` pairs for the trainer, built from a model's ``apply``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels import losses
from dlmodels.validation import check_choice, check_nonnegative


def classifier(apply: Callable, *, loss: str = "softmax_cross_entropy", n_classes: int | None = None,
               l2: float = 0.0, train_mode: bool = True):
    """``(loss_fn, eval_fn)`` for a classifier ``apply(params, x, *, key, train) -> scores [B, K]``
    on batches ``(x, y)`` with integer labels ``y [B]``.

    ``loss``: ``"softmax_cross_entropy"`` (scores are logits) or ``"sum_of_squares"`` (the course
    notes' ``1/2 sum_k (t_k - y_k)^2`` against one-hot targets ``t``; needs ``n_classes``). The
    training loss is the batch mean plus ``l2 * sum ||W||^2``. ``eval_fn`` gives per-example
    ``loss`` and ``accuracy`` (and ``error`` = 1 - accuracy).

    ``train_mode``: whether the training loss calls ``apply(params, x, key=key, train=True)``
    (the model's training-time behaviour, e.g. dropout drawn from the step's key) or
    ``apply(params, x, key=key, train=False)`` (the deterministic forward pass, as ``eval_fn``
    always uses; for models with no training-time randomness, or to train without dropout).

    ``loss_fn(params, batch, key) -> (loss, {})`` is the trainer's convention (``dlmodels.train``).
    """
    check_choice("classifier: loss", loss, ("softmax_cross_entropy", "sum_of_squares"))
    if loss == "sum_of_squares" and not n_classes:
        raise ValueError("the sum-of-squares loss needs n_classes for its one-hot targets")
    check_nonnegative("classifier: l2", l2)

    def per_example(scores, y):
        if loss == "softmax_cross_entropy":
            return losses.softmax_cross_entropy(scores, y)
        return losses.sum_of_squares(scores, jax.nn.one_hot(y, n_classes, dtype=scores.dtype))

    def loss_fn(params, batch, key):
        x, y = batch
        scores = apply(params, x, key=key, train=train_mode)
        value = jnp.mean(per_example(scores, y))
        if l2:
            value = value + l2 * losses.l2_penalty(params)
        return value, {}

    def eval_fn(params, batch):
        x, y = batch
        scores = apply(params, x)
        correct = (jnp.argmax(scores, -1) == y).astype(jnp.float32)
        return {"loss": per_example(scores, y), "accuracy": correct, "error": 1.0 - correct}

    return loss_fn, eval_fn
