"""Checks of arguments and inputs shared by every module: one exception type for a wrong shape,
one test for "is this value known now or only under tracing", one set of hyper-parameter checks.

A value under ``jit``, ``vmap`` or ``grad`` is a tracer: its value cannot be checked until run
time, so the value checks here pass tracers through; shapes are always known and always checked.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import chex
import jax
import numpy as np


class ShapeError(ValueError):
    """An input's shape (or rank) does not match what the model or function expects."""


def is_traced(x: Any) -> bool:
    """True when ``x`` is a JAX tracer (inside ``jit``, ``vmap``, ``grad``): its value is unknown."""
    return isinstance(x, jax.core.Tracer)


def concrete(x: Any) -> np.ndarray | None:
    """``x`` as a numpy array, or None when it is traced (its values cannot be checked then)."""
    return None if is_traced(x) else np.asarray(x)


def check_shape(x: Any, expected: Sequence[int | None], what: str) -> None:
    """Raise :class:`ShapeError` unless ``x``'s shape is ``expected`` (``None`` matches any size):
    ``check_shape(x, (None, 784), "mlp: input [batch, 784]")``. Free under jit (shapes are static).
    """
    try:
        chex.assert_shape(x, tuple(expected))
    except AssertionError:
        want = "[" + ", ".join("*" if d is None else str(d) for d in expected) + "]"
        raise ShapeError(f"{what}: expected shape {want}, got {tuple(np.shape(x))}") from None


def check_rank(x: Any, rank: int | Iterable[int], what: str) -> None:
    """Raise :class:`ShapeError` unless ``x`` has rank ``rank`` (or one of the ranks given)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if np.ndim(x) not in ranks:
        raise ShapeError(f"{what}: expected rank {' or '.join(map(str, ranks))}, "
                         f"got shape {tuple(np.shape(x))}")


def _number(name: str, value: Any) -> float | None:
    if is_traced(value):
        return None
    a = np.asarray(value)
    if a.shape != () or a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(a)


def check_positive(name: str, value: Any) -> None:
    """``value`` is finite and > 0 (an integer count or a real rate)."""
    v = _number(name, value)
    if v is not None and not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def check_nonnegative(name: str, value: Any) -> None:
    """``value`` is finite and >= 0."""
    v = _number(name, value)
    if v is not None and not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def check_in_range(name: str, value: Any, low: float, high: float, *,
                   closed_high: bool = True) -> None:
    """``low <= value <= high`` (``< high`` with ``closed_high=False``)."""
    v = _number(name, value)
    if v is None:
        return
    ok = low <= v <= high if closed_high else low <= v < high
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def lookup(what: str, name: Any, table: dict[str, Any]) -> Any:
    """``table[name]`` for a look-up by name from a config (an activation, an initialiser); a
    callable ``name`` is returned as it is; an unknown name raises ``ValueError`` listing the
    valid ones: ``lookup("activation", "relu", ACTIVATIONS)``."""
    if callable(name):
        return name
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {name!r}; valid: {sorted(table)}") from None


def check_finite(name: str, x: Any) -> None:
    """Every entry of ``x`` (an array or a pytree of them) is finite; traced values pass."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(x):
        a = concrete(leaf)
        if a is None or not np.issubdtype(a.dtype, np.floating):
            continue
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            where = f"{name}{jax.tree_util.keystr(path)}"
            raise ValueError(f"{where} holds {bad} NaN or infinite values (shape {a.shape})")
