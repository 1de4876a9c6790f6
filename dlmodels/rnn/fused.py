"""Whole-sequence LSTM and GRU with a hand-written backward pass: the fast path of ``unroll``.

Autodiff of a scanned cell stores every intermediate of every step and, in the backward scan,
forms each step's weight gradient as a thin outer product (``h_{t-1}^T dz_t``, contracting only B
rows) added to an accumulator. Here the backward loop propagates only ``dh`` (and ``dc``); the
weight gradients are formed after it as a few large matmuls over all ``N = T * B`` rows:

    forward:   U = X W_x  (one [N, D] @ [D, G*H] matmul before the loop)
               per step: z_t = U_t + b + h_{t-1} W_h,  gates a_t,  carry update
    backward:  per step: dz_t from a_t, the saved state and (dh_t, dc_t) (elementwise);
               dh_{t-1} = dz_t W_h^T (+ dh_t z_t for the GRU),  dc_{t-1} = dc_t f_t
    after:     dW_h = H_prev^T dZ,  dW_x = X^T dZ,  db = 1^T dZ,  dX = dZ W_x^T

Only what the backward needs is stored: the gate activations, written in place over ``U_t`` (the
backward loop overwrites them in place with ``dz_t``, so the buffer then holds ``dZ`` for the
matmuls after it), and one ``[N, H]`` buffer (``c_{t-1}`` for the LSTM, ``h_{t-1} W_hn + b_hn``
for the GRU) that the backward loop reuses in place for ``h_{t-1}``; the outputs ``h_t`` are the
rest. Fresh large buffers are expensive on CPU (first-touch page faults cost about as much as the
arithmetic that fills them), so the fast path allocates as few as it can. Each loop reads the next
step's slice of a buffer *after* writing the current one: reading it before lets XLA fuse the read
into several consumers, some not ordered before the in-place write, and XLA then copies the whole
buffer every step.

With ``remat=True`` nothing per step is stored but the outputs: the forward runs in chunks of K
steps and keeps the carry at each chunk's start; the backward, chunk by chunk from the last,
recomputes the chunk's pre-activations ``Z = [X, H_prev] [W_x; W_h] + b`` as one ``[K*B, D+H]``
matmul (``H_prev`` is known from the outputs; the LSTM's cell states from a cheap elementwise
recurrence from the chunk's start), propagates ``dh`` (``dc``) through the chunk, and adds the
chunk's weight gradients as ``[K*B]``-row matmuls. Memory: the outputs, their cotangents and
``O(K * B * G * H)``; cost: one more ``2 N (D + H) G H`` flops, in efficient matmuls.

``lengths`` mask as in ``unroll``: at ``t >= L_b`` the carry is frozen and the output is exactly
zero. ``reverse`` runs from ``t = T-1`` down to 0 with the same mask, which is the same as
reversing each sequence within its length: the steps ``t >= L_b`` come first and leave the
initial carry as it is. Both layouts (``[T, B, .]``, ``[B, T, .]``) are native: the matmuls after
the loop only need the same row order in ``X``, ``H_prev`` and ``dZ``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


class Config(NamedTuple):
    """Static settings of one fused run: ``time_axis`` 0 (``[T, B, .]``) or 1 (``[B, T, .]``),
    ``reverse`` (steps from the last to the first), ``unroll`` (steps per iteration of the
    rematerialised chunks' inner scans; the loops that update whole-sequence buffers in place are
    never unrolled: in an unrolled body XLA fuses the reads of a buffer into consumers it cannot
    order before the next write, and then copies the whole buffer every iteration), ``chunk``
    (steps per chunk with rematerialisation; 0: none)."""

    time_axis: int
    reverse: bool
    unroll: int
    chunk: int


# -- helpers ------------------------------------------------------------------------------------

def _dot(a, w):
    """``a [..., K] @ w [K, M] -> [..., M]``."""
    return lax.dot_general(a, w, (((a.ndim - 1,), (0,)), ((), ())))


def _gram(a, b):
    """``a^T b`` summed over all rows: ``a [..., K]``, ``b [..., M]`` (same leading shape) ->
    ``[K, M]``, as one 2-D matmul (no 3-D contraction for XLA to lower to transposes)."""
    a2 = a.reshape(-1, a.shape[-1])
    b2 = b.reshape(-1, b.shape[-1])
    return lax.dot_general(a2, b2, (((0,), (0,)), ((), ())))


def _rowsum(a):
    return jnp.sum(a.reshape(-1, a.shape[-1]), axis=0)


def _row(v, ndim: int):
    """A ``[n]`` vector shaped to broadcast against ``[..., n]`` of rank ``ndim``."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _get(buf, t, axis):
    return lax.dynamic_index_in_dim(buf, t, axis, keepdims=False)


