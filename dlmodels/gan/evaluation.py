"""Evaluating generative models by their samples: the Parzen-window log-likelihood, the Frechet
distance and the classifier score on the features of a LeNet-5, class histograms (mode collapse).

All estimators are pure JAX, batched (no Python loop over examples) and jit-able; they take
images with pixels in [0, 1] (the scaling of Goodfellow et al. 2014's Parzen numbers).

- :func:`parzen_log_density`, :func:`select_bandwidth`, :func:`parzen_log_likelihood`: the
  Gaussian Parzen-window estimate of Breuleux, Bengio & Vincent (2011) as used in Goodfellow et al.
  (2014, section 5, Table 1): fit a Gaussian kernel density to generated samples, choose the
  bandwidth on a validation set, report the mean log-density of the test set and its standard
  error. A poor measure of sample quality in high dimension (Theis, van den Oord & Bethge 2016,
  "A note on the evaluation of generative models"): kept for comparison with the published table.
- :func:`gaussian_moments`, :func:`frechet_distance`: the Frechet distance between Gaussians
  fitted to two feature sets (Heusel et al. 2017, the FID with a LeNet in place of Inception).
- :func:`classifier_score`: the Inception score of Salimans et al. (2016) with a LeNet classifier.
- :func:`class_histogram`, :func:`mode_summary`: which classes the generated images fall in.
- :func:`train_feature_net`, :func:`feature_net_outputs`: the LeNet-5 (``dlmodels.cnn.lenet5``)
  trained by ``dlmodels.train.fit`` whose F6 layer (84 units) gives the features.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels.validation import ShapeError, check_positive

#: the bandwidth grid of Goodfellow et al.'s Parzen code (parzen_ll.py: numpy.logspace(-1, 0, 10))
PAPER_SIGMAS = tuple(float(s) for s in np.logspace(-1.0, 0.0, 10))

_HIGHEST = jax.lax.Precision.HIGHEST


def _as_rows(x: Any, what: str) -> jax.Array:
    """``x [N, ...]`` as floating rows ``[N, d]``."""
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ShapeError(f"{what}: expected [N, ...] with N examples, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x.reshape(x.shape[0], -1)


# ---------------------------------------------------------------------------------------------
# Parzen-window log-likelihood

@functools.partial(jax.jit, static_argnames=("test_chunk", "sample_chunk"))
def _parzen(x, samples, sigmas, test_chunk, sample_chunk):
    n, d = x.shape
    m = samples.shape[0]
    tc, sc = min(test_chunk, n), min(sample_chunk, m)
    nt, ns = -(-n // tc), -(-m // sc)
    dtype = jnp.result_type(x.dtype, samples.dtype, sigmas.dtype)
    x = x.astype(dtype)
    samples = samples.astype(dtype)
    sigmas = sigmas.astype(dtype)
    x_chunks = jnp.pad(x, ((0, nt * tc - n), (0, 0))).reshape(nt, tc, d)          # (nt, tc, d)
    s_chunks = jnp.pad(samples, ((0, ns * sc - m), (0, 0))).reshape(ns, sc, d)    # (ns, sc, d)
    s_real = (jnp.arange(ns * sc) < m).reshape(ns, sc)                             # (ns, sc)
    s_sq = jnp.sum(s_chunks * s_chunks, axis=-1)                                   # (ns, sc)
    scale = 1.0 / (2.0 * sigmas * sigmas)                                          # (G,)
    g = sigmas.shape[0]

    def test_chunk_lse(xc):                                                        # (tc, d)
        x_sq = jnp.sum(xc * xc, axis=-1)                                           # (tc,)

        def add_samples(acc, chunk):                                               # acc (G, tc)
            s, s2, real = chunk
            cross = jnp.matmul(xc, s.T, precision=_HIGHEST)                        # (tc, sc)
            d2 = jnp.maximum(x_sq[:, None] + s2[None, :] - 2.0 * cross, 0.0)       # (tc, sc)
            logits = -d2[None, :, :] * scale[:, None, None]                        # (G, tc, sc)
            logits = jnp.where(real[None, None, :], logits, -jnp.inf)
            return jnp.logaddexp(acc, jax.nn.logsumexp(logits, axis=-1)), None

        acc, _ = jax.lax.scan(add_samples, jnp.full((g, tc), -jnp.inf, dtype),
                              (s_chunks, s_sq, s_real))
        return acc                                                                 # (G, tc)

    lse = jax.lax.map(test_chunk_lse, x_chunks)                                    # (nt, G, tc)
    lse = jnp.moveaxis(lse, 1, 0).reshape(g, nt * tc)[:, :n]                       # (G, n)
    log_norm = math.log(m) + 0.5 * d * jnp.log(2.0 * math.pi * sigmas * sigmas)   # (G,)
    return lse - log_norm[:, None]


def parzen_log_density(x, samples, sigmas, *, test_chunk: int = 500,
                       sample_chunk: int = 1000) -> jax.Array:
    """Log-density of each row of ``x`` under a Gaussian Parzen window on ``samples``, for every
    bandwidth in ``sigmas`` at once (the distances are computed once):

    ``log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log n - d/2 log(2 pi sigma^2)``

    (Breuleux, Bengio & Vincent 2011; Goodfellow et al. 2014, section 5). ``x [N, ...]`` and
    ``samples [n, ...]`` are flattened to ``d`` features; ``sigmas [G]`` (or a scalar) ->
    ``[G, N]`` (``[N]`` for a scalar). Memory is bounded by chunking: ``test_chunk`` rows of ``x``
    against ``sample_chunk`` samples at a time, ``G x test_chunk x sample_chunk`` numbers, with a
    running log-sum-exp over the sample chunks (``lax.scan``) inside a ``lax.map`` over the test
    chunks; ``||x - s||^2`` is expanded as ``||x||^2 + ||s||^2 - 2 x.s`` (one matmul per chunk).
    """
    x = _as_rows(x, "parzen_log_density: x")
    samples = _as_rows(samples, "parzen_log_density: samples")
    if x.shape[1] != samples.shape[1]:
        raise ShapeError(f"parzen_log_density: x has {x.shape[1]} features per row but samples "
                         f"have {samples.shape[1]}")
    check_positive("parzen_log_density: test_chunk", test_chunk)
    check_positive("parzen_log_density: sample_chunk", sample_chunk)
    sigmas = jnp.asarray(sigmas)
    if not jnp.issubdtype(sigmas.dtype, jnp.floating):
        sigmas = sigmas.astype(jnp.float32)
    if sigmas.ndim > 1:
        raise ShapeError(f"parzen_log_density: sigmas must be a scalar or [G], got {sigmas.shape}")
    if not isinstance(sigmas, jax.core.Tracer) and not bool(jnp.all(sigmas > 0)):
        raise ValueError(f"parzen_log_density: every sigma must be > 0, got {np.asarray(sigmas)}")
    out = _parzen(x, samples, jnp.atleast_1d(sigmas), int(test_chunk), int(sample_chunk))
    return out[0] if sigmas.ndim == 0 else out


def select_bandwidth(valid, samples, sigmas=PAPER_SIGMAS, **chunks) -> tuple[jax.Array, jax.Array]:
    """The bandwidth of ``sigmas [G]`` that maximises the mean Parzen log-density of ``valid``
    (the paper's cross-validation of sigma): ``(sigma, mean log-density per sigma [G])``."""
    per_sigma = jnp.mean(parzen_log_density(valid, samples, jnp.atleast_1d(jnp.asarray(sigmas)),
                                            **chunks), axis=1)
    return jnp.atleast_1d(jnp.asarray(sigmas))[jnp.argmax(per_sigma)], per_sigma


class ParzenResult(NamedTuple):
    """``mean`` log-likelihood of the test set (nats), its standard error ``se`` (std / sqrt(N)),
    the bandwidth ``sigma`` chosen on the validation set."""

    mean: jax.Array
    se: jax.Array
    sigma: jax.Array


def parzen_log_likelihood(test, samples, valid, *, sigmas=PAPER_SIGMAS, test_chunk: int = 500,
                          sample_chunk: int = 1000) -> ParzenResult:
    """Goodfellow et al. (2014)'s protocol: sigma chosen on ``valid`` over the grid ``sigmas``
    (:func:`select_bandwidth`), then the mean and standard error (``std / sqrt(N)``, as in their
    parzen_ll.py) of ``log p(x)`` over the ``test [N, ...]`` rows. Returns
    ``ParzenResult(mean, se, sigma)``. Their Table 1 (MNIST, 10,000 samples, [0, 1] pixels):
    GAN 225 +- 2, DBN 138 +- 2, stacked CAE 121 +- 1.6, deep GSN 214 +- 1.1."""
    chunks = {"test_chunk": test_chunk, "sample_chunk": sample_chunk}
    sigma, _ = select_bandwidth(valid, samples, sigmas, **chunks)
    ll = parzen_log_density(test, samples, sigma, **chunks)                        # (N,)
    return ParzenResult(jnp.mean(ll), jnp.std(ll) / math.sqrt(ll.shape[0]), sigma)


# ---------------------------------------------------------------------------------------------
# Frechet distance

def gaussian_moments(features) -> tuple[jax.Array, jax.Array]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased, ``N - 1``, as ``numpy.cov``) of
    ``features [N, D]``."""
    f = jnp.asarray(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ShapeError(f"gaussian_moments: expected features [N >= 2, D], got {f.shape}")
    mu = jnp.mean(f, axis=0)
    centred = f - mu[None, :]
    cov = jnp.matmul(centred.T, centred, precision=_HIGHEST) / (f.shape[0] - 1)
    return mu, cov


def _psd_sqrt(s):
    w, v = jnp.linalg.eigh(s)
    return jnp.matmul(v * jnp.sqrt(jnp.maximum(w, 0.0))[None, :], v.T, precision=_HIGHEST)


def frechet_distance(mu1, cov1, mu2, cov2) -> jax.Array:
    """Frechet (2-Wasserstein) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``
    (Heusel et al. 2017; Dowson & Landau 1982):

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``Tr (S1 S2)^(1/2)`` is computed stably as the sum of the square roots of the eigenvalues of
    the symmetric PSD matrix ``S1^(1/2) S2 S1^(1/2)`` (similar to ``S1 S2``), negative round-off
    eigenvalues clipped to 0, instead of a general matrix square root. ``mu [D]``, ``cov [D, D]``
    -> scalar. Runs in the inputs' precision. In float32 the square roots of near-zero
    eigenvalues (singular covariances: dead ReLU features) carry errors of order
    ``sqrt(eps ||S||)`` each, a few percent of a small distance: :func:`frechet_distance_features`
    and :func:`sample_metrics` therefore compute in float64 (``jax.enable_x64``)."""
    mu1, mu2, cov1, cov2 = map(jnp.asarray, (mu1, mu2, cov1, cov2))
    d = mu1.shape[-1] if mu1.ndim else 0
    for name, a, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)), ("cov1", cov1, (d, d)),
                           ("cov2", cov2, (d, d))):
        if a.shape != shape:
            raise ShapeError(f"frechet_distance: {name} must have shape {shape}, got {a.shape}")
    root1 = _psd_sqrt(0.5 * (cov1 + cov1.T))
    middle = jnp.matmul(jnp.matmul(root1, cov2, precision=_HIGHEST), root1, precision=_HIGHEST)
    eig = jnp.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(eig, 0.0)))
    diff = mu1 - mu2
    return jnp.dot(diff, diff) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * trace_sqrt


def moments64(features) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gaussian_moments` of ``features [N, D]`` computed in float64 (numpy arrays)."""
    with jax.enable_x64(True):
        return tuple(np.asarray(a) for a in gaussian_moments(np.asarray(features, np.float64)))


