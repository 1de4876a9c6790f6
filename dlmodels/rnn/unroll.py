"""One ``unroll`` for every cell, through ``jax.lax.scan``; bidirectional and stacked runs;
skip connections through time."""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from dlmodels.rnn.cell import Cell
from dlmodels.validation import check_rank, check_shape


def reverse_padded(xs: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Reverse each sequence of a time-major ``[T, B, ...]`` batch within its length: position
    ``t < L_b`` takes ``L_b - 1 - t``; the padding (``t >= L_b``) stays where it is. Its own
    inverse. Without ``lengths``, a plain flip along time."""
    if lengths is None:
        return jnp.flip(xs, axis=0)
    T = xs.shape[0]
    t = jnp.arange(T)[:, None]                                  # [T, 1]
    src = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # [T, B]
    src = src.reshape(src.shape + (1,) * (xs.ndim - 2))
    return jnp.take_along_axis(xs, jnp.broadcast_to(src, xs.shape), axis=0)


def unroll(cell: Cell, params, xs: jax.Array, *, lengths: jax.Array | None = None,
           reverse: bool = False, initial_carry: Any = None, time_major: bool = False,
           truncate: int = 0, remat: bool = False, steps_per_iteration: int = 1):
    """Run ``cell`` over a batch of sequences: ``(ys, final_carry)``.

    ``xs``: ``[B, T, D]`` (``[T, B, D]`` with ``time_major``); ``ys``: ``[B, T, O]`` in the same
    layout. The input projection ``cell.project`` runs on all steps at once before the scan; the
    scan runs only ``cell.step``.

    - ``lengths [B]``: sequence b is ``xs[b, :L_b]``; past its length the carry is frozen (so
      ``final_carry`` is the state after step ``L_b - 1``) and outputs are exactly zero.
    - ``reverse``: process each sequence from its last valid step to its first; outputs are
      returned at their original positions.
    - ``truncate = k > 0``: truncated BPTT, the gradient is stopped on the carry every k steps.
    - ``remat``: rematerialise each step in the backward pass (memory O(T) carries instead of all
      step intermediates); ``steps_per_iteration``: steps per iteration of the compiled loop
      (``lax.scan(unroll=...)``).

    Fast path: a cell with ``cell.fused`` (the LSTM and the GRU, :mod:`dlmodels.rnn.fused`) runs
    through it, with its hand-written backward pass, whenever ``truncate == 0`` and params,
    carry and ``xs`` share one floating dtype: with or without ``lengths``, ``reverse``,
    ``remat`` (there: chunks recomputed in the backward pass, nothing stored per step but the
    outputs), in either layout; ``steps_per_iteration`` applies to its rematerialised chunks
    only. Otherwise,
    and for every other cell, the generic path: ``lax.scan`` of ``cell.step`` after
    ``cell.project``, and autodiff. ``unroll(cell._replace(fused=None), ...)`` forces the generic
    path; forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) needs it, since the fused path is a
    ``jax.custom_vjp``. A wrong rank of ``xs``, size of ``lengths`` or input size (checked by
    ``cell.project`` and ``cell.fused``) raises :class:`dlmodels.validation.ShapeError`.
    """
    check_rank(xs, 3, "unroll: xs [B, T, D] (or [T, B, D] with time_major)")
    T, B = xs.shape[:2] if time_major else xs.shape[1::-1]
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        check_shape(lengths, (B,), "unroll: lengths [B]")
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"unroll: lengths must be integers, got {lengths.dtype}")
    if truncate < 0:
        raise ValueError(f"truncate must be >= 0, got {truncate}")
    carry = cell.initial_carry(B, xs.dtype) if initial_carry is None else initial_carry
    if cell.fused is not None and not truncate and _fusable(params, xs, carry):
        return cell.fused(params, xs, carry, lengths=lengths, reverse=reverse,
                          time_major=time_major, remat=remat,
                          steps_per_iteration=steps_per_iteration)
    xs_t = xs if time_major else jnp.swapaxes(xs, 0, 1)         # [T, B, D]
    if reverse:
        xs_t = reverse_padded(xs_t, lengths)
    us = cell.project(params, xs_t)                              # [T, B, P]

    def body(carry, inputs):
        u, t = inputs
        if truncate:
            cut = (t % truncate == 0) & (t > 0)
            carry = jax.tree.map(lambda c: jnp.where(cut, jax.lax.stop_gradient(c), c), carry)
        new, y = cell.step(params, carry, u)
        if lengths is not None:
            valid = (t < lengths)[:, None]                       # [B, 1]
            new = jax.tree.map(lambda n, c: jnp.where(valid, n, c), new, carry)
            y = jnp.where(valid, y, jnp.zeros((), y.dtype))
        return new, y

    if remat:
        body = jax.checkpoint(body)
    carry, ys = jax.lax.scan(body, carry, (us, jnp.arange(T)), unroll=steps_per_iteration)
    if reverse:
        ys = reverse_padded(ys, lengths)
    return (ys if time_major else jnp.swapaxes(ys, 0, 1)), carry


def _fusable(params, xs, carry) -> bool:
    """Whether the fused path applies: one floating dtype for params, carry and inputs, and a
    non-empty sequence batch."""
    if xs.size == 0 or not jnp.issubdtype(xs.dtype, jnp.floating):
        return False
    return all(jnp.asarray(leaf).dtype == xs.dtype for leaf in jax.tree.leaves((params, carry)))


def bidirectional(forward: Cell, backward: Cell, params, xs: jax.Array, *,
                  lengths: jax.Array | None = None, **kwargs):
    """Forward and reversed passes (Schuster & Paliwal 1997) concatenated:
    ``ys [B, T, O_f + O_b]`` with ``ys[:, t] = [y_fwd_t, y_bwd_t]``, where the backward pass
    starts at each sequence's last valid step. ``params = {"forward": ..., "backward": ...}``.
    Returns ``(ys, (carry_forward, carry_backward))``."""
    ys_f, c_f = unroll(forward, params["forward"], xs, lengths=lengths, **kwargs)
    ys_b, c_b = unroll(backward, params["backward"], xs, lengths=lengths, reverse=True, **kwargs)
    return jnp.concatenate([ys_f, ys_b], axis=-1), (c_f, c_b)


class SkipState(NamedTuple):
    """Carry of ``time_skip``: the inner cell's carry and the last k outputs ``[k, B, O]``."""

    inner: Any
    history: jax.Array