def _put(buf, t, value, axis):
    return lax.dynamic_update_index_in_dim(buf, value, t, axis)


def _time(cfg: Config, T: int, s):
    """Time index of the s-th step in processing order."""
    return T - 1 - s if cfg.reverse else s


def _valid(lengths, t):
    """``[B, 1]``: the sequences running at time t (None without lengths)."""
    return None if lengths is None else (t < lengths)[:, None]


def _where(valid, a, b):
    return a if valid is None else jnp.where(valid, a, b)


def _zero(x):
    return jnp.zeros((), x.dtype)


def _empty_seq(xs, width: int):
    return jnp.zeros(xs.shape[:-1] + (width,), xs.dtype)


def _h_before(ys, h0, lengths, cfg: Config, T: int, s):
    """The carry ``h`` before the s-th step, wherever step s is valid (all the backward needs: an
    invalid step has zero cotangents): the output of step s - 1 if that step was valid, else the
    initial carry (with ``reverse`` and lengths, the steps past a sequence's end come first and
    leave it unchanged)."""
    t_prev = _time(cfg, T, jnp.maximum(s - 1, 0))
    previous = _get(ys, t_prev, cfg.time_axis)
    use = (s > 0) if lengths is None else ((s > 0) & (t_prev < lengths))[:, None]
    return jnp.where(use, previous, h0)