def frechet_distance64(mu1, cov1, mu2, cov2) -> float:
    """:func:`frechet_distance` computed in float64 (``jax.enable_x64``), as a Python float."""
    with jax.enable_x64(True):
        return float(frechet_distance(*(np.asarray(a, np.float64) for a in (mu1, cov1, mu2, cov2))))


def frechet_distance_features(features1, features2) -> float:
    """:func:`frechet_distance` of the Gaussians fitted (:func:`gaussian_moments`) to
    ``features1 [N1, D]`` and ``features2 [N2, D]``, in float64 (a Python float; not under jit)."""
    return frechet_distance64(*moments64(features1), *moments64(features2))


# ---------------------------------------------------------------------------------------------
# Classifier score and class histograms

def classifier_score(logits) -> jax.Array:
    """The Inception score of Salimans et al. (2016) with any classifier:

    ``exp(E_x KL(p(y|x) || p(y)))``, ``p(y) = E_x p(y|x)``,

    with ``p(y|x) = softmax(logits)``, ``logits [N, K]`` -> scalar in ``[1, K]`` (K: every class
    predicted with certainty, equally often; 1: the same distribution for every image)."""
    logits = jnp.asarray(logits)
    if logits.ndim != 2:
        raise ShapeError(f"classifier_score: expected logits [N, K], got {logits.shape}")
    log_p = jax.nn.log_softmax(logits, axis=-1)                                    # (N, K)
    p = jnp.exp(log_p)
    log_marginal = jnp.log(jnp.mean(p, axis=0))                                    # (K,)
    kl = jnp.sum(p * (log_p - log_marginal[None, :]), axis=-1)                     # (N,)
    return jnp.exp(jnp.mean(kl))


