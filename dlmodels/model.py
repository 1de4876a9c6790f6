"""The model convention: a factory returns ``Model(init, apply)``, a pair of pure functions.

``init(key, ...) -> params`` builds a parameter pytree of nested dicts with named keys;
``apply(params, inputs, *, key=None, train=False) -> outputs`` computes the outputs. Nothing is
stored on the model itself, so params can be checkpointed, vmapped over seeds, or edited by hand.
"""

from __future__ import annotations

import inspect
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


class StatefulModel(NamedTuple):
    """A model with non-trainable state carried between calls (batch normalisation's running
    statistics): ``init(key, dtype=float32) -> params``, ``init_state(dtype=float32) -> state``,
    ``apply(params, state, x, *, key=None, train=False) -> (y, new_state)``.

    The state is a pytree apart from the params, so gradients never reach it and the optimizer
    never changes it; in training it lives in ``TrainState.model_state``. Eval mode
    (``train=False``) returns the state unchanged.
    """

    init: Callable[..., Any]
    init_state: Callable[..., Any]
    apply: Callable[..., Any]


def stateful(model: Model | StatefulModel) -> StatefulModel:
    """``model`` as a :class:`StatefulModel` with an empty state ``{}`` (a StatefulModel as it
    is), so code that composes layers can treat every layer alike."""
    if isinstance(model, StatefulModel):
        return model
    if not isinstance(model, Model):
        raise TypeError(f"stateful: expected a Model or StatefulModel, got {type(model).__name__}")

    def init_state(dtype=jnp.float32) -> dict:
        return {}

    try:
        accepts = inspect.signature(model.apply).parameters
    except (TypeError, ValueError):
        accepts = {"key": None, "train": None}
    takes = {"key", "train"} <= set(accepts) or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in getattr(accepts, "values", lambda: [])())

    def apply(params, state, x, *, key=None, train=False):
        if takes:
            return model.apply(params, x, key=key, train=train), state
        return model.apply(params, x), state      # a layer with no training-time behaviour

    return StatefulModel(model.init, init_state, apply)