def _sigmoid(x):
    """``sigmoid(x) = (1 + tanh(x / 2)) / 2``: one tanh (a rational function in XLA) instead of an
    exp and a division, ~15% cheaper per element on CPU; its derivative is still
    ``sigmoid (1 - sigmoid)``."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _gate_scales(G: int, H: int, tanh_block: int, dtype):
    """Per-column ``(scale, shift)``, ``[G*H]``: ``scale * tanh(scale * z) + shift`` is
    ``_sigmoid(z)`` on every gate block but ``tanh(z)`` on ``tanh_block``: all gate activations
    in one elementwise pass, one tanh per element."""
    is_tanh = (jnp.arange(G * H) // H) == tanh_block
    return (jnp.where(is_tanh, 1.0, 0.5).astype(dtype), jnp.where(is_tanh, 0.0, 0.5).astype(dtype))


# -- LSTM cell algebra (any leading dims) -------------------------------------------------------

def _split4(a, H):
    return a[..., :H], a[..., H:2 * H], a[..., 2 * H:3 * H], a[..., 3 * H:]


def _lstm_act(z, scale, shift):
    """Gate activations ``(i, f, g, o)`` from pre-activations ``z [..., 4H]``."""
    scale, shift = _row(scale, z.ndim), _row(shift, z.ndim)
    return scale * jnp.tanh(z * scale) + shift


def _lstm_cell(z, c, scale, shift, H):
    """``(act, h_new, c_new)`` from pre-activations ``z [B, 4H]`` and ``c [B, H]``."""
    act = _lstm_act(z, scale, shift)
    i, f, g, o = _split4(act, H)
    c_new = f * c + i * g
    return act, o * jnp.tanh(c_new), c_new


def _lstm_cell_backward(act, c_prev, dh, dc, H):
    """One step back from the cotangents ``dh, dc`` of the candidate ``h_t, c_t``:
    ``(dz [B, 4H], dc_{t-1} through the cell)``."""
    i, f, g, o = _split4(act, H)
    tc = jnp.tanh(f * c_prev + i * g)
    dc = dc + dh * o * (1 - tc * tc)
    dz = jnp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                          dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=-1)
    return dz, dc * f


def _lstm_step_backward(act, c_prev, dh, dc, dy, valid, w_h_t, H):
    """Masked step back: ``(dz, dh_{t-1}, dc_{t-1})``. Past a sequence's end the carry was
    copied through (its cotangent passes straight back) and the output was a constant zero."""
    dz, dc_prev = _lstm_cell_backward(act, c_prev, _where(valid, dh + dy, _zero(dh)),
                                      _where(valid, dc, _zero(dc)), H)
    dh_prev = _dot(dz, w_h_t)
    if valid is not None:
        dh_prev = dh_prev + jnp.where(valid, _zero(dh), dh)
        dc_prev = dc_prev + jnp.where(valid, _zero(dc), dc)
    return dz, dh_prev, dc_prev


# -- GRU cell algebra (any leading dims) --------------------------------------------------------

def _gru_cell(u, v, h, H):
    """``u = x W_x + b_x``, ``v = h W_h + b_h`` (``[..., 3H]``): ``(act = (r, z, n), h_new)``."""
    rz = _sigmoid(u[..., :2 * H] + v[..., :2 * H])
    r, z = rz[..., :H], rz[..., H:]
    n = jnp.tanh(u[..., 2 * H:] + r * v[..., 2 * H:])
    return jnp.concatenate([rz, n], axis=-1), n + z * (h - n)


def _gru_cell_backward(act, v_n, h_prev, dh, H):
    """One step back from the cotangent ``dh`` of the candidate ``h_t``: the cotangents of the
    pre-activations ``(dr, dz, dn)`` (of ``x W_x + b_x``; those of ``h W_h + b_h`` are the same
    but ``r * dn`` in the n block), ``r``, and ``dh_{t-1}`` through the update gate."""
    r, z, n = act[..., :H], act[..., H:2 * H], act[..., 2 * H:]
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * v_n * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    return dr, dz, dn, r, dh * z


def _gru_step_backward(act, v_n, h_prev, dh, dy, valid, w_h_t, H):
    """Masked step back: ``(du, dv, dh_{t-1})`` (cotangents of ``x W_x + b_x`` and
    ``h W_h + b_h``)."""
    dr, dz, dn, r, dh_prev = _gru_cell_backward(act, v_n, h_prev,
                                                _where(valid, dh + dy, _zero(dh)), H)
    dv = jnp.concatenate([dr, dz, dn * r], axis=-1)
    dh_prev = dh_prev + _dot(dv, w_h_t)
    if valid is not None:
        dh_prev = dh_prev + jnp.where(valid, _zero(dh), dh)
    return jnp.concatenate([dr, dz, dn], axis=-1), dv, dh_prev


# -- LSTM, gates stored -------------------------------------------------------------------------

def _lstm_forward(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths, save: bool):
    """``(ys, h_T, c_T, saved)``; with ``save``, ``saved`` is the gate activations (written over
    ``U`` in place) and ``c_{t-1}``."""
    ax, T, H = cfg.time_axis, xs.shape[cfg.time_axis], h0.shape[-1]
    scale, shift = _gate_scales(4, H, 2, xs.dtype)
    bias = b[None]
    us = _dot(xs, w_x)                                          # [.., 4H]
    ys = _empty_seq(xs, H)
    cs = _empty_seq(xs, H) if save else None

    def body(s, carry):
        h, c, u, us, ys, cs = carry
        t = _time(cfg, T, s)
        act, h_new, c_new = _lstm_cell(u + bias + _dot(h, w_h), c, scale, shift, H)
        valid = _valid(lengths, t)
        ys = _put(ys, t, _where(valid, h_new, _zero(h)), ax)
        if save:
            us = _put(us, t, act, ax)
            cs = _put(cs, t, c, ax)
        u = _get(us, _time(cfg, T, jnp.minimum(s + 1, T - 1)), ax)   # read after the write
        return _where(valid, h_new, h), _where(valid, c_new, c), u, us, ys, cs

    init = (h0, c0, _get(us, _time(cfg, T, 0), ax), us, ys, cs)
    h, c, _, acts, ys, cs = lax.fori_loop(0, T, body, init)
    return ys, h, c, ((acts, cs) if save else None)


def _lstm_backward(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths, ys, saved, dys, dh_T, dc_T):
    acts, cs = saved
    ax, T, H = cfg.time_axis, xs.shape[cfg.time_axis], h0.shape[-1]
    w_h_t = w_h.T

    def body(k, carry):
        dh, dc, act, c_prev, acts, cs = carry
        s = T - 1 - k
        t = _time(cfg, T, s)
        dz, dh, dc = _lstm_step_backward(act, c_prev, dh, dc, _get(dys, t, ax),
                                         _valid(lengths, t), w_h_t, H)
        acts = _put(acts, t, dz, ax)                            # dz_t over the gates
        cs = _put(cs, t, _h_before(ys, h0, lengths, cfg, T, s), ax)   # h_{t-1} over c_{t-1}
        t_next = _time(cfg, T, jnp.maximum(s - 1, 0))          # read after the write
        return dh, dc, _get(acts, t_next, ax), _get(cs, t_next, ax), acts, cs

    t_last = _time(cfg, T, T - 1)
    init = (dh_T, dc_T, _get(acts, t_last, ax), _get(cs, t_last, ax), acts, cs)
    dh0, dc0, _, _, dzs, h_prev = lax.fori_loop(0, T, body, init)
    return _gram(xs, dzs), _gram(h_prev, dzs), _rowsum(dzs), _dot(dzs, w_x.T), dh0, dc0


# -- GRU, gates stored --------------------------------------------------------------------------

def _gru_forward(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths, save: bool):
    """``(ys, h_T, saved)``; with ``save``, ``saved`` is ``(r, z, n)`` (over ``U`` in place) and
    ``v_n = h_{t-1} W_hn + b_hn``."""
    ax, T, H = cfg.time_axis, xs.shape[cfg.time_axis], h0.shape[-1]
    bias_x, bias_h = b_x[None], b_h[None]
    us = _dot(xs, w_x)                                          # [.., 3H]
    ys = _empty_seq(xs, H)
    vs = _empty_seq(xs, H) if save else None

    def body(s, carry):
        h, u, us, ys, vs = carry
        t = _time(cfg, T, s)
        v = _dot(h, w_h) + bias_h
        act, h_new = _gru_cell(u + bias_x, v, h, H)
        valid = _valid(lengths, t)
        ys = _put(ys, t, _where(valid, h_new, _zero(h)), ax)
        if save:
            us = _put(us, t, act, ax)
            vs = _put(vs, t, v[:, 2 * H:], ax)
        u = _get(us, _time(cfg, T, jnp.minimum(s + 1, T - 1)), ax)   # read after the write
        return _where(valid, h_new, h), u, us, ys, vs

    init = (h0, _get(us, _time(cfg, T, 0), ax), us, ys, vs)
    h, _, acts, ys, vs = lax.fori_loop(0, T, body, init)
    return ys, h, ((acts, vs) if save else None)


def _gru_backward(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths, ys, saved, dys, dh_T):
    """The loop writes ``dv`` over the gates, ``h_{t-1}`` over ``v_n`` and ``du_n - dv_n =
    (1 - r) du_n`` into one more ``[.., H]`` buffer: ``du`` is ``dv`` plus that in the n block."""
    acts, vs = saved
    ax, T, H = cfg.time_axis, xs.shape[cfg.time_axis], h0.shape[-1]
    w_h_t = w_h.T

    def body(k, carry):
        dh, act, v_n, acts, vs, extra = carry
        s = T - 1 - k
        t = _time(cfg, T, s)
        h_prev = _h_before(ys, h0, lengths, cfg, T, s)
        du, dv, dh = _gru_step_backward(act, v_n, h_prev, dh, _get(dys, t, ax),
                                        _valid(lengths, t), w_h_t, H)
        acts = _put(acts, t, dv, ax)
        vs = _put(vs, t, h_prev, ax)
        extra = _put(extra, t, du[:, 2 * H:] - dv[:, 2 * H:], ax)
        t_next = _time(cfg, T, jnp.maximum(s - 1, 0))          # read after the write
        return dh, _get(acts, t_next, ax), _get(vs, t_next, ax), acts, vs, extra

    t_last = _time(cfg, T, T - 1)
    init = (dh_T, _get(acts, t_last, ax), _get(vs, t_last, ax), acts, vs, _empty_seq(xs, H))
    dh0, _, _, dvs, h_prev, extra = lax.fori_loop(0, T, body, init)
    dw_x = _gram(xs, dvs).at[:, 2 * H:].add(_gram(xs, extra))
    db_x = _rowsum(dvs).at[2 * H:].add(_rowsum(extra))
    dxs = _dot(dvs, w_x.T) + _dot(extra, w_x[:, 2 * H:].T)
    return dw_x, _gram(h_prev, dvs), db_x, _rowsum(dvs), dxs, dh0


# -- rematerialisation: chunks of K steps -------------------------------------------------------
# Chunk j holds the processing-order steps jK .. jK + K - 1. Inside a chunk, arrays are [K, B, .]
# in processing order. When K does not divide T the sequences are padded with invalid steps after
# the last processed step (at the end of time, or at its start with ``reverse``).

def _chunking(cfg: Config, T: int):
    K = cfg.chunk
    n = -(-T // K)
    return K, n, n * K - T


def _pad_time(x, cfg: Config, pad: int):
    if not pad:
        return x
    widths = [(0, 0)] * x.ndim
    widths[cfg.time_axis] = (pad, 0) if cfg.reverse else (0, pad)
    return jnp.pad(x, widths)


def _unpad_time(x, cfg: Config, T: int, pad: int):
    if not pad:
        return x
    return lax.slice_in_dim(x, pad if cfg.reverse else 0, (pad if cfg.reverse else 0) + T,
                            axis=cfg.time_axis)


def _chunk_start(cfg: Config, K: int, n: int, j):
    return (n - 1 - j) * K if cfg.reverse else j * K


def _read_chunk(x, cfg: Config, K: int, n: int, j):
    """Chunk j of a padded ``[T', B, .]`` or ``[B, T', .]``: ``[K, B, .]`` in processing order."""
    c = lax.dynamic_slice_in_dim(x, _chunk_start(cfg, K, n, j), K, axis=cfg.time_axis)
    c = c if cfg.time_axis == 0 else jnp.swapaxes(c, 0, 1)
    return jnp.flip(c, 0) if cfg.reverse else c


def _write_chunk(buf, c, cfg: Config, K: int, n: int, j):
    c = jnp.flip(c, 0) if cfg.reverse else c
    c = c if cfg.time_axis == 0 else jnp.swapaxes(c, 0, 1)
    return lax.dynamic_update_slice_in_dim(buf, c, _chunk_start(cfg, K, n, j), axis=cfg.time_axis)


def _chunk_valid(lengths, cfg: Config, T: int, B: int, K: int, pad: int, j):
    """``[K, B, 1]`` validity of chunk j's steps (padding is invalid), or None if all are."""
    if lengths is None and not pad:
        return None
    t = _time(cfg, T, j * K + jnp.arange(K))[:, None]         # [K, 1]; padding: t < 0 or >= T
    valid = (t >= 0) & (t < T)
    if lengths is not None:
        valid = valid & (t < lengths[None, :])
    return jnp.broadcast_to(valid, (K, B))[..., None]


