"""The loops of the fused path that store the gates (``remat=False``).

Only what the backward needs is stored: the gate activations, written in place over ``U_t`` (the
backward loop overwrites them in place with ``dz_t``, so the buffer then holds ``dZ`` for the
matmuls after it), and one ``[N, H]`` buffer (``c_{t-1}`` for the LSTM, ``h_{t-1} W_hn + b_hn``
for the GRU) that the backward loop reuses in place for ``h_{t-1}``; the outputs ``h_t`` are the
rest. Fresh large buffers are expensive on CPU (first-touch page faults cost about as much as the
arithmetic that fills them), so the fast path allocates as few as it can. Each loop reads the next
step's slice of a buffer *after* writing the current one (:func:`sweep`): reading it before lets
XLA fuse the read into several consumers, some not ordered before the in-place write, and XLA
then copies the whole buffer every step.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from dlmodels.rnn.fused.common import FusedSettings, empty_seq, masked, where


def get(buf, t, axis):
    return lax.dynamic_index_in_dim(buf, t, axis, keepdims=False)


def put(buf, t, value, axis):
    return lax.dynamic_update_index_in_dim(buf, value, t, axis)


def time_of(st: FusedSettings, T: int, s):
    """Time index of the s-th step in processing order."""
    return T - 1 - s if st.reverse else s


def valid_at(lengths, t):
    """``[B, 1]``: the sequences running at time t (None without lengths)."""
    return None if lengths is None else (t < lengths)[:, None]


def h_before(ys, h0, lengths, st: FusedSettings, T: int, s):
    """The carry ``h`` before the s-th step, wherever step s is valid (all the backward needs: an
    invalid step has zero cotangents): the output of step s - 1 if that step was valid, else the
    initial carry (with ``reverse`` and lengths, the steps past a sequence's end come first and
    leave it unchanged)."""
    t_prev = time_of(st, T, jnp.maximum(s - 1, 0))
    previous = get(ys, t_prev, st.time_axis)
    use = (s > 0) if lengths is None else ((s > 0) & (t_prev < lengths))[:, None]
    return jnp.where(use, previous, h0)


def sweep(st: FusedSettings, T: int, step, carry, buffers: tuple, read: tuple[int, ...], *,
          backward: bool = False):
    """``lax.fori_loop`` over the T steps in processing order (the last first with ``backward``)
    that updates whole-sequence ``buffers`` (``None`` entries allowed) in place:
    ``step(s, t, carry, current) -> (carry, {index: value at t})``, where ``current`` holds the
    slices at time t of the buffers numbered in ``read``, read after the previous step's writes.
    Returns ``(carry, buffers)``."""
    ax = st.time_axis
    order = (lambda k: T - 1 - k) if backward else (lambda k: k)

    def fetch(bufs, k):
        return tuple(get(bufs[i], time_of(st, T, order(k)), ax) for i in read)

    def body(k, state):
        carry, bufs, current = state
        s = order(k)
        t = time_of(st, T, s)
        carry, writes = step(s, t, carry, current)
        bufs = tuple(put(b, t, writes[i], ax) if i in writes and b is not None else b
                     for i, b in enumerate(bufs))
        return carry, bufs, fetch(bufs, jnp.minimum(k + 1, T - 1))   # read after the write

    carry, buffers, _ = lax.fori_loop(0, T, body, (carry, tuple(buffers), fetch(buffers, 0)))
    return carry, buffers


def stored_forward(st: FusedSettings, us, lengths, carry, cell_step, save: bool):
    """The forward loop over ``us = X W_x`` (``[.., G*H]``): ``cell_step(carry, u_t) ->
    (new carry (h, ...), gate activations, the value to save)``. Returns ``(ys, final carry,
    saved)``; with ``save``, ``saved = (activations written over us, saved values [.., H])``."""
    T, H = us.shape[st.time_axis], carry[0].shape[-1]

    def step(s, t, carry, current):
        new, act, keep = cell_step(carry, current[0])
        valid = valid_at(lengths, t)
        writes = {1: masked(valid, new[0])}
        if save:
            writes.update({0: act, 2: keep})
        return tuple(where(valid, n, c) for n, c in zip(new, carry)), writes

    buffers = (us, empty_seq(us, H), empty_seq(us, H) if save else None)
    carry, (acts, ys, kept) = sweep(st, T, step, carry, buffers, read=(0,))
    return ys, carry, ((acts, kept) if save else None)
