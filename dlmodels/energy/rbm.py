"""Restricted Boltzmann machines: energy, free energy, Gibbs sampling, CD-k / PCD, exact and AIS log Z.

Bernoulli-Bernoulli RBM (Smolensky 1986; Hinton 2002), visible v in {0,1}^n_v, hidden h in {0,1}^n_h:

    E(v, h) = -v^T W h - b^T v - c^T h,        p(v, h) = exp(-E(v, h)) / Z
    F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j)
    p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j),   p(v_i = 1 | h) = sigmoid(b_i + W_i: h)

Gaussian-Bernoulli RBM (Hinton & Salakhutdinov 2006; Hinton's practical guide, 2010), real v with
fixed standard deviations sigma_i:

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - sum_ij (v_i / sigma_i) W_ij h_j
    F(v)    = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v / sigma)^T W_:j)
    p(v_i | h) = N(b_i + sigma_i W_i: h, sigma_i^2)

Bernoulli-Gaussian RBM (linear hidden units with unit-variance Gaussian noise; the code layer of
Hinton & Salakhutdinov's 2006 deep autoencoder), binary v, real h:

    E(v, h) = sum_j h_j^2 / 2 - v^T W h - b^T v - c^T h
    F(v)    = -b^T v - sum_j [(c_j + v^T W_:j)^2 / 2 + log(2 pi) / 2]
    p(h_j | v) = N(c_j + v^T W_:j, 1)

``rbm(n_visible, n_hidden, visible=..., hidden=...)`` builds the model: a :class:`RBM` NamedTuple
whose functions are bound to those unit types (fixed when it is built, never inferred from the
params). Params: ``{"w": [n_visible, n_hidden], "b_visible": [n_visible], "b_hidden":
[n_hidden]}``, plus ``"sigma": [n_visible]`` for a Gaussian visible layer (held fixed: its
gradient is zero). Batches of visible vectors are ``[B, n_visible]``. Every function that draws
random numbers takes the key first: ``cd_k(key, params, v, k)``, ``pcd(key, params, v, chains,
k)``, ``sample_hidden(key, params, v)``; a wrong input shape raises
:class:`dlmodels.validation.ShapeError`.

Learning follows the log-likelihood gradient, -d log p(v)/d theta = dF(v)/d theta - E_model[dF/d theta],
with the model expectation from k steps of block Gibbs sampling started at the data (contrastive
divergence, CD-k; Hinton 2002) or from persistent chains (PCD; Tieleman 2008). ``cd_k`` and ``pcd``
return that estimate as a gradient pytree of the *negative* log-likelihood, so it goes straight into
an optax update (which minimises); :func:`estimator` wraps them as a
:class:`dlmodels.train.GradientEstimator` (PCD's chains carried in the train state) so RBMs train
through ``dlmodels.train.fit`` like every other model (:func:`train`: Hinton's practical-guide
optimizer, per-epoch reconstruction error and pseudo-log-likelihood).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import validation
from dlmodels.train import FitResult, GradientEstimator, TrainConfig, fit

Params = dict
UNITS = ("bernoulli", "gaussian")


class _Units(NamedTuple):
    """The unit types an RBM was built with (static: they choose the formulas)."""

    gaussian_visible: bool
    gaussian_hidden: bool


# --------------------------------------------------------------------------------------------
# shapes and small helpers
# --------------------------------------------------------------------------------------------

def _check(params: Params, v: jax.Array, name: str = "v", *, batch: bool = False) -> None:
    n_visible = params["w"].shape[0]
    if batch:
        validation.check_shape(v, (None, n_visible), f"rbm: {name} [B, n_visible] (a batch)")
    elif np.ndim(v) < 1 or np.shape(v)[-1] != n_visible:
        raise validation.ShapeError(f"rbm: {name} [..., n_visible]: expected shape "
                                    f"[..., {n_visible}], got {tuple(np.shape(v))}")


def _row(b: jax.Array, x: jax.Array) -> jax.Array:
    """``b [n]`` shaped to broadcast against ``x [..., n]`` (rank promotion made explicit)."""
    return jnp.reshape(b, (1,) * (x.ndim - 1) + b.shape)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k1, k2, x0, x1):
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), on uint32 words ``x0, x1`` of any shape with
    the key words ``k1, k2``: the hash ``jax.random`` uses, written out round by round.

    jax lowers its threefry on the CPU as a 5-iteration while loop, which materialises the words
    and cannot fuse with what consumes them; written out, XLA fuses the hash, the comparison with
    p and the conversion into one loop over the samples."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _THREEFRY_ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_key_words(key: jax.Array):
    """The two uint32 words of a threefry key (typed, or raw ``uint32[2]`` under jax's default
    threefry implementation), or None for any other key."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return None
        key = jax.random.key_data(key)
    elif (key.dtype != jnp.uint32 or key.shape != (2,)
          or jax.config.jax_default_prng_impl != "threefry2x32"):
        return None
    return key[0], key[1]


