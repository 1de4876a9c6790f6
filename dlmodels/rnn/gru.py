"""Gated recurrent unit (Cho et al. 2014)."""

from __future__ import annotations

import jax.numpy as jnp

from dlmodels.rnn.cell import Cell, affine, check_size, input_projection, make_cell
from dlmodels.rnn.elman import RNNState
from dlmodels.rnn.fused import fused_gru
from dlmodels.rnn.gates import gru_update
from dlmodels.rnn.lstm import init_gates


def gru(hidden_size: int, *, w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """GRU in the form of PyTorch's ``nn.GRU`` and Flax's ``GRUCell``:

        r = sigma(x W_xr + b_xr + h W_hr + b_hr)      z = sigma(x W_xz + b_xz + h W_hz + b_hz)
        n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Params: ``w_x [D, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]``, gates in the order
    (r, z, n). Carry ``RNNState(h)``; output ``y_t = h_t``. ``unroll`` runs it through
    :func:`dlmodels.rnn.fused.fused_gru` (``cell.fused``); both paths compute the gates with
    :func:`dlmodels.rnn.gates.gru_update`.
    """
    hidden_size = check_size(hidden_size)
    H = hidden_size

    def init(key, input_size, dtype=jnp.float32):
        params = init_gates(key, input_size, H, 3, w_init, w_h_init, dtype)
        return {"w_x": params["w_x"], "w_h": params["w_h"], "b_x": params["b"],
                "b_h": jnp.zeros((3 * H,), dtype)}

    def step(params, carry, u):
        _, h = gru_update(u, affine(carry.h, params["w_h"], params["b_h"]), carry.h)
        return RNNState(h), h

    def initial_carry(batch_size, dtype=jnp.float32):
        return RNNState(jnp.zeros((batch_size, H), dtype))

    return make_cell(init, initial_carry, input_projection("gru", bias="b_x"), step, H,
                     fused=fused_gru)
