"""The model convention: a factory returns ``Model(init, apply)``, a pair of pure functions.

``init(key, ...) -> params`` builds a parameter pytree of nested dicts with named keys;
``apply(params, inputs, *, key=None, train=False) -> outputs`` computes the outputs. Nothing is
stored on the model itself, so params can be checkpointed, vmapped over seeds, or edited by hand.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Model(NamedTuple):
    """A pair of pure functions ``init(key, ...) -> params`` and ``apply(params, x, ...) -> y``."""

    init: Callable[..., Any]
    apply: Callable[..., Any]