def _chunk_h_prev(h_start, y, h0, valid):
    """The carry ``h`` before each step of a chunk (wherever the step is valid): ``h_start`` (the
    carry at the chunk's start) for the first, then the previous output if that step was valid,
    else the initial carry (see ``_h_before``)."""
    previous = jnp.concatenate([h_start[None], y[:-1]], 0)   # [K, B, H]
    if valid is None:
        return previous
    first = jnp.ones_like(valid[:1])
    return jnp.where(jnp.concatenate([first, valid[:-1]], 0), previous, h0[None])


def _masked_scan(step, carry, inputs, valid, cfg: Config, reverse=False):
    """``lax.scan`` of ``step(carry, inputs_k, valid_k)``; ``valid`` may be None."""
    return lax.scan(lambda c, a: step(c, a[0], a[1]), carry, (inputs, valid), reverse=reverse,
                    unroll=cfg.unroll)


def _lstm_forward_remat(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths, save: bool):
    """``(ys, h_T, c_T, saved)``; ``saved``: the carries ``(h, c)`` at each chunk's start."""
    T, B, H = xs.shape[cfg.time_axis], h0.shape[0], h0.shape[-1]
    K, n, pad = _chunking(cfg, T)
    scale, shift = _gate_scales(4, H, 2, xs.dtype)
    bias = b[None]
    xp = _pad_time(xs, cfg, pad)

    def step(carry, u, valid):
        h, c = carry
        _, h_new, c_new = _lstm_cell(u + bias + _dot(h, w_h), c, scale, shift, H)
        return (_where(valid, h_new, h), _where(valid, c_new, c)), _where(valid, h_new, _zero(h))

    def chunk(j, carry):
        h, c, ys, hs, cs = carry
        hs, cs = hs.at[j].set(h), cs.at[j].set(c)
        valid = _chunk_valid(lengths, cfg, T, B, K, pad, j)
        (h, c), y = _masked_scan(step, (h, c), _dot(_read_chunk(xp, cfg, K, n, j), w_x), valid,
                                 cfg)
        return h, c, _write_chunk(ys, y, cfg, K, n, j), hs, cs

    starts = jnp.zeros((n,) + h0.shape, h0.dtype)
    h, c, ys, hs, cs = lax.fori_loop(0, n, chunk, (h0, c0, _empty_seq(xp, H), starts, starts))
    return _unpad_time(ys, cfg, T, pad), h, c, ((hs, cs) if save else None)


