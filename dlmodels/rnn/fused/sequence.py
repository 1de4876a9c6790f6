"""A fused cell from its parts: the forward (stored or chunked, the same for every cell), the
cell's backward loops, and the ``custom_vjp`` that joins them; the settings of a run."""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax

from dlmodels.rnn.fused.chunks import chunked_forward
from dlmodels.rnn.fused.common import FusedSettings, dot
from dlmodels.rnn.fused.stored import stored_forward
from dlmodels.validation import check_shape


def remat_chunk(T: int, B: int) -> int:
    """Steps per chunk with rematerialisation: about 1024 rows (``K * B``) per chunk matmul, which
    keeps them efficient, at least 8 steps, at most T; a divisor of T when one is within a factor
    of 2 below that (no padding)."""
    target = max(1, min(T, max(8, -(-1024 // max(B, 1)))))
    for k in range(target, (target + 1) // 2 - 1, -1):
        if T % k == 0:
            return k
    return target


def settings(xs, *, reverse, time_major, remat, steps_per_iteration) -> FusedSettings:
    T, B = (xs.shape[0], xs.shape[1]) if time_major else (xs.shape[1], xs.shape[0])
    return FusedSettings(0 if time_major else 1, bool(reverse), int(steps_per_iteration),
                         remat_chunk(T, B) if remat else 0)


def fused_cell(cell_step: Callable, backward_stored: Callable, backward_chunked: Callable,
               keys: tuple[str, ...], doc: str) -> Callable:
    """``fused(params, xs, carry, *, lengths, reverse, time_major, remat, steps_per_iteration)
    -> (ys, final carry)``, the ``Cell.fused`` of a cell (see :mod:`dlmodels.rnn.cell`).

    ``cell_step(params)(carry, u_t) -> (new carry (h, ...), gate activations, the value
    :mod:`.stored` keeps)`` with ``u_t = x_t W_x``; ``backward_stored`` / ``backward_chunked
    (st, params, xs, carry, lengths, ys, saved, dys, dcarry) -> (dparams, dxs, dcarry_0)``, where
    ``saved`` is what the stored or the chunked forward saved. ``params`` holds ``keys``;
    ``carry`` is passed as a tuple of its fields, ``lengths`` gets no cotangent."""

    def forward(st, params, xs, carry, lengths, save):
        step = cell_step(params)
        if st.chunk:
            return chunked_forward(st, xs, params["w_x"], lengths, carry,
                                   lambda c, u: step(c, u)[0])
        return stored_forward(st, dot(xs, params["w_x"]), lengths, carry, step, save)

    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def run(st, params, xs, carry, lengths):
        ys, final, _ = forward(st, params, xs, carry, lengths, False)
        return ys, final

    def run_forward(st, params, xs, carry, lengths):
        ys, final, saved = forward(st, params, xs, carry, lengths, True)
        return (ys, final), (params, xs, carry, lengths, ys, saved)

    def run_backward(st, residuals, cotangents):
        backward = backward_chunked if st.chunk else backward_stored
        return backward(st, *residuals, *cotangents) + (None,)

    run.defvjp(run_forward, run_backward)

    def fused(params, xs, carry, *, lengths=None, reverse=False, time_major=False, remat=False,
              steps_per_iteration=1):
        D = params["w_x"].shape[0]
        check_shape(xs, (None, None, D), f"fused: xs [B, T, {D}] (or [T, B, {D}])")
        st = settings(xs, reverse=reverse, time_major=time_major, remat=remat,
                      steps_per_iteration=steps_per_iteration)
        ys, final = run(st, {k: params[k] for k in keys}, xs, tuple(carry), lengths)
        return ys, type(carry)(*final)

    fused.__doc__ = doc
    return fused