def time_skip(cell: Cell, k: int) -> Cell:
    """Skip connections through time: the cell also sees its output from k steps back,
    ``(carry_t, y_t) = cell(carry_{t-1}, [x_t, y_{t-k}])`` (Lin et al. 1996; El Hihi & Bengio
    1996), giving gradients a path of length T/k. Params: the inner cell's, for input size
    ``D + O`` (a cell whose params hold ``w_x``, as every cell here). Carry
    ``SkipState(inner, history)``."""
    if k < 1:
        raise ValueError(f"time_skip needs k >= 1, got {k}")
    O = cell.output_size

    def init(key, input_size, dtype=jnp.float32):
        return cell.init(key, input_size + O, dtype)

    def project(params, x):
        D = params["w_x"].shape[0] - O                          # the inner cell sees [x, y]
        check_shape(x, (None,) * (jnp.ndim(x) - 1) + (D,), f"time_skip: input [..., {D}]")
        return x

    def step(params, carry, x):
        inner, y = cell.apply(params, carry.inner, jnp.concatenate([x, carry.history[0]], -1))
        history = jnp.concatenate([carry.history[1:], y[None]], axis=0)
        return SkipState(inner, history), y

    def initial_carry(batch_size, dtype=jnp.float32):
        return SkipState(cell.initial_carry(batch_size, dtype),
                         jnp.zeros((k, batch_size, O), dtype))

    def apply(params, carry, x_t):
        return step(params, carry, project(params, x_t))

    return Cell(init, apply, initial_carry, project, step, cell.hidden_size, O,
                lambda params, carry: carry.history[-1])


def stacked(cells: Sequence[Cell], params, xs: jax.Array, *, lengths=None,
            bidirectional: bool = False, **kwargs):
    """A deep RNN: layer l runs over the output sequence of layer l - 1 (Graves, Mohamed & Hinton
    2013). ``params = {"layer_0": ..., ...}``; with ``bidirectional``, each layer is
    ``bidirectional(cell, cell, {"forward": ..., "backward": ...}, ...)`` and passes
    ``[y_fwd, y_bwd]`` up (Graves, Jaitly & Mohamed 2013). ``kwargs`` go to ``unroll``. Returns
    ``(ys of the top layer, [final carries])``."""
    carries = []
    for l, cell in enumerate(cells):
        xs, carry = _layer(cell, params[f"layer_{l}"], xs, bidirectional, lengths=lengths,
                           **kwargs)
        carries.append(carry)
    return xs, carries


def _layer(cell: Cell, params, xs, two_way: bool, **kwargs):
    return bidirectional(cell, cell, params, xs, **kwargs) if two_way else unroll(
        cell, params, xs, **kwargs)


def last_valid(ys: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """The output at each sequence's last valid step: ``ys [B, T, O] -> [B, O]``."""
    if lengths is None:
        return ys[:, -1]
    return jnp.take_along_axis(ys, (jnp.asarray(lengths) - 1)[:, None, None], axis=1)[:, 0]