def _bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
    """Samples in {0, 1} with P(1) = p: ``(jax.random.uniform(key, p.shape, p.dtype) < p)`` as
    ``p.dtype``, the same values bit for bit.

    For float32 p and a threefry key (jax's default, with ``jax_threefry_partitionable``, also the
    default) it is computed in one fusion: element i's 32 random bits are ``x0 ^ x1`` of
    threefry2x32(key, (0, i)) (what ``jax.random.bits`` gives), uniform's float is
    u = (bits >> 9) 2^-23, and u < p  <=>  (bits >> 9) < p 2^23 (both sides exact in float32).
    Any other key, dtype or setting takes ``jax.random.uniform`` itself."""
    words = _threefry_key_words(key)
    if (words is None or p.dtype != jnp.float32 or p.size >= 2 ** 32
            or not jax.config.jax_threefry_partitionable):
        return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)
    counts = jax.lax.iota(jnp.uint32, p.size).reshape(p.shape)
    x0, x1 = _threefry2x32(*words, jnp.zeros_like(counts), counts)
    mantissa = ((x0 ^ x1) >> np.uint32(9)).astype(jnp.float32)
    return (mantissa < p * np.float32(2 ** 23)).astype(p.dtype)


def base_rate_bias(v: jax.Array, *, eps: float = 1e-3) -> jax.Array:
    """Visible biases of the base-rate model, log p_i / (1 - p_i) with p_i the mean of ``v [B, n_v]``
    clipped to [eps, 1 - eps] (Salakhutdinov & Murray 2008, section 4.2)."""
    p = jnp.clip(jnp.mean(jnp.asarray(v, jnp.float32), axis=0), eps, 1.0 - eps)
    return jnp.log(p) - jnp.log1p(-p)


# --------------------------------------------------------------------------------------------
# the model's functions, written once for the three unit combinations
# --------------------------------------------------------------------------------------------

def _init(units: _Units, n_visible: int, n_hidden: int, key: jax.Array, *, std: float = 0.01,
          b_visible: jax.Array | None = None, dtype=jnp.float32) -> Params:
    """Weights ~ N(0, std^2), hidden biases 0; visible biases 0 or ``b_visible`` (e.g.
    ``base_rate_bias(data)``, log p_i / (1 - p_i), as Hinton's practical guide recommends).
    A Gaussian visible layer adds ``sigma = 1`` (standardise the data first)."""
    validation.check_nonnegative("rbm init: std", std)
    params = {
        "w": std * jax.random.normal(key, (n_visible, n_hidden), dtype),
        "b_visible": (jnp.zeros((n_visible,), dtype) if b_visible is None
                      else jnp.asarray(b_visible, dtype).reshape(n_visible)),
        "b_hidden": jnp.zeros((n_hidden,), dtype),
    }
    if units.gaussian_visible:
        params["sigma"] = jnp.ones((n_visible,), dtype)
    return params


def _scaled(units: _Units, params: Params, v: jax.Array) -> jax.Array:
    return v / _row(params["sigma"], v) if units.gaussian_visible else v


def _quadratic(params: Params, v: jax.Array) -> jax.Array:
    """sum_i (v_i - b_i)^2 / (2 sigma_i^2): ``[..., n_v] -> [...]``."""
    return jnp.sum((v - _row(params["b_visible"], v)) ** 2 / _row(2 * params["sigma"] ** 2, v), -1)


def _hidden_input(units: _Units, params: Params, v: jax.Array) -> jax.Array:
    """c + v^T W (Gaussian visible: c + (v / sigma)^T W): ``[..., n_v] -> [..., n_h]``."""
    _check(params, v)
    x = _scaled(units, params, v) @ params["w"]
    return x + _row(params["b_hidden"], x)


def _hidden_probs(units: _Units, params: Params, v: jax.Array) -> jax.Array:
    """E[h | v]: p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j), or c_j + v^T W_:j for Gaussian hidden
    units: ``[..., n_v] -> [..., n_h]``."""
    a = _hidden_input(units, params, v)
    return a if units.gaussian_hidden else jax.nn.sigmoid(a)


def _visible_mean(units: _Units, params: Params, h: jax.Array) -> jax.Array:
    """E[v | h]: sigmoid(b + W h) (Bernoulli) or b + sigma W h (Gaussian): ``[..., n_h] -> [..., n_v]``."""
    n_hidden = params["w"].shape[1]
    if np.ndim(h) < 1 or np.shape(h)[-1] != n_hidden:
        raise validation.ShapeError(f"rbm: h [..., n_hidden]: expected shape [..., {n_hidden}], "
                                    f"got {tuple(np.shape(h))}")
    x = h @ params["w"].T
    if units.gaussian_visible:
        return _row(params["b_visible"], x) + _row(params["sigma"], x) * x
    return jax.nn.sigmoid(x + _row(params["b_visible"], x))


def _sample_hidden(units: _Units, key: jax.Array, params: Params, v: jax.Array):
    """``(h, p)``: h ~ p(h | v) in {0, 1} and its probabilities p (Gaussian hidden units: h ~
    N(p, 1) and the mean p), both ``[..., n_h]``."""
    p = _hidden_probs(units, params, v)
    if units.gaussian_hidden:
        return p + jax.random.normal(key, p.shape, p.dtype), p
    return _bernoulli(key, p), p


def _sample_visible(units: _Units, key: jax.Array, params: Params, h: jax.Array):
    """``(v, mean)``: v ~ p(v | h) and E[v | h], both ``[..., n_v]``."""
    mean = _visible_mean(units, params, h)
    if units.gaussian_visible:
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        return mean + _row(params["sigma"], mean) * noise, mean
    return _bernoulli(key, mean), mean


