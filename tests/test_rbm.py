"""RBMs against independent float64 references: brute-force enumeration of every (v, h) state,
exact Gibbs transition matrices, closed forms, and jax.grad of free energies written out here.

Sections: energies and free energies; exact log Z; AIS; CD-k and PCD gradients against the exact
Markov chain; autodiff cross-check; pseudo-log-likelihood and reconstruction error; conditionals and
sampling; training; shapes, jit, vmap and input checks.
"""

import dataclasses
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.energy import rbm
from dlmodels.train import Checkpointer, TrainConfig, fit
from dlmodels.validation import ShapeError


# --------------------------------------------------------------------------------------------
# float64 numpy references
# --------------------------------------------------------------------------------------------

def binary_states(n):
    """All 2^n binary vectors, ``[2^n, n]`` float64 (itertools: independent of the library's)."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def M(params, hidden="bernoulli"):
    """The RBM the test's params were made for (a Gaussian visible layer carries sigma)."""
    return rbm.rbm(*params["w"].shape, visible="gaussian" if "sigma" in params else "bernoulli",
                   hidden=hidden)


BB = rbm.rbm(4, 3)   # the slow-mixing Bernoulli RBM below


def make_params(seed, n_visible, n_hidden, *, std=1.0, gaussian=False):
    """``init`` with non-trivial biases (and sigma != 1) written into the dict."""
    params = rbm.rbm(n_visible, n_hidden, visible="gaussian" if gaussian else "bernoulli").init(
        jax.random.PRNGKey(seed), std=std)
    rng = np.random.default_rng(seed)
    params["b_visible"] = jnp.asarray(rng.normal(0.0, 1.0, n_visible), jnp.float32)
    params["b_hidden"] = jnp.asarray(rng.normal(0.0, 1.0, n_hidden), jnp.float32)
    if gaussian:
        params["sigma"] = jnp.asarray(rng.uniform(0.5, 2.0, n_visible), jnp.float32)
    return params


def f64(params):
    return {name: np.asarray(x, np.float64) for name, x in params.items()}


def energy_loop(p, v, h):
    """E(v, h) for one v and one h, term by term."""
    w, b, c = p["w"], p["b_visible"], p["b_hidden"]
    n_v, n_h = w.shape
    hidden = sum(c[j] * h[j] for j in range(n_h))
    if "sigma" in p:
        s = p["sigma"]
        quadratic = sum((v[i] - b[i]) ** 2 / (2 * s[i] ** 2) for i in range(n_v))
        interaction = sum(v[i] / s[i] * w[i, j] * h[j] for i in range(n_v) for j in range(n_h))
        return quadratic - hidden - interaction
    interaction = sum(v[i] * w[i, j] * h[j] for i in range(n_v) for j in range(n_h))
    return -interaction - sum(b[i] * v[i] for i in range(n_v)) - hidden


def energy_table(p, v, h):
    """E for every pair: ``v [A, n_v]``, ``h [C, n_h]`` -> ``[A, C]`` (the same formulas)."""
    w, b, c = p["w"], p["b_visible"], p["b_hidden"]
    if "sigma" in p:
        s = p["sigma"]
        quadratic = np.sum((v - b) ** 2 / (2 * s ** 2), axis=1)
        return quadratic[:, None] - (h @ c)[None, :] - (v / s) @ w @ h.T
    return -(v @ w @ h.T) - (v @ b)[:, None] - (h @ c)[None, :]


def free_energy_brute(p, v):
    """-log sum_h exp(-E(v, h)) over all 2^n_h hidden states."""
    neg = -energy_table(p, v, binary_states(p["w"].shape[1]))
    return -np.logaddexp.reduce(neg, axis=1)


def log_z_brute(p):
    """log sum_{v, h} exp(-E(v, h)) over all visible and hidden states."""
    n_v, n_h = p["w"].shape
    return np.logaddexp.reduce(-energy_table(p, binary_states(n_v), binary_states(n_h)), axis=None)


def free_energy_np(p, v):
    """Closed-form Bernoulli free energy -b^T v - sum_j log(1 + exp(c_j + v^T W_:j)), float64."""
    return -v @ p["b_visible"] - np.sum(np.logaddexp(0.0, v @ p["w"] + p["b_hidden"]), axis=-1)


def model_distribution(p):
    """(all visible states [S, n_v], p(v) [S]) of a Bernoulli RBM by enumeration."""
    states = binary_states(p["w"].shape[0])
    neg_f = -free_energy_brute(p, states)
    return states, np.exp(neg_f - np.logaddexp.reduce(neg_f))


def gibbs_transition(p):
    """T[v, v'] = sum_h p(h | v) p(v' | h) over all visible states, and the states."""
    n_v, n_h = p["w"].shape
    vs, hs = binary_states(n_v), binary_states(n_h)
    ph = sigmoid(vs @ p["w"] + p["b_hidden"])                                   # (S_v, n_h)
    p_h_given_v = np.prod(np.where(hs[None] == 1, ph[:, None], 1 - ph[:, None]), -1)
    pv = sigmoid(hs @ p["w"].T + p["b_visible"])                                # (S_h, n_v)
    p_v_given_h = np.prod(np.where(vs[None] == 1, pv[:, None], 1 - pv[:, None]), -1)
    t = p_h_given_v @ p_v_given_h                                               # (S_v, S_v)
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-12)
    return vs, t


def sufficient_stats(p, vs):
    """Per visible state: v p(h|v)^T, p(h|v), v (the statistics in the gradient)."""
    ph = sigmoid(vs @ p["w"] + p["b_hidden"])
    return {"w": vs[:, :, None] * ph[:, None, :], "b_hidden": ph, "b_visible": vs}


def expected_gradient(stats, data_weights, model_weights):
    """-(E_data[stat] - E_model[stat]) and the standard deviation of one model-phase draw."""
    grads, stds = {}, {}
    for name, s in stats.items():
        mean_model = np.tensordot(model_weights, s, axes=1)
        grads[name] = -(np.tensordot(data_weights, s, axes=1) - mean_model)
        stds[name] = np.sqrt(np.maximum(np.tensordot(model_weights, s ** 2, axes=1)
                                        - mean_model ** 2, 0.0))
    return grads, stds


def assert_within_standard_errors(lib, ref, stds, n, z=5.0, atol=2e-4):
    for name in ref:
        err = np.abs(np.asarray(lib[name], np.float64) - ref[name])
        bound = z * stds[name] / np.sqrt(n) + atol
        assert np.all(err <= bound), (name, err.max(), (err - bound).max())


