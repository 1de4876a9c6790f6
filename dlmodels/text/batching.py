"""Batches of text: padding with lengths, bucketing by length, and the stream batcher of
language models (truncated BPTT over B parallel streams).

The stream layout (Zaremba et al. 2014's reader, with the remainder at the end only): a corpus of
``N`` token ids gives ``W = ((N - 1) // B) // T`` windows of ``T`` per stream, each stream
``S = W T`` tokens long. Stream ``b`` reads the inputs ``ids[b S : (b + 1) S]`` and predicts the
targets ``ids[b S + 1 : (b + 1) S + 1]``; window ``w`` of stream ``b`` is its slice
``[w T, (w + 1) T)``, so window ``w + 1`` continues window ``w`` and the carry flows from one to
the next. Every position ``0 .. B S - 1`` is an input exactly once per epoch; the tail
``ids[B S:]`` (``N - B S`` tokens, at most ``B T``) is not an input (its first token is the last
target).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import numpy as np

from dlmodels.validation import ShapeError, check_positive


class Streams(NamedTuple):
    """``inputs``, ``targets``: int32 ``[W, B, T]``; ``targets[w, b, t]`` is the token after
    ``inputs[w, b, t]``; window ``w + 1`` of stream ``b`` continues window ``w``."""

    inputs: np.ndarray
    targets: np.ndarray


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    check_positive(name, value)
    return int(value)


def _as_ids(ids, what: str) -> np.ndarray:
    """``ids`` as a 1-D int array of non-negative ids, or a clear error."""
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ShapeError(f"{what}: expected a 1-D sequence of token ids, got shape {a.shape}")
    if a.size == 0:
        return a.astype(np.int32)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what}: token ids must be integers, got {a.dtype}")
    if a.min() < 0:
        raise ValueError(f"{what}: token ids must be >= 0, got {int(a.min())}")
    if a.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{what}: token id {int(a.max())} does not fit int32")
    return a


def pad(sequences: Sequence[Sequence[int]], *, pad_id: int = 0,
        max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad sequences of ids to one batch: ``(ids int32 [N, T], lengths int32 [N])``.

    ``ids[n, :lengths[n]]`` is sequence n (cut to ``max_len`` when it is longer), the rest is
    ``pad_id``. ``T = max_len`` if given, else the longest length (at least 1).
    """
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        sequences = list(sequences)
    if len(sequences) == 0:
        raise ValueError("pad: no sequences")
    seqs = [_as_ids(s, f"pad: sequence {n}") for n, s in enumerate(sequences)]
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or pad_id < 0:
        raise ValueError(f"pad: pad_id must be an integer >= 0, got {pad_id!r}")
    lengths = np.array([len(s) for s in seqs], np.int32)
    if max_len is not None:
        T = _check_count("max_len", max_len)
        lengths = np.minimum(lengths, T)
    else:
        T = max(int(lengths.max()), 1)
    out = np.full((len(seqs), T), pad_id, np.int32)
    mask = np.arange(T)[None, :] < lengths[:, None]              # [N, T]
    if mask.any():
        out[mask] = np.concatenate([s[:L] for s, L in zip(seqs, lengths)])
    return out, lengths


def buckets(lengths, batch_size: int, *, key: jax.Array, n_buckets: int = 10) -> list[np.ndarray]:
    """Batches of indices with similar lengths: a list of int arrays, every index in exactly one.

    The indices are sorted by length (ties broken at random by ``key``) and split into
    ``n_buckets`` groups of (nearly) equal size; each group is shuffled and cut into batches of
    ``batch_size`` (its last batch may be smaller); the list of batches is shuffled. Padding a
    batch costs at most the spread of lengths within its group instead of the whole data set's.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ShapeError(f"buckets: expected lengths [N], got shape {lengths.shape}")
    if lengths.size == 0:
        raise ValueError("buckets: no lengths")
    if not np.issubdtype(lengths.dtype, np.integer) or lengths.min() < 0:
        raise ValueError("buckets: lengths must be integers >= 0")
    batch_size = _check_count("batch_size", batch_size)
    n_buckets = min(_check_count("n_buckets", n_buckets), lengths.size)
    k_tie, k_in, k_order = jax.random.split(key, 3)
    tie = np.asarray(jax.random.permutation(k_tie, lengths.size))
    order = np.lexsort((tie, lengths))                           # by length, random ties
    out = []
    for g, group in enumerate(np.array_split(order, n_buckets)):
        group = group[np.asarray(jax.random.permutation(jax.random.fold_in(k_in, g), group.size))]
        out += [group[i:i + batch_size] for i in range(0, group.size, batch_size)]
    perm = np.asarray(jax.random.permutation(k_order, len(out)))
    return [out[i].astype(np.int32) for i in perm]


def streams(ids, batch_size: int, window: int) -> Streams:
    """Cut the corpus ``ids`` (1-D ints, ``N`` tokens) into ``batch_size`` contiguous streams of
    ``W`` windows of ``window`` tokens: ``Streams(inputs, targets)`` int32 ``[W, B, T]`` (module
    doc for the layout and the remainder). A corpus shorter than ``B T + 1`` raises ValueError."""
    ids = _as_ids(ids, "streams")
    B, T = _check_count("batch_size", batch_size), _check_count("window", window)
    n = ids.size
    W = ((n - 1) // B) // T if n else 0
    if W < 1:
        raise ValueError(f"streams: a corpus of {n} tokens is too short for batch_size {B} x "
                         f"window {T} (needs at least B*T + 1 = {B * T + 1} tokens)")
    S = W * T
    used = B * S
    inputs = ids[:used].reshape(B, W, T).transpose(1, 0, 2)       # [W, B, T]
    targets = ids[1:used + 1].reshape(B, W, T).transpose(1, 0, 2)
    return Streams(np.ascontiguousarray(inputs, np.int32), np.ascontiguousarray(targets, np.int32))


def trainer_data(s: Streams) -> dict[str, np.ndarray]:
    """Streams as training data for :func:`dlmodels.train.fit`: ``{"inputs": [W*B, T],
    "targets": [W*B, T], "reset": bool [W*B]}`` with row ``w*B + b`` = window w of stream b, so
    ``fit(..., TrainConfig(batch_size=B, shuffle=False))`` takes window w as batch w (of every
    epoch); ``reset`` is True in window 0 (start the carry from zeros there)."""
    inputs, targets = np.asarray(s.inputs), np.asarray(s.targets)
    if inputs.ndim != 3 or inputs.shape != targets.shape:
        raise ShapeError(f"trainer_data: expected inputs and targets [W, B, T], got "
                         f"{inputs.shape} and {targets.shape}")
    W, B, T = inputs.shape
    reset = np.zeros((W, B), bool)
    reset[0] = True
    return {"inputs": inputs.reshape(W * B, T), "targets": targets.reshape(W * B, T),
            "reset": reset.reshape(W * B)}