def _energy(units: _Units, params: Params, v: jax.Array, h: jax.Array) -> jax.Array:
    """E(v, h) for ``v [..., n_v]``, ``h [..., n_h]`` -> ``[...]`` (formulas in the module docstring)."""
    _check(params, v)
    x = _scaled(units, params, v)
    interaction = jnp.sum((x @ params["w"]) * h, axis=-1)
    hidden = h @ params["b_hidden"]
    if units.gaussian_hidden:
        hidden = hidden - 0.5 * jnp.sum(h ** 2, axis=-1)
    if units.gaussian_visible:
        return _quadratic(params, v) - hidden - interaction
    return -(v @ params["b_visible"]) - hidden - interaction


def _free_energy(units: _Units, params: Params, v: jax.Array) -> jax.Array:
    """F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j) (Gaussian visible:
    the quadratic term instead of -b^T v; Gaussian hidden: -sum_j [a_j^2 / 2 + log(2 pi) / 2]);
    ``[..., n_v] -> [...]``. softplus is evaluated stably, so large inputs do not overflow."""
    a = _hidden_input(units, params, v)
    if units.gaussian_hidden:
        hidden = jnp.sum(0.5 * a ** 2, axis=-1) + 0.5 * np.log(2 * np.pi) * a.shape[-1]
    else:
        hidden = jnp.sum(jax.nn.softplus(a), axis=-1)
    if units.gaussian_visible:
        return _quadratic(params, v) - hidden
    return -(v @ params["b_visible"]) - hidden


def _gibbs_step(units: _Units, key: jax.Array, params: Params, v: jax.Array) -> jax.Array:
    """One step of block Gibbs sampling v -> h ~ p(h|v) -> v' ~ p(v|h); ``[B, n_v] -> [B, n_v]``."""
    k_h, k_v = jax.random.split(key)
    h, _ = _sample_hidden(units, k_h, params, v)
    return _sample_visible(units, k_v, params, h)[0]


def _gibbs_chain(units: _Units, key: jax.Array, params: Params, v: jax.Array,
                 n_steps: int) -> jax.Array:
    """``n_steps`` block Gibbs steps from ``v [B, n_v]`` (a ``lax.scan``), the final sample."""
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    v, _ = jax.lax.scan(lambda v, k: (_gibbs_step(units, k, params, v), None), v,
                        jax.random.split(key, n_steps))
    return v


def _grads(units: _Units, params: Params, v_data, p_data, v_model, p_model) -> Params:
    """-(<v h>_data - <v h>_model) and the bias terms, averaged over each batch."""
    x_data, x_model = _scaled(units, params, v_data), _scaled(units, params, v_model)
    n_data, n_model = v_data.shape[0], v_model.shape[0]
    grads = {
        "w": ((x_model.T @ p_model - x_data.T @ p_data) / n_data if n_data == n_model
              else x_model.T @ (p_model / n_model) - x_data.T @ (p_data / n_data)),
        "b_hidden": jnp.mean(p_model, 0) - jnp.mean(p_data, 0),
        "b_visible": jnp.mean(v_model, 0) - jnp.mean(v_data, 0),
    }
    if units.gaussian_visible:
        grads["b_visible"] = grads["b_visible"] / params["sigma"] ** 2
        grads["sigma"] = jnp.zeros_like(params["sigma"])
    return grads


class ChainStats(NamedTuple):
    """What a CD step saw: the negative-phase visible sample ``[B, n_v]`` and the data's mean
    squared reconstruction error (one Gibbs step's visible mean vs the data, summed over units)."""

    v_model: jax.Array
    reconstruction_error: jax.Array


def _negative_phase(units, key, params, h0, k, sample_visible_units):
    """k Gibbs half-step pairs from hidden state ``h0``: returns (v_k, p(h | v_k), E[v_1 | h0])."""
    def visible(key, h):
        v, mean = _sample_visible(units, key, params, h)
        return (v if sample_visible_units else mean), mean

    def body(v, key):
        k_h, k_v = jax.random.split(key)
        h, _ = _sample_hidden(units, k_h, params, v)
        return visible(k_v, h)[0], None

    k_1, k_rest = jax.random.split(key)
    v, mean_1 = visible(k_1, h0)
    if k > 1:
        v, _ = jax.lax.scan(body, v, jax.random.split(k_rest, k - 1))
    return v, _hidden_probs(units, params, v), mean_1


def _cd_k(units: _Units, key: jax.Array, params: Params, v: jax.Array, k: int = 1, *,
          sample_visible_units: bool = True, return_stats: bool = False):
    """Contrastive divergence CD-k (Hinton 2002): the gradient pytree of the negative
    log-likelihood estimated as

        dW = -(<v h^T>_0 - <v h^T>_k),  db = -(<v>_0 - <v>_k),  dc = -(<h>_0 - <h>_k)

    where <.>_0 uses the data ``v [B, n_v]`` with p(h | v) and <.>_k the visible sample after k
    steps of block Gibbs sampling started at the data, with its p(h | v_k) (hidden probabilities,
    not samples, in the statistics; Hinton's practical guide, section 3). Gaussian visible units
    use v / sigma in <v h^T> and divide db by sigma^2. ``sample_visible_units=False`` uses visible
    means instead of samples during the chain (mean-field reconstructions). With
    ``return_stats=True`` returns ``(grads, ChainStats)``.
    """
    validation.check_positive("cd_k: k", k)
    _check(params, v, batch=True)
    k_0, k_chain = jax.random.split(key)
    h0, p0 = _sample_hidden(units, k_0, params, v)
    v_k, p_k, mean_1 = _negative_phase(units, k_chain, params, h0, k, sample_visible_units)
    grads = _grads(units, params, v, p0, v_k, p_k)
    if not return_stats:
        return grads
    return grads, ChainStats(v_k, jnp.mean(jnp.sum((v - mean_1) ** 2, -1)))


