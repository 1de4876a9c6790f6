"""Hopfield network storage, energy and recall against plain numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlmodels.energy import hopfield
from dlmodels.validation import ShapeError


def random_patterns(seed, p, n):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(p, n)).astype(np.float32)


def flip(x, fraction, seed):
    mask = np.random.default_rng(seed).random(x.shape) < fraction
    return np.where(mask, -x, x).astype(np.float32)


def numpy_energy(w, z):
    w, z = np.asarray(w, np.float64), np.asarray(z, np.float64)
    return -0.5 * sum(w[i, j] * z[i] * z[j] for i in range(len(z)) for j in range(len(z)))


def numpy_recall(key, w, probe, max_sweeps):
    """Asynchronous recall, each field computed from scratch: z_i <- sign(W[i] . z), 0 keeps z_i,
    units in the orders ``hopfield.sweep_order`` gives; stops after a sweep with no change."""
    w, z = np.asarray(w), np.array(probe)
    energies, sweeps, converged = [numpy_energy(w, z)], 0, False
    for s in range(max_sweeps):
        before = z.copy()
        for i in np.asarray(hopfield.sweep_order(key, s, len(z))):
            h = w[i] @ z
            z[i] = 1.0 if h > 0 else -1.0 if h < 0 else z[i]
        sweeps += 1
        energies.append(numpy_energy(w, z))
        if np.array_equal(before, z):
            converged = True
            break
    energies += [energies[-1]] * (max_sweeps + 1 - len(energies))
    return z, sweeps, converged, np.array(energies)


def random_symmetric(seed, n):
    a = np.random.default_rng(seed).normal(size=(n, n))
    w = (a + a.T) / 2
    np.fill_diagonal(w, 0.0)
    return w.astype(np.float32)


@pytest.mark.parametrize("zero_diagonal", [True, False])
@pytest.mark.parametrize("normalise", ["n_units", "n_patterns"])
def test_store_matches_outer_product_loop(zero_diagonal, normalise):
    x = random_patterns(0, 7, 13)
    k = 13 if normalise == "n_units" else 7
    expected = np.zeros((13, 13))
    for nu in range(7):
        for i in range(13):
            for j in range(13):
                if i != j or not zero_diagonal:
                    expected[i, j] += x[nu, i] * x[nu, j] / k
    w = hopfield.store(x, zero_diagonal=zero_diagonal, normalise=normalise)
    assert w.shape == (13, 13) and w.dtype == jnp.float32
    np.testing.assert_allclose(w, expected, atol=1e-6)


def test_energy_matches_double_sum_batched():
    w = random_symmetric(1, 9)
    z = random_patterns(2, 3, 9).reshape(3, 1, 9)
    e = hopfield.energy(w, z)
    assert e.shape == (3, 1)
    np.testing.assert_allclose(e[:, 0], [numpy_energy(w, zi[0]) for zi in z], rtol=1e-5)
    np.testing.assert_allclose(hopfield.energy(w, z[0, 0].astype(np.int32)), e[0, 0], rtol=1e-6)


def test_overlap():
    x = np.array([1.0, -1.0, 1.0, 1.0])
    assert hopfield.overlap(x, x) == 1.0 and hopfield.overlap(-x, x) == -1.0
    np.testing.assert_allclose(hopfield.overlap(np.stack([x, x * [1, 1, -1, -1]]), x), [1.0, 0.0])


@jax.jit
def _energies_along(weights, state, units):
    def step(carry, unit):
        carry = hopfield.update_unit(weights, *carry, unit)
        return carry, carry
    _, (states, fields) = jax.lax.scan(step, (state, hopfield.local_field(weights, state)), units)
    return states, fields


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([2, 5, 12]))
def test_energy_never_increases_under_asynchronous_updates(seed, n):
    rng = np.random.default_rng(seed)
    w = random_symmetric(seed, n)
    z = rng.choice([-1.0, 1.0], size=n).astype(np.float32)
    units = rng.integers(0, n, size=4 * n)
    states, fields = _energies_along(w, z, units)
    energies = [numpy_energy(w, z)] + [numpy_energy(w, s) for s in np.asarray(states)]
    assert np.all(np.diff(energies) <= 1e-5), energies
    np.testing.assert_allclose(fields, np.asarray(states) @ w.T, atol=1e-4)  # h stays W z


def test_stored_patterns_are_fixed_points_at_low_load(key):
    x = random_patterns(3, 5, 200)
    w = hopfield.store(x)
    info = hopfield.recall_with_info(key, w, x, 10)
    np.testing.assert_array_equal(info.state, x)
    np.testing.assert_array_equal(info.sweeps, 1)
    assert np.all(info.converged)
    np.testing.assert_array_equal(hopfield.sync_step(w, x), x)


def test_recall_from_noisy_probe_recovers_pattern(key):
    x = random_patterns(4, 5, 200)
    w = hopfield.store(x)
    probe = flip(x, 0.1, 5)
    assert np.all(np.asarray(hopfield.overlap(probe, x)) < 0.9)
    for mode in ("async", "sync"):
        info = hopfield.recall_with_info(key, w, probe, 20, mode=mode)
        np.testing.assert_array_equal(hopfield.overlap(info.state, x), 1.0)
        assert np.all(info.converged)
        assert np.all(np.diff(np.asarray(info.energies), axis=-1) <= 1e-4)


@pytest.mark.parametrize("case", ["gaussian", "hebbian"])
def test_async_recall_matches_numpy_with_the_same_orders(case, key):
    if case == "gaussian":   # continuous weights: no field is ever exactly 0
        n, w = 30, random_symmetric(6, 30)
        probes = random_patterns(7, 4, n)
    else:                     # N = 64, p odd: every field is an odd multiple of 1/64, exactly
        n, x = 64, random_patterns(8, 9, 64)
        w, probes = np.asarray(hopfield.store(x)), flip(x[:4], 0.2, 9)
    info = hopfield.recall_with_info(key, w, probes, 15)
    for b, probe in enumerate(probes):   # a batch shares the key's orders
        z, sweeps, converged, energies = numpy_recall(key, w, probe, 15)
        np.testing.assert_array_equal(info.state[b], z)
        assert int(info.sweeps[b]) == sweeps and bool(info.converged[b]) == converged
        np.testing.assert_allclose(info.energies[b], energies, rtol=1e-5, atol=1e-4)
    assert np.any(np.asarray(info.sweeps) > 1)


def test_async_sweep_with_explicit_order():
    w = random_symmetric(10, 8)
    z = random_patterns(11, 1, 8)[0]
    order = np.array([3, 1, 7, 3, 0])
    expected = z.copy()
    for i in order:
        h = w[i] @ expected
        expected[i] = np.sign(h) if h != 0 else expected[i]
    np.testing.assert_array_equal(hopfield.async_sweep(w, z, order), expected)


def test_synchronous_two_cycle_does_not_converge(key):
    w = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    z = jnp.array([1.0, -1.0])
    info = hopfield.recall_with_info(key, w, z, 5, mode="sync")
    assert not bool(info.converged) and int(info.sweeps) == 5
    np.testing.assert_array_equal(info.state, -z)   # odd number of sweeps: the other phase
    np.testing.assert_array_equal(hopfield.recall(key, w, z, 4, mode="sync"), z)
    np.testing.assert_array_equal(info.energies, 1.0)
    info = hopfield.recall_with_info(key, w, z, 5, mode="async")   # async escapes the cycle
    assert bool(info.converged) and float(info.energy) == -1.0


def test_vmap_over_keys_equals_loop_and_jit_equals_eager():
    w, probe = random_symmetric(12, 40), random_patterns(13, 1, 40)[0]   # many fixed points
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    batched = jax.vmap(lambda k: hopfield.recall_with_info(k, w, probe, 20))(keys)
    jitted = jax.jit(hopfield.recall_with_info, static_argnums=3)
    for i, k in enumerate(keys):
        for a, b in zip(batched, jitted(k, w, probe, 20)):
            _assert_same(a[i], b)
    assert len({tuple(np.asarray(s)) for s in batched.state}) > 1   # the orders matter here
    for a, b in zip(batched, hopfield.recall_with_info(keys[0], w, probe, 20)):
        _assert_same(a[0], b)


def _assert_same(a, b):
    """States and counts exactly; energies to rounding (vmapped and unbatched XLA
    programs may sum the 40 x 40 quadratic form in different orders)."""
    if np.issubdtype(np.asarray(b).dtype, np.floating):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, error, match", [
    (lambda: hopfield.store(np.ones(5)), ShapeError, r"\[p, N\]"),
    (lambda: hopfield.store(np.array([[1.0, 0.0]])), ValueError, r"\+1 and -1"),
    (lambda: hopfield.store(np.ones((2, 3)), normalise="p"), ValueError, "normalise"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 4)), np.ones(4), 3), ShapeError, "square"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 3)), np.ones(4), 3), ShapeError,
     r"probe must be \[\.\.\., N\] with N = 3 .*got shape \(4,\)"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 3)), np.array([1.0, 0.0, 1.0]), 3), ValueError,
     r"\+1 and -1"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 3)), np.ones(3), 0), ValueError, ">= 1"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 3)), np.ones(3), 2.0), TypeError, "int"),
    (lambda: hopfield.recall(KEY, np.zeros((3, 3)), np.ones(3), 2, mode="gibbs"), ValueError,
     "mode"),
    (lambda: hopfield.energy(np.zeros((3, 3)), np.ones(2)), ShapeError,
     r"state must be \[\.\.\., N\] with N = 3 .*got shape \(2,\)"),
])
def test_bad_input_raises_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


KEY = jax.random.PRNGKey(0)
