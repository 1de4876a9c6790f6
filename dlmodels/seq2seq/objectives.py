"""The training loss and evaluation metrics of an encoder-decoder, for ``dlmodels.train.fit``."""

from __future__ import annotations

import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.text.lm import token_nats


def _target_mask(batch) -> jnp.ndarray:
    T = batch["tgt_out"].shape[1]
    return jnp.arange(T)[None, :] < jnp.asarray(batch["tgt_lengths"])[:, None]      # [B, T]


def loss_fn(model: Model, *, train_mode: bool = True):
    """``loss_fn(params, batch, key) -> (loss, {})`` for ``fit``: the mean cross-entropy over
    the real target tokens of a :func:`~dlmodels.seq2seq.make_batch` batch,

        loss = sum_{b, t < m_b + 1} -log p(tgt_out[b, t] | tgt_in[b, :t+1], src_b)
               / sum_b (m_b + 1),

    (``m_b + 1 = tgt_lengths[b]``, the eos included), with the model in training mode (dropout
    from ``key``) unless ``train_mode=False``."""

    def fn(params, batch, key):
        logits = model.apply(params, batch["src"], batch["src_lengths"], batch["tgt_in"],
                             key=key, train=train_mode)                      # [B, T, V]
        mask = _target_mask(batch)
        nats = jnp.where(mask, token_nats(logits, batch["tgt_out"]), 0.0)
        return jnp.sum(nats) / jnp.maximum(jnp.sum(mask), 1), {}

    return fn


def eval_fn(model: Model):
    """``eval_fn(params, batch) -> {"loss", "token_accuracy", "sequence_accuracy"}``, each
    ``[B]`` per example under teacher forcing: the mean nats over the example's real target
    tokens, the fraction of them predicted by the argmax, and 1 if all of them are."""

    def fn(params, batch):
        logits = model.apply(params, batch["src"], batch["src_lengths"], batch["tgt_in"])
        mask = _target_mask(batch)
        n = jnp.sum(mask, axis=1).astype(jnp.float32)
        nats = jnp.where(mask, token_nats(logits, batch["tgt_out"]), 0.0)
        right = (jnp.argmax(logits, axis=-1) == batch["tgt_out"]) & mask
        n_right = jnp.sum(right, axis=1).astype(jnp.float32)
        return {"loss": jnp.sum(nats, axis=1) / n, "token_accuracy": n_right / n,
                "sequence_accuracy": (n_right == n).astype(jnp.float32)}

    return fn
