"""Simple recurrent networks: Elman (1990), Jordan (1986), and leaky-integrator units."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dlmodels.nn import activations, initializers
from dlmodels.rnn.cell import Cell, affine, check_size, input_projection, make_cell
from dlmodels.rnn.gates import sigmoid
from dlmodels.validation import check_in_range, check_positive


class RNNState(NamedTuple):
    """The carry of Elman and leaky cells: the hidden state ``h [B, H]``."""

    h: jax.Array


class JordanState(NamedTuple):
    """The carry of a Jordan cell: the previous output ``y [B, O]``."""

    y: jax.Array


def _init_recurrent(key, input_size, hidden_size, n_feedback, w_init, w_h_init, dtype):
    k_x, k_h = jax.random.split(key)
    return {"w_x": initializers.get(w_init)(k_x, (input_size, hidden_size), dtype),
            "w_h": initializers.get(w_h_init)(k_h, (n_feedback, hidden_size), dtype),
            "b": jnp.zeros((hidden_size,), dtype)}


def _init_output(key, params, hidden_size, output_size, w_init, dtype):
    params["w_y"] = initializers.get(w_init)(key, (hidden_size, output_size), dtype)
    params["b_y"] = jnp.zeros((output_size,), dtype)
    return params


def elman(hidden_size: int, *, output_size: int | None = None, activation="tanh",
          w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """Elman RNN: ``a_t = b + W h_{t-1} + U x_t``, ``h_t = tanh(a_t)`` (Elman 1990; Goodfellow et
    al. 2016, eq. 10.8-10.9); with ``output_size``, the output ``o_t = c + V h_t`` (logits of a
    softmax head), else ``y_t = h_t``.

    Params: ``w_x`` (U) ``[D, H]``, ``w_h`` (W) ``[H, H]``, ``b [H]``; with an output also ``w_y``
    (V) ``[H, O]`` and ``b_y`` (c) ``[O]``. Carry ``RNNState(h [B, H])``.
    """
    hidden_size = check_size(hidden_size)
    f = activations.get(activation)

    def init(key, input_size, dtype=jnp.float32):
        k_r, k_y = jax.random.split(key)
        params = _init_recurrent(k_r, input_size, hidden_size, hidden_size, w_init, w_h_init,
                                 dtype)
        if output_size:
            params = _init_output(k_y, params, hidden_size, output_size, w_init, dtype)
        return params

    def output(params, carry):
        return affine(carry.h, params["w_y"], params["b_y"]) if output_size else carry.h

    def step(params, carry, u):
        carry = RNNState(f(u + carry.h @ params["w_h"]))
        return carry, output(params, carry)

    def initial_carry(batch_size, dtype=jnp.float32):
        return RNNState(jnp.zeros((batch_size, hidden_size), dtype))

    return make_cell(init, initial_carry, input_projection("elman"), step, hidden_size,
                     output_size, output)


def jordan(hidden_size: int, output_size: int, *, activation="tanh", output_activation="tanh",
           w_init="glorot_uniform", w_h_init="glorot_uniform") -> Cell:
    """Jordan RNN: the recurrence comes from the previous output instead of the hidden state
    (Jordan 1986): ``h_t = tanh(b + W y_{t-1} + U x_t)``, ``y_t = g(c + V h_t)``, with ``g``
    = ``output_activation`` (tanh by default, so the fed-back signal stays bounded).

    Params: ``w_x`` (U) ``[D, H]``, ``w_h`` (W) ``[O, H]``, ``b [H]``, ``w_y`` (V) ``[H, O]``,
    ``b_y`` (c) ``[O]``. Carry ``JordanState(y [B, O])``.
    """
    hidden_size, output_size = check_size(hidden_size), check_size(output_size, "output_size")
    f, g = activations.get(activation), activations.get(output_activation)

    def init(key, input_size, dtype=jnp.float32):
        k_r, k_y = jax.random.split(key)
        params = _init_recurrent(k_r, input_size, hidden_size, output_size, w_init, w_h_init,
                                 dtype)
        return _init_output(k_y, params, hidden_size, output_size, w_init, dtype)

    def step(params, carry, u):
        h = f(u + carry.y @ params["w_h"])
        y = g(affine(h, params["w_y"], params["b_y"]))
        return JordanState(y), y

    def initial_carry(batch_size, dtype=jnp.float32):
        return JordanState(jnp.zeros((batch_size, output_size), dtype))

    return make_cell(init, initial_carry, input_projection("jordan"), step, hidden_size,
                     output_size, lambda params, carry: carry.y)


def leaky(hidden_size: int, *, alpha: float | None = 0.5, activation="tanh",
          w_init="glorot_uniform", w_h_init="orthogonal") -> Cell:
    """Leaky-integrator units: ``h_t = (1 - alpha) h_{t-1} + alpha tanh(b + W h_{t-1} + U x_t)``
    (Jaeger et al. 2007; Bengio, Boulanger-Lewandowski & Pascanu 2013). ``alpha`` in (0, 1]
    fixed, or ``alpha=None`` to learn one per unit, ``alpha = sigmoid(a)`` with ``a`` initialised
    at 0 (alpha = 0.5). Small alpha lets information persist: a time constant of 1/alpha steps.

    Params: ``w_x [D, H]``, ``w_h [H, H]``, ``b [H]`` (and ``alpha_logit [H]`` when learned).
    Carry ``RNNState(h)``.
    """
    hidden_size = check_size(hidden_size)
    if alpha is not None:
        check_positive("alpha", alpha)
        check_in_range("alpha", alpha, 0.0, 1.0)
    f = activations.get(activation)

    def init(key, input_size, dtype=jnp.float32):
        params = _init_recurrent(key, input_size, hidden_size, hidden_size, w_init, w_h_init,
                                 dtype)
        if alpha is None:
            params["alpha_logit"] = jnp.zeros((hidden_size,), dtype)
        return params

    def step(params, carry, u):
        a = alpha if alpha is not None else sigmoid(params["alpha_logit"])[None, :]
        h = (1.0 - a) * carry.h + a * f(u + carry.h @ params["w_h"])
        return RNNState(h), h

    def initial_carry(batch_size, dtype=jnp.float32):
        return RNNState(jnp.zeros((batch_size, hidden_size), dtype))

    return make_cell(init, initial_carry, input_projection("leaky"), step, hidden_size)
