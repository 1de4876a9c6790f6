"""dlmodels.classic against independent references: numpy loops of the perceptron and storage
rules, numpy truth tables, Novikoff's bound computed in numpy, ``np.linalg.lstsq``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.classic import associative, perceptron
from dlmodels.validation import ShapeError
from dlmodels.experiments.perceptron import separable_data

pytestmark = pytest.mark.usefixtures("strict_dtypes")

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([0, 1, 1, 0], np.int32)


def separable(seed, n=60, d=2, margin=0.1):
    """``n`` points in [-1, 1]^d at distance >= margin from a random unit plane; x, y, u, b."""
    return separable_data(np.random.default_rng(seed), n, d, margin)


def numpy_perceptron(x, y, learning_rate, rate, max_epochs):
    """Rosenblatt's rule as a plain loop over epochs and examples, in float64."""
    xa = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    w = np.zeros(xa.shape[1])
    per_epoch = []
    for _ in range(max_epochs):
        errors = 0
        for xi, yi in zip(xa, y):
            out = 1 if xi @ w >= 0 else 0
            if out != yi:
                eps = learning_rate / np.linalg.norm(xi) if rate == "normalised" else learning_rate
                w = w + eps * (yi - out) * xi
                errors += 1
        per_epoch.append(errors)
        if errors == 0:
            break
    return w, per_epoch


def numpy_novikoff(x, y, u, b):
    xa = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    sep = np.append(u, b) / np.linalg.norm(np.append(u, b))
    radius = np.linalg.norm(xa, axis=1).max()
    gamma = ((2 * y - 1) * (xa @ sep)).min()
    return (radius / gamma) ** 2


# --- threshold units ------------------------------------------------------------------------------

def test_threshold_unit_logic_gates_match_truth_tables():
    ab = np.array([[a, b] for a in (0, 1) for b in (0, 1)], np.float32)  # [4, 2]
    for w, s, truth in [((1, 1), 2, np.logical_and), ((1, 1), 1, np.logical_or)]:
        out = perceptron.threshold_unit(jnp.array(w, jnp.float32), ab, s)
        np.testing.assert_array_equal(out, truth(ab[:, 0], ab[:, 1]).astype(np.float32))
    a = np.array([[0], [1]], np.float32)
    np.testing.assert_array_equal(perceptron.threshold_unit(jnp.array([-1.0]), a, 0.0),
                                  np.logical_not(a[:, 0]).astype(np.float32))


def test_threshold_unit_layer_and_batch_dims_vs_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    s = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    out = perceptron.threshold_unit(w, x, s)
    assert out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out, (np.einsum("abi,ir->abr", x, w) - s >= 0))
    single = perceptron.threshold_unit(w[:, 0], x, s[0])
    np.testing.assert_array_equal(single, out[..., 0])
    # Theta(0) = 1
    assert perceptron.threshold_unit(jnp.array([1.0]), jnp.array([2.0]), 2.0) == 1


