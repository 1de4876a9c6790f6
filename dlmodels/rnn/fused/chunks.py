"""Rematerialisation (``remat=True``): chunks of K steps, nothing per step stored but the outputs.

The forward runs in chunks and keeps the carry at each chunk's start; the backward, chunk by chunk
from the last, recomputes the chunk's pre-activations as one ``[K*B, .]`` matmul (``H_prev`` is
known from the outputs), propagates ``dh`` (``dc``) through the chunk, and adds the chunk's weight
gradients as ``[K*B]``-row matmuls. Memory: the outputs, their cotangents and
``O(K * B * G * H)``; cost: one more ``2 N (D + H) G H`` flops, in efficient matmuls.

Chunk j holds the processing-order steps jK .. jK + K - 1. Inside a chunk, arrays are [K, B, .]
in processing order. When K does not divide T the sequences are padded with invalid steps after
the last processed step (at the end of time, or at its start with ``reverse``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlmodels.rnn.fused.common import FusedSettings, dot, empty_seq, masked, where
from dlmodels.rnn.fused.stored import time_of


def chunking(st: FusedSettings, T: int):
    K = st.chunk
    n = -(-T // K)
    return K, n, n * K - T


def pad_time(x, st: FusedSettings, pad: int):
    if not pad:
        return x
    widths = [(0, 0)] * x.ndim
    widths[st.time_axis] = (pad, 0) if st.reverse else (0, pad)
    return jnp.pad(x, widths)


def unpad_time(x, st: FusedSettings, T: int, pad: int):
    if not pad:
        return x
    start = pad if st.reverse else 0
    return lax.slice_in_dim(x, start, start + T, axis=st.time_axis)


def _chunk_start(st: FusedSettings, K: int, n: int, j):
    return (n - 1 - j) * K if st.reverse else j * K


def read_chunk(x, st: FusedSettings, K: int, n: int, j):
    """Chunk j of a padded ``[T', B, .]`` or ``[B, T', .]``: ``[K, B, .]`` in processing order."""
    c = lax.dynamic_slice_in_dim(x, _chunk_start(st, K, n, j), K, axis=st.time_axis)
    c = c if st.time_axis == 0 else jnp.swapaxes(c, 0, 1)
    return jnp.flip(c, 0) if st.reverse else c


def write_chunk(buf, c, st: FusedSettings, K: int, n: int, j):
    c = jnp.flip(c, 0) if st.reverse else c
    c = c if st.time_axis == 0 else jnp.swapaxes(c, 0, 1)
    return lax.dynamic_update_slice_in_dim(buf, c, _chunk_start(st, K, n, j), axis=st.time_axis)


def chunk_valid(lengths, st: FusedSettings, T: int, B: int, K: int, pad: int, j):
    """``[K, B, 1]`` validity of chunk j's steps (padding is invalid), or None if all are."""
    if lengths is None and not pad:
        return None
    t = time_of(st, T, j * K + jnp.arange(K))[:, None]          # [K, 1]; padding: t < 0 or >= T
    valid = (t >= 0) & (t < T)
    if lengths is not None:
        valid = valid & (t < lengths[None, :])
    return jnp.broadcast_to(valid, (K, B))[..., None]


def chunk_h_prev(h_start, y, h0, valid):
    """The carry ``h`` before each step of a chunk (wherever the step is valid): ``h_start`` (the
    carry at the chunk's start) for the first, then the previous output if that step was valid,
    else the initial carry (see ``stored.h_before``)."""
    previous = jnp.concatenate([h_start[None], y[:-1]], 0)   # [K, B, H]
    if valid is None:
        return previous
    first = jnp.ones_like(valid[:1])
    return jnp.where(jnp.concatenate([first, valid[:-1]], 0), previous, h0[None])


def masked_scan(step, carry, inputs, valid, st: FusedSettings, reverse=False):
    """``lax.scan`` of ``step(carry, inputs_k, valid_k)``; ``valid`` may be None."""
    return lax.scan(lambda c, a: step(c, a[0], a[1]), carry, (inputs, valid), reverse=reverse,
                    unroll=st.steps_per_iteration)


def chunked_forward(st: FusedSettings, xs, w_x, lengths, carry, cell_step):
    """The forward in chunks: ``cell_step(carry, u_t) -> new carry (h, ...)`` with
    ``u = x W_x``. Returns ``(ys, final carry, the carries at each chunk's start [n, ...])``."""
    T, B, H = xs.shape[st.time_axis], carry[0].shape[0], carry[0].shape[-1]
    K, n, pad = chunking(st, T)
    xp = pad_time(xs, st, pad)

    def step(carry, u, valid):
        new = cell_step(carry, u)
        return tuple(where(valid, a, b) for a, b in zip(new, carry)), masked(valid, new[0])

    def chunk(j, state):
        carry, ys, starts = state
        starts = tuple(s.at[j].set(c) for s, c in zip(starts, carry))
        valid = chunk_valid(lengths, st, T, B, K, pad, j)
        u = dot(read_chunk(xp, st, K, n, j), w_x)               # [K, B, G*H]
        carry, y = masked_scan(step, carry, u, valid, st)
        return carry, write_chunk(ys, y, st, K, n, j), starts

    starts = tuple(jnp.zeros((n,) + c.shape, c.dtype) for c in carry)
    carry, ys, starts = lax.fori_loop(0, n, chunk, (carry, empty_seq(xp, H), starts))
    return unpad_time(ys, st, T, pad), carry, starts


def chunked_backward(st: FusedSettings, xs, ys, dys, lengths, h0, starts, dcarry, grads,
                     chunk_backward):
    """The backward in chunks, from the last: ``chunk_backward(x, h_prev, start, dy, valid,
    dcarry) -> (dcarry, the chunk's weight gradients, dx)`` on chunk arrays ``[K, B, .]`` in
    processing order; ``start`` the carry at the chunk's start. ``grads``: zeros shaped like the
    weight gradients, which are summed over chunks. Returns ``(dcarry_0, grads, dxs)``."""
    T, B = xs.shape[st.time_axis], h0.shape[0]
    K, n, pad = chunking(st, T)
    xp, yp, dyp = (pad_time(a, st, pad) for a in (xs, ys, dys))

    def chunk(k, state):
        dcarry, grads, dxs = state
        j = n - 1 - k
        valid = chunk_valid(lengths, st, T, B, K, pad, j)
        x, y, dy = (read_chunk(a, st, K, n, j) for a in (xp, yp, dyp))
        start = tuple(s[j] for s in starts)
        dcarry, more, dx = chunk_backward(x, chunk_h_prev(start[0], y, h0, valid), start, dy,
                                          valid, dcarry)
        return dcarry, jax.tree.map(jnp.add, grads, more), write_chunk(dxs, dx, st, K, n, j)

    dcarry, grads, dxs = lax.fori_loop(0, n, chunk, (dcarry, grads, jnp.zeros_like(xp)))
    return dcarry, grads, unpad_time(dxs, st, T, pad)