def slow_mixing_params(a=2.0):
    """4 visible, 3 hidden: two hidden units pull the visible layer to all-on or all-off, so block
    Gibbs mixes slowly (second eigenvalue of T about 0.8) and CD-1 is strongly biased."""
    rng = np.random.default_rng(0)
    w = np.array([[a, -a, 0.5], [a, -a, -0.5], [a, -a, 0.3], [a, -a, -0.2]])
    w = w + rng.normal(0.0, 0.3, (4, 3))
    b = rng.normal(0.0, 0.3, 4)
    c = np.array([-2 * a, 2 * a, 0.0]) + rng.normal(0.0, 0.3, 3)
    return {"w": jnp.asarray(w, jnp.float32), "b_visible": jnp.asarray(b, jnp.float32),
            "b_hidden": jnp.asarray(c, jnp.float32)}


def binary_data(seed, n, n_visible):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, (n, n_visible)), jnp.float32)


# --------------------------------------------------------------------------------------------
# 1-2. energy and free energy
# --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_energy_matches_term_by_term_formula(gaussian):
    params = make_params(1, 5, 4, gaussian=gaussian)
    rng = np.random.default_rng(2)
    v = rng.normal(0.0, 1.5, (6, 5)) if gaussian else rng.integers(0, 2, (6, 5)).astype(float)
    h = rng.integers(0, 2, (6, 4)).astype(float)
    got = M(params).energy(params, jnp.asarray(v, jnp.float32), jnp.asarray(h, jnp.float32))
    expected = [energy_loop(f64(params), v[n], h[n]) for n in range(6)]
    assert got.shape == (6,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("std", [0.5, 30.0])
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_free_energy_matches_enumeration_over_hidden_states(gaussian, std):
    params = make_params(3, 5, 6, std=std, gaussian=gaussian)
    rng = np.random.default_rng(4)
    v = rng.normal(0.0, 1.5, (8, 5)) if gaussian else binary_states(5)[rng.permutation(32)[:8]]
    got = np.asarray(M(params).free_energy(params, jnp.asarray(v, jnp.float32)))
    expected = free_energy_brute(f64(params), v)
    assert got.shape == (8,) and np.all(np.isfinite(got))
    if std == 30.0:  # exp(-E) overflows float32 (above e^88.7) here: the library must not
        assert np.max(np.abs(expected)) > 90
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-4)


def test_free_energy_zero_weights_closed_form():
    params = rbm.rbm(3, 2).init(jax.random.PRNGKey(0), std=0.0)
    v = jnp.asarray([[1.0, 0.0, 1.0]])
    # W = 0, biases 0: F(v) = -n_h log 2 for every v
    np.testing.assert_allclose(M(params).free_energy(params, v), [-2 * np.log(2.0)], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# 3. exact log Z
# --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("n_visible, n_hidden", [(4, 3), (5, 5), (3, 6)])
def test_log_partition_exact_matches_double_enumeration(n_visible, n_hidden):
    params = make_params(n_visible * 10 + n_hidden, n_visible, n_hidden, std=1.5)
    np.testing.assert_allclose(M(params).log_partition_exact(params), log_z_brute(f64(params)),
                               rtol=1e-6, atol=1e-5)


def test_log_partition_exact_refusals():
    with pytest.raises(ValueError, match=r"2\^6 states is too many.*ais_log_partition"):
        BB.log_partition_exact(make_params(0, 8, 6), max_units=5)
    with pytest.raises(ValueError, match="2\\^26"):
        BB.log_partition_exact(make_params(0, 26, 30))
    with pytest.raises(ValueError, match="Bernoulli-Bernoulli"):
        rbm.rbm(3, 2, visible="gaussian").log_partition_exact(make_params(0, 3, 2, gaussian=True))


def test_log_likelihood_normalises():
    params = make_params(5, 4, 3, std=1.0)
    states, probs = model_distribution(f64(params))
    log_z = M(params).log_partition_exact(params)
    log_p = jax.vmap(lambda s: BB.log_likelihood(params, s[None], log_z))(
        jnp.asarray(states, jnp.float32))
    np.testing.assert_allclose(np.exp(log_p), probs, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# 4. annealed importance sampling
# --------------------------------------------------------------------------------------------

AIS = jax.jit(rbm.rbm(20, 12).ais_log_partition, static_argnames=("n_betas", "n_chains"))


def log_z_over_hidden(p):
    """log Z = logsumexp_h [c^T h + sum_i log(1 + exp(b_i + W_i: h))], float64."""
    hs = binary_states(p["w"].shape[1])
    terms = hs @ p["b_hidden"] + np.sum(np.logaddexp(0.0, hs @ p["w"].T + p["b_visible"]), 1)
    return np.logaddexp.reduce(terms)


@pytest.mark.parametrize("base", ["uniform", "base_rate"])
def test_ais_log_partition_within_tenth_of_a_nat(base):
    # 2000 betas x 200 chains: |error| < 0.03 nats on the 12 (seed, base) cases checked
    params = make_params(7, 20, 12, std=0.8)
    exact = log_z_over_hidden(f64(params))
    base_bias = None
    if base == "base_rate":   # data with each unit on at its rate sigmoid(b_i): a closer base model
        rng = np.random.default_rng(8)
        rates = sigmoid(f64(params)["b_visible"])
        base_bias = rbm.base_rate_bias((rng.random((300, 20)) < rates).astype(np.float32))
    result = AIS(jax.random.PRNGKey(3), params, n_betas=2000, n_chains=200,
                 base_visible_bias=base_bias)
    assert abs(float(result.log_z) - exact) < 0.1, (float(result.log_z), exact)
    assert np.isfinite(float(result.spread)) and 0.0 < float(result.spread) < 0.1


def test_ais_exact_when_weights_are_zero():
    # W = 0 and base biases = b: every importance weight is prod_j (1 + e^{c_j}) / 2, exactly
    params = make_params(2, 20, 12)   # the shapes and static arguments above: no new compile
    params["w"] = jnp.zeros_like(params["w"])
    p = f64(params)
    exact = np.sum(np.logaddexp(0.0, p["b_visible"])) + np.sum(np.logaddexp(0.0, p["b_hidden"]))
    result = AIS(jax.random.PRNGKey(0), params, n_betas=2000, n_chains=200,
                 base_visible_bias=params["b_visible"])
    np.testing.assert_allclose(result.log_z, exact, rtol=1e-5)
    assert float(result.spread) < 1e-5


@pytest.mark.parametrize("n_betas", [3, 4, 10, 100, 2000, 14500])
def test_ais_schedule(n_betas):
    betas = rbm.ais_schedule(n_betas)
    assert betas[0] == 0.0 and betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)
    assert len(betas) == n_betas + 1
    if n_betas >= 100:  # Salakhutdinov & Murray's proportions: 10000 / 14500 of steps above 0.9
        np.testing.assert_allclose(np.mean(betas[1:] > 0.9), 10000 / 14500, atol=0.02)


def test_ais_refusals():
    with pytest.raises(ValueError, match="n_betas must be >= 3"):
        rbm.ais_schedule(2)
    with pytest.raises(ValueError, match="n_chains must be finite and > 0"):
        BB.ais_log_weights(jax.random.PRNGKey(0), make_params(0, 4, 3), 10, 0)
    with pytest.raises(ValueError, match="Bernoulli-Bernoulli"):
        rbm.rbm(4, 3, visible="gaussian").ais_log_partition(
            jax.random.PRNGKey(0), make_params(0, 4, 3, gaussian=True), 10, 4)


def test_base_rate_bias_closed_form():
    data = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1], [0, 0, 1]], np.float32)
    p = np.clip(data.mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(rbm.base_rate_bias(data), np.log(p / (1 - p)), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# 5-6. CD-k and PCD against the exact Gibbs chain
# --------------------------------------------------------------------------------------------

CD_START = 15  # v0 = all ones, one of the two modes


def test_exact_cd_k_expectation_converges_to_likelihood_gradient():
    """Pure numpy: the expected CD-k gradient -(s(v0) - sum_v' T^k[v0, v'] s(v')) tends to the
    negative log-likelihood gradient -(s(v0) - E_p[s(v)]) as k grows (T is ergodic)."""
    p = f64(slow_mixing_params())
    vs, t = gibbs_transition(p)
    _, probs = model_distribution(p)
    np.testing.assert_allclose(probs @ t, probs, atol=1e-12)   # p(v) is stationary
    stats = sufficient_stats(p, vs)
    data = np.eye(len(vs))[CD_START]
    exact, _ = expected_gradient(stats, data, probs)
    distances = []
    for k in [1, 2, 5, 10, 20, 50, 200]:
        cd, _ = expected_gradient(stats, data, np.linalg.matrix_power(t, k)[CD_START])
        distances.append(max(np.abs(cd[name] - exact[name]).max() for name in exact))
    assert distances[0] > 0.3                         # CD-1 is visibly biased here
    assert np.all(np.diff(distances) < 0), distances
    assert distances[-1] < 1e-6


@pytest.mark.parametrize("k", [1, 5])
def test_cd_k_batch_mean_matches_exact_expected_cd_gradient(k):
    params = slow_mixing_params()
    p = f64(params)
    vs, t = gibbs_transition(p)
    stats = sufficient_stats(p, vs)
    data = np.eye(len(vs))[CD_START]
    reached = np.linalg.matrix_power(t, k)[CD_START]
    expected, stds = expected_gradient(stats, data, reached)
    n = 20000
    v0 = jnp.asarray(np.tile(vs[CD_START], (n, 1)), jnp.float32)
    grads = jax.jit(BB.cd_k, static_argnums=3)(jax.random.PRNGKey(k), params, v0, k)
    assert_within_standard_errors(grads, expected, stds, n)
    # and the estimate is not the likelihood gradient: CD's bias is resolved at this sample size
    _, probs = model_distribution(p)
    exact, _ = expected_gradient(stats, data, probs)
    assert np.abs(np.asarray(grads["w"]) - exact["w"]).max() > 0.1


@pytest.mark.parametrize("k", [1, 3])
def test_pcd_from_model_samples_is_unbiased_for_likelihood_gradient(k):
    params = slow_mixing_params()
    p = f64(params)
    vs, probs = model_distribution(p)
    stats = sufficient_stats(p, vs)
    data_idx = np.array([15, 0, 0, 5, 9])
    data_weights = np.bincount(data_idx, minlength=len(vs)) / len(data_idx)
    expected, stds = expected_gradient(stats, data_weights, probs)
    n = 20000
    chains = vs[np.random.default_rng(k).choice(len(vs), size=n, p=probs)]
    grads, new_chains = jax.jit(BB.pcd, static_argnums=4)(
        jax.random.PRNGKey(10 + k), params, jnp.asarray(vs[data_idx], jnp.float32),
        jnp.asarray(chains, jnp.float32), k)
    assert_within_standard_errors(grads, expected, stds, n)
    assert new_chains.shape == (n, 4) and new_chains.dtype == jnp.float32
    assert set(np.unique(np.asarray(new_chains))) <= {0.0, 1.0}
    assert not np.array_equal(np.asarray(new_chains), chains)     # the chains moved
    # the new chains are still distributed as p(v) (stationarity of the Gibbs kernel)
    idx = np.asarray(new_chains) @ (2.0 ** np.arange(3, -1, -1))
    freq = np.bincount(idx.astype(int), minlength=16) / n
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n) + 1e-4)