def _pcd(units: _Units, key: jax.Array, params: Params, v: jax.Array, chains: jax.Array,
         k: int = 1, *, sample_visible_units: bool = True, return_stats: bool = False):
    """Persistent contrastive divergence (Tieleman 2008): like ``cd_k`` but the negative phase
    continues persistent chains ``chains [n_chains, n_v]`` (visible states) by k Gibbs steps
    instead of restarting at the data. Returns ``(grads, new_chains)``; start the chains at a
    batch of data (or samples) and feed ``new_chains`` back at the next update. With
    ``return_stats=True`` returns ``(grads, new_chains, ChainStats)`` whose reconstruction error
    is the data's mean-field one, sum_i (v_i - E[v_i | h = p(h | v)])^2 (one more matmul, reusing
    the positive phase's p(h | v))."""
    validation.check_positive("pcd: k", k)
    _check(params, v, batch=True)
    _check(params, chains, "chains", batch=True)
    k_c, k_chain = jax.random.split(key)
    p0 = _hidden_probs(units, params, v)
    h_c, _ = _sample_hidden(units, k_c, params, chains)
    v_k, p_k, _ = _negative_phase(units, k_chain, params, h_c, k, sample_visible_units)
    grads = _grads(units, params, v, p0, v_k, p_k)
    if not return_stats:
        return grads, v_k
    mean = _visible_mean(units, params, p0)
    return grads, v_k, ChainStats(v_k, jnp.mean(jnp.sum((v - mean) ** 2, -1)))


def _reconstruction_errors(units: _Units, key: jax.Array | None, params: Params,
                           v: jax.Array) -> jax.Array:
    """Per example sum_i (v_i - v'_i)^2, v' = E[v | h] with h = p(h | v) (``key=None``) or h
    sampled from it: ``[B, n_v] -> [B]``."""
    if key is None:
        h = _hidden_probs(units, params, v)
    else:
        h, _ = _sample_hidden(units, key, params, v)
    return jnp.sum((v - _visible_mean(units, params, h)) ** 2, -1)


def _reconstruction_error(units: _Units, key: jax.Array | None, params: Params,
                          v: jax.Array) -> jax.Array:
    """Mean over the batch of sum_i (v_i - v'_i)^2, v' = E[v | h] with h sampled from p(h | v)
    with ``key``, or h = p(h | v) itself (mean field) with ``key=None``. A monitor only: it is not
    the quantity CD optimises."""
    return jnp.mean(_reconstruction_errors(units, key, params, v))


def _require_binary(units: _Units, what: str) -> None:
    if units.gaussian_visible or units.gaussian_hidden:
        raise ValueError(f"{what} is for Bernoulli-Bernoulli RBMs (binary visible and hidden units)")


def _pseudo_log_likelihoods(units: _Units, key: jax.Array | None, params: Params,
                            v: jax.Array) -> jax.Array:
    """Per example PL(v) (see ``pseudo_log_likelihood``): ``[B, n_v] -> [B]``."""
    _require_binary(units, "pseudo_log_likelihood")
    _check(params, v, batch=True)
    n_visible = v.shape[-1]
    a = _hidden_input(units, params, v)                                    # (B, H)
    f = _free_energy(units, params, v)                                     # (B,)
    sign = 1.0 - 2.0 * v                                                   # +1 where bit 0 -> 1
    if key is not None:
        i = jax.random.randint(key, (v.shape[0],), 0, n_visible)
        s = jnp.take_along_axis(sign, i[:, None], 1)                       # (B, 1)
        a_flip = a + s * params["w"][i]                                    # (B, H)
        f_flip = (f + s[:, 0] * -params["b_visible"][i]
                  - jnp.sum(jax.nn.softplus(a_flip) - jax.nn.softplus(a), -1))
        return n_visible * jax.nn.log_sigmoid(f_flip - f)

    def one(a_b, sign_b, f_b):                                             # all flips at once
        a_flip = a_b[None, :] + sign_b[:, None] * params["w"]              # (V, H)
        f_flip = (f_b - sign_b * params["b_visible"]
                  - jnp.sum(jax.nn.softplus(a_flip) - jax.nn.softplus(a_b)[None, :], -1))
        return jnp.sum(jax.nn.log_sigmoid(f_flip - f_b))
    return jax.lax.map(lambda args: one(*args), (a, sign, f))


def _pseudo_log_likelihood(units: _Units, key: jax.Array | None, params: Params,
                           v: jax.Array) -> jax.Array:
    """Mean over the batch of the pseudo-log-likelihood of binary ``v [B, n_v]`` (Besag 1975),

        PL(v) = sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v^(i)) - F(v)),

    v^(i) being v with bit i flipped. Exact (n_v free energies per example) with ``key=None``;
    with a key, the unbiased one-bit estimate n_v log sigmoid(F(v^(i)) - F(v)) for a random i per
    example (what scikit-learn's ``BernoulliRBM.score_samples`` returns)."""
    return jnp.mean(_pseudo_log_likelihoods(units, key, params, v))


def _all_binary(n: int) -> np.ndarray:
    return ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float32)


