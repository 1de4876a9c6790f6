"""Inputs for networks over tokens: the one-hot (local) representation and the learned
distributed one (an embedding table).

A one-hot vector ``e_k`` has a 1 at the token's id and V - 1 zeros: every token is as far from
every other. An embedding maps id ``k`` to row ``k`` of a learned table ``E [V, D]`` (Bengio et al.
2003): ``embed(k) = e_k E``, the same as a linear layer on the one-hot input without the
``V x D`` multiplication, and similar tokens can learn nearby rows. Both are valid RNN inputs:
``one_hot(ids, V)`` is ``[..., V]``, ``embedding(V, D).apply(params, ids)`` is ``[..., D]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.model import Model
from dlmodels.nn import initializers
from dlmodels.validation import ShapeError, check_positive, concrete


def _check_ids(ids, vocab_size: int, what: str) -> None:
    """Integer ids, and (when their values are known, i.e. not under jit/vmap) in ``0..V-1``."""
    if not jnp.issubdtype(jnp.asarray(ids).dtype, jnp.integer):
        raise TypeError(f"{what}: token ids must be integers, got {jnp.asarray(ids).dtype}")
    a = concrete(ids)
    if a is not None and a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = int(a.min()) if a.min() < 0 else int(a.max())
        raise ValueError(f"{what}: token id {bad} is outside the vocabulary 0..{vocab_size - 1}")


def one_hot(ids, vocab_size: int, dtype=jnp.float32) -> jax.Array:
    """One-hot vectors ``[..., V]`` of integer ids ``[...]``: ``out[..., k] = (ids == k)``. Ids
    outside ``0..V-1`` raise ValueError when they are known (under jit they give a zero row)."""
    check_positive("vocab_size", vocab_size)
    _check_ids(ids, vocab_size, "one_hot")
    return jax.nn.one_hot(ids, vocab_size, dtype=dtype)


def embedding(vocab_size: int, dim: int, *, dtype=jnp.float32, w_init=None) -> Model:
    """Embedding layer: ``apply(params, ids [...]) -> table[ids] [..., D]`` (= ``one_hot(ids) @
    table``).

    Params: ``{"table": [V, D]}``, drawn from N(0, 1) by default (``w_init=None``, as
    ``torch.nn.Embedding``); ``w_init`` takes any initialiser name or callable.
    ``init(key, dtype=None)`` uses the factory's ``dtype`` unless given. Ids outside ``0..V-1``
    raise ValueError when their values are known; under ``jit``/``vmap`` they cannot be checked
    and are clamped to the range.
    """
    check_positive("vocab_size", vocab_size)
    check_positive("dim", dim)
    w = initializers.normal(1.0) if w_init is None else initializers.get(w_init)
    default_dtype = dtype

    def init(key: jax.Array, dtype=None) -> dict:
        return {"table": w(key, (vocab_size, dim), dtype or default_dtype)}

    def apply(params: dict, ids: jax.Array) -> jax.Array:
        table = params["table"]
        if np.shape(table) != (vocab_size, dim):
            raise ShapeError(f"embedding: expected table [{vocab_size}, {dim}], got "
                             f"{np.shape(table)}")
        _check_ids(ids, vocab_size, "embedding")
        return jnp.take(table, ids, axis=0, mode="clip")

    return Model(init, apply)