def test_cd_k_and_pcd_reject_k_below_one():
    params, v = make_params(0, 4, 3), binary_data(0, 5, 4)
    with pytest.raises(ValueError, match="k must be finite and > 0, got 0"):
        BB.cd_k(jax.random.PRNGKey(0), params, v, 0)
    with pytest.raises(ValueError, match="k must be finite and > 0, got 0"):
        BB.pcd(jax.random.PRNGKey(0), params, v, v, 0)


# --------------------------------------------------------------------------------------------
# 7. autodiff cross-check
# --------------------------------------------------------------------------------------------

def reference_free_energy(params, v):
    """F(v [B, n_v]) -> [B] from the module docstring's formulas, broadcasting written out."""
    w, b, c = params["w"], params["b_visible"], params["b_hidden"]
    if "sigma" in params:
        s = params["sigma"][None, :]
        visible = jnp.sum((v - b[None, :]) ** 2 / (2 * s ** 2), axis=1)
        x = v / s
    else:
        visible = -jnp.sum(v * b[None, :], axis=1)
        x = v
    return visible - jnp.sum(jnp.logaddexp(0.0, x @ w + c[None, :]), axis=1)


@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("gaussian, sample_visible_units", [
    (False, True), (True, True), (False, False)], ids=["bernoulli", "gaussian", "mean-field"])
def test_cd_gradient_equals_autodiff_of_free_energy_difference(gaussian, sample_visible_units):
    params = make_params(11, 6, 5, std=0.7, gaussian=gaussian)
    rng = np.random.default_rng(12)
    v = rng.normal(0.0, 1.0, (16, 6)) if gaussian else rng.integers(0, 2, (16, 6))
    v = jnp.asarray(v, jnp.float32)
    grads, stats = jax.jit(M(params).cd_k, static_argnums=3, static_argnames=(
        "return_stats", "sample_visible_units"))(jax.random.PRNGKey(5), params, v, 2,
                                                 return_stats=True,
                                                 sample_visible_units=sample_visible_units)
    trainable = {name: params[name] for name in ("w", "b_visible", "b_hidden")}
    fixed = {name: x for name, x in params.items() if name not in trainable}
    v_model = jax.lax.stop_gradient(stats.v_model)

    def surrogate(theta):
        full = {**theta, **fixed}
        return (jnp.mean(reference_free_energy(full, v))
                - jnp.mean(reference_free_energy(full, v_model)))

    expected = jax.grad(surrogate)(trainable)
    for name in trainable:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-6)
    if gaussian:
        np.testing.assert_array_equal(grads["sigma"], 0.0)
    assert set(grads) == set(params)
    assert stats.v_model.shape == v.shape
    if not gaussian and sample_visible_units:
        assert set(np.unique(np.asarray(stats.v_model))) <= {0.0, 1.0}
    if not gaussian and not sample_visible_units:   # mean-field reconstructions
        assert np.all((np.asarray(stats.v_model) > 0) & (np.asarray(stats.v_model) < 1))


