"""Test settings: loud failures for silent broadcasting (as Equinox does). Strict dtype promotion
is turned on per test module with the ``strict_dtypes`` fixture, since optax's own updates rely on
standard promotion."""

import os

os.environ.setdefault("CI", "true")  # no progress bars in test output

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield
