"""The model convention: a factory returns ``Model(init, apply)``, a pair of pure functions.

``init(key, ...) -> params`` builds a parameter pytree of nested dicts with named keys;
``apply(params, inputs, *, key=None, train=False) -> outputs`` computes the outputs. Nothing is
stored on the model itself, so params can be checkpointed, vmapped over seeds, or edited by hand.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Model(NamedTuple):
    """A pair of pure functions ``init(key, ...) -> params`` and ``apply(params, x, ...) -> y``."""

    init: Callable[..., Any]
    apply: Callable[..., Any]


def init_layers(layers: dict[str, Model]) -> Callable[..., dict]:
    """``init(key, dtype=float32) -> {name: layer.init(key_name, dtype)}`` for a dict of named
    sub-models, each with its own key split from ``key`` (in the dict's order)."""
    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        keys = jax.random.split(key, len(layers))
        return {name: layer.init(k, dtype) for (name, layer), k in zip(layers.items(), keys)}

    return init
