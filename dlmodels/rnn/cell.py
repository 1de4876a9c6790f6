"""The recurrent-cell convention shared by every cell and by ``unroll``.

A cell is ``Cell(init, apply, initial_carry, project, step)``:

- ``init(key, input_size, dtype=float32) -> params``;
- ``apply(params, carry, x_t) -> (carry, y_t)``, the scan-native step, ``x_t [B, D]``;
- ``initial_carry(batch_size, dtype=float32) -> carry`` (zeros);
- ``project(params, x) -> u``: the part of a step that depends on the input only (the input
  projection, ``x [..., D] -> u [..., P]``), so ``unroll`` can compute it for all time steps in
  one large matmul before the scan;
- ``step(params, carry, u_t) -> (carry, y_t)``: the part that must be sequential;
  ``apply(params, carry, x_t) == step(params, carry, project(params, x_t))``;
- ``output(params, carry) -> y``: the output as a function of the new carry (``None`` means
  ``carry.h``), which the gradient analysis needs to perturb a state and see its outputs move;
- ``fused(params, xs, carry, *, lengths, reverse, time_major, remat, steps_per_iteration)
  -> (ys, carry)`` (optional, ``None`` for most cells): the whole sequence at once with a hand-written backward
  pass, equal to the scan of ``step`` (up to rounding); ``unroll`` uses it when it can (see
  there). ``cell._replace(fused=None)`` is the same cell on the generic path.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from dlmodels.validation import check_positive, check_shape


class Cell(NamedTuple):
    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_carry: Callable[..., Any]
    project: Callable[..., Any]
    step: Callable[..., Any]
    hidden_size: int
    output_size: int
    output: Callable[..., Any] | None = None
    fused: Callable[..., Any] | None = None


def make_cell(init, initial_carry, project, step, hidden_size: int,
              output_size: int | None = None, output=None, fused=None) -> Cell:
    """Assemble a ``Cell``; ``apply`` is ``step`` after ``project``."""

    def apply(params, carry, x_t):
        return step(params, carry, project(params, x_t))

    return Cell(init, apply, initial_carry, project, step, hidden_size,
                hidden_size if output_size is None else output_size, output, fused)


def output_of(cell: Cell, params, carry):
    """The cell's output for a carry: ``cell.output(params, carry)``, or ``carry.h``."""
    return carry.h if cell.output is None else cell.output(params, carry)


def affine(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """``x @ w (+ b)`` for ``x [..., n_in]``, ``w [n_in, n_out]``, ``b [n_out]``."""
    y = x @ w
    return y if b is None else y + jnp.expand_dims(b, tuple(range(y.ndim - 1)))


def input_projection(what: str, bias: str = "b"):
    """``project(params, x) = x W_x + b`` (``params["w_x"] [D, P]``, ``params[bias] [P]``) for
    ``x [..., D]``; a :class:`~dlmodels.validation.ShapeError` names ``what`` when x is not."""
    def project(params, x):
        D = params["w_x"].shape[0]
        check_shape(x, (None,) * (jnp.ndim(x) - 1) + (D,), f"{what}: input [..., {D}]")
        return affine(x, params["w_x"], params[bias])

    return project


def check_size(hidden_size: int, name: str = "hidden_size") -> int:
    """``hidden_size`` as a positive int (ValueError otherwise)."""
    check_positive(name, hidden_size)
    if int(hidden_size) != hidden_size:
        raise ValueError(f"{name} must be an integer, got {hidden_size!r}")
    return int(hidden_size)
