"""The fused GRU: its step and masked backward step (the algebra of :mod:`dlmodels.rnn.gates`),
its backward loops with stored gates and with rematerialised chunks."""

from __future__ import annotations

import jax.numpy as jnp

from dlmodels.rnn.fused.chunks import chunked_backward, masked_scan
from dlmodels.rnn.fused.common import dot, empty_seq, gram, masked, passed_through, row, rowsum
from dlmodels.rnn.fused.sequence import fused_cell
from dlmodels.rnn.fused.stored import get, h_before, sweep, valid_at
from dlmodels.rnn.gates import gru_update, gru_update_backward

KEYS = ("w_x", "w_h", "b_x", "b_h")


def _cell_step(params):
    w_h, b_x, b_h = params["w_h"], params["b_x"], params["b_h"]

    def step(carry, u):
        (h,) = carry
        v = dot(h, w_h) + row(b_h, h.ndim)
        act, h_new = gru_update(u + row(b_x, u.ndim), v, h)
        return (h_new,), act, v[..., 2 * h.shape[-1]:]          # keeps v_n = h W_hn + b_hn

    return step


def _step_backward(act, v_n, h_prev, dh, dy, valid, w_h_t):
    """Masked step back: ``(du, dv, dh_{t-1})``, the cotangents of ``x W_x + b_x`` and
    ``h W_h + b_h`` and of the carry (see the LSTM's)."""
    du, dv, dh_prev = gru_update_backward(act, v_n, h_prev, masked(valid, dh + dy))
    return du, dv, passed_through(valid, dh_prev + dot(dv, w_h_t), dh)


def _backward_stored(st, params, xs, carry, lengths, ys, saved, dys, dcarry):
    """The loop writes ``dv`` over the gates, ``h_{t-1}`` over ``v_n`` and ``du_n - dv_n =
    (1 - r) du_n`` into one more ``[.., H]`` buffer: ``du`` is ``dv`` plus that in the n block."""
    ax, T, H = st.time_axis, xs.shape[st.time_axis], carry[0].shape[-1]
    w_x, w_h_t = params["w_x"], params["w_h"].T

    def step(s, t, dcarry, current):
        h_prev = h_before(ys, carry[0], lengths, st, T, s)
        du, dv, dh = _step_backward(*current, h_prev, *dcarry, get(dys, t, ax),
                                    valid_at(lengths, t), w_h_t)
        return (dh,), {0: dv, 1: h_prev, 2: du[:, 2 * H:] - dv[:, 2 * H:]}

    buffers = saved + (empty_seq(xs, H),)
    dcarry, (dvs, h_prev, extra) = sweep(st, T, step, dcarry, buffers, read=(0, 1), backward=True)
    grads = {"w_x": gram(xs, dvs).at[:, 2 * H:].add(gram(xs, extra)), "w_h": gram(h_prev, dvs),
             "b_x": rowsum(dvs).at[2 * H:].add(rowsum(extra)), "b_h": rowsum(dvs)}
    return grads, dot(dvs, w_x.T) + dot(extra, w_x[:, 2 * H:].T), dcarry


def _backward_chunked(st, params, xs, carry, lengths, ys, starts, dys, dcarry):
    H = carry[0].shape[-1]
    w_x, w_h, b_x, b_h = (params[k] for k in KEYS)
    w_h_t, w_x_t = w_h.T, w_x.T

    def step(dcarry, inputs, valid):
        act, v_n, h_prev, dy = inputs
        du, dv, dh = _step_backward(act, v_n, h_prev, *dcarry, dy, valid, w_h_t)
        return (dh,), (du, dv)

    def chunk_backward(x, h_prev, start, dy, valid, dcarry):
        v = dot(h_prev, w_h) + row(b_h, 3)                      # [K, B, 3H]
        act, _ = gru_update(dot(x, w_x) + row(b_x, 3), v, h_prev)
        dcarry, (du, dv) = masked_scan(step, dcarry, (act, v[..., 2 * H:], h_prev, dy), valid,
                                       st, reverse=True)
        grads = {"w_x": gram(x, du), "w_h": gram(h_prev, dv), "b_x": rowsum(du),
                 "b_h": rowsum(dv)}
        return dcarry, grads, dot(du, w_x_t)

    zeros = {k: jnp.zeros_like(params[k]) for k in KEYS}
    dcarry, grads, dxs = chunked_backward(st, xs, ys, dys, lengths, carry[0], starts, dcarry,
                                          zeros, chunk_backward)
    return grads, dxs, dcarry


fused_gru = fused_cell(_cell_step, _backward_stored, _backward_chunked, KEYS, """\
The GRU of :func:`dlmodels.rnn.gru` over whole sequences, with a hand-written backward pass.

    ``params``: ``w_x [D, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]`` (gates r, z, n);
    ``carry``: ``RNNState(h [B, H])``; the rest as :func:`dlmodels.rnn.fused.fused_lstm`.
    Returns ``(ys, RNNState(h_T))``.
    """)
