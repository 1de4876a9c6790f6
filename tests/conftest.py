"""Test settings: loud failures for silent broadcasting (as Equinox does). Strict dtype promotion
is turned on per test module with the ``strict_dtypes`` fixture, since optax's own updates rely on
standard promotion."""

import os

os.environ.setdefault("CI", "true")  # no progress bars in test output

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

# Many tests compile the same programs (a trainer for the same model, a cell for two references):
# a compilation cache shared by the xdist workers compiles each once. XLA keys it on the program,
# the flags and the jax version, so a stale entry cannot be picked up.
jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "DLMODELS_TEST_JAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                            "jax-compilation")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop each module's compiled programs and traces when it ends: a worker that keeps every
    program of ~800 tests grows past 10 GB, and two of them on a 24 GiB machine get one killed.
    Modules seldom share programs; the on-disk compilation cache above serves those that do."""
    yield
    import gc

    jax.clear_caches()
    gc.collect()