# --------------------------------------------------------------------------------------------
# 8-9. pseudo-log-likelihood and reconstruction error
# --------------------------------------------------------------------------------------------

def pseudo_log_likelihood_terms(p, v):
    """[B, n_v]: log sigmoid(F(v with bit i flipped) - F(v)) by flipping each bit explicitly."""
    terms = np.zeros(v.shape)
    for n in range(v.shape[0]):
        f = free_energy_np(p, v[n])
        for i in range(v.shape[1]):
            flipped = v[n].copy()
            flipped[i] = 1.0 - flipped[i]
            terms[n, i] = -np.logaddexp(0.0, -(free_energy_np(p, flipped) - f))
    return terms


@pytest.mark.usefixtures("strict_dtypes")
def test_pseudo_log_likelihood_exact_and_one_bit_estimate():
    params = make_params(13, 7, 5, std=1.5)
    v = np.random.default_rng(14).integers(0, 2, (8, 7)).astype(np.float64)
    terms = pseudo_log_likelihood_terms(f64(params), v)
    exact = terms.sum(1).mean()
    vj = jnp.asarray(v, jnp.float32)
    np.testing.assert_allclose(M(params).pseudo_log_likelihood(None, params, vj), exact, rtol=1e-5)
    # with a key: n_v log sigmoid(...) of one uniformly chosen bit per example, mean over the batch
    n_keys = 4000
    keys = jax.random.split(jax.random.PRNGKey(15), n_keys)
    estimates = jax.jit(jax.vmap(M(params).pseudo_log_likelihood, (0, None, None)))(keys, params, vj)
    per_example_var = 7 ** 2 * terms.var(axis=1)                 # over the uniform bit choice
    se = np.sqrt(per_example_var.sum() / 8 ** 2 / n_keys)
    assert abs(float(jnp.mean(estimates)) - exact) < 5 * se + 1e-4, (float(jnp.mean(estimates)),
                                                                     exact, se)
    assert np.all(np.asarray(estimates) <= 0)                  # log-probabilities


def test_pseudo_log_likelihood_refuses_gaussian():
    with pytest.raises(ValueError, match="binary"):
        rbm.rbm(4, 3, visible="gaussian").pseudo_log_likelihood(
            None, make_params(0, 4, 3, gaussian=True), jnp.zeros((2, 4)))


@pytest.mark.usefixtures("strict_dtypes")
def test_reconstruction_error_matches_numpy():
    params = make_params(16, 6, 4, std=1.0)
    p = f64(params)
    v = np.random.default_rng(17).integers(0, 2, (10, 6)).astype(np.float64)
    expected = 0.0
    for n in range(10):
        h = sigmoid(p["b_hidden"] + v[n] @ p["w"])
        expected += np.sum((v[n] - sigmoid(p["b_visible"] + p["w"] @ h)) ** 2) / 10
    model = M(params)
    np.testing.assert_allclose(model.reconstruction_error(None, params, jnp.asarray(v, jnp.float32)),
                               expected, rtol=1e-5)
    # with a key, h ~ p(h | v): the mean over keys is E_h[sum_i (v_i - E[v_i | h])^2], summed
    # here over all 2^4 hidden states
    hs = binary_states(4)
    exact, second = 0.0, 0.0
    for n in range(10):
        ph = sigmoid(p["b_hidden"] + v[n] @ p["w"])
        weights = np.prod(np.where(hs == 1, ph, 1 - ph), axis=1)               # p(h | v_n)
        errors = np.sum((v[n] - sigmoid(p["b_visible"] + hs @ p["w"].T)) ** 2, axis=1)
        exact += weights @ errors / 10
        second += (weights @ errors ** 2 - (weights @ errors) ** 2) / 100   # Var of the mean
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    sampled = jax.jit(jax.vmap(model.reconstruction_error, (0, None, None)))(
        keys, params, jnp.asarray(v, jnp.float32))
    se = np.sqrt(second / len(keys))
    assert abs(float(jnp.mean(sampled)) - exact) < 5 * se + 1e-5, (float(jnp.mean(sampled)), exact)
    assert float(jnp.std(sampled)) > 0     # the key is used


# --------------------------------------------------------------------------------------------
# 10. conditionals and sampling
# --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_conditional_means_match_numpy(gaussian):
    params = make_params(18, 5, 3, std=1.0, gaussian=gaussian)
    p = f64(params)
    rng = np.random.default_rng(19)
    v = rng.normal(0, 1, (4, 5)) if gaussian else rng.integers(0, 2, (4, 5)).astype(float)
    h = rng.integers(0, 2, (4, 3)).astype(float)
    x = v / p["sigma"] if gaussian else v
    np.testing.assert_allclose(M(params).hidden_probs(params, jnp.asarray(v, jnp.float32)),
                               sigmoid(x @ p["w"] + p["b_hidden"]), rtol=1e-5, atol=1e-6)
    mean = (p["b_visible"] + p["sigma"] * (h @ p["w"].T) if gaussian
            else sigmoid(h @ p["w"].T + p["b_visible"]))
    np.testing.assert_allclose(M(params).visible_mean(params, jnp.asarray(h, jnp.float32)), mean,
                               rtol=1e-5, atol=1e-6)


def test_bernoulli_samples_have_the_conditional_means():
    params = make_params(20, 5, 3, std=1.0)
    p = f64(params)
    n = 20000
    v_row, h_row = np.array([1.0, 0.0, 1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0])
    h, ph = M(params).sample_hidden(jax.random.PRNGKey(0), params,
                              jnp.asarray(np.tile(v_row, (n, 1)), jnp.float32))
    v, pv = M(params).sample_visible(jax.random.PRNGKey(1), params,
                               jnp.asarray(np.tile(h_row, (n, 1)), jnp.float32))
    for sample, prob, expected in [(h, ph, sigmoid(v_row @ p["w"] + p["b_hidden"])),
                                   (v, pv, sigmoid(p["w"] @ h_row + p["b_visible"]))]:
        assert set(np.unique(np.asarray(sample))) <= {0.0, 1.0}
        np.testing.assert_allclose(prob[0], expected, rtol=1e-5)
        se = np.sqrt(expected * (1 - expected) / n)
        assert np.all(np.abs(np.asarray(sample).mean(0) - expected) < 5 * se + 1e-4)


@pytest.mark.parametrize("make_key", [lambda: jax.random.PRNGKey(3),
                                      lambda: jax.random.fold_in(jax.random.PRNGKey(1), 7),
                                      lambda: jax.random.key(5)],
                         ids=["raw", "folded", "typed"])