# --- perceptron -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", ["fixed", "normalised"])
@pytest.mark.parametrize("seed, d", [(0, 2), (1, 2), (2, 5)])
def test_fit_matches_numpy_loop(rate, seed, d):
    x, y, _, _ = separable(seed, n=50, d=d, margin=0.05)
    w_ref, per_epoch_ref = numpy_perceptron(x, y, 0.5, rate, max_epochs=200)
    r = perceptron.fit(jax.random.PRNGKey(0), x, y, learning_rate=0.5, rate=rate,
                       max_epochs=200, shuffle=False)
    assert int(r.epochs) == len(per_epoch_ref) and bool(r.converged)
    np.testing.assert_array_equal(r.mistakes_per_epoch[:len(per_epoch_ref)], per_epoch_ref)
    assert not np.any(r.mistakes_per_epoch[len(per_epoch_ref):])
    assert int(r.mistakes) == sum(per_epoch_ref)
    np.testing.assert_allclose(np.append(r.w, r.b), w_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rate", ["fixed", "normalised"])
@pytest.mark.parametrize("seed, d, margin", [(3, 2, 0.02), (4, 2, 0.2), (5, 10, 0.05)])
def test_fit_separates_within_novikoff_bound(rate, seed, d, margin):
    x, y, u, b = separable(seed, n=100, d=d, margin=margin)
    r = perceptron.fit(jax.random.PRNGKey(seed), x, y, rate=rate, max_epochs=2000)
    assert bool(r.converged) and int(r.epochs) < 2000
    np.testing.assert_array_equal(perceptron.predict(r, x), y)
    assert int(r.mistakes) <= numpy_novikoff(x, y, u, b)
    bound = perceptron.novikoff_bound(x, y, u, b)
    np.testing.assert_allclose(bound.bound, numpy_novikoff(x, y, u, b), rtol=1e-9)
    svm = perceptron.novikoff_bound(x, y)  # near max-margin separator: a tighter valid bound
    assert int(r.mistakes) <= svm.bound <= bound.bound * 1.001


def test_fixed_rate_only_scales_the_weights():
    x, y, _, _ = separable(6, n=40)
    one = perceptron.fit(jax.random.PRNGKey(1), x, y, learning_rate=1.0)
    quarter = perceptron.fit(jax.random.PRNGKey(1), x, y, learning_rate=0.25)
    np.testing.assert_array_equal(one.mistakes_per_epoch, quarter.mistakes_per_epoch)
    np.testing.assert_allclose(np.append(quarter.w, quarter.b), 0.25 * np.append(one.w, one.b),
                               rtol=1e-6)


def test_shuffle_order_comes_from_the_key():
    x, y, _, _ = separable(7, n=80, margin=0.02)
    a = perceptron.fit(jax.random.PRNGKey(0), x, y)
    again = perceptron.fit(jax.random.PRNGKey(0), x, y)
    others = [perceptron.fit(jax.random.PRNGKey(k), x, y) for k in (1, 2, 3)]
    np.testing.assert_array_equal(a.mistakes_per_epoch, again.mistakes_per_epoch)
    assert any(not np.array_equal(a.mistakes_per_epoch, o.mistakes_per_epoch) for o in others)


def test_xor_does_not_converge_and_stops_at_the_limit():
    r = perceptron.fit(jax.random.PRNGKey(0), XOR_X, XOR_Y, max_epochs=37)
    assert not bool(r.converged) and int(r.epochs) == 37
    assert r.mistakes_per_epoch.shape == (37,) and np.all(np.asarray(r.mistakes_per_epoch) > 0)
    assert int(r.mistakes) == int(np.sum(r.mistakes_per_epoch))


def test_fit_under_jit_and_vmap_no_retrace():
    x, y, _, _ = separable(8, n=30)
    traces = []

    def run(key, x, y):
        traces.append(1)
        return perceptron.fit(key, x, y, max_epochs=50)

    f = jax.jit(run)
    jitted = f(jax.random.PRNGKey(0), x, y)
    eager = perceptron.fit(jax.random.PRNGKey(0), x, y, max_epochs=50)
    jax.tree.map(np.testing.assert_array_equal, jitted, eager)
    x2, y2, _, _ = separable(9, n=30)
    f(jax.random.PRNGKey(1), x2, y2)
    assert len(traces) == 1
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    batched = jax.vmap(lambda k: perceptron.fit(k, x, y, max_epochs=50))(keys)
    for i in range(3):
        one = perceptron.fit(keys[i], x, y, max_epochs=50)
        np.testing.assert_array_equal(batched.mistakes_per_epoch[i], one.mistakes_per_epoch)
        np.testing.assert_allclose(batched.w[i], one.w, rtol=1e-6)


@pytest.mark.parametrize("args, kwargs, match", [
    ((XOR_X[0], XOR_Y), {}, r"rank 2.*got shape \(2,\)"),
    ((XOR_X, XOR_Y[:3]), {}, r"y of shape \[n\] = \(4,\), got \(3,\)"),
    ((XOR_X, 2 * XOR_Y - 1), {}, r"labels must be 0 or 1, got values \[-1, 1\]"),
    ((np.where(XOR_X > 0, np.nan, XOR_X), XOR_Y), {}, "finite"),
    ((XOR_X, XOR_Y), {"max_epochs": 0}, "max_epochs must be an integer >= 1, got 0"),
    ((XOR_X, XOR_Y), {"learning_rate": 0.0}, "learning_rate must be finite and > 0, got 0.0"),
    ((XOR_X, XOR_Y), {"rate": "adaptive"}, "rate must be one of"),
])
def test_fit_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        perceptron.fit(jax.random.PRNGKey(0), *args, **kwargs)


def test_novikoff_bound_rejects_a_non_separating_plane():
    x, y, u, b = separable(10, n=20)
    with pytest.raises(ValueError, match="does not separate"):
        perceptron.novikoff_bound(x, y, -u, -b)
    with pytest.raises(ValueError, match=r"expected w_star \[d\]"):
        perceptron.novikoff_bound(x, y, np.ones(5))


# --- Hebb's rule ----------------------------------------------------------------------------------

def test_hebbian_matches_numpy_sum():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.normal(size=(7, 3)).astype(np.float32)
    expected = sum(0.1 * np.outer(x[j], y[j]) for j in range(7))
    np.testing.assert_allclose(perceptron.hebbian(x, y, 0.1), expected, rtol=1e-5, atol=1e-6)
    expected_1d = sum(0.1 * y[j, 0] * x[j] for j in range(7))
    np.testing.assert_allclose(perceptron.hebbian(x, y[:, 0], 0.1), expected_1d, rtol=1e-5,
                               atol=1e-6)
    w = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(perceptron.hebbian_step(w, x[0], y[0], 0.1),
                               w + 0.1 * np.outer(x[0], y[0]), rtol=1e-6)
    with pytest.raises(ValueError, match="expected x"):
        perceptron.hebbian_step(w, x[0], y[0, :2], 0.1)


# --- binary associative memory --------------------------------------------------------------------

def sparse_patterns(rng, count, n, ones):
    out = np.zeros((count, n), np.float32)
    for row in out:
        row[rng.choice(n, ones, replace=False)] = 1
    return out


def numpy_binary_memory(x, y, probes, offset=0.0):
    w = np.zeros((x.shape[1], y.shape[1]))
    for xj, yj in zip(x, y):
        for i in range(x.shape[1]):
            for r in range(y.shape[1]):
                w[i, r] = max(w[i, r], xj[i] * yj[r])
    out = np.zeros((len(probes), y.shape[1]))
    for k, p in enumerate(probes):
        s = p.sum() - 0.5 - offset
        out[k] = [1.0 if p @ w[:, r] >= s else 0.0 for r in range(y.shape[1])]
    return w, out


def test_binary_memory_matches_numpy_loop_at_high_load():
    rng = np.random.default_rng(12)
    x, y = sparse_patterns(rng, 60, 24, 4), sparse_patterns(rng, 60, 20, 3)
    w_ref, recall_ref = numpy_binary_memory(x, y, x)
    w = associative.binary_store(x, y)
    np.testing.assert_array_equal(w, w_ref)
    recalled = associative.binary_recall(w, x)
    np.testing.assert_array_equal(recalled, recall_ref)
    assert np.any(recalled != y)  # overloaded: false ones appear
    assert np.all(recalled >= y)  # ... but never a missing one for a complete probe
    _, offset_ref = numpy_binary_memory(x, y, x, offset=1.0)
    np.testing.assert_array_equal(associative.binary_recall(w, x, offset=1.0), offset_ref)


def test_binary_memory_perfect_at_low_load_and_threshold_offset():
    rng = np.random.default_rng(13)
    x, y = sparse_patterns(rng, 20, 256, 6), sparse_patterns(rng, 20, 256, 6)
    w = associative.binary_store(x, y)
    np.testing.assert_array_equal(associative.binary_recall(w, x), y)
    partial = x.copy()
    partial[np.arange(20), np.argmax(x, axis=1)] = 0  # one of the six ones missing
    np.testing.assert_array_equal(associative.binary_recall(w, partial), y)
    noisy = x.copy()
    for row in noisy:  # one spurious one per probe
        row[rng.choice(np.flatnonzero(row == 0))] = 1
    strict = associative.binary_recall(w, noisy)
    assert np.all(strict <= y) and np.sum(strict) < np.sum(y)  # missing ones, no false ones
    np.testing.assert_array_equal(associative.binary_recall(w, noisy, offset=1.0) * y, y)
    explicit = associative.binary_recall(w, noisy, threshold=noisy.sum(1) - 1.5)
    np.testing.assert_array_equal(explicit, associative.binary_recall(w, noisy, offset=1.0))


# --- linear associator ----------------------------------------------------------------------------

@pytest.mark.parametrize("count", [5, 12, 30])  # fewer keys than n = 12, as many, more
def test_least_squares_associator_equals_lstsq(count):
    rng = np.random.default_rng(count)
    x = rng.normal(size=(count, 12)).astype(np.float32)
    y = rng.normal(size=(count, 4)).astype(np.float32)
    solution, *_ = np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)
    w = associative.linear_least_squares(x, y)
    assert w.shape == (12, 4)  # [n, m]: recall is x W, as in dense
    np.testing.assert_allclose(w, solution, rtol=2e-3, atol=2e-4)
    if count <= 12:
        np.testing.assert_allclose(associative.linear_recall(w, x), y, atol=2e-4)