def _log_partition_exact(units: _Units, params: Params, *, max_units: int = 25) -> jax.Array:
    """log Z by exact enumeration over the smaller layer (Bernoulli RBMs):

        log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_i: h)]   (or the same over v)

    2^min(n_v, n_h) terms; refuses layers above ``max_units`` units, where AIS is the tool."""
    _require_binary(units, "log_partition_exact")
    n_visible, n_hidden = params["w"].shape
    if min(n_visible, n_hidden) > max_units:
        raise ValueError(f"enumerating 2^{min(n_visible, n_hidden)} states is too many "
                         f"(max_units={max_units}); use ais_log_partition")
    if n_hidden <= n_visible:
        h = jnp.asarray(_all_binary(n_hidden), params["w"].dtype)
        terms = h @ params["b_hidden"] + jnp.sum(
            jax.nn.softplus(h @ params["w"].T + params["b_visible"][None, :]), -1)
    else:
        v = jnp.asarray(_all_binary(n_visible), params["w"].dtype)
        terms = -_free_energy(units, params, v)
    return jax.nn.logsumexp(terms)


def _log_likelihood(units: _Units, params: Params, v: jax.Array, log_z: jax.Array) -> jax.Array:
    """Mean log p(v) = -F(v) - log Z over a batch ``v [B, n_v]`` (nats per example)."""
    return jnp.mean(-_free_energy(units, params, v)) - log_z


def ais_schedule(n_betas: int) -> np.ndarray:
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 with Salakhutdinov & Murray's (2008)
    proportions: 500 uniform steps on [0, 0.5], 4,000 on [0.5, 0.9], 10,000 on [0.9, 1]
    (of 14,500), scaled to ``n_betas`` intermediate distributions."""
    if n_betas < 3:
        raise ValueError(f"n_betas must be >= 3, got {n_betas}")
    n1 = max(1, round(n_betas * 500 / 14500))
    n2 = max(1, round(n_betas * 4000 / 14500))
    n3 = max(1, n_betas - n1 - n2)
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3 + 1)]).astype(np.float32)


class AISResult(NamedTuple):
    """``log_z``: the AIS estimate of log Z; ``spread``: its standard error in nats by the delta
    method, std(w) / (sqrt(M) mean(w)) for the M importance weights w."""

    log_z: jax.Array
    spread: jax.Array


def _ais_log_weights(units: _Units, key: jax.Array, params: Params, n_betas: int, n_chains: int,
                     *, base_visible_bias: jax.Array | None = None,
                     betas: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Annealed importance sampling (Neal 2001) from a base-rate RBM A (W = 0, c = 0, visible biases
    ``base_visible_bias``, default 0) to the RBM B = ``params`` (Salakhutdinov & Murray 2008):

        p*_beta(v) = exp((1 - beta) b_A^T v + beta b^T v) prod_j (1 + exp(beta (c_j + v^T W_:j)))

    so p*_0 is A (up to its hidden units, which only add n_h log 2) and p*_1 is B. Each chain draws
    v_1 ~ A, then for k = 1..K multiplies w by p*_{beta_k}(v_k) / p*_{beta_{k-1}}(v_k) and moves v
    by one Gibbs transition that leaves p*_{beta_k} invariant. Returns ``(log_weights [n_chains],
    log_z_base)`` with log Z_A = sum_i softplus(b_A_i) + n_h log 2; then
    log Z_B ~ log Z_A + log mean(w)."""
    _require_binary(units, "ais_log_partition")
    validation.check_positive("ais: n_chains", n_chains)
    n_visible, n_hidden = params["w"].shape
    dtype = params["w"].dtype
    b_a = jnp.zeros((n_visible,), dtype) if base_visible_bias is None else jnp.asarray(
        base_visible_bias, dtype).reshape(n_visible)
    betas = jnp.asarray(ais_schedule(n_betas) if betas is None else betas, dtype)
    w, b, c = params["w"], params["b_visible"], params["b_hidden"]

    def log_ratio(v, beta, beta_prev):                     # log p*_beta(v) - log p*_beta_prev(v)
        a = v @ w + c[None, :]                             # differences per unit, then sums:
        return ((beta - beta_prev) * (v @ (b - b_a))       # no cancellation of large totals
                + jnp.sum(jax.nn.softplus(beta * a) - jax.nn.softplus(beta_prev * a), -1))

    k_0, k_run = jax.random.split(key)
    v = _bernoulli(k_0, jnp.broadcast_to(jax.nn.sigmoid(b_a), (n_chains, n_visible)))

    def body(carry, xs):
        v, log_w = carry
        (beta_prev, beta), key = xs
        log_w = log_w + log_ratio(v, beta, beta_prev)
        k_h, k_v = jax.random.split(key)
        h = _bernoulli(k_h, jax.nn.sigmoid(beta * (v @ w + c[None, :])))
        v = _bernoulli(k_v, jax.nn.sigmoid((1 - beta) * b_a[None, :] + beta * (h @ w.T + b[None, :])))
        return (v, log_w), None

    keys = jax.random.split(k_run, betas.shape[0] - 1)
    (_, log_w), _ = jax.lax.scan(body, (v, jnp.zeros((n_chains,), dtype)),
                                 ((betas[:-1], betas[1:]), keys))
    log_z_base = jnp.sum(jax.nn.softplus(b_a)) + n_hidden * jnp.log(2.0).astype(dtype)
    return log_w, log_z_base


