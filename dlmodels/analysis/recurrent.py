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

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.rnn.cell import Cell, make_cell, output_of
from dlmodels.rnn.unroll import unroll

GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "identity": 1.0}


# -- the carry as one flat vector per sequence --------------------------------------------------

def _carry_layout(cell: Cell) -> tuple[list[int], int]:
    """The batch axis of each carry leaf (``[B, H]``: 0; a ``time_skip`` history ``[k, B, O]``:
    1), found where ``initial_carry(1)`` and ``initial_carry(2)`` differ, and the flat size n of
    one sequence's carry."""
    one, two = (jax.tree.leaves(jax.eval_shape(lambda n=n: cell.initial_carry(n))) for n in (1, 2))
    axes = [next(i for i, (a, b) in enumerate(zip(x.shape, y.shape)) if a != b)
            for x, y in zip(one, two)]
    return axes, sum(math.prod(x.shape) for x in one)


def _flatten(carry, axes) -> jax.Array:
    """``carry -> [B, n]`` (for B = 1 the order of ``ravel_pytree``)."""
    return jnp.concatenate([jnp.moveaxis(leaf, a, 0).reshape(leaf.shape[a], -1)
                            for leaf, a in zip(jax.tree.leaves(carry), axes)], -1)


def _unflatten(flat: jax.Array, like, axes):
    """``[B, n] -> carry`` shaped like ``like`` (the inverse of :func:`_flatten`)."""
    leaves, tree = jax.tree.flatten(like)
    out, i = [], 0
    for leaf, a in zip(leaves, axes):
        moved = jnp.moveaxis(leaf, a, 0).shape
        size = math.prod(moved[1:])
        out.append(jnp.moveaxis(flat[:, i:i + size].reshape(moved), 0, a))
        i += size
    return jax.tree.unflatten(tree, out)


def _observed(cell: Cell, input_size: int) -> Cell:
    """``cell`` with the input ``[x_t, eps_t]`` (``[D + n]``) and the output ``[y_t, carry_t]``
    (``[O + n]``): after each step the carry becomes ``carry_t + eps_t`` and both outputs are
    read from it. ``unroll`` of it, with ``eps = 0``, runs the cell unchanged (with lengths and
    reversal), and differentiating with respect to ``eps`` gives ``dL/dcarry_t``."""
    axes, n = _carry_layout(cell)

    def project(params, x):
        return jnp.concatenate([cell.project(params, x[..., :input_size]), x[..., input_size:]], -1)

    def step(params, carry, u):
        new, _ = cell.step(params, carry, u[..., :u.shape[-1] - n])
        new = jax.tree.map(jnp.add, new, _unflatten(u[..., u.shape[-1] - n:], new, axes))
        return new, jnp.concatenate([output_of(cell, params, new), _flatten(new, axes)], -1)

    return make_cell(cell.init, cell.initial_carry, project, step, cell.hidden_size,
                     cell.output_size + n)


# -- gradients through time ----------------------------------------------------------------------

def hidden_gradients(cell: Cell, params, xs: jax.Array, loss_fn: Callable[[jax.Array], jax.Array],
                     *, lengths: jax.Array | None = None, reverse: bool = False,
                     initial_carry: Any = None) -> tuple[jax.Array, Any]:
    """``(loss, dL/dcarry_t)``: the total derivative of ``loss_fn(ys)`` with respect to the carry
    after the step at each position t (through every later step), obtained exactly by
    differentiating with respect to zero perturbations added to the carry after each step of
    ``unroll`` (with its ``lengths`` and ``reverse``: past a sequence's end the gradient is
    zero). ``xs [B, T, D]``; ``loss_fn`` maps the outputs ``ys [B, T, O]`` to a scalar. The
    gradients have the carry's structure with a leading time axis ``[T, B, ...]``."""
    B, T, D = xs.shape
    carry = cell.initial_carry(B, xs.dtype) if initial_carry is None else initial_carry
    axes, n = _carry_layout(cell)
    observed = _observed(cell, D)

    def loss(eps):                                                # eps [B, T, n]
        ys, _ = unroll(observed, params, jnp.concatenate([xs, eps], -1), lengths=lengths,
                       reverse=reverse, initial_carry=carry)
        return loss_fn(ys[..., :cell.output_size])

    value, grads = jax.value_and_grad(loss)(jnp.zeros((B, T, n), xs.dtype))
    return value, jax.vmap(lambda g: _unflatten(g, carry, axes), in_axes=1)(grads)


