"""Parameters from PyTorch's recurrent modules, so that published PyTorch weights can be studied.

PyTorch stores ``weight_ih_l0 [G*H, D]``, ``weight_hh_l0 [G*H, H]``, ``bias_ih_l0``, ``bias_hh_l0``
with gates stacked in the same order as ours (LSTM: i, f, g, o; GRU: r, z, n), acting as
``x W_ih^T + b_ih + h W_hh^T + b_hh``; so ``w_x = W_ih^T`` and ``w_h = W_hh^T``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _tensor(module, name: str) -> np.ndarray:
    value = getattr(module, name, None)
    if value is None:
        return None
    return np.asarray(value.detach().cpu().numpy(), dtype=np.float32)


def _check(module, kind: str) -> None:
    if type(module).__name__ != kind:
        raise TypeError(f"expected torch.nn.{kind}, got {type(module).__name__}")
    if module.num_layers != 1 or module.bidirectional:
        raise ValueError(f"only a one-layer, one-directional {kind} converts to one cell; got "
                         f"num_layers={module.num_layers}, bidirectional={module.bidirectional}")
    if not module.batch_first:
        raise ValueError(f"the {kind} must have batch_first=True (as dlmodels.rnn.unroll)")
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTM projections (proj_size > 0) are not supported")


def _biases(module, size: int):
    b_ih = _tensor(module, "bias_ih_l0")
    b_hh = _tensor(module, "bias_hh_l0")
    zeros = np.zeros(size, np.float32)
    return (zeros if b_ih is None else b_ih), (zeros if b_hh is None else b_hh)


def lstm_from_torch(module) -> dict:
    """Params of ``dlmodels.rnn.lstm(H)`` equal to a ``torch.nn.LSTM(D, H, batch_first=True)``:
    ``{"w_x": W_ih^T [D, 4H], "w_h": W_hh^T [H, 4H], "b": b_ih + b_hh [4H]}``."""
    _check(module, "LSTM")
    w_ih, w_hh = _tensor(module, "weight_ih_l0"), _tensor(module, "weight_hh_l0")
    b_ih, b_hh = _biases(module, w_ih.shape[0])
    return {"w_x": jnp.asarray(w_ih.T), "w_h": jnp.asarray(w_hh.T), "b": jnp.asarray(b_ih + b_hh)}


def gru_from_torch(module) -> dict:
    """Params of ``dlmodels.rnn.gru(H)`` equal to a ``torch.nn.GRU(D, H, batch_first=True)``:
    ``{"w_x": W_ih^T [D, 3H], "w_h": W_hh^T [H, 3H], "b_x": b_ih [3H], "b_h": b_hh [3H]}``."""
    _check(module, "GRU")
    w_ih, w_hh = _tensor(module, "weight_ih_l0"), _tensor(module, "weight_hh_l0")
    b_ih, b_hh = _biases(module, w_ih.shape[0])
    return {"w_x": jnp.asarray(w_ih.T), "w_h": jnp.asarray(w_hh.T), "b_x": jnp.asarray(b_ih),
            "b_h": jnp.asarray(b_hh)}
