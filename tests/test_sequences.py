"""The synthetic sequence tasks against independent numpy recomputations from their inputs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import data
from dlmodels.data import sequences

KEY = jax.random.PRNGKey(0)


# ---------------------------------------------------------------- adding problem

def test_adding_problem_targets_markers_and_halves():
    n, length = 500, 37  # odd length: first half is [0, 18), second [18, 37)
    x, y = data.adding_problem(KEY, n, length)
    assert x.shape == (n, length, 2) and x.dtype == jnp.float32
    assert y.shape == (n,) and y.dtype == jnp.float32
    x, y = np.asarray(x), np.asarray(y)
    values, marker = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert set(np.unique(marker)) <= {0.0, 1.0}
    np.testing.assert_array_equal(marker.sum(1), 2)
    np.testing.assert_array_equal(marker[:, :length // 2].sum(1), 1)
    np.testing.assert_array_equal(marker[:, length // 2:].sum(1), 1)
    expected = np.array([values[i][marker[i] == 1].sum() for i in range(n)])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    # both halves' marker positions are spread over the whole half
    first = marker[:, :length // 2].argmax(1)
    second = marker[:, length // 2:].argmax(1) + length // 2
    assert first.min() == 0 and first.max() == length // 2 - 1
    assert second.min() == length // 2 and second.max() == length - 1


def test_adding_problem_constant_predictor_mse_is_one_sixth():
    n = 200_000
    _, y = data.adding_problem(jax.random.PRNGKey(1), n, 10)
    sq = (np.asarray(y, np.float64) - 1.0) ** 2
    # (y - 1)^2 has variance E[s^4] - (1/6)^2 with s = u1 + u2 - 1 (triangular on [-1, 1]):
    # E[s^4] = 1/15, so sd = sqrt(1/15 - 1/36); allow 5 standard errors.
    tol = 5 * math.sqrt(1 / 15 - 1 / 36) / math.sqrt(n)
    assert abs(sq.mean() - 1 / 6) < tol, (sq.mean(), tol)


# ---------------------------------------------------------------- copy memory

@pytest.mark.parametrize("delay,n_symbols,n_copy", [(1, 8, 10), (25, 8, 10), (7, 3, 4)])
def test_copy_memory_layout_position_by_position(delay, n_symbols, n_copy):
    n = 64
    x, y = data.copy_memory(KEY, n, delay, n_symbols, n_copy)
    total = delay + 2 * n_copy
    assert x.shape == y.shape == (n, total) and x.dtype == y.dtype == jnp.int32
    x, y = np.asarray(x), np.asarray(y)
    delimiter = n_symbols + 1
    for t in range(total):
        if t < n_copy:
            assert ((x[:, t] >= 1) & (x[:, t] <= n_symbols)).all(), t
        elif t == delay + n_copy - 1:
            assert (x[:, t] == delimiter).all(), t
        else:
            assert (x[:, t] == 0).all(), t
        if t < delay + n_copy:
            assert (y[:, t] == 0).all(), t
        else:
            np.testing.assert_array_equal(y[:, t], x[:, t - delay - n_copy])
    # every data symbol occurs, drawn uniformly enough
    counts = np.bincount(x[:, :n_copy].ravel(), minlength=n_symbols + 1)[1:]
    assert (counts > 0).all()


def test_copy_memory_baseline_is_the_memoryless_cross_entropy():
    n_symbols, n_copy, n_classes = 8, 10, 10
    for delay in (1, 10, 100):
        _, y = data.copy_memory(KEY, 32, delay, n_symbols, n_copy)
        y = np.asarray(y)
        total = delay + 2 * n_copy
        probs = np.zeros((total, n_classes))
        probs[:delay + n_copy, 0] = 1.0  # certain blank while waiting
        probs[delay + n_copy:, 1:n_symbols + 1] = 1.0 / n_symbols  # uniform guess when recalling
        p_target = np.take_along_axis(np.broadcast_to(probs, (32, total, n_classes)),
                                      y[..., None], axis=-1)[..., 0]
        ce = -np.log(p_target).mean()
        assert ce == pytest.approx(data.copy_memory_baseline(delay, n_symbols, n_copy), rel=1e-12)
        assert ce == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-12)


# ---------------------------------------------------------------- parity

def test_parity_matches_numpy():
    x, y = data.parity(KEY, 300, 17)
    assert x.shape == (300, 17, 1) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    bits = np.asarray(x)[..., 0]
    assert set(np.unique(bits)) == {0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(y), bits.astype(int).sum(1) % 2)
    assert 0.3 < np.asarray(y).mean() < 0.7


# ---------------------------------------------------------------- temporal order

@pytest.mark.parametrize("length", [10, 100, 57])
def test_temporal_order_labels_recomputed_from_inputs(length):
    n = 400
    x, y = data.temporal_order(KEY, n, length)
    assert x.shape == (n, length, 8) and x.dtype == jnp.float32 and y.dtype == jnp.int32
    x, y = np.asarray(x), np.asarray(y)
    np.testing.assert_array_equal(x.sum(-1), 1.0)  # one-hot
    sym = x.argmax(-1)
    assert (sym[:, 0] == 6).all() and (sym[:, -1] == 7).all()  # E ... B
    (lo1, hi1), (lo2, hi2) = data.temporal_order_windows(length)
    names = sequences.TEMPORAL_ORDER_SYMBOLS
    for i in range(n):
        relevant = np.flatnonzero((sym[i] == names.index("X")) | (sym[i] == names.index("Y")))
        assert len(relevant) == 2
        t1, t2 = relevant
        assert lo1 <= t1 <= hi1 and lo2 <= t2 <= hi2
        first_y, second_y = sym[i, t1] == names.index("Y"), sym[i, t2] == names.index("Y")
        assert y[i] == {(False, False): 0, (False, True): 1, (True, False): 2,
                        (True, True): 3}[(bool(first_y), bool(second_y))]
        others = np.delete(sym[i], [0, t1, t2, length - 1])
        assert (others < 4).all()
    assert set(np.unique(y)) == {0, 1, 2, 3}


def test_temporal_order_paper_windows():
    assert data.temporal_order_windows(100) == ((10, 20), (50, 60))


# ---------------------------------------------------------------- sequential MNIST

@pytest.mark.parametrize("as_numpy", [True, False])
def test_mnist_sequences_rows_pixels_and_permutation(as_numpy):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(5, 784)).astype(np.float32)
    x = images if as_numpy else jnp.asarray(images)
    rows = data.mnist_sequences(x)
    pixels = data.mnist_sequences(x, pixels=True)
    assert rows.shape == (5, 28, 28) and pixels.shape == (5, 784, 1)
    assert isinstance(rows, np.ndarray) == as_numpy
    np.testing.assert_array_equal(np.asarray(rows).reshape(5, 784), images)
    np.testing.assert_array_equal(np.asarray(rows)[:, 3], images[:, 3 * 28:4 * 28])  # row 3
    np.testing.assert_array_equal(np.asarray(pixels)[..., 0], images)

    pkey = jax.random.PRNGKey(7)
    # images whose pixel values are their own indices reveal the permutation applied to each
    index_images = np.tile(np.arange(784, dtype=np.float32), (5, 1))
    index_images = index_images if as_numpy else jnp.asarray(index_images)
    order = np.asarray(data.mnist_sequences(index_images, pixels=True,
                                            permutation_key=pkey))[..., 0].astype(int)
    assert (order == order[0]).all()  # the same permutation for every image
    np.testing.assert_array_equal(np.sort(order[0]), np.arange(784))  # is a permutation
    assert (order[0] != np.arange(784)).mean() > 0.9
    np.testing.assert_array_equal(order[0], np.asarray(data.pixel_permutation(pkey, 784)))
    permuted = np.asarray(data.mnist_sequences(x, pixels=True, permutation_key=pkey))[..., 0]
    np.testing.assert_array_equal(permuted, images[:, order[0]])
    inverse = np.argsort(order[0])
    np.testing.assert_array_equal(permuted[:, inverse], images)  # back to the images


def test_mnist_sequences_refuses_non_square():
    with pytest.raises(ValueError, match="square"):
        data.mnist_sequences(np.zeros((2, 10)))


# ---------------------------------------------------------------- determinism and jit

GENERATORS = {
    "adding_problem": (data.adding_problem, (16, 20)),
    "copy_memory": (data.copy_memory, (16, 5)),
    "parity": (data.parity, (16, 12)),
    "temporal_order": (data.temporal_order, (16, 30)),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_key_same_data_and_jit(name):
    fn, sizes = GENERATORS[name]
    a = fn(KEY, *sizes)
    b = fn(KEY, *sizes)
    c = fn(jax.random.PRNGKey(1), *sizes)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c))
    jitted = jax.jit(fn, static_argnums=(1, 2))(KEY, *sizes)
    for u, v in zip(a, jitted):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)
