"""Linear-chain CRF against brute-force enumeration of all K^T paths and against pytorch-crf."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.text import crf
from dlmodels.validation import ShapeError


def _random_case(seed, B, T, K, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {"transitions": rng.normal(size=(K, K)).astype(dtype),
              "start": rng.normal(size=K).astype(dtype), "end": rng.normal(size=K).astype(dtype)}
    emissions = rng.normal(size=(B, T, K)).astype(dtype)
    tags = rng.integers(0, K, size=(B, T))
    return params, emissions, tags


def _path_score(params, e, path):
    """The path score of the issue's definition, written out in plain Python."""
    s = params["start"][path[0]] + params["end"][path[-1]]
    for t, y in enumerate(path):
        s += e[t, y]
        if t > 0:
            s += params["transitions"][path[t - 1], y]
    return s


def _brute_force(params, e, L):
    """(log Z, best path, best score) over all K^L paths of one sequence."""
    K = e.shape[1]
    paths = list(itertools.product(range(K), repeat=L))
    scores = np.array([_path_score(params, e, p) for p in paths])
    m = scores.max()
    return m + np.log(np.exp(scores - m).sum()), paths[int(scores.argmax())], m


@pytest.mark.parametrize("K,T", [(3, 4), (2, 5), (4, 3)])
def test_against_brute_force(K, T):
    lengths = np.array([1, 2, T, T - 1, T])
    params, emissions, tags = _random_case(K * 10 + T, len(lengths), T, K)
    with jax.enable_x64(True):
        log_z = np.asarray(crf.log_partition(params, emissions, lengths))
        gold = np.asarray(crf.score(params, emissions, tags, lengths))
        ll = np.asarray(crf.log_likelihood(params, emissions, tags, lengths))
        best_tags, best_scores = map(np.asarray, crf.viterbi(params, emissions, lengths))
    assert log_z.dtype == np.float64 and best_tags.dtype == np.int32
    for b, L in enumerate(lengths):
        ref_z, ref_path, ref_best = _brute_force(params, emissions[b], L)
        ref_gold = _path_score(params, emissions[b], tags[b, :L])
        np.testing.assert_allclose(log_z[b], ref_z, rtol=1e-12)
        np.testing.assert_allclose(gold[b], ref_gold, rtol=1e-12)
        np.testing.assert_allclose(ll[b], ref_gold - ref_z, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(best_tags[b, :L], ref_path)
        np.testing.assert_array_equal(best_tags[b, L:], 0)
        np.testing.assert_allclose(best_scores[b], ref_best, rtol=1e-12)


def test_float32_close_to_float64():
    params, emissions, tags = _random_case(1, 4, 6, 5)
    lengths = np.array([6, 3, 1, 5])
    with jax.enable_x64(True):
        ref = np.asarray(crf.log_likelihood(params, emissions, tags, lengths))
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    out = crf.log_likelihood(p32, jnp.asarray(emissions, jnp.float32), tags, lengths)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5)


def test_large_scores_are_stable():
    """Scores of 1e4 overflow a naive exp; the log-space recursions stay exact."""
    params, emissions, tags = _random_case(2, 3, 4, 3)
    lengths = np.array([4, 2, 3])
    big = 1e4 * emissions
    with jax.enable_x64(True):
        log_z = np.asarray(crf.log_partition(params, big, lengths))
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(log_z[b], _brute_force(params, big[b], L)[0], rtol=1e-12)
    out = crf.log_partition(jax.tree.map(jnp.float32, params), jnp.float32(big), lengths)
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forbidden_transitions(dtype):
    """Transitions of -1e4 (moves forbidden, as in BIO tagging) take the log-sum-exp path."""
    K, T = 3, 5
    params, emissions, _ = _random_case(10, 4, T, K)
    params["transitions"][0, 2] = params["transitions"][2, 1] = -1e4
    lengths = np.array([5, 4, 2, 1])
    cast = lambda tree: jax.tree.map(lambda a: np.asarray(a, dtype), tree)
    with jax.enable_x64(dtype == np.float64):
        log_z = np.asarray(crf.log_partition(cast(params), cast(emissions), lengths))
        grads = jax.grad(lambda p: crf.log_partition(p, cast(emissions), lengths).sum())(
            cast(params))
        best_tags, _ = crf.viterbi(cast(params), cast(emissions), lengths)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for b, L in enumerate(lengths):
        ref_z, ref_path, _ = _brute_force(params, emissions[b], L)
        np.testing.assert_allclose(log_z[b], ref_z, rtol=tol)
        assert tuple(np.asarray(best_tags)[b, :L]) == ref_path
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    # the forbidden moves get (numerically) zero expected count
    assert abs(float(grads["transitions"][0, 2])) < 1e-6