def test_bernoulli_equals_jax_uniform_comparison_bit_for_bit(make_key):
    """The written-out threefry sampler gives exactly (jax.random.uniform(key, shape) < p), jitted,
    eager and vmapped over keys, for odd sizes, p at 0 and 1, and p on uniform's 2^-23 grid."""
    key = make_key()
    grid = jnp.arange(16, dtype=jnp.float32) * 2.0 ** -23
    for shape in [(100, 784), (7, 13), (1,), (3, 1, 5), (2, 16)]:
        p = jax.random.uniform(jax.random.PRNGKey(9), shape)
        p = p.at[0].set(0.0).at[-1].set(1.0) if shape[0] > 2 else p
        if shape == (2, 16):
            p = jnp.stack([grid, grid + 2.0 ** -24])
        expected = (jax.random.uniform(key, shape) < p).astype(jnp.float32)
        assert rbm._bernoulli(key, p).dtype == jnp.float32
        np.testing.assert_array_equal(rbm._bernoulli(key, p), expected)
        np.testing.assert_array_equal(jax.jit(rbm._bernoulli)(key, p), expected)
    keys = jax.random.split(key, 3)
    p = jax.random.uniform(jax.random.PRNGKey(4), (3, 6, 5))
    np.testing.assert_array_equal(
        jax.vmap(rbm._bernoulli)(keys, p),
        jnp.stack([(jax.random.uniform(k, (6, 5)) < q).astype(jnp.float32)
                   for k, q in zip(keys, p)]))


def test_bernoulli_other_keys_and_dtypes_take_jax_random():
    """rbg keys and float16 p go through jax.random.uniform itself: still the same samples."""
    p = jax.random.uniform(jax.random.PRNGKey(2), (40, 9))
    key = jax.random.key(1, impl="rbg")
    np.testing.assert_array_equal(rbm._bernoulli(key, p),
                                  (jax.random.uniform(key, p.shape) < p).astype(jnp.float32))
    half = p.astype(jnp.float16)
    key = jax.random.PRNGKey(6)
    np.testing.assert_array_equal(
        rbm._bernoulli(key, half), (jax.random.uniform(key, p.shape, jnp.float16) < half))


def test_gaussian_visible_samples_mean_and_variance():
    params = make_params(21, 4, 3, std=1.0, gaussian=True)
    p = f64(params)
    n = 20000
    h_row = np.array([1.0, 0.0, 1.0])
    v, mean = M(params).sample_visible(jax.random.PRNGKey(2), params,
                                 jnp.asarray(np.tile(h_row, (n, 1)), jnp.float32))
    expected_mean = p["b_visible"] + p["sigma"] * (p["w"] @ h_row)
    np.testing.assert_allclose(mean[0], expected_mean, rtol=1e-5, atol=1e-6)
    v = np.asarray(v, np.float64)
    s2 = p["sigma"] ** 2
    assert np.all(np.abs(v.mean(0) - expected_mean) < 5 * p["sigma"] / np.sqrt(n))
    assert np.all(np.abs(v.var(0) - s2) < 5 * s2 * np.sqrt(2 / n))


def test_sample_after_burn_in_has_model_mean():
    """sample returns E[v | h] with h ~ p(h | v) after n_steps of Gibbs: its mean is E_p[v]."""
    params = make_params(22, 5, 3, std=1.0)
    states, probs = model_distribution(f64(params))
    n = 20000   # 30 steps: the chain's second eigenvalue is 0.2, so 0.2^30 is negligible
    out = jax.jit(M(params).sample, static_argnums=(2, 3))(jax.random.PRNGKey(3), params, n, 30)
    assert out.shape == (n, 5)
    assert np.all((np.asarray(out) > 0) & (np.asarray(out) < 1))
    assert np.all(np.abs(np.asarray(out).mean(0) - probs @ states) < 5 * np.sqrt(0.25 / n))
    key, v0 = jax.random.PRNGKey(3), binary_data(0, 7, 5)
    assert jax.eval_shape(lambda: M(params).sample(key, params, 7, 2, v0=v0)).shape == (7, 5)
    gaussian = make_params(22, 5, 3, gaussian=True)
    assert jax.eval_shape(lambda: M(gaussian).sample(key, gaussian, 6, 2)).shape == (6, 5)


def test_gibbs_chain_zero_steps_and_negative():
    params, v = make_params(0, 4, 3), binary_data(1, 5, 4)
    np.testing.assert_array_equal(M(params).gibbs_chain(jax.random.PRNGKey(0), params, v, 0), v)
    with pytest.raises(ValueError, match="n_steps must be >= 0"):
        M(params).gibbs_chain(jax.random.PRNGKey(0), params, v, -1)


# --------------------------------------------------------------------------------------------
# 11. training through dlmodels.train.fit
# --------------------------------------------------------------------------------------------

PATTERNS = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1],
                     [1, 1, 0, 0, 1, 1], [0, 1, 1, 1, 1, 0]], np.float32)
TRAIN_DATA = np.repeat(PATTERNS, 50, axis=0)                       # 200 rows
SMALL = rbm.rbm(6, 4)
# 200 updates; checked on seeds 0-3: CD-1 ends at -1.9 to -2.2 nats, PCD at -2.3 to -3.0
TRAIN_CONFIG = rbm.RBMTrainConfig(epochs=10, batch_size=10, learning_rate=0.2,
                                  initial_momentum=0.5, momentum=0.5, n_chains=100,
                                  monitor_size=100)


def exact_mean_log_likelihood(params, data):
    p = f64(params)
    return np.mean(-free_energy_np(p, np.asarray(data, np.float64))) - log_z_brute(p)


def initial_params(key=jax.random.PRNGKey(1)):
    return SMALL.init(key, std=0.5, b_visible=rbm.base_rate_bias(TRAIN_DATA))


