"""Shape arithmetic and argument checks shared by the convolutional networks, and ``count_params``."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np

from dlmodels.validation import ShapeError, check_in_range


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(value, name: str, where: str) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not a positive int."""
    if not (_is_int(value) and value > 0):
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def positive_ints(values, name: str, where: str, *, length: int | None = None) -> tuple[int, ...]:
    """A sequence of positive ints as a tuple (of ``length`` items where given)."""
    if (not isinstance(values, Sequence) or isinstance(values, str)
            or not all(_is_int(v) and v > 0 for v in values)
            or (length is not None and len(values) != length)):
        size = f"{length} " if length is not None else ""
        raise ValueError(f"{where}: {name} must be a sequence of {size}positive ints, got {values!r}")
    return tuple(int(v) for v in values)


def image_shape(input_shape, where: str) -> tuple[int, int, int]:
    """``input_shape = (H, W, C)`` (one image, channels last) checked and returned as a tuple."""
    return positive_ints(input_shape, "input_shape (H, W, C)", where, length=3)  # type: ignore[return-value]


def rate(value, name: str, where: str) -> float:
    """A dropout rate in ``[0, 1)`` (a Python number, fixed when the model is built)."""
    check_in_range(f"{where}: {name}", value, 0.0, 1.0, closed_high=False)
    return float(value)


def conv_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window: ``floor((size + 2 p - k) / s) + 1``
    (may be <= 0 when the window does not fit; the callers check)."""
    return (size + 2 * padding - kernel) // stride + 1


def check_sizes(sizes: dict[str, int], input_shape, where: str) -> None:
    """Raise if any spatial size in the network's ``{layer: size}`` plan is below 1."""
    bad = [name for name, s in sizes.items() if s < 1]
    if bad:
        plan = ", ".join(f"{k} {v}" for k, v in sizes.items())
        raise ValueError(f"{where}: input_shape {tuple(input_shape)} is too small: the spatial size "
                         f"after {bad[0]} is {sizes[bad[0]]} < 1 (plan: {plan})")


def check_input(x: jax.Array, input_shape: tuple[int, int, int], where: str) -> None:
    """``ShapeError`` naming the expected ``[N, H, W, C]`` and the actual shape of ``x``."""
    shape = np.shape(x)
    if len(shape) != 4 or tuple(shape[1:]) != tuple(input_shape):
        h, w, c = input_shape
        raise ShapeError(f"{where}: expected input x of shape [N, H, W, C] = [N, {h}, {w}, {c}], "
                         f"got {tuple(shape)}")


def dropout_keys(key, train: bool, dropout_rate: float, n: int, where: str) -> tuple:
    """The keys of a network's ``n`` dropout layers for one ``apply``: ``jax.random.split(key,
    n)`` in training with ``dropout_rate > 0`` (refusing ``key=None`` there: the masks are drawn
    from it), else ``n`` Nones (dropout is then the identity)."""
    if not (train and dropout_rate > 0.0):
        return (None,) * n
    if key is None:
        raise ValueError(f"{where}: train=True with dropout_rate={dropout_rate} needs a PRNG key: "
                         f"apply(params, x, key=key, train=True)")
    return tuple(jax.random.split(key, n))


def scaled(n: int, width: float, multiple: int = 1) -> int:
    """``round(n * width)`` rounded to a positive multiple of ``multiple`` (e.g. the groups)."""
    return multiple * max(1, round(n * width / multiple))


def count_params(params) -> int:
    """The number of scalar parameters in a pytree (arrays or ``jax.ShapeDtypeStruct`` leaves,
    so ``count_params(jax.eval_shape(model.init, key))`` counts without allocating)."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params)))