def _ais_log_partition(units: _Units, key: jax.Array, params: Params, n_betas: int = 14500,
                       n_chains: int = 100, *,
                       base_visible_bias: jax.Array | None = None) -> AISResult:
    """AIS estimate of log Z (see ``ais_log_weights``) and its spread.
    ``base_visible_bias``: fit it to the training data with ``base_rate_bias(v)``; the closer the
    base model is to the target, the smaller the variance."""
    log_w, log_z_base = _ais_log_weights(units, key, params, n_betas, n_chains,
                                         base_visible_bias=base_visible_bias)
    log_mean = jax.nn.logsumexp(log_w) - jnp.log(log_w.shape[0])
    ratio = jnp.exp(log_w - log_mean)                                # w / mean(w)
    spread = jnp.std(ratio) / jnp.sqrt(log_w.shape[0])
    return AISResult(log_z_base + log_mean, spread)


def _sample(units: _Units, key: jax.Array, params: Params, n_samples: int, n_steps: int, *,
            v0: jax.Array | None = None) -> jax.Array:
    """``n_samples`` visible means after ``n_steps`` block Gibbs steps from ``v0`` (default: random
    bits at the visible base rates, or N(b, sigma^2) for Gaussian visible units):
    ``[n_samples, n_v]``, for image grids."""
    n_visible = params["w"].shape[0]
    k_0, k_chain, k_h = jax.random.split(key, 3)
    if v0 is None:
        if units.gaussian_visible:
            v0 = params["b_visible"][None, :] + params["sigma"][None, :] * jax.random.normal(
                k_0, (n_samples, n_visible), params["w"].dtype)
        else:
            v0 = _bernoulli(k_0, jnp.broadcast_to(jax.nn.sigmoid(params["b_visible"]),
                                                  (n_samples, n_visible)))
    v = _gibbs_chain(units, k_chain, params, v0, n_steps)
    h, _ = _sample_hidden(units, k_h, params, v)
    return _visible_mean(units, params, h)


# --------------------------------------------------------------------------------------------
# the factory
# --------------------------------------------------------------------------------------------

class RBM(NamedTuple):
    """An RBM with its unit types fixed; every function is bound to them (see :func:`rbm`).

    ``init(key, *, std=0.01, b_visible=None, dtype=float32)``; ``apply(params, v, *, key=None,
    train=False)`` = ``hidden_probs(params, v)`` (the recognition pass, so an RBM is a Model);
    ``energy(params, v, h)``, ``free_energy(params, v)``, ``hidden_input``, ``hidden_probs``,
    ``visible_mean(params, h)``; key first: ``sample_hidden(key, params, v)``,
    ``sample_visible(key, params, h)``, ``gibbs_step(key, params, v)``, ``gibbs_chain(key, params,
    v, n_steps)``, ``cd_k(key, params, v, k)``, ``pcd(key, params, v, chains, k)``,
    ``reconstruction_error(key, params, v)`` (and the per-example ``reconstruction_errors``),
    ``pseudo_log_likelihood(key, params, v)`` (``pseudo_log_likelihoods``; ``key=None``: exact /
    mean field), ``sample(key, params, n_samples, n_steps, *, v0=None)``; Bernoulli-Bernoulli only:
    ``log_partition_exact(params)``, ``log_likelihood(params, v, log_z)``,
    ``ais_log_weights(key, params, n_betas, n_chains)``, ``ais_log_partition(key, params, ...)``.
    """

    n_visible: int
    n_hidden: int
    visible: str
    hidden: str
    init: Callable
    apply: Callable
    energy: Callable
    free_energy: Callable
    hidden_input: Callable
    hidden_probs: Callable
    visible_mean: Callable
    sample_hidden: Callable
    sample_visible: Callable
    gibbs_step: Callable
    gibbs_chain: Callable
    cd_k: Callable
    pcd: Callable
    reconstruction_error: Callable
    reconstruction_errors: Callable
    pseudo_log_likelihood: Callable
    pseudo_log_likelihoods: Callable
    log_partition_exact: Callable
    log_likelihood: Callable
    ais_log_weights: Callable
    ais_log_partition: Callable
    sample: Callable

    @property
    def binary(self) -> bool:
        """Bernoulli visible and hidden units (pseudo-likelihood, exact log Z and AIS apply)."""
        return self.visible == self.hidden == "bernoulli"


def rbm(n_visible: int, n_hidden: int, *, visible: str = "bernoulli",
        hidden: str = "bernoulli") -> RBM:
    """An RBM ``n_visible``-``n_hidden`` whose unit types are fixed here: ``visible="gaussian"``
    for standardised real data (unit sigma, held fixed), ``hidden="gaussian"`` for linear hidden
    units with unit-variance Gaussian noise (the code layer of Hinton & Salakhutdinov 2006).
    Formulas in the module docstring; the functions in :class:`RBM`."""
    validation.check_positive("rbm: n_visible", n_visible)
    validation.check_positive("rbm: n_hidden", n_hidden)
    validation.check_choice("rbm: visible", visible, UNITS)
    validation.check_choice("rbm: hidden", hidden, UNITS)
    if visible == hidden == "gaussian":
        raise ValueError("a Gaussian-Gaussian RBM has no normalisable joint in general; "
                         "make one of the layers binary")
    units = _Units(visible == "gaussian", hidden == "gaussian")
    n_visible, n_hidden = int(n_visible), int(n_hidden)

    def bind(fn):
        bound = functools.partial(fn, units)
        functools.update_wrapper(bound, fn)
        return bound

    def init(key: jax.Array, *, std: float = 0.01, b_visible: jax.Array | None = None,
             dtype=jnp.float32) -> Params:
        return _init(units, n_visible, n_hidden, key, std=std, b_visible=b_visible, dtype=dtype)

    init.__doc__ = _init.__doc__

    def apply(params: Params, v: jax.Array, *, key=None, train: bool = False) -> jax.Array:
        """p(h | v) (E[h | v] for Gaussian hidden units): ``[..., n_v] -> [..., n_h]``."""
        return _hidden_probs(units, params, v)

    return RBM(n_visible, n_hidden, visible, hidden, init, apply, bind(_energy),
               bind(_free_energy), bind(_hidden_input), bind(_hidden_probs), bind(_visible_mean),
               bind(_sample_hidden), bind(_sample_visible), bind(_gibbs_step), bind(_gibbs_chain),
               bind(_cd_k), bind(_pcd), bind(_reconstruction_error),
               bind(_reconstruction_errors), bind(_pseudo_log_likelihood),
               bind(_pseudo_log_likelihoods), bind(_log_partition_exact), bind(_log_likelihood),
               bind(_ais_log_weights), bind(_ais_log_partition), bind(_sample))