def _lstm_backward_remat(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths, ys, saved, dys, dh_T,
                         dc_T):
    hs, cs = saved
    T, B, D, H = xs.shape[cfg.time_axis], h0.shape[0], xs.shape[-1], h0.shape[-1]
    K, n, pad = _chunking(cfg, T)
    scale, shift = _gate_scales(4, H, 2, xs.dtype)
    w_xh = jnp.concatenate([w_x, w_h], 0)                      # [D + H, 4H]
    w_h_t, w_x_t = w_h.T, w_x.T
    xp, yp, dyp = (_pad_time(a, cfg, pad) for a in (xs, ys, dys))

    def c_step(c, act, valid):                                  # the cell states, again
        i, f, g, _ = _split4(act, H)
        return _where(valid, f * c + i * g, c), c               # carry, c before the step

    def step(carry, inputs, valid):
        dh, dc = carry
        act, c_prev, dy = inputs
        dz, dh, dc = _lstm_step_backward(act, c_prev, dh, dc, dy, valid, w_h_t, H)
        return (dh, dc), dz

    def chunk(k, carry):
        dh, dc, dw, db, dxs = carry
        j = n - 1 - k
        valid = _chunk_valid(lengths, cfg, T, B, K, pad, j)
        x, y, dy = (_read_chunk(a, cfg, K, n, j) for a in (xp, yp, dyp))
        xh = jnp.concatenate([x, _chunk_h_prev(hs[j], y, h0, valid)], -1)   # [K, B, D + H]
        act = _lstm_act(_dot(xh, w_xh) + _row(b, 3), scale, shift)         # [K, B, 4H]
        _, c_prev = _masked_scan(c_step, cs[j], act, valid, cfg)
        (dh, dc), dz = _masked_scan(step, (dh, dc), (act, c_prev, dy), valid, cfg, reverse=True)
        dxs = _write_chunk(dxs, _dot(dz, w_x_t), cfg, K, n, j)
        return dh, dc, dw + _gram(xh, dz), db + _rowsum(dz), dxs

    init = (dh_T, dc_T, jnp.zeros((D + H, 4 * H), xs.dtype), jnp.zeros((4 * H,), xs.dtype),
            jnp.zeros_like(xp))
    dh0, dc0, dw, db, dxs = lax.fori_loop(0, n, chunk, init)
    return dw[:D], dw[D:], db, _unpad_time(dxs, cfg, T, pad), dh0, dc0