def test_scaled_path_near_its_limit():
    """A column range of 55 (just under the float32 limit of 60) stays accurate in float32."""
    K, T = 3, 6
    params, emissions, _ = _random_case(11, 3, T, K)
    params["transitions"][:, 1] = [20.0, -35.0, 0.0]
    lengths = np.array([6, 3, 1])
    out = np.asarray(crf.log_partition(jax.tree.map(jnp.float32, params),
                                       jnp.float32(emissions), lengths))
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(out[b], _brute_force(params, emissions[b], L)[0], rtol=1e-6)


def test_padding_does_not_change_anything():
    params, emissions, tags = _random_case(3, 4, 7, 5)
    lengths = np.array([7, 2, 5, 1])
    rng = np.random.default_rng(9)
    pad = np.arange(7)[None, :] >= lengths[:, None]
    emissions2 = np.where(pad[:, :, None], rng.normal(size=emissions.shape) * 100, emissions)
    tags2 = np.where(pad, rng.integers(-5, 50, size=tags.shape), tags)  # even out-of-range tags
    with jax.enable_x64(True):
        for f in (lambda e, y: crf.log_partition(params, e, lengths),
                  lambda e, y: crf.log_likelihood(params, e, y, lengths),
                  lambda e, y: crf.viterbi(params, e, lengths)[0],
                  lambda e, y: crf.viterbi(params, e, lengths)[1],
                  lambda e, y: jax.grad(lambda p: crf.mean_nll(p, e, y, lengths))(params)):
            jax.tree.map(np.testing.assert_array_equal, f(emissions, tags), f(emissions2, tags2))
        # ... and the emissions' gradient is exactly zero on the padding
        g = jax.grad(lambda e: crf.mean_nll(params, e, tags2, lengths))(emissions2)
        assert (np.asarray(g)[pad] == 0).all()


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_check_grads(scale):
    params, emissions, _ = _random_case(4, 3, 4, 3)
    params["transitions"] = params["transitions"] * scale
    lengths = np.array([4, 1, 3])
    with jax.enable_x64(True):
        jax.test_util.check_grads(lambda p, e: crf.log_partition(p, e, lengths),
                                  (params, emissions), order=2, modes=["fwd", "rev"])


def test_gradient_of_log_z_is_the_marginal():
    """d log Z / d e[t, j] = p(y_t = j): the tag marginals, by brute force."""
    K, T = 3, 4
    params, emissions, _ = _random_case(5, 1, T, K)
    with jax.enable_x64(True):
        g = np.asarray(jax.grad(lambda e: crf.log_partition(params, e, np.array([T])).sum())(
            emissions))[0]
    paths = list(itertools.product(range(K), repeat=T))
    w = np.exp([_path_score(params, emissions[0], p) for p in paths])
    w /= w.sum()
    marg = np.zeros((T, K))
    for p, wp in zip(paths, w):
        marg[np.arange(T), p] += wp
    np.testing.assert_allclose(g, marg, rtol=1e-10)


def _torch_crf(params):
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf")
    K = params["start"].shape[0]
    model = torchcrf.CRF(K, batch_first=True).double()
    with torch.no_grad():
        model.transitions.copy_(torch.tensor(params["transitions"]))
        model.start_transitions.copy_(torch.tensor(params["start"]))
        model.end_transitions.copy_(torch.tensor(params["end"]))
    return torch, model