def test_training_with_cd1_raises_exact_likelihood_and_is_deterministic():
    a = rbm.train(SMALL, TRAIN_DATA, TRAIN_CONFIG, init_fn=initial_params)
    b = rbm.train(SMALL, TRAIN_DATA, TRAIN_CONFIG, init_fn=initial_params)
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    params0 = initial_params(jax.random.split(jax.random.PRNGKey(0))[0])  # fit's init key
    before, after = (exact_mean_log_likelihood(x, TRAIN_DATA) for x in (params0, a.state.params))
    # near-uniform start: about -6 log 2 = -4.16; the four patterns alone: -log 4 = -1.39
    assert before < -3.5 and after > before + 1.5, (before, after)
    history = a.history
    assert [r["epoch"] for r in history] == list(range(1, 11))
    for record in history:
        assert {"train_loss", "eval_reconstruction_error", "eval_pseudo_log_likelihood"} <= set(record)
    assert history[-1]["eval_reconstruction_error"] < history[0]["eval_reconstruction_error"]
    # the monitor against numpy: mean-field reconstruction error and exact PL on the first rows
    p, v = f64(a.state.params), TRAIN_DATA[:100].astype(np.float64)
    recon = sigmoid(sigmoid(v @ p["w"] + p["b_hidden"]) @ p["w"].T + p["b_visible"])
    np.testing.assert_allclose(history[-1]["eval_reconstruction_error"],
                               np.mean(np.sum((v - recon) ** 2, 1)), rtol=1e-4)
    np.testing.assert_allclose(history[-1]["eval_pseudo_log_likelihood"],
                               pseudo_log_likelihood_terms(p, v).sum(1).mean(), rtol=1e-4)
    # hidden_probabilities is p(h = 1 | v), in batches
    hidden = rbm.hidden_probabilities(SMALL, a.state.params, TRAIN_DATA[::7], batch_size=8)
    assert isinstance(hidden, np.ndarray) and hidden.shape == (len(TRAIN_DATA[::7]), 4)
    np.testing.assert_allclose(hidden, sigmoid(TRAIN_DATA[::7] @ p["w"] + p["b_hidden"]),
                               rtol=1e-5, atol=1e-6)


def test_training_with_pcd_raises_exact_likelihood():
    config = dataclasses.replace(TRAIN_CONFIG, method="pcd", learning_rate=0.1)
    result = rbm.train(SMALL, TRAIN_DATA, config, init_fn=initial_params)
    params0 = initial_params(jax.random.split(jax.random.PRNGKey(0))[0])
    before, after = (exact_mean_log_likelihood(x, TRAIN_DATA) for x in (params0, result.state.params))
    # checked on seeds 0-3: gains of 0.9, 1.6, 1.6 and 1.8 nats (CD-1 at lr 0.2: 1.7-2.3)
    assert after > before + 0.8, (before, after)
    assert result.state.model_state.shape == (100, 6)          # the persistent chains


def cd1_numpy(p, v, uniforms_h0, uniforms_v1):
    """CD-1 with the given uniforms: h0 = [u < p(h|v)], v1 = [u' < p(v|h0)], then
    -(v^T p(h|v) - v1^T p(h|v1)) / B and the bias terms, float64."""
    ph0 = sigmoid(v @ p["w"] + p["b_hidden"])
    h0 = (uniforms_h0 < ph0).astype(np.float64)
    v1 = (uniforms_v1 < sigmoid(h0 @ p["w"].T + p["b_visible"])).astype(np.float64)
    ph1 = sigmoid(v1 @ p["w"] + p["b_hidden"])
    n = len(v)
    return {"w": (v1.T @ ph1 - v.T @ ph0) / n, "b_visible": (v1 - v).mean(0),
            "b_hidden": (ph1 - ph0).mean(0)}


def test_cd1_step_through_fit_equals_optax_update_of_numpy_gradient():
    """One CD-1 update by fit = SGD-momentum with weight decay on w applied to the numpy CD-1
    gradient of the same batch, drawn with the same uniforms (the key schedule re-derived here:
    the step's key is fold_in(train_key, 0), split into the h0 key and the chain's v1 key)."""
    config = dataclasses.replace(TRAIN_CONFIG, epochs=1, learning_rate=0.3, weight_decay=0.01)
    from dlmodels.data import batch_indices

    data = TRAIN_DATA[::20]                                                      # 10 rows: 1 batch
    result = rbm.train(SMALL, data, config, init_fn=initial_params)
    key_init, key_train = jax.random.split(jax.random.PRNGKey(config.seed))
    params0 = initial_params(key_init)
    v = data[batch_indices(jax.random.PRNGKey(0), 10, 10, epoch=0)[0]].astype(np.float64)
    k_0, k_chain = jax.random.split(jax.random.fold_in(key_train, 0))
    k_1, _ = jax.random.split(k_chain)
    u_h = np.asarray(jax.random.uniform(k_0, (10, 4)), np.float64)
    u_v = np.asarray(jax.random.uniform(k_1, (10, 6)), np.float64)
    p = f64(params0)
    g = cd1_numpy(p, v, u_h, u_v)
    # first SGD-momentum step: u = -lr (g + lambda W on w); biases undecayed
    expected = {"w": p["w"] - 0.3 * (g["w"] + 0.01 * p["w"]),
                "b_visible": p["b_visible"] - 0.3 * g["b_visible"],
                "b_hidden": p["b_hidden"] - 0.3 * g["b_hidden"]}
    for name in expected:
        np.testing.assert_allclose(result.state.params[name], expected[name], rtol=1e-5, atol=1e-6)
    # the reported loss: the first Gibbs step's reconstruction error, sum_i (v_i - E[v_i | h0])^2
    h0 = (u_h < sigmoid(v @ p["w"] + p["b_hidden"])).astype(np.float64)
    recon = sigmoid(h0 @ p["w"].T + p["b_visible"])
    np.testing.assert_allclose(result.history[0]["train_loss"],
                               np.mean(np.sum((v - recon) ** 2, -1)), rtol=1e-5)


