"""The fused LSTM: its step and masked backward step (the algebra of :mod:`dlmodels.rnn.gates`),
its backward loops with stored gates and with rematerialised chunks."""

from __future__ import annotations

import jax.numpy as jnp

from dlmodels.rnn.fused.chunks import chunked_backward, masked_scan
from dlmodels.rnn.fused.common import dot, gram, masked, passed_through, row, rowsum, where
from dlmodels.rnn.fused.sequence import fused_cell
from dlmodels.rnn.fused.stored import get, h_before, sweep, valid_at
from dlmodels.rnn.gates import lstm_activations, lstm_update, lstm_update_backward

KEYS = ("w_x", "w_h", "b")


def _cell_step(params):
    w_h, b = params["w_h"], params["b"]

    def step(carry, u):
        h, c = carry
        act = lstm_activations(u + row(b, u.ndim) + dot(h, w_h))
        return lstm_update(act, c), act, c                      # keeps c_{t-1}

    return step


def _step_backward(act, c_prev, dh, dc, dy, valid, w_h_t):
    """Masked step back: ``(dz, dh_{t-1}, dc_{t-1})``. Past a sequence's end the carry was
    copied through (its cotangent passes straight back) and the output was a constant zero."""
    dz, dc_prev = lstm_update_backward(act, c_prev, masked(valid, dh + dy), masked(valid, dc))
    return dz, passed_through(valid, dot(dz, w_h_t), dh), passed_through(valid, dc_prev, dc)


def _backward_stored(st, params, xs, carry, lengths, ys, saved, dys, dcarry):
    ax, T = st.time_axis, xs.shape[st.time_axis]
    w_h_t = params["w_h"].T

    def step(s, t, dcarry, current):
        dz, dh, dc = _step_backward(*current, *dcarry, get(dys, t, ax), valid_at(lengths, t),
                                    w_h_t)                     # dz_t over the gates,
        return (dh, dc), {0: dz, 1: h_before(ys, carry[0], lengths, st, T, s)}  # h_{t-1} over c

    dcarry, (dzs, h_prev) = sweep(st, T, step, dcarry, saved, read=(0, 1), backward=True)
    grads = {"w_x": gram(xs, dzs), "w_h": gram(h_prev, dzs), "b": rowsum(dzs)}
    return grads, dot(dzs, params["w_x"].T), dcarry


def _backward_chunked(st, params, xs, carry, lengths, ys, starts, dys, dcarry):
    D, H = xs.shape[-1], carry[0].shape[-1]
    w_x, w_h, b = (params[k] for k in KEYS)
    w_xh = jnp.concatenate([w_x, w_h], 0)                      # [D + H, 4H]
    w_h_t, w_x_t = w_h.T, w_x.T

    def c_step(c, act, valid):                                  # the cell states, again
        return where(valid, lstm_update(act, c)[1], c), c       # carry, c before the step

    def step(dcarry, inputs, valid):
        act, c_prev, dy = inputs
        dz, dh, dc = _step_backward(act, c_prev, *dcarry, dy, valid, w_h_t)
        return (dh, dc), dz

    def chunk_backward(x, h_prev, start, dy, valid, dcarry):
        xh = jnp.concatenate([x, h_prev], -1)                   # [K, B, D + H]
        act = lstm_activations(dot(xh, w_xh) + row(b, 3))       # [K, B, 4H]
        _, c_prev = masked_scan(c_step, start[1], act, valid, st)
        dcarry, dz = masked_scan(step, dcarry, (act, c_prev, dy), valid, st, reverse=True)
        return dcarry, (gram(xh, dz), rowsum(dz)), dot(dz, w_x_t)

    zeros = (jnp.zeros((D + H, 4 * H), xs.dtype), jnp.zeros((4 * H,), xs.dtype))
    dcarry, (dw, db), dxs = chunked_backward(st, xs, ys, dys, lengths, carry[0], starts, dcarry,
                                             zeros, chunk_backward)
    return {"w_x": dw[:D], "w_h": dw[D:], "b": db}, dxs, dcarry


fused_lstm = fused_cell(_cell_step, _backward_stored, _backward_chunked, KEYS, """\
The LSTM of :func:`dlmodels.rnn.lstm` over whole sequences, with a hand-written backward pass.

    ``params``: ``w_x [D, 4H]``, ``w_h [H, 4H]``, ``b [4H]`` (gates i, f, g, o); ``xs [B, T, D]``
    (``[T, B, D]`` with ``time_major``); ``carry``: ``LSTMState(h [B, H], c [B, H])``;
    ``lengths [B]`` integers or None. Same semantics as ``unroll``. Returns
    ``(ys [B, T, H] (or [T, B, H]), LSTMState(h_T, c_T))``.
    """)
