"""Padded batches of (source, target) id sequences for teacher forcing."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def make_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, bos_id: int = 2,
               eos_id: int = 3, pad_id: int = 0) -> dict:
    """Pad ``pairs`` of ``(source ids, target ids)`` into numpy arrays for teacher forcing.

    For a pair ``(x_1..x_n, y_1..y_m)``: ``src = x_1..x_n`` (then ``pad_id``), ``src_lengths =
    n``, ``tgt_in = bos, y_1..y_m``, ``tgt_out = y_1..y_m, eos`` (then ``pad_id``),
    ``tgt_lengths = m + 1``. Returns ``{"src" [N, S], "src_lengths" [N], "tgt_in" [N, T],
    "tgt_out" [N, T], "tgt_lengths" [N]}`` (int32) with ``S = max n``, ``T = max m + 1``. A
    target may be empty (``tgt_in = [bos]``, ``tgt_out = [eos]``); an empty source, an empty
    list of pairs or negative ids raise ValueError.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("make_batch: no pairs")
    srcs, tgts = [], []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"make_batch: pair {i} is not (source ids, target ids)")
        src, tgt = (np.asarray(list(s), dtype=np.int64) for s in pair)
        if src.size == 0:
            raise ValueError(f"make_batch: source {i} is empty (every source needs a token)")
        for what, ids in (("source", src), ("target", tgt)):
            if ids.ndim != 1 or (ids.size and ids.min() < 0):
                raise ValueError(f"make_batch: {what} {i} must be a list of ids >= 0")
        srcs.append(src)
        tgts.append(tgt)
    N = len(pairs)
    S = max(len(s) for s in srcs)
    T = max(len(t) for t in tgts) + 1
    out = {"src": np.full((N, S), pad_id, np.int32),
           "src_lengths": np.array([len(s) for s in srcs], np.int32),
           "tgt_in": np.full((N, T), pad_id, np.int32),
           "tgt_out": np.full((N, T), pad_id, np.int32),
           "tgt_lengths": np.array([len(t) + 1 for t in tgts], np.int32)}
    for i, (s, t) in enumerate(zip(srcs, tgts)):
        out["src"][i, :len(s)] = s
        out["tgt_in"][i, :len(t) + 1] = np.concatenate([[bos_id], t])
        out["tgt_out"][i, :len(t) + 1] = np.concatenate([t, [eos_id]])
    return out
