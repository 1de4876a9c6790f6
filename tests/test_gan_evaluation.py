"""GAN evaluation (dlmodels.gan.evaluation) against independent references: the Parzen window
against a direct float64 numpy log-sum-exp (scipy.special.logsumexp) of the paper's equation, the
Frechet distance against the closed form with scipy.linalg.sqrtm, the classifier score and class
histograms against numpy written here from their definitions, the LeNet features against a numpy
forward pass of the trained params."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest
import scipy.linalg
from scipy.special import logsumexp

import numpy_nets
from dlmodels import data
from dlmodels.gan import evaluation as ev
from dlmodels.validation import ShapeError


def numpy_parzen(x, samples, sigma):
    """log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log n - d/2 log(2 pi sigma^2),
    float64, from explicit differences (no ||x||^2 + ||s||^2 - 2 x.s expansion)."""
    x, samples = np.asarray(x, np.float64), np.asarray(samples, np.float64)
    d2 = ((x[:, None, :] - samples[None, :, :]) ** 2).sum(-1)
    d = x.shape[1]
    return (logsumexp(-d2 / (2 * sigma ** 2), axis=1) - np.log(len(samples))
            - 0.5 * d * np.log(2 * np.pi * sigma ** 2))


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    # [0, 1] "pixels" as in the paper; a test set near half of the samples, far from the rest
    samples = rng.uniform(size=(53, 30)).astype(np.float32)
    x = np.clip(samples[:41] + 0.2 * rng.normal(size=(41, 30)), 0, 1).astype(np.float32)
    valid = np.clip(samples[5:25] + 0.2 * rng.normal(size=(20, 30)), 0, 1).astype(np.float32)
    return x, samples, valid


@pytest.mark.parametrize("test_chunk, sample_chunk", [(1000, 1000), (8, 7), (41, 1), (1, 53)])
def test_parzen_equals_numpy_logsumexp(points, test_chunk, sample_chunk):
    x, samples, _ = points
    sigmas = np.array([0.1, 0.2, 0.5, 1.0], np.float32)
    got = ev.parzen_log_density(x, samples, sigmas, test_chunk=test_chunk,
                                sample_chunk=sample_chunk)
    assert got.shape == (4, 41)
    want = np.stack([numpy_parzen(x, samples, float(s)) for s in sigmas])
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-3)
    # a scalar sigma gives [N]; images [N, h, w] are flattened
    one = ev.parzen_log_density(x.reshape(41, 5, 6), samples.reshape(53, 5, 6), 0.2)
    assert one.shape == (41,)
    np.testing.assert_allclose(np.asarray(one), want[1], rtol=2e-5, atol=2e-3)


def test_parzen_chunked_equals_unchunked(points):
    x, samples, _ = points
    sigmas = np.asarray(ev.PAPER_SIGMAS, np.float32)
    whole = ev.parzen_log_density(x, samples, sigmas, test_chunk=41, sample_chunk=53)
    chunked = ev.parzen_log_density(x, samples, sigmas, test_chunk=6, sample_chunk=10)
    # float32 log-sum-exps summed in another order
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), rtol=2e-5, atol=5e-4)


def test_parzen_protocol_matches_numpy(points):
    """Sigma: the grid point with the best mean validation log-density; then mean and
    std / sqrt(N) over the test rows (Goodfellow et al.'s parzen_ll.py)."""
    x, samples, valid = points
    grid = np.logspace(-1, 0, 10)
    np.testing.assert_allclose(ev.PAPER_SIGMAS, grid)
    valid_means = [numpy_parzen(valid, samples, s).mean() for s in grid]
    sigma = grid[int(np.argmax(valid_means))]
    assert 0.1 < sigma < 1.0  # an interior choice, so the selection is exercised
    ll = numpy_parzen(x, samples, sigma)
    mean, se, got_sigma = ev.parzen_log_likelihood(x, samples, valid, test_chunk=16,
                                                   sample_chunk=16)
    assert float(got_sigma) == pytest.approx(sigma, rel=1e-6)
    assert float(mean) == pytest.approx(ll.mean(), rel=1e-5, abs=1e-3)
    assert float(se) == pytest.approx(ll.std() / np.sqrt(len(ll)), rel=1e-3)
    chosen, per_sigma = ev.select_bandwidth(valid, samples)
    np.testing.assert_allclose(np.asarray(per_sigma), valid_means, rtol=1e-5, atol=1e-3)
    assert float(chosen) == pytest.approx(sigma, rel=1e-6)


def test_parzen_is_jittable_and_checks_inputs(points):
    x, samples, valid = points
    jitted = jax.jit(lambda a, b, c: ev.parzen_log_likelihood(a, b, c, sample_chunk=16))
    mean, _, _ = jitted(x, samples, valid)
    assert float(mean) == pytest.approx(float(ev.parzen_log_likelihood(x, samples, valid).mean),
                                        rel=1e-5, abs=1e-4)
    with pytest.raises(ShapeError, match="features"):
        ev.parzen_log_density(x, samples[:, :10], 0.2)
    with pytest.raises(ValueError, match="sigma"):
        ev.parzen_log_density(x, samples, np.array([0.2, 0.0]))
    with pytest.raises(ShapeError):
        ev.parzen_log_density(x[0], samples, 0.2)


def scipy_frechet(f1, f2, *, singular=False):
    """The closed form with scipy's sqrtm (full-rank covariances), or, for singular ones (where
    sqrtm warns and loses accuracy), Tr (S1 S2)^(1/2) = sum sqrt(eigenvalues of S1 S2) (real and
    >= 0: S1 S2 is similar to the PSD S1^(1/2) S2 S1^(1/2)) from numpy's general eigvals."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m1, m2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    if singular:
        trace_root = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
    else:
        trace_root = np.trace(scipy.linalg.sqrtm(c1 @ c2).real)
    return ((m1 - m2) ** 2).sum() + np.trace(c1 + c2) - 2 * trace_root


@pytest.mark.parametrize("n1, n2, d", [(400, 300, 12), (500, 600, 84)])
def test_frechet_distance_equals_scipy_sqrtm(n1, n2, d):
    rng = np.random.default_rng(d)
    f1 = rng.normal(size=(n1, d))
    f2 = rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
    want = scipy_frechet(f1, f2)
    got = float(ev.frechet_distance(*ev.gaussian_moments(f1.astype(np.float32)),
                                    *ev.gaussian_moments(f2.astype(np.float32))))
    assert got == pytest.approx(want, rel=1e-4)  # float32, full-rank covariances
    assert ev.frechet_distance_features(f1, f2) == pytest.approx(want, rel=1e-9)  # float64
    # the moments are numpy's (unbiased covariance)
    mu, cov = ev.gaussian_moments(f1.astype(np.float32))
    np.testing.assert_allclose(np.asarray(cov), np.cov(f1, rowvar=False), atol=1e-5)
    np.testing.assert_allclose(np.asarray(mu), f1.mean(0), atol=1e-6)


def test_frechet_distance_singular_covariances_in_float64():
    """Features with dead (constant) units, as ReLU features have: rank-deficient covariances."""
    rng = np.random.default_rng(4)
    f1 = np.maximum(rng.normal(size=(300, 20)) @ rng.normal(size=(20, 30)), 0.0)
    f2 = np.maximum(rng.normal(size=(250, 20)) @ rng.normal(size=(20, 30)) + 0.2, 0.0)
    f1[:, :4] = 0.0
    f2[:, 2:6] = 1.0
    want = scipy_frechet(f1, f2, singular=True)
    assert ev.frechet_distance_features(f1.astype(np.float32), f2.astype(np.float32)) == \
        pytest.approx(want, rel=1e-6)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    s = (a @ a.T + np.eye(6)).astype(np.float32)
    mu = rng.normal(size=6).astype(np.float32)
    # the same Gaussian: 0; a shifted one: ||shift||^2
    assert float(ev.frechet_distance(mu, s, mu, s)) == pytest.approx(0.0, abs=1e-3)
    assert float(ev.frechet_distance(mu, s, mu + 2.0, s)) == pytest.approx(24.0, abs=2e-3)
    # commuting diagonal covariances: sum (sqrt(a) - sqrt(b))^2; a singular one is fine
    c1, c2 = np.diag([4.0, 1.0, 0.0]), np.diag([1.0, 9.0, 4.0])
    z = np.zeros(3, np.float32)
    assert float(ev.frechet_distance(z, c1.astype(np.float32), z, c2.astype(np.float32))) == \
        pytest.approx(1.0 + 4.0 + 4.0, abs=1e-4)
    jitted = jax.jit(ev.frechet_distance)(mu, s, mu + 2.0, s)
    assert float(jitted) == pytest.approx(24.0, abs=2e-3)
    with pytest.raises(ShapeError, match="cov2"):
        ev.frechet_distance(mu, s, mu, s[:5, :5])


def numpy_classifier_score(logits):
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    marginal = p.mean(0)
    kl = (p * (np.log(p) - np.log(marginal)[None, :])).sum(1)
    return float(np.exp(kl.mean()))


def test_classifier_score_equals_numpy():
    rng = np.random.default_rng(2)
    logits = (3.0 * rng.normal(size=(257, 10))).astype(np.float32)
    assert float(ev.classifier_score(logits)) == pytest.approx(numpy_classifier_score(logits),
                                                               rel=1e-5)
    assert float(jax.jit(ev.classifier_score)(logits)) == pytest.approx(
        numpy_classifier_score(logits), rel=1e-5)
    # the bounds: confident and balanced -> K; the same prediction for every image -> 1
    confident = 50.0 * np.tile(np.eye(10, dtype=np.float32), (7, 1))
    assert float(ev.classifier_score(confident)) == pytest.approx(10.0, rel=1e-4)
    same = np.tile(logits[:1], (50, 1))
    assert float(ev.classifier_score(same)) == pytest.approx(1.0, abs=1e-5)


def test_class_histogram_and_modes_equal_numpy():
    rng = np.random.default_rng(3)
    labels = rng.choice(10, size=500, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05, 0, 0, 0, 0])
    noise = 0.1 * rng.normal(size=(500, 10)).astype(np.float32)
    logits = np.eye(10, dtype=np.float32)[labels] + noise
    counts = np.asarray(ev.class_histogram(logits))
    np.testing.assert_array_equal(counts, np.bincount(logits.argmax(1), minlength=10))
    q = counts / counts.sum()
    summary = ev.mode_summary(counts, min_fraction=0.1)
    assert int(summary["modes_covered"]) == int((q >= 0.01).sum()) == 6
    nz = q[q > 0]
    assert float(summary["kl_to_uniform"]) == pytest.approx(float((nz * np.log(10 * nz)).sum()),
                                                             rel=1e-5)
    assert float(summary["largest_fraction"]) == pytest.approx(q.max())
    uniform = ev.mode_summary(np.full(10, 7))
    assert float(uniform["kl_to_uniform"]) == pytest.approx(0.0, abs=1e-6)
    collapsed = ev.mode_summary(np.eye(10, dtype=np.int32)[3] * 40)
    assert float(collapsed["kl_to_uniform"]) == pytest.approx(np.log(10), rel=1e-6)
    assert int(collapsed["modes_covered"]) == 1


def numpy_f6(params, x):
    """LeNet-5 (ReLU, max pooling, C1 padded by 2) up to F6, in float64 numpy."""
    p = {k: {n: np.asarray(a, np.float64) for n, a in v.items()} for k, v in params.items()}
    h = numpy_nets.max_pool2(numpy_nets.relu(numpy_nets.conv2d(np.asarray(x, np.float64),
                                                               p["c1"]["w"], p["c1"]["b"], (2, 2))))
    h = numpy_nets.max_pool2(numpy_nets.relu(numpy_nets.conv2d(h, p["c3"]["w"], p["c3"]["b"],
                                                               (0, 0))))
    h = numpy_nets.relu(h.reshape(len(h), -1) @ p["c5"]["w"] + p["c5"]["b"])
    return numpy_nets.relu(h @ p["f6"]["w"] + p["f6"]["b"])


def test_feature_net_trains_caches_and_gives_f6(tmp_path):
    """A LeNet-5 on the digits (8x8, each pixel repeated 2x2 to 16x16 so that C3 fits) through fit:
    better than chance, read back from its run directory instead of retrained, and its batched
    features and logits equal a numpy forward pass (a batch size that does not divide N, so the
    padding is exercised)."""
    def upsample(rows):
        return np.kron(rows.reshape(-1, 8, 8), np.ones((2, 2), np.float32))[..., None]

    x, y = data.load("digits", "train")
    xt, yt = data.load("digits", "test")
    train, test = (upsample(x), y), (upsample(xt), yt)
    net = ev.train_feature_net(train, test, epochs=3, batch_size=32, run_dir=str(tmp_path / "net"))
    assert net.test_accuracy > 0.5
    again = ev.train_feature_net(train, test, epochs=3, batch_size=32,
                                 run_dir=str(tmp_path / "net"))
    for a, b in zip(jax.tree.leaves(net.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    feats, logits = ev.feature_net_outputs(net, test[0].reshape(360, 256), batch_size=100)  # rows
    assert feats.shape == (360, 84) and logits.shape == (360, 10)
    np.testing.assert_allclose(np.asarray(feats), numpy_f6(net.params, test[0]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logits),
                               numpy_nets.lenet5_relu_max(net.params, test[0]),
                               rtol=1e-4, atol=1e-4)
    assert numpy_nets.accuracy(np.asarray(logits), yt) == pytest.approx(net.test_accuracy, abs=1e-6)

    # calibration: real train vs real test, the numbers recomputed from the features
    numbers, (mu, cov) = ev.real_data_reference(net, train[0], test[0])
    train_feats, train_logits = ev.feature_net_outputs(net, train[0])
    assert numbers["frechet_distance"] == pytest.approx(
        scipy_frechet(np.asarray(train_feats), np.asarray(feats), singular=True), rel=1e-4)
    assert numbers["classifier_score"] == pytest.approx(
        numpy_classifier_score(np.asarray(train_logits)), rel=1e-4)
    assert numbers["class_counts"] == np.bincount(np.asarray(train_logits).argmax(1),
                                                  minlength=10).tolist()
    assert 1.0 <= numbers["test_classifier_score"] <= 10.0
    np.testing.assert_allclose(np.asarray(mu), np.asarray(feats).mean(0), rtol=1e-4, atol=1e-5)