@pytest.mark.parametrize("scale", [1.0, 300.0])   # the scaled-product and log-sum-exp paths
def test_log_likelihood_and_gradients_equal_pytorch_crf(scale):
    B, T, K = 6, 9, 7
    params, emissions, tags = _random_case(6, B, T, K)
    params["transitions"] = params["transitions"] * scale
    lengths = np.array([9, 1, 4, 9, 2, 7])
    torch, model = _torch_crf(params)
    e_t = torch.tensor(emissions, requires_grad=True)
    mask = torch.tensor(np.arange(T)[None, :] < lengths[:, None])
    ll_t = model(e_t, torch.tensor(tags), mask=mask, reduction="none")
    ll_t.sum().backward()
    with jax.enable_x64(True):
        ll, (g_p, g_e) = jax.value_and_grad(
            lambda p, e: crf.log_likelihood(p, e, tags, lengths).sum(), argnums=(0, 1))(
            params, emissions)
        ll_each = np.asarray(crf.log_likelihood(params, emissions, tags, lengths))
    np.testing.assert_allclose(ll_each, ll_t.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g_e), e_t.grad.numpy(), rtol=1e-9, atol=1e-12)
    for ours, theirs in (("transitions", model.transitions), ("start", model.start_transitions),
                         ("end", model.end_transitions)):
        np.testing.assert_allclose(np.asarray(g_p[ours]), theirs.grad.numpy(), rtol=1e-9,
                                   atol=1e-12)


def test_viterbi_equals_pytorch_crf_decode():
    B, T, K = 16, 12, 10
    params, emissions, _ = _random_case(7, B, T, K)
    lengths = np.random.default_rng(8).integers(1, T + 1, size=B)
    lengths[0] = T
    torch, model = _torch_crf(params)
    mask = torch.tensor(np.arange(T)[None, :] < lengths[:, None])
    theirs = model.decode(torch.tensor(emissions), mask=mask)
    with jax.enable_x64(True):
        tags, _ = crf.viterbi(params, emissions, lengths)
    tags = np.asarray(tags)
    for b in range(B):
        assert tags[b, :lengths[b]].tolist() == theirs[b]


def test_init_and_jit():
    params = crf.init(jax.random.PRNGKey(0), 5)
    assert {k: v.shape for k, v in params.items()} == {"transitions": (5, 5), "start": (5,),
                                                        "end": (5,)}
    assert all(float(jnp.abs(v).max()) <= 0.1 for v in params.values())
    emissions = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 5))
    lengths = jnp.array([6, 2, 4])
    tags = jnp.zeros((3, 6), jnp.int32)
    traces = []

    @jax.jit
    def f(p, e, n):
        traces.append(1)
        return crf.mean_nll(p, e, tags, n), crf.viterbi(p, e, n)

    eager = (crf.mean_nll(params, emissions, tags, lengths),
             crf.viterbi(params, emissions, lengths))
    jitted = f(params, emissions, lengths)
    f(params, emissions + 1.0, lengths + 0)
    assert len(traces) == 1
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), eager, jitted)


def test_bad_inputs():
    params = crf.init(jax.random.PRNGKey(0), 4)
    e = jnp.zeros((2, 5, 4))
    lengths = jnp.array([5, 3])
    with pytest.raises(ShapeError, match="emissions"):
        crf.log_partition(params, jnp.zeros((5, 4)), lengths)
    with pytest.raises(ShapeError, match="transitions"):
        crf.log_partition(params, jnp.zeros((2, 5, 3)), lengths)
    with pytest.raises(ShapeError, match="lengths"):
        crf.viterbi(params, e, jnp.array([5, 3, 1]))
    with pytest.raises(ShapeError, match="tags"):
        crf.log_likelihood(params, e, jnp.zeros((2, 4), jnp.int32), lengths)
    with pytest.raises(ValueError, match="lengths"):
        crf.log_partition(params, e, jnp.array([5, 0]))
    with pytest.raises(ValueError, match="lengths"):
        crf.log_partition(params, e, jnp.array([6, 1]))
    with pytest.raises(ValueError, match="tags"):
        crf.score(params, e, jnp.array([[0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]), lengths)
    with pytest.raises(TypeError, match="lengths"):
        crf.log_partition(params, e, jnp.array([5.0, 3.0]))
    with pytest.raises(ValueError, match="n_tags"):
        crf.init(jax.random.PRNGKey(0), 0)