def hidden_probabilities(model: RBM, params: Params, data, *, batch_size: int = 10000) -> np.ndarray:
    """p(h = 1 | v) (E[h | v]) for every row of ``data [N, n_v]``, in batches: the input of the
    next layer in greedy layer-wise training. Returns ``[N, n_h]`` as a numpy array."""
    fn = jax.jit(model.hidden_probs)
    data = np.asarray(data)
    dtype = params["w"].dtype
    return np.concatenate([np.asarray(fn(params, jnp.asarray(data[i:i + batch_size], dtype)))
                           for i in range(0, data.shape[0], batch_size)])


# --------------------------------------------------------------------------------------------
# training through dlmodels.train.fit
# --------------------------------------------------------------------------------------------

def estimator(model: RBM, *, method: str = "cd", k: int = 1, n_chains: int = 100,
              sample_visible_units: bool = True) -> GradientEstimator:
    """CD-k (``method="cd"``) or PCD-k (``"pcd"``) as a :class:`dlmodels.train.GradientEstimator`
    on batches ``v [B, n_v]``: ``estimate(key, params, chains, v) -> (grads, chains, loss, ())``
    with the gradients of ``cd_k`` / ``pcd`` (the negative log-likelihood's, for an optax update)
    and ``loss`` the batch's squared reconstruction error: for CD-k that of the chain's first step,
    ``sum_i (v_i - E[v_i | h_0])^2`` with ``h_0`` sampled from p(h | v), which the step computes
    anyway; for PCD, whose chains do not start at the data, the mean-field one (one more matmul per
    update, reusing the positive phase's p(h | v)). PCD's ``n_chains`` persistent chains
    start at training examples drawn at random (without replacement when there are enough) and
    are carried in ``TrainState.model_state``; CD carries nothing."""
    validation.check_choice("rbm estimator: method", method, ("cd", "pcd"))
    validation.check_positive("rbm estimator: k", k)
    validation.check_positive("rbm estimator: n_chains", n_chains)

    def init(key, params, data):
        if method == "cd":
            return ()
        n = data.shape[0]
        rows = jax.random.choice(key, n, (n_chains,), replace=n_chains > n)
        return data[rows].astype(params["w"].dtype)

    def estimate(key, params, chains, v):
        if method == "cd":
            grads, stats = model.cd_k(key, params, v, k, sample_visible_units=sample_visible_units,
                                      return_stats=True)
            return grads, chains, stats.reconstruction_error, ()
        grads, chains, stats = model.pcd(key, params, v, chains, k,
                                         sample_visible_units=sample_visible_units,
                                         return_stats=True)
        return grads, chains, stats.reconstruction_error, ()

    return GradientEstimator(init, estimate)


def practical_optimizer(learning_rate: float | optax.Schedule, *, initial_momentum: float = 0.5,
                        momentum: float = 0.9, switch_step: int = 0,
                        weight_decay: float = 2e-4) -> optax.GradientTransformation:
    """Hinton's practical guide (2010, sections 6-10): SGD with momentum ``initial_momentum`` for
    the first ``switch_step`` updates, then ``momentum``, and L2 weight decay on the weights only:

        g <- g + lambda W  (w only; biases not decayed),   u <- mu_t u - eps_t g,   theta <- theta + u

    ``learning_rate``: a number or an optax schedule of the step. The momentum is an injected
    hyper-parameter, so it is part of the checkpointed optimizer state."""
    validation.check_in_range("practical_optimizer: initial_momentum", initial_momentum, 0.0, 1.0,
                              closed_high=False)
    validation.check_in_range("practical_optimizer: momentum", momentum, 0.0, 1.0,
                              closed_high=False)
    validation.check_nonnegative("practical_optimizer: weight_decay", weight_decay)

    def momentum_at(count):
        return jnp.where(count < switch_step, initial_momentum, momentum)

    def decay_mask(params):
        return {name: name == "w" for name in params}

    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=momentum_at),
    )


def monitor(model: RBM) -> Callable[[Params, jax.Array], dict]:
    """``eval_fn(params, v) -> {"reconstruction_error": [B], "pseudo_log_likelihood": [B]}`` for
    ``fit``: the per-example mean-field reconstruction error, and for binary RBMs the exact
    pseudo-log-likelihood."""

    def eval_fn(params, v):
        out = {"reconstruction_error": model.reconstruction_errors(None, params, v)}
        if model.binary:
            out["pseudo_log_likelihood"] = model.pseudo_log_likelihoods(None, params, v)
        return out

    return eval_fn


