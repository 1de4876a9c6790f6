"""Backpropagation through time, term by term: the contribution ``(dL/dW)_{i,j}`` of the output at
time j to the gradient of a weight W through its use at time i.

For the Elman RNN (row-vector layout of :func:`dlmodels.rnn.elman`)

    a_t = x_t W_x + h_{t-1} W_h + b,    h_t = tanh(a_t),    y_t = h_t V + c,    L = sum_j L_j(y_j),

BPTT as the lab writes it: the error of output j enters at step j and is propagated back through
the step Jacobians,

    delta_j^{(j)} = (dL_j/dy_j V^T) * (1 - h_j^2),
    delta_i^{(j)} = (delta_{i+1}^{(j)} W_h^T) * (1 - h_i^2)          for i < j,

and its contribution to each weight at step i is the local term times that delta:

    (dL/dW_h)_{i,j} = h_{i-1}^T delta_i^{(j)}  (the notes' delta_i h_{i-1}^T, transposed to W_h's
    [H_in, H_out] layout),   (dL/dW_x)_{i,j} = x_i^T delta_i^{(j)},   (dL/db)_{i,j} = delta_i^{(j)},

zero for i > j (an output never reaches back to later steps), with
``sum_j sum_{i<=j} (dL/dW)_{i,j} = dL/dW`` (Werbos 1990; Goodfellow et al. 2016, sec. 10.2.2).
:func:`elman_contributions` computes all (i, j) at once: one backward ``lax.scan`` over i whose
carry holds the deltas of every output j, ``[T(j), B, H]``.

For any cell (the LSTM, the GRU), :func:`contributions` uses the same definition through
autodiff: give step i its own copy ``W^{(i)}`` of each analysed weight (all copies equal to W),
so ``dL/dW = sum_i dL/dW^{(i)}``; then ``(dL/dW)_{i,j} = g_j . dy_j/dW^{(i)}``, the vector-Jacobian
product of the outputs with the cotangent ``g_j = dL/dy_j`` placed at time j only (vmapped over j).
For the LSTM it is the part of the gradient of ``w_h [H, 4H]`` (all four gates) or ``w_x`` that
output j's loss sends through the weights' use at step i.

Shapes: ``xs [B, T, D]`` (batch-major, as ``unroll``); ``loss_fn(ys [B, T, O]) -> scalar`` must be
a sum over time of per-step terms (``L_j`` depends on ``y_j`` only) for ``g_j`` to be output j's
error; contributions are ``[T(i), T(j), *weight_shape]`` (the sum over the batch), norms
``[T(i), T(j)]``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.rnn.cell import Cell
from dlmodels.validation import check_rank, check_shape


def _output_errors(ys_tbo: jax.Array, loss_fn: Callable) -> jax.Array:
    """``g_j = dL/dy_j`` for time-major outputs ``[T, B, O]`` (``loss_fn`` takes ``[B, T, O]``)."""
    return jax.grad(lambda ys: loss_fn(jnp.swapaxes(ys, 0, 1)))(ys_tbo)


def elman_contributions(params: dict, xs: jax.Array, loss_fn: Callable[[jax.Array], jax.Array],
                        *, h0: jax.Array | None = None) -> dict:
    """The lab's BPTT terms of a tanh Elman RNN (module doc): ``{"w_h": [T, T, H, H], "w_x":
    [T, T, D, H], "b": [T, T, H]}``, indexed ``[i, j]``, zero for ``i > j``.

    ``params``: ``w_x [D, H]``, ``w_h [H, H]``, ``b [H]`` and optionally the output layer
    ``w_y`` (V) ``[H, O]``, ``b_y`` (c) ``[O]`` (without it ``y_t = h_t``), as
    ``rnn.elman(H, output_size=O).init`` makes them. ``xs [B, T, D]``; ``h0 [B, H]`` (zeros).
    """
    check_rank(xs, 3, "elman_contributions: xs [B, T, D]")
    B, T, D = xs.shape
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    H = w_h.shape[0]
    check_shape(w_x, (D, H), "elman_contributions: w_x [D, H]")
    check_shape(w_h, (H, H), "elman_contributions: w_h [H, H]")
    h0 = jnp.zeros((B, H), xs.dtype) if h0 is None else h0
    check_shape(h0, (B, H), "elman_contributions: h0 [B, H]")
    xs_t = jnp.swapaxes(xs, 0, 1)                                  # [T, B, D]

    def forward(h, x_t):
        h = jnp.tanh(x_t @ w_x + h @ w_h + b[None])                # [B, H]
        return h, h

    _, hs = jax.lax.scan(forward, h0, xs_t)                        # [T, B, H]
    has_head = "w_y" in params
    ys = hs @ params["w_y"] + params["b_y"][None, None] if has_head else hs  # [T, B, O]
    g = _output_errors(ys, loss_fn)                                # [T, B, O]
    e = g @ params["w_y"].T if has_head else g                     # dL_j/dh_j direct, [T, B, H]
    h_prev = jnp.concatenate([h0[None], hs[:-1]])                  # [T, B, H]
    slope = 1.0 - jnp.square(hs)                                   # tanh'(a_i), [T, B, H]
    outputs = jnp.arange(T)

    def backward(delta_next, inputs):                              # delta_next [T(j), B, H]
        i, e_i, slope_i, h_prev_i, x_i = inputs
        enters = (outputs == i).astype(xs.dtype)[:, None, None]    # output i's error enters here
        delta = (delta_next @ w_h.T + enters * e_i[None]) * slope_i[None]  # [T(j), B, H]
        terms = {"w_h": jnp.einsum("bm,jbn->jmn", h_prev_i, delta),
                 "w_x": jnp.einsum("bd,jbn->jdn", x_i, delta),
                 "b": delta.sum(1)}
        return delta, terms

    delta_end = jnp.zeros((T, B, H), xs.dtype)
    _, terms = jax.lax.scan(backward, delta_end, (outputs, e, slope, h_prev, xs_t), reverse=True)
    return terms


def contributions(cell: Cell, params: dict, xs: jax.Array,
                  loss_fn: Callable[[jax.Array], jax.Array], *,
                  weights: Sequence[str] = ("w_h", "w_x"), initial_carry: Any = None) -> dict:
    """``(dL/dW)_{i,j}`` for any cell by autodiff through per-step copies of the weights (module
    doc): ``{name: [T(i), T(j), *params[name].shape]}`` for each top-level param in ``weights``.

    ``xs [B, T, D]``; ``loss_fn(ys [B, T, O]) -> scalar`` on the cell's outputs (a readout layer
    goes inside ``loss_fn``). The cell runs step by step (``cell.apply``, so the input projection
    uses the step's copy of ``w_x``) in one ``lax.scan``; the VJPs for the T outputs are vmapped.
    """
    check_rank(xs, 3, "contributions: xs [B, T, D]")
    B, T, _ = xs.shape
    missing = [w for w in weights if w not in params]
    if missing:
        raise KeyError(f"contributions: params have no {missing}; top-level keys: {sorted(params)}")
    carry0 = cell.initial_carry(B, xs.dtype) if initial_carry is None else initial_carry
    xs_t = jnp.swapaxes(xs, 0, 1)                                  # [T, B, D]
    per_step = {w: jnp.broadcast_to(params[w], (T,) + params[w].shape) for w in weights}

    def outputs(per_step):
        def body(carry, inputs):
            x_t, copies = inputs
            return cell.apply({**params, **copies}, carry, x_t)

        return jax.lax.scan(body, carry0, (xs_t, per_step))[1]     # [T, B, O]

    ys, vjp = jax.vjp(outputs, per_step)
    g = _output_errors(ys, loss_fn)                                # [T, B, O]

    def from_output(j):
        only_j = (jnp.arange(T) == j).astype(g.dtype)[:, None, None]
        return vjp(g * only_j)[0]                                  # {name: [T(i), ...]}

    per_j = jax.vmap(from_output)(jnp.arange(T))                   # {name: [T(j), T(i), ...]}
    return {w: jnp.swapaxes(a, 0, 1) for w, a in per_j.items()}


def norms(terms: dict, names: Sequence[str] | None = None) -> jax.Array:
    """Frobenius norms ``||(dL/dW)_{i,j}||`` ``[T(i), T(j)]`` over the weights ``names`` taken
    together (all of ``terms`` by default)."""
    names = list(terms) if names is None else list(names)
    return jnp.sqrt(sum(jnp.sum(jnp.square(terms[n].reshape(terms[n].shape[:2] + (-1,))), -1)
                        for n in names))


def lag_profile(norm_matrix, *, outputs: Sequence[int] | None = None,
                first_step: int = 0) -> np.ndarray:
    """Mean over outputs j of ``||(dL/dW)_{j-k,j}||`` for each lag ``k = j - i``: how far back an
    output's error reaches. ``norm_matrix [T(i), T(j)]``; ``outputs``: the j to average over
    (all by default; e.g. only the steps that carry a loss); pairs with ``i < first_step`` are
    left out (``first_step=1`` for W_h when h_{-1} = 0). Lags ``0 .. max(outputs) - first_step``."""
    m = np.asarray(norm_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"lag_profile: expected a square [T, T] matrix, got shape {m.shape}")
    T = m.shape[0]
    js = np.arange(T) if outputs is None else np.asarray(outputs)
    if js.size == 0 or js.min() < 0 or js.max() >= T or not 0 <= first_step <= js.max():
        raise ValueError(f"lag_profile: outputs must lie in 0..{T - 1} and first_step <= the last")
    return np.array([m[js[js - k >= first_step] - k, js[js - k >= first_step]].mean()
                     for k in range(int(js.max()) - first_step + 1)])


def decay_rate(profile, *, floor: float = 1e-30) -> float:
    """Per-step factor ``10 ** slope`` of a least-squares line through ``log10(profile)`` against
    the lag, on the lags >= 1 where the profile is above ``floor`` (below it float32 has
    underflowed; NaN entries are skipped); NaN when fewer than two lags qualify."""
    p = np.asarray(profile, dtype=np.float64)
    lags = np.arange(len(p))
    ok = (lags >= 1) & (p > floor) & np.isfinite(p)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(lags[ok], np.log10(p[ok]), 1)[0]
    return float(10.0 ** slope)