def class_histogram(logits) -> jax.Array:
    """Counts ``[K]`` of the classifier's decisions ``argmax_k logits [N, K]``."""
    logits = jnp.asarray(logits)
    if logits.ndim != 2:
        raise ShapeError(f"class_histogram: expected logits [N, K], got {logits.shape}")
    return jnp.bincount(jnp.argmax(logits, axis=-1), length=logits.shape[1])


def mode_summary(counts, *, min_fraction: float = 0.1) -> dict:
    """Mode collapse in a class histogram ``counts [K]``: ``modes_covered``, the number of classes
    holding at least ``min_fraction`` of their uniform share ``N / K``; ``kl_to_uniform``,
    ``KL(q || uniform) = sum_k q_k log(K q_k)`` with ``q = counts / N`` (0: uniform, ``log K``:
    one class); ``largest_fraction``, the most frequent class's share."""
    counts = jnp.asarray(counts)
    if counts.ndim != 1:
        raise ShapeError(f"mode_summary: expected counts [K], got {counts.shape}")
    k = counts.shape[0]
    q = counts.astype(jnp.float32) / jnp.sum(counts)
    kl = jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, k * q, 1.0)), 0.0))
    return {"modes_covered": jnp.sum(q >= min_fraction / k), "kl_to_uniform": kl,
            "largest_fraction": jnp.max(q)}