def hidden_gradient_norms(cell: Cell, params, xs: jax.Array, loss_fn: Callable, *,
                          field: str | None = "h", lengths: jax.Array | None = None,
                          reverse: bool = False, initial_carry: Any = None) -> jax.Array:
    """``||dL/dh_t||`` for t = 0..T-1, ``[T]`` (Frobenius norm over the batch). ``field``: which
    carry field counts as the hidden state (``"h"``; ``None``: all carry fields together; a
    Jordan cell's state is ``"y"``). ``lengths``, ``reverse``: as in ``unroll``."""
    _, grads = hidden_gradients(cell, params, xs, loss_fn, lengths=lengths, reverse=reverse,
                                initial_carry=initial_carry)
    if field and not hasattr(grads, field):
        field = None
    leaves = jax.tree.leaves(getattr(grads, field) if field else grads)
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1) for g in leaves))


def step_jacobians(cell: Cell, params, xs: jax.Array, *, reverse: bool = False,
                   initial_carry: Any = None):
    """Exact Jacobians ``J_t = d carry_t / d carry_before_t`` of one sequence, ``[T, n, n]`` with
    the carry flattened (all fields) to ``n``; ``xs [T, D]`` (a single sequence), run by
    ``unroll`` (``reverse``: from the last position to the first, so the carry before position
    t is the one after t + 1). Also returns the carries before each step ``[T, n]``."""
    T, D = xs.shape
    carry = cell.initial_carry(1, xs.dtype) if initial_carry is None else initial_carry
    axes, n = _carry_layout(cell)
    inputs = jnp.concatenate([xs, jnp.zeros((T, n), xs.dtype)], -1)[None]
    ys, _ = unroll(_observed(cell, D), params, inputs, reverse=reverse, initial_carry=carry)
    after = ys[0, :, cell.output_size:]                           # [T, n], carry after t
    flat0 = _flatten(carry, axes)
    previous = (jnp.concatenate([after[1:], flat0]) if reverse
                else jnp.concatenate([flat0, after[:-1]]))        # carry before t
    us = cell.project(params, xs[:, None, :])                     # [T, 1, P]

    def step_flat(flat, u):
        new, _ = cell.step(params, _unflatten(flat[None], carry, axes), u)
        return _flatten(new, axes)[0]

    return jax.vmap(jax.jacfwd(step_flat))(previous, us), previous


def jacobian_products(cell: Cell, params, xs: jax.Array, *, reverse: bool = False,
                      initial_carry: Any = None, singular_values: bool = True) -> dict:
    """Norms of ``d carry_final / d carry_t``, the product of the step Jacobians after position t
    (``J_{T-1} ... J_{t+1}``; with ``reverse``, ``J_0 ... J_{t-1}``; the identity for the last
    step processed), exact by autodiff, for t = 0..T-1. ``xs [T, D]``. Returns
    ``{"spectral_norm": [T], "frobenius_norm": [T], "singular_values": [T, n]}``."""
    jacobians, _ = step_jacobians(cell, params, xs, reverse=reverse, initial_carry=initial_carry)
    n = jacobians.shape[-1]
    in_order = jacobians[::-1] if reverse else jacobians         # processing order

    def body(product, j):
        return product @ j, product

    # walk back from the last step processed: product_k = J_last ... J_{k+1}
    _, products = jax.lax.scan(body, jnp.eye(n, dtype=jacobians.dtype), in_order[::-1])
    products = products if reverse else products[::-1]            # [T, n, n] by position
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
