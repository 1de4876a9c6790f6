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

The per-step algebra (gate activations, carry update and its pullback) is the cells' own, from
:mod:`dlmodels.rnn.gates`. The parts:

- :mod:`.common`: the settings of a run, small array helpers;
- :mod:`.sequence`: a fused cell from its parts: the forward, the ``custom_vjp``, the entry point;
- :mod:`.stored`: the loops that store the gates (``remat=False``): only what the backward needs
  is stored, in place (see there);
- :mod:`.chunks`: rematerialisation (``remat=True``): nothing per step is stored but the
  outputs; the backward recomputes each chunk of K steps (see there);
- :mod:`.lstm`, :mod:`.gru`: each cell's step, its backward step and backward loops.

``lengths`` mask as in ``unroll``: at ``t >= L_b`` the carry is frozen and the output is exactly
zero. ``reverse`` runs from ``t = T-1`` down to 0 with the same mask, which is the same as
reversing each sequence within its length: the steps ``t >= L_b`` come first and leave the
initial carry as it is. Both layouts (``[T, B, .]``, ``[B, T, .]``) are native: the matmuls after
the loop only need the same row order in ``X``, ``H_prev`` and ``dZ``.
"""

from dlmodels.rnn.fused.common import FusedSettings
from dlmodels.rnn.fused.gru import fused_gru
from dlmodels.rnn.fused.lstm import fused_lstm
from dlmodels.rnn.fused.sequence import remat_chunk

__all__ = ["FusedSettings", "fused_gru", "fused_lstm", "remat_chunk"]