def test_pcd_resume_is_bitwise_identical(tmp_path):
    config = dataclasses.replace(TRAIN_CONFIG, method="pcd", epochs=3, steps_per_call=7,
                                 checkpoint_every=9)
    straight = rbm.train(SMALL, TRAIN_DATA, config, run_dir=str(tmp_path / "a"))
    first = rbm.train(SMALL, TRAIN_DATA, config, run_dir=str(tmp_path / "b"))
    # kill after step 27: keep the checkpoints up to 27 and the first epoch's line, torn second
    import shutil
    steps = Checkpointer(tmp_path / "b" / "checkpoints").steps()
    for step in steps:
        if step > 27:
            shutil.rmtree(tmp_path / "b" / "checkpoints" / str(step))
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "b" / "metrics.jsonl").write_text(lines[0] + lines[1][:10])
    resumed = rbm.train(SMALL, TRAIN_DATA, config, run_dir=str(tmp_path / "b"), resume=True)
    assert int(resumed.state.step) == int(straight.state.step) == 60
    for x, y in zip(jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(x, y)       # params, momentum, chains, step, key
    assert first.history == [] or first.history[0]["step"] == 20
    drop = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert drop(resumed.history) == drop(straight.history)


def test_vmapped_seeds_of_an_rbm_equal_single_runs():
    config = dataclasses.replace(TRAIN_CONFIG, method="pcd", epochs=2)
    stacked = rbm.train(SMALL, TRAIN_DATA, config, seeds=[4, 1])
    for k, seed in enumerate([4, 1]):
        single = rbm.train(SMALL, TRAIN_DATA, dataclasses.replace(config, seed=seed, data_seed=0))
        member = jax.tree.map(lambda a: a[k], stacked.state)
        for x, y in zip(jax.tree.leaves(member), jax.tree.leaves(single.state), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stacked.history[-1]["eval_pseudo_log_likelihood"][k],
                                   single.history[-1]["eval_pseudo_log_likelihood"], rtol=1e-5)


def test_practical_optimizer_momentum_schedule_and_weight_decay():
    """Constant gradient g: SGD-momentum updates -lr g, -lr (1 + 0.5) g (initial momentum for
    the first updates), -lr (1 + 0.9 * 1.5) g; weight decay lambda W on w only."""
    config = rbm.RBMTrainConfig(learning_rate=0.1, initial_momentum=0.5, momentum=0.9,
                                momentum_switch_epochs=2, weight_decay=0.0)
    params = {"w": jnp.ones((2, 2)), "b_visible": jnp.ones((2,)), "b_hidden": jnp.ones((2,))}
    grads = jax.tree.map(lambda x: 2.0 * jnp.ones_like(x), params)
    optimizer = config.optimizer(steps_per_epoch=1)
    state = optimizer.init(params)
    for factor in [1.0, 1.5, 2.35]:
        updates, state = optimizer.update(grads, state, params)
        for name in params:
            np.testing.assert_allclose(updates[name], -0.1 * factor * 2.0, rtol=1e-6)
    decayed = dataclasses.replace(config, weight_decay=0.5).optimizer(1)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = decayed.update(zero, decayed.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(updates["b_visible"], 0.0)
    np.testing.assert_array_equal(updates["b_hidden"], 0.0)
    linear = dataclasses.replace(config, learning_rate_decay=True, epochs=4).optimizer(1)
    state = linear.init(params)
    _, state = linear.update(zero, state, params)
    _, state = linear.update(zero, state, params)
    updates, _ = linear.update(grads, state, params)   # third of 4 steps: lr 0.1 * (1 - 2/4)
    np.testing.assert_allclose(updates["w"], -0.05 * 2.0, rtol=1e-5)


@pytest.mark.parametrize("data, error, message", [
    (np.zeros((200, 5), np.float32), ShapeError, r"expected shape \[\*, 6\], got \(200, 5\)"),
    (np.zeros((200,), np.float32), ShapeError, r"expected shape \[\*, 6\]"),
    (np.where(np.arange(1200).reshape(200, 6) == 7, np.nan, TRAIN_DATA), ValueError, "NaN"),
    (TRAIN_DATA * 2.0, ValueError, r"needs data in \[0, 1\]"),
    (TRAIN_DATA - 1.0, ValueError, r"needs data in \[0, 1\]"),
    (TRAIN_DATA[:5], ValueError, r"5 examples are fewer than one batch \(10\)"),
])
def test_train_rejects_bad_data(data, error, message):
    with pytest.raises(error, match=message):
        rbm.train(SMALL, data, TRAIN_CONFIG)


@pytest.mark.parametrize("field, value, message", [
    ("k", 0, "k must be finite and > 0"),
    ("method", "x", r"method must be one of \('cd', 'pcd'\), got 'x'"),
    ("learning_rate", 0.0, "learning_rate must be finite and > 0"),
    ("learning_rate", -0.1, "learning_rate must be finite and > 0"),
    ("epochs", 0, "epochs must be finite and > 0"),
    ("batch_size", 0, "batch_size must be finite and > 0"),
    ("n_chains", 0, "n_chains must be finite and > 0"),
    ("momentum", 1.0, r"momentum must be in \[0.0, 1.0\)"),
    ("initial_momentum", -0.1, r"initial_momentum must be in \[0.0, 1.0\)"),
    ("weight_decay", -1e-4, "weight_decay must be finite and >= 0"),
])
def test_train_config_rejects_invalid_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        rbm.RBMTrainConfig(**{field: value})


# --------------------------------------------------------------------------------------------
# 12. shapes, jit, vmap, retracing, init and input checks
# --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("strict_dtypes")
@pytest.mark.parametrize("gaussian", [False, True], ids=["bernoulli", "gaussian"])
def test_cd_k_jit_equals_eager_and_shapes_agree_with_eval_shape(gaussian):
    params = make_params(23, 6, 4, gaussian=gaussian)
    model = M(params)
    v = binary_data(24, 9, 6)
    key = jax.random.PRNGKey(25)
    k = 1 if gaussian else 2          # k = 2 runs the lax.scan of the negative phase
    eager = model.cd_k(key, params, v, k, return_stats=True)
    jitted = jax.jit(model.cd_k, static_argnums=3, static_argnames="return_stats")(
        key, params, v, k, return_stats=True)
    for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    shapes = jax.eval_shape(lambda p, v: model.cd_k(key, p, v, k), params, v)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), shapes) == jax.tree.map(
        lambda x: (x.shape, x.dtype), params)
    chex.assert_tree_all_finite(eager)


def test_cd_k_vmap_over_keys_equals_loop_and_does_not_retrace():
    params = make_params(26, 6, 4)
    model = M(params)
    v = binary_data(27, 9, 6)
    keys = jax.random.split(jax.random.PRNGKey(28), 4)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, v):
        return model.cd_k(key, params, v, 1)

    batched = jax.vmap(step, (0, None))(keys, v)
    for i, key in enumerate(keys):
        single = step(key, v)
        for name in params:
            np.testing.assert_allclose(batched[name][i], single[name], rtol=1e-6, atol=1e-7)
    step(keys[0], binary_data(29, 9, 6))   # new values, same shapes: no retrace


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_init_shapes_dtypes_and_values(visible, dtype):
    b = np.arange(5, dtype=np.float32)
    model = rbm.rbm(5, 3, visible=visible)
    params = model.init(jax.random.PRNGKey(0), std=0.1, b_visible=b, dtype=dtype)
    expected = {"w": (5, 3), "b_visible": (5,), "b_hidden": (3,)}
    if visible == "gaussian":
        expected["sigma"] = (5,)
        np.testing.assert_array_equal(np.asarray(params["sigma"], np.float32), 1.0)
    assert {name: x.shape for name, x in params.items()} == expected
    assert all(x.dtype == dtype for x in params.values())
    np.testing.assert_array_equal(np.asarray(params["b_visible"], np.float32), b)
    np.testing.assert_array_equal(np.asarray(params["b_hidden"], np.float32), 0.0)
    assert 0.0 < float(jnp.std(params["w"].astype(jnp.float32))) < 0.3
    assert (model.visible, model.hidden, model.binary) == (visible, "bernoulli",
                                                           visible == "bernoulli")
    zero = rbm.rbm(5, 3).init(jax.random.PRNGKey(0), std=0.0)
    np.testing.assert_array_equal(zero["w"], 0.0)


