"""Gated recurrent unit (Cho et al. 2014)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.nn import initializers
from dlmodels.rnn.cell import Cell, affine, check_size, make_cell
from dlmodels.rnn.elman import RNNState
from dlmodels.rnn.fused import gru_unroll


def gru(hidden_size: int, *, w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """GRU in the form of PyTorch's ``nn.GRU`` and Flax's ``GRUCell``:

        r = sigma(x W_xr + b_xr + h W_hr + b_hr)      z = sigma(x W_xz + b_xz + h W_hz + b_hz)
        n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Params: ``w_x [D, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]``, gates in the order
    (r, z, n). Carry ``RNNState(h)``; output ``y_t = h_t``. ``unroll`` runs it through
    :func:`dlmodels.rnn.fused.gru_unroll` (``cell.fused``).
    """
    hidden_size = check_size(hidden_size)
    H = hidden_size

    def init(key, input_size):
        k_x, k_h = jax.random.split(key)
        w_h = jnp.concatenate([initializers.get(w_h_init)(k, (H, H))
                               for k in jax.random.split(k_h, 3)], axis=1)
        return {"w_x": initializers.get(w_init)(k_x, (input_size, 3 * H)), "w_h": w_h,
                "b_x": jnp.zeros((3 * H,)), "b_h": jnp.zeros((3 * H,))}

    def project(params, x):
        return affine(x, params["w_x"], params["b_x"])

    def step(params, carry, u):
        v = affine(carry.h, params["w_h"], params["b_h"])
        u_r, u_z, u_n = jnp.split(u, 3, axis=-1)
        v_r, v_z, v_n = jnp.split(v, 3, axis=-1)
        r = jax.nn.sigmoid(u_r + v_r)
        z = jax.nn.sigmoid(u_z + v_z)
        n = jnp.tanh(u_n + r * v_n)
        h = (1.0 - z) * n + z * carry.h
        return RNNState(h), h

    def initial_carry(batch_size, dtype=jnp.float32):
        return RNNState(jnp.zeros((batch_size, H), dtype))

    return make_cell(init, initial_carry, project, step, H, fused=gru_unroll)