def _gru_forward_remat(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths, save: bool):
    """``(ys, h_T, saved)``; ``saved``: the carry at each chunk's start."""
    T, B, H = xs.shape[cfg.time_axis], h0.shape[0], h0.shape[-1]
    K, n, pad = _chunking(cfg, T)
    xp = _pad_time(xs, cfg, pad)

    def step(h, u, valid):
        _, h_new = _gru_cell(u, _dot(h, w_h) + b_h[None], h, H)
        return _where(valid, h_new, h), _where(valid, h_new, _zero(h))

    def chunk(j, carry):
        h, ys, hs = carry
        hs = hs.at[j].set(h)
        u = _dot(_read_chunk(xp, cfg, K, n, j), w_x) + _row(b_x, 3)
        h, y = _masked_scan(step, h, u, _chunk_valid(lengths, cfg, T, B, K, pad, j), cfg)
        return h, _write_chunk(ys, y, cfg, K, n, j), hs

    starts = jnp.zeros((n,) + h0.shape, h0.dtype)
    h, ys, hs = lax.fori_loop(0, n, chunk, (h0, _empty_seq(xp, H), starts))
    return _unpad_time(ys, cfg, T, pad), h, (hs if save else None)


def _gru_backward_remat(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths, ys, hs, dys, dh_T):
    T, B, D, H = xs.shape[cfg.time_axis], h0.shape[0], xs.shape[-1], h0.shape[-1]
    K, n, pad = _chunking(cfg, T)
    w_h_t, w_x_t = w_h.T, w_x.T
    xp, yp, dyp = (_pad_time(a, cfg, pad) for a in (xs, ys, dys))

    def step(dh, inputs, valid):
        act, v_n, h_prev, dy = inputs
        du, dv, dh = _gru_step_backward(act, v_n, h_prev, dh, dy, valid, w_h_t, H)
        return dh, (du, dv)

    def chunk(k, carry):
        dh, dw_x, dw_h, db_x, db_h, dxs = carry
        j = n - 1 - k
        valid = _chunk_valid(lengths, cfg, T, B, K, pad, j)
        x, y, dy = (_read_chunk(a, cfg, K, n, j) for a in (xp, yp, dyp))
        h_prev = _chunk_h_prev(hs[j], y, h0, valid)             # [K, B, H]
        v = _dot(h_prev, w_h) + _row(b_h, 3)
        act, _ = _gru_cell(_dot(x, w_x) + _row(b_x, 3), v, h_prev, H)
        dh, (du, dv) = _masked_scan(step, dh, (act, v[..., 2 * H:], h_prev, dy), valid, cfg,
                                    reverse=True)
        dxs = _write_chunk(dxs, _dot(du, w_x_t), cfg, K, n, j)
        return (dh, dw_x + _gram(x, du), dw_h + _gram(h_prev, dv), db_x + _rowsum(du),
                db_h + _rowsum(dv), dxs)

    zeros = lambda *shape: jnp.zeros(shape, xs.dtype)
    init = (dh_T, zeros(D, 3 * H), zeros(H, 3 * H), zeros(3 * H), zeros(3 * H),
            jnp.zeros_like(xp))
    dh0, dw_x, dw_h, db_x, db_h, dxs = lax.fori_loop(0, n, chunk, init)
    return dw_x, dw_h, db_x, db_h, _unpad_time(dxs, cfg, T, pad), dh0


