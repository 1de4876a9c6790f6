"""Decoding an encoder-decoder: greedy, and beam search batched over sentences and beams, each
one compiled ``lax.while_loop`` that stops when every hypothesis has ended (or at ``max_len``)."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.model import Model
from dlmodels.seq2seq.model import parts_of
from dlmodels.validation import ShapeError, check_nonnegative


def _check_decoding(max_len, bos_id, eos_id, vocab_size=None, beam_size=1) -> None:
    for name, value in (("max_len", max_len), ("beam_size", beam_size)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or int(value) != value or value < 0 or (
                vocab_size is not None and value >= vocab_size):
            limit = "" if vocab_size is None else f" and < the vocabulary size {vocab_size}"
            raise ValueError(f"{name} must be an integer >= 0{limit}, got {value!r}")


def beam_search(step_fn: Callable, state: Any, *, batch_size: int, beam_size: int, max_len: int,
                bos_id: int, eos_id: int, length_penalty: float = 0.0):
    """Beam search over ``batch_size`` sentences at once, in one ``lax.while_loop``.

    ``step_fn(state, tokens [batch * beam]) -> (log_probs [batch * beam, V], new_state)``, where
    ``state`` is a pytree whose leaves have the leading axis ``batch * beam`` (row ``b * beam +
    k`` is beam k of sentence b). Returns ``(tokens int32 [batch, beam, max_len], scores
    [batch, beam])``, best first: each sequence holds the tokens after ``bos`` up to and
    including its ``eos``, then ``eos`` as padding (a hypothesis still alive at ``max_len`` has
    no eos).

    Each step extends every hypothesis by every token and keeps the ``beam`` best of the
    ``beam * V`` candidates of each sentence, ranked by

        score(y) = sum_{t <= |y|} log p(y_t | y_<t, x) / |y|^alpha        (alpha = length_penalty)

    with ``|y|`` the number of tokens up to and including the first eos (length normalisation,
    e.g. Murray & Chiang 2018; alpha = 1 is the mean log-probability, alpha = 0 the plain sum);
    the returned ``scores`` are these. A hypothesis that has emitted eos is ended: it extends
    only by eos, at log-probability 0, so its score and length stay. At the first step only
    beam 0 of each sentence is expanded (the others start at -inf), so the beams are distinct.
    After each step every leaf of ``state`` is reordered by the chosen parent beams. The loop
    stops when every hypothesis of every sentence has ended (or is at -inf, when the search
    space is smaller than the beam) or after ``max_len`` steps.
    """
    _check_decoding(max_len, bos_id, eos_id, beam_size=beam_size)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    check_nonnegative("length_penalty", length_penalty)
    B, K, N = int(batch_size), int(beam_size), int(max_len)
    for leaf in jax.tree.leaves(state):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != B * K:
            raise ShapeError(f"beam_search: every state leaf needs the leading axis batch * beam "
                             f"= {B * K}, got shape {jnp.shape(leaf)}")
    probe = jax.eval_shape(step_fn, state, jnp.zeros((B * K,), jnp.int32))
    log_probs_shape = probe[0]
    if len(log_probs_shape.shape) != 2 or log_probs_shape.shape[0] != B * K:
        raise ShapeError(f"beam_search: step_fn must return log_probs [batch * beam, V] = "
                         f"[{B * K}, V], got {log_probs_shape.shape}")
    V = log_probs_shape.shape[1]
    if eos_id >= V:
        raise ValueError(f"eos_id {eos_id} is outside the step function's vocabulary 0..{V - 1}")
    dtype = jnp.promote_types(log_probs_shape.dtype, jnp.float32)
    neg_inf = jnp.asarray(-jnp.inf, dtype)
    alpha = jnp.asarray(length_penalty, dtype)
    only_eos = jnp.where(jnp.arange(V) == eos_id, 0.0, neg_inf).astype(dtype)     # [V]

    def rank(scores, lengths):
        return scores / jnp.maximum(lengths, 1).astype(dtype) ** alpha

    def cond(carry):
        t, _, _, scores, _, ended, _ = carry
        return (t < N) & ~jnp.all(ended | jnp.isneginf(scores))

    def body(carry):
        t, last, tokens, scores, lengths, ended, state = carry
        log_probs, state = step_fn(state, last)
        log_probs = log_probs.astype(dtype).reshape(B, K, V)
        log_probs = jnp.where(ended[..., None], only_eos[None, None, :], log_probs)
        cand = scores[..., None] + log_probs                                  # [B, K, V]
        cand_len = jnp.where(ended, lengths, t + 1)[..., None]                # [B, K, 1]
        cand_len = jnp.broadcast_to(cand_len, cand.shape)
        _, best = jax.lax.top_k(rank(cand, cand_len).reshape(B, K * V), K)   # [B, K]
        parent, token = best // V, (best % V).astype(jnp.int32)
        scores = jnp.take_along_axis(cand.reshape(B, K * V), best, axis=1)
        lengths = jnp.take_along_axis(cand_len.reshape(B, K * V), best, axis=1)
        ended = jnp.take_along_axis(ended, parent, axis=1) | (token == eos_id)
        tokens = jnp.take_along_axis(tokens, parent[..., None], axis=1)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[..., None], t, axis=2)
        rows = (jnp.arange(B)[:, None] * K + parent).reshape(B * K)           # flat parents
        state = jax.tree.map(lambda leaf: jnp.take(leaf, rows, axis=0), state)
        return t + 1, token.reshape(B * K), tokens, scores, lengths, ended, state

    scores0 = jnp.where(jnp.arange(K) == 0, 0.0, neg_inf).astype(dtype)
    carry = (jnp.asarray(0, jnp.int32), jnp.full((B * K,), bos_id, jnp.int32),
             jnp.full((B, K, N), eos_id, jnp.int32), jnp.broadcast_to(scores0, (B, K)),
             jnp.zeros((B, K), jnp.int32), jnp.zeros((B, K), bool), state)
    _, _, tokens, scores, lengths, _, _ = jax.lax.while_loop(cond, body, carry)
    final = rank(scores, lengths)
    order = jnp.argsort(-final, axis=1, stable=True)                          # best first
    return (jnp.take_along_axis(tokens, order[..., None], axis=1),
            jnp.take_along_axis(final, order, axis=1))


def decoder(model: Model, params, src, src_lengths, *, beam_size: int):
    """``(step_fn, state)`` for :func:`beam_search` from an encoder-decoder and a batch of
    sources ``src [B, S]``, ``src_lengths [B]``: the encoder runs once; each sentence's decoder
    state is repeated for its ``beam_size`` beams (row ``b * beam + k``), and ``step_fn(state,
    tokens [B * beam]) -> (log_softmax(logits) [B * beam, V], state)`` is the model's own decoder
    step (the one the teacher-forced ``apply`` scans), attending to the sentence's encoder
    states (closed over, repeated per beam: every beam of a sentence shares them, so reordering
    beams never has to move them)."""
    parts = parts_of(model)
    _check_decoding(1, 0, 0, beam_size=beam_size)
    state, memory = parts.encode(params, src, src_lengths)
    repeat = partial(jnp.repeat, repeats=int(beam_size), axis=0)
    state, memory = jax.tree.map(repeat, state), jax.tree.map(repeat, memory)

    def step_fn(state, tokens):
        logits, state, _ = parts.step(params, state, tokens, memory)
        return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), state

    return step_fn, state


def greedy(model: Model, params, src, src_lengths, *, max_len: int, bos_id: int = 2,
           eos_id: int = 3) -> jax.Array:
    """Greedy decoding, ``y_t = argmax_y p(y | y_<t, x)``, in one jitted ``lax.while_loop`` that
    stops when every sentence has emitted eos (or after ``max_len`` tokens). Returns ``tokens
    int32 [B, max_len]``: the tokens after bos up to and including eos, then eos."""
    parts = parts_of(model)
    _check_decoding(max_len, bos_id, eos_id, parts.tgt_vocab)
    parts.check(src, src_lengths)
    return _greedy(model, int(max_len), int(bos_id), int(eos_id), params, src, src_lengths)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _greedy(model, max_len, bos_id, eos_id, params, src, src_lengths):
    parts = parts_of(model)
    state, memory = parts.encode(params, src, src_lengths)
    B = src.shape[0]

    def cond(carry):
        t, _, _, ended, _ = carry
        return (t < max_len) & ~jnp.all(ended)

    def body(carry):
        t, last, tokens, ended, state = carry
        logits, state, _ = parts.step(params, state, last, memory)
        token = jnp.where(ended, eos_id, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], t, axis=1)
        return t + 1, token, tokens, ended | (token == eos_id), state

    carry = (jnp.asarray(0, jnp.int32), jnp.full((B,), bos_id, jnp.int32),
             jnp.full((B, max_len), eos_id, jnp.int32), jnp.zeros((B,), bool), state)
    return jax.lax.while_loop(cond, body, carry)[2]


def translate(model: Model, params, src, src_lengths, *, max_len: int, beam_size: int = 1,
              length_penalty: float = 0.0, bos_id: int = 2, eos_id: int = 3) -> jax.Array:
    """The best hypothesis of :func:`beam_search` with the model's :func:`decoder`:
    ``tokens int32 [B, max_len]`` (after bos, up to and including eos, then eos). Jitted: one
    compilation per model, shape and setting (``beam_size=1`` is greedy decoding)."""
    parts = parts_of(model)
    _check_decoding(max_len, bos_id, eos_id, parts.tgt_vocab, beam_size)
    check_nonnegative("length_penalty", length_penalty)
    parts.check(src, src_lengths)
    return _translate(model, int(max_len), int(beam_size), float(length_penalty), int(bos_id),
                      int(eos_id), params, src, src_lengths)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _translate(model, max_len, beam_size, length_penalty, bos_id, eos_id, params, src,
               src_lengths):
    step_fn, state = decoder(model, params, src, src_lengths, beam_size=beam_size)
    tokens, _ = beam_search(step_fn, state, batch_size=src.shape[0], beam_size=beam_size,
                            max_len=max_len, bos_id=bos_id, eos_id=eos_id,
                            length_penalty=length_penalty)
    return tokens[:, 0]


def strip(tokens_row, eos_id: int = 3) -> list[int]:
    """The ids of one decoded row before its first eos (all of them if there is none)."""
    row = np.asarray(tokens_row).reshape(-1).tolist()
    return row[:row.index(eos_id)] if eos_id in row else row
