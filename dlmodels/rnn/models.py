"""Sequence models built from cells: a (deep, optionally bidirectional) RNN with a dense head on
the last valid step (classification) or on every step (sequence labelling)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.nn import dense
from dlmodels.rnn.cell import Cell
from dlmodels.rnn.unroll import last_valid, stacked
from dlmodels.validation import check_choice, check_shape


def sequence_model(cells: Cell | Sequence[Cell], input_size: int, output_size: int | None, *,
                   head: str = "last", bidirectional: bool = False, **unroll_kwargs) -> Model:
    """``Model(init, apply)`` for ``apply(params, xs, *, lengths=None, key=None, train=False)``
    and ``init(key, dtype=float32)``.

    ``cells``: one cell, or one per layer (a deep RNN). With ``bidirectional``, each layer has a
    forward and a backward copy of its cell and passes ``[y_fwd, y_bwd]`` up. ``head``:
    ``"last"``: logits ``[B, output_size]`` from the top layer's output at each sequence's last
    valid step (for a bidirectional top layer, ``[y_fwd at L-1, y_bwd at 0]``); ``"per_step"``:
    ``[B, T, output_size]``, exactly zero at padded steps; ``"none"``: the top layer's outputs.
    ``output_size=None`` means no dense head. ``xs [B, T, input_size]``; ``unroll_kwargs`` go to
    ``unroll`` (e.g. ``remat``, ``truncate``). The layers run through
    :func:`dlmodels.rnn.stacked`. An input that is not ``[B, T, input_size]`` raises
    :class:`dlmodels.validation.ShapeError`.

    Params: ``{"rnn": {"layer_0": ..., }, "head": {"w", "b"}}`` (bidirectional layers hold
    ``{"forward", "backward"}``).
    """
    cells = [cells] if isinstance(cells, Cell) else list(cells)
    check_choice("head", head, ("last", "per_step", "none"))
    sizes = [input_size]
    for cell in cells:
        sizes.append(cell.output_size * (2 if bidirectional else 1))
    readout = dense(sizes[-1], output_size) if output_size else None

    def init(key, dtype=jnp.float32):
        keys = jax.random.split(key, len(cells) + 1)
        rnn = {}
        for l, (cell, k) in enumerate(zip(cells, keys)):
            if bidirectional:
                k_f, k_b = jax.random.split(k)
                rnn[f"layer_{l}"] = {"forward": cell.init(k_f, sizes[l], dtype),
                                     "backward": cell.init(k_b, sizes[l], dtype)}
            else:
                rnn[f"layer_{l}"] = cell.init(k, sizes[l], dtype)
        params = {"rnn": rnn}
        if readout is not None:
            params["head"] = readout.init(keys[-1], dtype)
        return params

    def apply(params, xs, *, lengths=None, key=None, train=False):
        del key, train
        check_shape(xs, (None, None, input_size), "sequence_model: input [B, T, input_size]")
        ys, _ = stacked(cells, params["rnn"], xs, lengths=lengths, bidirectional=bidirectional,
                        **unroll_kwargs)
        if head == "last":
            if bidirectional:
                O = cells[-1].output_size
                feats = jnp.concatenate([last_valid(ys[..., :O], lengths), ys[:, 0, O:]], -1)
            else:
                feats = last_valid(ys, lengths)
            return readout.apply(params["head"], feats) if readout else feats
        if readout is None:
            return ys
        out = readout.apply(params["head"], ys)
        if lengths is not None:
            valid = jnp.arange(ys.shape[1])[None, :] < jnp.asarray(lengths)[:, None]
            out = jnp.where(valid[..., None], out, jnp.zeros((), out.dtype))
        return out

    return Model(init, apply)