def test_linear_hebbian_exact_for_orthonormal_keys_only():
    rng = np.random.default_rng(14)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    keys = q[:, :10].T.astype(np.float32)  # [10, 16] orthonormal rows
    y = rng.normal(size=(10, 3)).astype(np.float32)
    w = associative.linear_hebbian(keys, y)
    np.testing.assert_allclose(w, sum(np.outer(keys[j], y[j]) for j in range(10)), atol=1e-5)
    np.testing.assert_allclose(associative.linear_recall(w, keys), y, atol=1e-5)
    lengths = rng.uniform(0.5, 3.0, size=(10, 1)).astype(np.float32)
    np.testing.assert_allclose(
        associative.linear_recall(associative.linear_hebbian(keys * lengths, y, normalise=True),
                                  keys * lengths), y, atol=1e-4)
    skewed = keys + 0.3 * keys[::-1]  # no longer orthogonal: crosstalk
    crosstalk = associative.linear_recall(associative.linear_hebbian(skewed, y), skewed) - y
    assert np.abs(crosstalk).max() > 0.1


def test_associators_reject_bad_shapes():
    with pytest.raises(ShapeError, match=r"same P; got x \(3, 4\), y \(2, 4\)"):
        associative.linear_least_squares(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ShapeError, match=r"expected w \[n, m\] and x \[..., n\]"):
        associative.binary_recall(np.ones((4, 3)), np.ones(5))
    with pytest.raises(ShapeError, match=r"expected W \[n, m\]"):
        associative.linear_recall(np.ones((4, 3)), np.ones(3))


