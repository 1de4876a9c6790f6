"""Long short-term memory: with forget gate, without it (the original constant error carousel),
and with peephole connections."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dlmodels.nn import initializers
from dlmodels.rnn.cell import Cell, check_size, input_projection, make_cell
from dlmodels.rnn.fused import fused_lstm
from dlmodels.rnn.gates import activate, lstm_activations, lstm_update, split_gates


class LSTMState(NamedTuple):
    """The carry of every LSTM: hidden state ``h [B, H]`` and cell state ``c [B, H]``."""

    h: jax.Array
    c: jax.Array


def init_gates(key, input_size, hidden_size, n_gates, w_init, w_h_init, dtype) -> dict:
    """``{"w_x" [D, G*H], "w_h" [H, G*H], "b" [G*H] (zeros)}``; each gate's ``[H, H]`` block of
    ``w_h`` drawn on its own (so an orthogonal ``w_h_init`` makes each block orthogonal)."""
    k_x, k_h = jax.random.split(key)
    w_h = jnp.concatenate([initializers.get(w_h_init)(k, (hidden_size, hidden_size), dtype)
                           for k in jax.random.split(k_h, n_gates)], axis=1)
    return {"w_x": initializers.get(w_init)(k_x, (input_size, n_gates * hidden_size), dtype),
            "w_h": w_h, "b": jnp.zeros((n_gates * hidden_size,), dtype)}


def _initial_carry(hidden_size):
    def initial_carry(batch_size, dtype=jnp.float32):
        zeros = jnp.zeros((batch_size, hidden_size), dtype)
        return LSTMState(zeros, zeros)

    return initial_carry


def lstm(hidden_size: int, *, forget_bias: float = 1.0, w_init="glorot_uniform",
         w_h_init="orthogonal") -> Cell:
    """LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000):

        i = sigma(x W_xi + h_{t-1} W_hi + b_i)      f = sigma(x W_xf + h_{t-1} W_hf + b_f)
        g = tanh(x W_xg + h_{t-1} W_hg + b_g)       o = sigma(x W_xo + h_{t-1} W_ho + b_o)
        C_t = f * C_{t-1} + i * g                    h_t = o * tanh(C_t)

    (``g`` is the candidate C~.) Params: ``w_x [D, 4H]``, ``w_h [H, 4H]``, ``b [4H]``, gates in
    the order (i, f, g, o) as in PyTorch. The forget-gate bias starts at ``forget_bias`` (+1 by
    default: Gers et al. 2000; Jozefowicz, Zaremba & Sutskever 2015), stored in ``b``, so params
    describe the function completely. Carry ``LSTMState(h, c)``; output ``y_t = h_t``.
    ``unroll`` runs it through :func:`dlmodels.rnn.fused.fused_lstm` (``cell.fused``); both
    paths compute the gates with :mod:`dlmodels.rnn.gates`.
    """
    hidden_size = check_size(hidden_size)
    H = hidden_size

    def init(key, input_size, dtype=jnp.float32):
        params = init_gates(key, input_size, H, 4, w_init, w_h_init, dtype)
        params["b"] = params["b"].at[H:2 * H].set(forget_bias)
        return params

    def step(params, carry, u):
        h, c = lstm_update(lstm_activations(u + carry.h @ params["w_h"]), carry.c)
        return LSTMState(h, c), h

    return make_cell(init, _initial_carry(H), input_projection("lstm"), step, H,
                     fused=fused_lstm)


def lstm_no_forget(hidden_size: int, *, w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """The original LSTM without forget gate (Hochreiter & Schmidhuber 1997): the cell state is a
    constant error carousel, ``s_t = s_{t-1} + g * i``, so ds_t/ds_{t-1} = 1 exactly:

        i = sigma(x W_xi + h W_hi + b_i)   g = tanh(x W_xg + h W_hg + b_g)   o = sigma(...)
        s_t = s_{t-1} + g * i              h_t = o * tanh(s_t)

    Params: ``w_x [D, 3H]``, ``w_h [H, 3H]``, ``b [3H]``, order (i, g, o). Carry
    ``LSTMState(h, c=s)``.
    """
    hidden_size = check_size(hidden_size)
    H = hidden_size

    def init(key, input_size, dtype=jnp.float32):
        return init_gates(key, input_size, H, 3, w_init, w_h_init, dtype)

    def step(params, carry, u):
        i, g, o = split_gates(activate(u + carry.h @ params["w_h"], 3, tanh_gate=1), 3)
        c = carry.c + i * g
        h = o * jnp.tanh(c)
        return LSTMState(h, c), h

    return make_cell(init, _initial_carry(H), input_projection("lstm_no_forget"), step, H)


def peephole_lstm(hidden_size: int, *, forget_bias: float = 1.0, diagonal: bool = False,
                  w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """LSTM with peephole connections (Gers & Schmidhuber 2000): the gates also see C_{t-1}, as
    in the course notes, ``f = sigma(W_f [C_{t-1}, h_{t-1}, x_t] + b_f)`` and likewise i and o:

        [i, f, o] += C_{t-1} W_c        (W_c [H, 3H]; with ``diagonal``, C_{t-1} * w_c, w_c [3H])
        C_t = f * C_{t-1} + i * g       h_t = o * tanh(C_t)

    Params: those of ``lstm`` plus ``w_c``. Carry ``LSTMState(h, c)``.
    """
    hidden_size = check_size(hidden_size)
    H = hidden_size
    base = lstm(H, forget_bias=forget_bias, w_init=w_init, w_h_init=w_h_init)

    def init(key, input_size, dtype=jnp.float32):
        k_base, k_c = jax.random.split(key)
        params = base.init(k_base, input_size, dtype)
        if diagonal:
            params["w_c"] = jnp.zeros((3 * H,), dtype)
        else:
            params["w_c"] = initializers.get(w_init)(k_c, (H, 3 * H), dtype)
        return params

    def step(params, carry, u):
        if diagonal:
            peep = jnp.tile(carry.c, (1, 3)) * params["w_c"][None, :]
        else:
            peep = carry.c @ params["w_c"]
        p_i, p_f, p_o = split_gates(peep, 3)                    # g has no peephole
        peep = jnp.concatenate([p_i, p_f, jnp.zeros_like(p_i), p_o], -1)
        h, c = lstm_update(lstm_activations(u + carry.h @ params["w_h"] + peep), carry.c)
        return LSTMState(h, c), h

    return make_cell(init, _initial_carry(H), input_projection("peephole_lstm"), step, H)