@dataclasses.dataclass(frozen=True)
class RBMTrainConfig:
    """How :func:`train` trains an RBM. ``method``: ``"cd"`` (CD-k from the data) or ``"pcd"``
    (``n_chains`` persistent chains). Hinton's practical-guide optimizer: ``momentum`` after
    ``momentum_switch_epochs`` epochs at ``initial_momentum``, weight decay on W; with
    ``learning_rate_decay`` the rate falls linearly to 0 over training. ``monitor_size`` examples
    of the training data (or of ``monitor_data``) are scored after each epoch.
    ``seed`` draws the initial weights and the chains' keys (``data_seed``, default ``seed``, the
    order of the examples); ``checkpoint_every`` and ``steps_per_call`` go to ``TrainConfig``."""

    epochs: int = 10
    batch_size: int = 100
    method: str = "cd"
    k: int = 1
    learning_rate: float = 0.05
    learning_rate_decay: bool = False
    initial_momentum: float = 0.5
    momentum: float = 0.9
    momentum_switch_epochs: int = 5
    weight_decay: float = 2e-4
    n_chains: int = 100
    sample_visible_units: bool = True
    seed: int = 0
    data_seed: int | None = None
    monitor_size: int = 500
    steps_per_call: int = 100
    checkpoint_every: int = 0

    def __post_init__(self):
        validation.check_choice("RBMTrainConfig.method", self.method, ("cd", "pcd"))
        for name in ("epochs", "batch_size", "k", "n_chains", "learning_rate", "monitor_size",
                     "steps_per_call"):
            validation.check_positive(f"RBMTrainConfig.{name}", getattr(self, name))
        for name in ("initial_momentum", "momentum"):
            validation.check_in_range(f"RBMTrainConfig.{name}", getattr(self, name), 0.0, 1.0,
                                      closed_high=False)
        for name in ("weight_decay", "momentum_switch_epochs", "checkpoint_every"):
            validation.check_nonnegative(f"RBMTrainConfig.{name}", getattr(self, name))

    def train_config(self) -> TrainConfig:
        """The trainer's config for these epochs, batches, seeds and checkpoints."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                           data_seed=self.seed if self.data_seed is None else self.data_seed,
                           steps_per_call=self.steps_per_call,
                           eval_batch_size=min(1000, self.monitor_size),
                           checkpoint_every=self.checkpoint_every, progress=False)

    def optimizer(self, steps_per_epoch: int) -> optax.GradientTransformation:
        """:func:`practical_optimizer` with this config's rates, momenta and decay."""
        total = self.epochs * steps_per_epoch
        lr = (optax.linear_schedule(self.learning_rate, 0.0, total) if self.learning_rate_decay
              else self.learning_rate)
        return practical_optimizer(lr, initial_momentum=self.initial_momentum,
                                   momentum=self.momentum,
                                   switch_step=self.momentum_switch_epochs * steps_per_epoch,
                                   weight_decay=self.weight_decay)


def train(model: RBM, data, config: RBMTrainConfig, *,
          init_fn: Callable[[jax.Array], Params] | None = None, monitor_data=None,
          optimizer: optax.GradientTransformation | None = None,
          run_dir: str | None = None, resume: bool = False, seeds=None,
          hyperparams: dict | None = None, record: dict | None = None) -> FitResult:
    """Train ``model`` on ``data [N, n_v]`` (in [0, 1] for Bernoulli visible units, standardised
    reals for Gaussian ones) by CD-k or PCD through ``dlmodels.train.fit``: checkpoints and exact
    resume in ``run_dir``, the non-finite guard, vmapped ``seeds`` / ``hyperparams`` (e.g.
    ``{"learning_rate": [...]}``) come with it.

    ``init_fn(key) -> params``: default ``model.init(key)`` with the base-rate visible biases of
    ``data`` for Bernoulli visible units. ``optimizer``: default ``config.optimizer(...)``.
    History entries per epoch: ``train_loss`` (the batches' mean-field reconstruction error),
    ``eval_reconstruction_error`` and, for binary RBMs, ``eval_pseudo_log_likelihood`` on
    ``monitor_data`` (default the first ``monitor_size`` training rows). Returns ``fit``'s result.
    """
    dtype = jnp.float32
    x = np.asarray(data, np.float32)
    validation.check_shape(x, (None, model.n_visible), "rbm train: data [N, n_visible]")
    validation.check_finite("rbm train: data", x)
    if model.visible == "bernoulli" and not ((x >= 0) & (x <= 1)).all():
        raise ValueError("a Bernoulli RBM needs data in [0, 1]")
    if x.shape[0] < config.batch_size:
        raise ValueError(f"{x.shape[0]} examples are fewer than one batch ({config.batch_size})")
    if init_fn is None:
        bias = base_rate_bias(x) if model.visible == "bernoulli" else None
        init_fn = functools.partial(_init_with_bias, model, bias, dtype)
    steps_per_epoch = x.shape[0] // config.batch_size
    optimizer = optimizer or config.optimizer(steps_per_epoch)
    monitor_x = x if monitor_data is None else np.asarray(monitor_data, np.float32)
    return fit(init_fn, estimator(model, method=config.method, k=config.k,
                                  n_chains=config.n_chains,
                                  sample_visible_units=config.sample_visible_units),
               optimizer, x, config.train_config(), eval_fn=monitor(model),
               eval_data=monitor_x[:config.monitor_size], run_dir=run_dir, resume=resume,
               seeds=seeds, hyperparams=hyperparams, record=record)


def _init_with_bias(model: RBM, bias, dtype, key):
    return model.init(key, b_visible=bias, dtype=dtype)
