"""How gradients flow through time in a recurrent network: per-step gradient norms, products of
step Jacobians, and the spectrum of the recurrent matrix.

Background (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013): with
``h_t = f(W h_{t-1} + U x_t + b)``, ``dh_T/dh_t = prod_{k=t+1..T} diag(f'(a_k)) W``, so
``||dh_T/dh_t|| <= (sigma_max(W) gamma)^(T-t)`` where ``gamma`` bounds ``|f'|`` (1 for tanh,
1/4 for the logistic sigmoid): gradients must vanish when ``sigma_max(W) < 1/gamma``. For a
symmetric ``W = Q Lambda Q^T``, ``W^n = Q Lambda^n Q^T`` grows or shrinks like
``rho(W)^n`` (the course notes' argument).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dlmodels.rnn.cell import Cell, output_of

GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "identity": 1.0}


def _scan_with_perturbations(cell: Cell, params, xs, perturbations, carry):
    """``unroll`` for studying gradients: after step t the carry is ``carry_t + eps_t``, and the
    output ``y_t`` is read from that perturbed carry.
    ``xs [B, T, D]``; ``perturbations``: a carry-shaped pytree with a leading T axis."""
    us = cell.project(params, jnp.swapaxes(xs, 0, 1))            # [T, B, P]

    def body(carry, inputs):
        u, eps = inputs
        carry, _ = cell.step(params, carry, u)
        carry = jax.tree.map(jnp.add, carry, eps)
        return carry, (output_of(cell, params, carry), carry)

    _, (ys, carries) = jax.lax.scan(body, carry, (us, perturbations))
    return jnp.swapaxes(ys, 0, 1), carries


def _state_leaves(carry, field: str | None):
    return getattr(carry, field) if field else carry


def hidden_gradients(cell: Cell, params, xs: jax.Array, loss_fn: Callable[[jax.Array], jax.Array],
                     *, initial_carry: Any = None) -> tuple[jax.Array, Any]:
    """``(loss, dL/dcarry_t)``: the total derivative of ``loss_fn(ys)`` with respect to the carry
    after each step t (through every later step), obtained exactly by differentiating with
    respect to zero perturbations added to the carry at each step. ``xs [B, T, D]``; ``loss_fn``
    maps the outputs ``ys [B, T, O]`` to a scalar. The gradients have the carry's structure with
    a leading time axis ``[T, B, ...]``."""
    B, T = xs.shape[:2]
    carry = cell.initial_carry(B, xs.dtype) if initial_carry is None else initial_carry
    zeros = jax.tree.map(lambda c: jnp.zeros((T,) + c.shape, c.dtype), carry)
    loss = lambda eps: loss_fn(_scan_with_perturbations(cell, params, xs, eps, carry)[0])
    return jax.value_and_grad(loss)(zeros)


def hidden_gradient_norms(cell: Cell, params, xs: jax.Array, loss_fn: Callable, *,
                          field: str | None = "h", initial_carry: Any = None) -> jax.Array:
    """``||dL/dh_t||`` for t = 0..T-1, ``[T]`` (Frobenius norm over the batch). ``field``: which
    carry field counts as the hidden state (``"h"``; ``None``: all carry fields together; a
    Jordan cell's state is ``"y"``)."""
    _, grads = hidden_gradients(cell, params, xs, loss_fn, initial_carry=initial_carry)
    if field and not hasattr(grads, field):
        field = None
    leaves = jax.tree.leaves(_state_leaves(grads, field))
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in leaves))


def step_jacobians(cell: Cell, params, xs: jax.Array, *, initial_carry: Any = None):
    """Exact Jacobians ``J_t = d carry_t / d carry_{t-1}`` of one sequence, ``[T, n, n]`` with the
    carry flattened (all fields) to ``n``; ``xs [T, D]`` (a single sequence). Also returns the
    carries visited ``[T, n]``."""
    carry = cell.initial_carry(1, xs.dtype) if initial_carry is None else initial_carry
    flat0, unravel = ravel_pytree(carry)
    us = cell.project(params, xs[:, None, :])                     # [T, 1, P]

    def step_flat(flat, u):
        new, _ = cell.step(params, unravel(flat), u)
        return ravel_pytree(new)[0]

    def body(flat, u):
        return step_flat(flat, u), flat

    _, previous = jax.lax.scan(body, flat0, us)                   # carry before each step
    jacobians = jax.vmap(jax.jacfwd(step_flat))(previous, us)     # [T, n, n]
    return jacobians, previous


def jacobian_products(cell: Cell, params, xs: jax.Array, *, initial_carry: Any = None,
                      singular_values: bool = True) -> dict:
    """Norms of ``d carry_{T-1} / d carry_t = J_{T-1} ... J_{t+1}`` for t = 0..T-1 (identity at
    t = T-1), exact by autodiff. ``xs [T, D]``. Returns ``{"spectral_norm": [T],
    "frobenius_norm": [T], "singular_values": [T, n]}`` (lag T-1-t is the distance in time)."""
    jacobians, _ = step_jacobians(cell, params, xs, initial_carry=initial_carry)
    n = jacobians.shape[-1]

    def body(product, j):
        return product @ j, product

    # walk back from the end: product_t = J_{T-1} ... J_{t+1}
    _, products = jax.lax.scan(body, jnp.eye(n, dtype=jacobians.dtype), jacobians[::-1])
    products = products[::-1]                                     # [T, n, n]
    out = {"frobenius_norm": jnp.sqrt(jnp.sum(jnp.square(products), axis=(1, 2)))}
    s = jnp.linalg.svd(products, compute_uv=False)                # [T, n]
    out["spectral_norm"] = s[:, 0]
    if singular_values:
        out["singular_values"] = s
    return out


def spectrum(w: jax.Array) -> dict:
    """Eigenvalues and singular values of a square recurrent matrix ``w [H, H]``:
    ``{"eigenvalues" (complex, by decreasing modulus), "singular_values", "spectral_radius",
    "largest_singular_value"}``."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"spectrum needs a square matrix, got shape {w.shape}")
    eig = np.linalg.eigvals(w)
    eig = eig[np.argsort(-np.abs(eig))]
    sv = np.linalg.svd(w, compute_uv=False)
    return {"eigenvalues": eig, "singular_values": sv, "spectral_radius": float(np.abs(eig[0])),
            "largest_singular_value": float(sv[0])}


def with_spectral_radius(w: jax.Array, radius: float) -> jax.Array:
    """``w`` rescaled so that its spectral radius (largest |eigenvalue|) is ``radius``."""
    return w * (radius / spectrum(w)["spectral_radius"])


def with_largest_singular_value(w: jax.Array, value: float) -> jax.Array:
    """``w`` rescaled so that its largest singular value is ``value``."""
    return w * (value / spectrum(w)["largest_singular_value"])


def vanishing_bound(w: jax.Array, activation: str = "tanh", lags: int | np.ndarray = 100) -> dict:
    """Pascanu et al. (2013)'s sufficient condition: with ``eta = sigma_max(W) * gamma``,
    ``||dh_T/dh_t|| <= eta^(T-t)``; vanishing is guaranteed when ``eta < 1``. Returns
    ``{"gamma", "eta", "guaranteed_vanishing", "bound": eta ** lags}``."""
    gamma = GAMMA[activation]
    eta = spectrum(w)["largest_singular_value"] * gamma
    lags = np.arange(lags) if np.ndim(lags) == 0 else np.asarray(lags)
    return {"gamma": gamma, "eta": eta, "guaranteed_vanishing": eta < 1.0, "bound": eta ** lags}