# --- degradations ---------------------------------------------------------------------------------

def test_degrade_statistics():
    key = jax.random.PRNGKey(15)
    x = jnp.asarray(np.random.default_rng(15).integers(0, 2, size=(400, 100)), jnp.float32)
    noisy = associative.degrade(key, x, "noise", 0.2)
    assert noisy.dtype == x.dtype and set(np.unique(noisy)) <= {0.0, 1.0}
    assert abs(float(jnp.mean(noisy != x)) - 0.2) < 0.01  # 40,000 draws: s.e. 0.002
    erased = associative.degrade(key, x, "erase", 0.3)
    assert not np.any((erased == 1) & (x == 0))
    assert abs(float(jnp.sum(x - erased) / jnp.sum(x)) - 0.3) < 0.015
    occluded = np.asarray(associative.degrade(key, jnp.ones((50, 2, 20)), "occlusion", 0.25))
    zeros = occluded == 0
    assert np.all(zeros.sum(-1) == 5)
    # one cyclic block per pattern: exactly one 1 -> 0 transition around the ring
    assert np.all(np.sum(~zeros & np.roll(zeros, -1, axis=-1), axis=-1) == 1)
    assert len({tuple(np.flatnonzero(z)) for z in zeros.reshape(-1, 20)}) > 5  # random starts
    assert np.array_equal(associative.degrade(key, x, "noise", 0.0), x)
    with pytest.raises(ValueError, match="kind must be one of"):
        associative.degrade(key, x, "blur", 0.1)
    with pytest.raises(ValueError, match=r"level must be in \[0.0, 1.0\], got 1.5"):
        associative.degrade(key, x, "noise", 1.5)
