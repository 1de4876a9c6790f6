"""Elementwise activation functions, and a look-up by name for configs.

All map an array ``[...]`` to an array of the same shape.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels.validation import lookup

Activation = Callable[[jax.Array], jax.Array]


def sigmoid(x: jax.Array) -> jax.Array:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, range (0, 1)."""
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent, range (-1, 1)."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """Rectified linear unit ``max(0, x)``."""
    return jax.nn.relu(x)


def arctan(x: jax.Array) -> jax.Array:
    """Arctangent, range (-pi/2, pi/2)."""
    return jnp.arctan(x)


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + exp(x))``, computed stably; its derivative is the sigmoid."""
    return jax.nn.softplus(x)


def identity(x: jax.Array) -> jax.Array:
    """The linear activation ``x``."""
    return x


def step(x: jax.Array, threshold: float = 0.0) -> jax.Array:
    """Heaviside threshold unit ``Theta(x - s)``: 1 where ``x >= s``, else 0 (McCulloch & Pitts 1943).

    Its derivative is zero almost everywhere, so it trains only with rules that do not
    differentiate through it (the perceptron rule).
    """
    return (x >= threshold).astype(jnp.result_type(x, jnp.float32))


# by name, for configs; "linear" is another name of the identity
ACTIVATIONS: dict[str, Activation] = {
    **{f.__name__: f for f in (sigmoid, tanh, relu, arctan, softplus, step, identity)},
    "linear": identity}


def get(name: str | Activation) -> Activation:
    """The activation called ``name`` (a callable is returned as it is)."""
    return lookup("activation", name, ACTIVATIONS)
