"""Parameters from PyTorch's recurrent modules, so that published PyTorch weights can be studied,
and our LSTM's parameters as cuDNN's packed weight vector (``jax.experimental.rnn``).

PyTorch stores ``weight_ih_l0 [G*H, D]``, ``weight_hh_l0 [G*H, H]``, ``bias_ih_l0``, ``bias_hh_l0``
with gates stacked in the same order as ours (LSTM: i, f, g, o; GRU: r, z, n), acting as
``x W_ih^T + b_ih + h W_hh^T + b_hh``; so ``w_x = W_ih^T`` and ``w_h = W_hh^T``.
"""

from __future__ import annotations

import jax
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


def lstm_to_cudnn(params: dict) -> jax.Array:
    """The packed weight vector of ``jax.experimental.rnn.lstm`` (cuDNN, one layer, one direction)
    that computes the same function as ``dlmodels.rnn.lstm(H)`` with ``params``.

    cuDNN's LSTM is PyTorch's, with two biases: ``x W_ih^T + b_ih + h W_hh^T + b_hh``, gates
    (i, f, g, o) stacked on the leading axis, so ``W_ih = w_x^T [4H, D]``, ``W_hh = w_h^T [4H, H]``,
    ``b_ih = b [4H]``, ``b_hh = 0``. The vector is ``(W_ih, W_hh, b_ih, b_hh)``, each flattened in
    row-major order (the layout of ``jax.experimental.rnn``'s docstring and of its
    ``unpack_lstm_weights``); its length is ``4H (D + H + 2)``. Differentiable: the gradient of a
    loss through it reaches ``params``.
    """
    if set(params) != {"w_x", "w_h", "b"}:
        raise ValueError(f"expected the params of dlmodels.rnn.lstm ({{'w_x', 'w_h', 'b'}}), got "
                         f"{sorted(params)}")
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    H = w_h.shape[0]
    if w_h.shape != (H, 4 * H) or w_x.ndim != 2 or w_x.shape[1] != 4 * H or b.shape != (4 * H,):
        raise ValueError(f"LSTM params of mismatched shapes: w_x {w_x.shape} (want [D, 4H]), "
                         f"w_h {w_h.shape} (want [H, 4H]), b {b.shape} (want [4H])")
    return jnp.concatenate([w_x.T.ravel(), w_h.T.ravel(), b, jnp.zeros_like(b)])