# ---------------------------------------------------------------------------------------------
# The feature network: a LeNet-5 trained by dlmodels

class FeatureNet(NamedTuple):
    """A trained classifier whose penultimate layer gives features: ``apply(params, x, *,
    return_features=True) -> (logits [N, K], {"f6": [N, 84], ...})`` (``dlmodels.cnn.lenet5``),
    ``params``, its ``test_accuracy`` on the data it was checked on."""

    apply: Callable
    params: Any
    test_accuracy: float


def train_feature_net(train, test, *, epochs: int = 2, batch_size: int = 64,
                      learning_rate: float = 2e-3, seed: int = 0,
                      run_dir: str | os.PathLike | None = None) -> FeatureNet:
    """A LeNet-5 (``lenet5(K, activation="relu", pool="max")``, as experiments/cnn_mnist.py's
    default) trained through ``dlmodels.train.fit`` on ``train = (x [N, H, W, 1] in [0, 1],
    y [N])``: softmax cross-entropy, Adam with a cosine-decayed rate, ``epochs`` epochs (a short
    fit: the features need a good classifier, not the best one). ``test = (x, y)`` gives its
    accuracy. With ``run_dir`` the fit checkpoints there and resumes, so a finished net is read
    back instead of retrained."""
    from dlmodels import backend
    from dlmodels.cnn import lenet5
    from dlmodels.train import TrainConfig, fit, make_evaluate
    from dlmodels.train.objectives import classifier

    x, y = (np.asarray(a) for a in train)
    if x.ndim != 4:
        raise ShapeError(f"train_feature_net: expected images [N, H, W, C], got {x.shape}")
    n_classes = int(max(np.max(y), np.max(np.asarray(test[1])))) + 1
    model = lenet5(n_classes, input_shape=x.shape[1:], activation="relu", pool="max")
    loss_fn, eval_fn = classifier(model.apply)
    steps = epochs * (len(y) // batch_size)
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1)))
    result = fit(model.init, loss_fn, optimizer, (x, y),
                 TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, progress=False,
                             steps_per_call=backend.conv_steps_per_call(100),
                             checkpoint_every=max(steps // 4, 1) if run_dir else 0),
                 run_dir=run_dir, resume=run_dir is not None)
    test = tuple(jnp.asarray(a) for a in test)
    accuracy = float(make_evaluate(eval_fn, 1000)(result.state.params, test)["accuracy"])
    return FeatureNet(model.apply, result.state.params, accuracy)


def feature_net_outputs(net: FeatureNet, images, *, batch_size: int = 1000,
                        layer: str = "f6") -> tuple[jax.Array, jax.Array]:
    """``(features [N, 84], logits [N, K])`` of ``images [N, H, W, C]`` (or ``[N, H*W]`` rows of
    a square single-channel image) in [0, 1], by batches of ``batch_size`` in one ``lax.map``;
    ``layer``: which of lenet5's layers gives the features (F6, the penultimate, by default)."""
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 2:
        side = int(round(math.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ShapeError(f"feature_net_outputs: rows of {images.shape[1]} pixels are not a "
                             "square image; pass [N, H, W, C]")
        images = images.reshape(-1, side, side, 1)
    return _outputs(net.apply, net.params, images, min(batch_size, images.shape[0]), layer)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _outputs(apply, params, images, batch_size, layer):
    n = images.shape[0]
    nb = -(-n // batch_size)
    batches = jnp.pad(images, ((0, nb * batch_size - n),) + ((0, 0),) * (images.ndim - 1))
    batches = batches.reshape(nb, batch_size, *images.shape[1:])

    def one(xb):
        logits, feats = apply(params, xb, return_features=True)
        return feats[layer].reshape(batch_size, -1), logits

    feats, logits = jax.lax.map(one, batches)
    return (feats.reshape(nb * batch_size, -1)[:n], logits.reshape(nb * batch_size, -1)[:n])


def sample_metrics(net: FeatureNet, images, reference_moments, *,
                   min_fraction: float = 0.1) -> dict:
    """The feature-based numbers of ``images [N, H, W, 1]`` in [0, 1]: ``frechet_distance`` to the
    Gaussian ``reference_moments = (mu, cov)`` (e.g. :func:`moments64` of the real test set's
    features; the distance is computed in float64),
    ``classifier_score``, ``class_counts`` (a list of K ints) and :func:`mode_summary`'s keys,
    as Python numbers."""
    feats, logits = feature_net_outputs(net, images)
    counts = class_histogram(logits)
    out = {"frechet_distance": frechet_distance64(*moments64(feats), *reference_moments),
           "classifier_score": float(classifier_score(logits)),
           "class_counts": [int(c) for c in counts]}
    out.update({k: float(v) for k, v in mode_summary(counts, min_fraction=min_fraction).items()})
    out["modes_covered"] = int(out["modes_covered"])
    return out


def real_data_reference(net: FeatureNet, train_images, test_images) -> tuple[dict, tuple]:
    """Calibration on real data: :func:`sample_metrics` of ``train_images`` (as if they were
    generated) against the moments of ``test_images``' features -- the Frechet distance a perfect
    generator would reach with this many images (the floor) and its classifier score (the
    ceiling) -- plus ``test_classifier_score``. Returns ``(numbers, test_moments)``."""
    test_feats, test_logits = feature_net_outputs(net, test_images)
    moments = moments64(test_feats)
    numbers = sample_metrics(net, train_images, moments)
    numbers["test_classifier_score"] = float(classifier_score(test_logits))
    return numbers, moments