@pytest.mark.parametrize("args, kwargs, call, message", [
    ((0, 3), {}, None, "n_visible must be finite and > 0"),
    ((3, 0), {}, None, "n_hidden must be finite and > 0"),
    ((3, 2), {"visible": "poisson"}, None, r"visible must be one of \('bernoulli', 'gaussian'\)"),
    ((3, 2), {}, {"std": -1.0}, "std must be finite and >= 0"),
])
def test_factory_and_init_reject_bad_arguments(args, kwargs, call, message):
    with pytest.raises(ValueError, match=message):
        rbm.rbm(*args, **kwargs).init(jax.random.PRNGKey(0), **(call or {}))


def test_wrong_shapes_raise_shape_errors_naming_the_shapes():
    params, key = make_params(0, 5, 3), jax.random.PRNGKey(0)
    model = rbm.rbm(5, 3)
    bad = jnp.zeros((8, 4))
    match = r"v \[(\.\.\.|B), n_visible\].*expected shape \[(\.\.\.|\*), 5\], got \(8, 4\)"
    for call in [lambda: model.cd_k(key, params, bad), lambda: model.free_energy(params, bad),
                 lambda: model.hidden_probs(params, bad),
                 lambda: model.pseudo_log_likelihood(None, params, bad),
                 lambda: model.energy(params, bad, jnp.zeros((8, 3))),
                 lambda: model.pcd(key, params, bad, jnp.zeros((8, 5)))]:
        with pytest.raises(ShapeError, match=match):
            call()
    with pytest.raises(ShapeError, match=r"chains \[B, n_visible\].*got \(8, 4\)"):
        model.pcd(key, params, jnp.zeros((8, 5)), bad)
    for call in [lambda: model.cd_k(key, params, jnp.zeros((5,))),
                 lambda: model.pcd(key, params, jnp.zeros((5,)), jnp.zeros((8, 5))),
                 lambda: model.pseudo_log_likelihood(None, params, jnp.zeros((5,)))]:
        with pytest.raises(ShapeError, match=r"\[B, n_visible\] \(a batch\): expected shape "
                                             r"\[\*, 5\], got \(5,\)"):
            call()
    with pytest.raises(ShapeError, match=r"h \[\.\.\., n_hidden\]: expected shape \[\.\.\., 3\], "
                                         r"got \(8, 5\)"):
        model.visible_mean(params, jnp.zeros((8, 5)))


# --------------------------------------------------------------------------------------------
# Gaussian (linear) hidden units: the code layer of Hinton & Salakhutdinov's deep autoencoder
# --------------------------------------------------------------------------------------------

def test_gaussian_hidden_free_energy_equals_numerical_integral_over_h():
    from scipy import integrate

    model = rbm.rbm(4, 2, hidden="gaussian")
    params = model.init(jax.random.PRNGKey(3), std=0.8)
    params["b_hidden"] = jnp.asarray([0.3, -0.5])
    p = f64(params)
    v = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])

    def energy_np(v_row, h):
        return 0.5 * h @ h - v_row @ p["w"] @ h - p["b_visible"] @ v_row - p["b_hidden"] @ h

    for v_row in v:
        z, _ = integrate.dblquad(lambda h1, h0: np.exp(-energy_np(v_row, np.array([h0, h1]))),
                                 -12, 12, -12, 12, epsabs=1e-11)
        np.testing.assert_allclose(model.free_energy(params, jnp.asarray(v_row, jnp.float32)),
                                   -np.log(z), rtol=1e-5, atol=1e-5)
        h = np.array([0.7, -1.1])
        np.testing.assert_allclose(
            model.energy(params, jnp.asarray(v_row, jnp.float32), jnp.asarray(h, jnp.float32)),
            energy_np(v_row, h), rtol=1e-5, atol=1e-5)


def test_gaussian_hidden_samples_and_cd_gradient_vs_autodiff():
    model = rbm.rbm(6, 3, hidden="gaussian")
    params = model.init(jax.random.PRNGKey(4), std=0.5)
    assert set(params) == {"w", "b_visible", "b_hidden"}
    p = f64(params)
    v_row = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    n = 20000
    h, mean = model.sample_hidden(jax.random.PRNGKey(1), params,
                                jnp.asarray(np.tile(v_row, (n, 1)), jnp.float32))
    np.testing.assert_allclose(mean[0], v_row @ p["w"] + p["b_hidden"], rtol=1e-5, atol=1e-6)
    h = np.asarray(h, np.float64)
    assert np.all(np.abs(h.mean(0) - mean[0]) < 5 / np.sqrt(n))
    assert np.all(np.abs(h.var(0) - 1.0) < 5 * np.sqrt(2 / n))

    v = jnp.asarray(np.random.default_rng(0).integers(0, 2, (16, 6)), jnp.float32)
    grads, stats = model.cd_k(jax.random.PRNGKey(5), params, v, 2, return_stats=True)
    v_model = jax.lax.stop_gradient(stats.v_model)

    def free(theta, x):   # F(v) = -b.v - sum_j (c_j + v W_:j)^2 / 2 (+ const)
        a = x @ theta["w"] + theta["b_hidden"][None, :]
        return -jnp.sum(x * theta["b_visible"][None, :], 1) - 0.5 * jnp.sum(a ** 2, 1)

    trainable = {k: params[k] for k in ("w", "b_visible", "b_hidden")}
    expected = jax.grad(lambda t: jnp.mean(free(t, v)) - jnp.mean(free(t, v_model)))(trainable)
    for name in trainable:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-6)
    assert set(grads) == set(params)
    with pytest.raises(ValueError, match="Bernoulli-Bernoulli"):
        model.log_partition_exact(params)
    with pytest.raises(ValueError, match="Bernoulli-Bernoulli"):
        model.pseudo_log_likelihood(None, params, v)
    with pytest.raises(ValueError, match="Gaussian-Gaussian"):
        rbm.rbm(3, 2, visible="gaussian", hidden="gaussian")


def test_pcd_stats_report_the_data_mean_field_reconstruction_error():
    """pcd(..., return_stats=True): the gradients and chains of the plain call, and
    mean_b sum_i (v_i - sigmoid(b + W p(h | v))_i)^2 computed in numpy."""
    params = initial_params(jax.random.PRNGKey(3))
    v = TRAIN_DATA[:10]
    chains = TRAIN_DATA[10:15]
    key = jax.random.PRNGKey(7)
    grads, new_chains = SMALL.pcd(key, params, v, chains, 2)
    grads_s, chains_s, stats = SMALL.pcd(key, params, v, chains, 2, return_stats=True)
    for a, b in zip(jax.tree.leaves((grads, new_chains)), jax.tree.leaves((grads_s, chains_s))):
        np.testing.assert_array_equal(a, b)
    p = f64(params)
    x = np.asarray(v, np.float64)
    recon = sigmoid(sigmoid(x @ p["w"] + p["b_hidden"]) @ p["w"].T + p["b_visible"])
    np.testing.assert_allclose(stats.reconstruction_error, np.mean(np.sum((x - recon) ** 2, -1)),
                               rtol=1e-5)