# -- the custom VJPs ----------------------------------------------------------------------------

@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_sequence(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths):
    forward = _lstm_forward_remat if cfg.chunk else _lstm_forward
    ys, h, c, _ = forward(cfg, w_x, w_h, b, xs, h0, c0, lengths, False)
    return ys, h, c


def _lstm_sequence_fwd(cfg: Config, w_x, w_h, b, xs, h0, c0, lengths):
    forward = _lstm_forward_remat if cfg.chunk else _lstm_forward
    ys, h, c, saved = forward(cfg, w_x, w_h, b, xs, h0, c0, lengths, True)
    return (ys, h, c), (w_x, w_h, b, xs, h0, c0, lengths, ys, saved)


def _lstm_sequence_bwd(cfg: Config, res, cts):
    backward = _lstm_backward_remat if cfg.chunk else _lstm_backward
    return backward(cfg, *res, *cts) + (None,)                 # no cotangent for lengths


_lstm_sequence.defvjp(_lstm_sequence_fwd, _lstm_sequence_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gru_sequence(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths):
    forward = _gru_forward_remat if cfg.chunk else _gru_forward
    ys, h, _ = forward(cfg, w_x, w_h, b_x, b_h, xs, h0, lengths, False)
    return ys, h


def _gru_sequence_fwd(cfg: Config, w_x, w_h, b_x, b_h, xs, h0, lengths):
    forward = _gru_forward_remat if cfg.chunk else _gru_forward
    ys, h, saved = forward(cfg, w_x, w_h, b_x, b_h, xs, h0, lengths, True)
    return (ys, h), (w_x, w_h, b_x, b_h, xs, h0, lengths, ys, saved)


def _gru_sequence_bwd(cfg: Config, res, cts):
    backward = _gru_backward_remat if cfg.chunk else _gru_backward
    return backward(cfg, *res, *cts) + (None,)


_gru_sequence.defvjp(_gru_sequence_fwd, _gru_sequence_bwd)


# -- entry points (Cell.fused) ------------------------------------------------------------------

def remat_chunk(T: int, B: int) -> int:
    """Steps per chunk with rematerialisation: about 1024 rows (``K * B``) per chunk matmul, which
    keeps them efficient, at least 8 steps, at most T; a divisor of T when one is within a factor
    of 2 below that (no padding)."""
    target = max(1, min(T, max(8, -(-1024 // max(B, 1)))))
    for k in range(target, (target + 1) // 2 - 1, -1):
        if T % k == 0:
            return k
    return target


def _config(xs, *, reverse, time_major, remat, unroll_steps) -> Config:
    T, B = (xs.shape[0], xs.shape[1]) if time_major else (xs.shape[1], xs.shape[0])
    return Config(0 if time_major else 1, bool(reverse), int(unroll_steps),
                  remat_chunk(T, B) if remat else 0)


def lstm_unroll(params, xs, carry, *, lengths=None, reverse=False, time_major=False,
                remat=False, unroll_steps=1):
    """The LSTM of :func:`dlmodels.rnn.lstm` over whole sequences, with the backward pass above.

    ``params``: ``w_x [D, 4H]``, ``w_h [H, 4H]``, ``b [4H]`` (gates i, f, g, o); ``xs [B, T, D]``
    (``[T, B, D]`` with ``time_major``); ``carry``: ``LSTMState(h [B, H], c [B, H])``;
    ``lengths [B]`` integers or None. Same semantics as ``unroll``. Returns
    ``(ys [B, T, H] (or [T, B, H]), LSTMState(h_T, c_T))``.
    """
    cfg = _config(xs, reverse=reverse, time_major=time_major, remat=remat,
                  unroll_steps=unroll_steps)
    ys, h, c = _lstm_sequence(cfg, params["w_x"], params["w_h"], params["b"], xs, carry.h,
                              carry.c, lengths)
    return ys, type(carry)(h, c)


def gru_unroll(params, xs, carry, *, lengths=None, reverse=False, time_major=False, remat=False,
               unroll_steps=1):
    """The GRU of :func:`dlmodels.rnn.gru` over whole sequences, with the backward pass above.

    ``params``: ``w_x [D, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]`` (gates r, z, n);
    ``carry``: ``RNNState(h [B, H])``; the rest as :func:`lstm_unroll`. Returns
    ``(ys, RNNState(h_T))``.
    """
    cfg = _config(xs, reverse=reverse, time_major=time_major, remat=remat,
                  unroll_steps=unroll_steps)
    ys, h = _gru_sequence(cfg, params["w_x"], params["w_h"], params["b_x"], params["b_h"], xs,
                          carry.h, lengths)
    return ys, type(carry)(h)
