"""BPTT contributions (dL/dW)_{i,j}: they sum to jax.grad (through rnn.unroll, whose LSTM runs the
fused path with its hand-written backward pass), vanish for i > j, match a numpy loop of the lab's
delta recursion, and the two implementations (delta recursion, per-step weight copies) agree; the
lag profile and decay rate against hand values; a smoke run of the bptt experiment."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import rnn
from dlmodels.analysis import bptt
from dlmodels.validation import ShapeError

B, T, D, H, O = 2, 7, 3, 4, 2


def _f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _elman_case(key=0):
    cell = rnn.elman(H, output_size=O)
    k = jax.random.split(jax.random.PRNGKey(key), 4)
    params = _f64(cell.init(k[0], D))
    params["b"] = 0.1 * jax.random.normal(k[3], (H,), jnp.float64)
    xs = jax.random.normal(k[1], (B, T, D), jnp.float64)
    targets = jax.random.normal(k[2], (B, T, O), jnp.float64)
    return cell, params, xs, targets


def _sse(targets):
    return lambda ys: 0.5 * jnp.sum(jnp.square(ys - targets))     # sum_j L_j(y_j)


def _assert_causal(terms):
    for name, a in terms.items():
        upper = np.triu(np.ones((T, T), bool), 1).T                # i > j
        assert np.all(np.asarray(a)[upper] == 0.0), name


def test_elman_contributions_sum_to_jax_grad():
    with jax.enable_x64(True):
        cell, params, xs, targets = _elman_case()
        h0 = 0.3 * jax.random.normal(jax.random.PRNGKey(9), (B, H), jnp.float64)
        loss = _sse(targets)
        terms = bptt.elman_contributions(params, xs, loss, h0=h0)
        assert terms["w_h"].shape == (T, T, H, H) and terms["w_x"].shape == (T, T, D, H)
        assert terms["b"].shape == (T, T, H)
        grads = jax.grad(lambda p: loss(rnn.unroll(cell, p, xs, initial_carry=rnn.RNNState(h0))[0]))(
            params)
        for name in ("w_h", "w_x", "b"):
            np.testing.assert_allclose(terms[name].sum((0, 1)), grads[name], rtol=1e-12, atol=1e-13)
        _assert_causal(terms)
        assert float(jnp.abs(terms["w_h"][T - 2, T - 1]).max()) > 0  # the off-diagonal is used


def test_elman_contribution_matches_a_numpy_loop():
    """The lab's recursion written out for single (i, j) pairs, batch summed, in numpy."""
    with jax.enable_x64(True):
        _, params, xs, targets = _elman_case(1)
        terms = bptt.elman_contributions(params, xs, _sse(targets))
    p = {k: np.asarray(v) for k, v in params.items()}
    x, tg = np.asarray(xs), np.asarray(targets)
    h = np.zeros((B, T + 1, H))                                    # h[:, t + 1] = h_t, h[:, 0] = h0
    for t in range(T):
        h[:, t + 1] = np.tanh(x[:, t] @ p["w_x"] + h[:, t] @ p["w_h"] + p["b"])
    for i, j in [(0, 0), (2, 5), (4, 4), (0, T - 1), (3, 6)]:
        y_j = h[:, j + 1] @ p["w_y"] + p["b_y"]
        delta = ((y_j - tg[:, j]) @ p["w_y"].T) * (1 - h[:, j + 1] ** 2)   # [B, H] at step j
        for k in range(j, i, -1):                                  # back to step i
            delta = (delta @ p["w_h"].T) * (1 - h[:, k] ** 2)
        w_h = sum(np.outer(h[b, i], delta[b]) for b in range(B))  # h_{i-1}^T delta_i
        w_x = sum(np.outer(x[b, i], delta[b]) for b in range(B))
        np.testing.assert_allclose(terms["w_h"][i, j], w_h, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(terms["w_x"][i, j], w_x, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(terms["b"][i, j], delta.sum(0), rtol=1e-10, atol=1e-14)


def test_per_step_copies_agree_with_the_lab_recursion():
    with jax.enable_x64(True):
        cell, params, xs, targets = _elman_case(2)
        lab = bptt.elman_contributions(params, xs, _sse(targets))
        auto = bptt.contributions(cell, params, xs, _sse(targets), weights=("w_h", "w_x", "b"))
        for name in ("w_h", "w_x", "b"):
            np.testing.assert_allclose(auto[name], lab[name], rtol=1e-11, atol=1e-14)
        # no head: y_t = h_t
        del params["w_y"], params["b_y"]
        plain = rnn.elman(H)
        tg = targets[..., :1] + jnp.zeros((B, T, H), jnp.float64)
        lab = bptt.elman_contributions(params, xs, _sse(tg))
        auto = bptt.contributions(plain, params, xs, _sse(tg))
        np.testing.assert_allclose(auto["w_h"], lab["w_h"], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gated_cell_contributions_sum_to_jax_grad(kind):
    with jax.enable_x64(True):
        cell = {"lstm": rnn.lstm, "gru": rnn.gru}[kind](H)
        k = jax.random.split(jax.random.PRNGKey(3), 4)
        params = _f64(cell.init(k[0], D))
        xs = jax.random.normal(k[1], (B, T, D), jnp.float64)
        head = jax.random.normal(k[2], (H, O), jnp.float64)
        targets = jax.random.normal(k[3], (B, T, O), jnp.float64)
        loss = lambda hs: 0.5 * jnp.sum(jnp.square(jnp.tanh(hs @ head) - targets))
        weights = ("w_h", "w_x", "b") if kind == "lstm" else ("w_h", "w_x", "b_h", "b_x")
        terms = bptt.contributions(cell, params, xs, loss, weights=weights)
        assert terms["w_h"].shape == (T, T) + params["w_h"].shape
        grads = jax.grad(lambda p: loss(rnn.unroll(cell, p, xs)[0]))(params)  # the fused path
        for name in weights:
            np.testing.assert_allclose(terms[name].sum((0, 1)), grads[name], rtol=1e-11, atol=1e-13)
        _assert_causal(terms)
        n = bptt.norms(terms, ["w_h"])
        assert n.shape == (T, T)
        np.testing.assert_allclose(n[2, 5], np.linalg.norm(np.asarray(terms["w_h"][2, 5])), rtol=1e-12)


def test_jit_equals_eager_and_bad_inputs():
    with jax.enable_x64(True):
        cell, params, xs, targets = _elman_case(4)
        params, xs, targets = jax.tree.map(lambda a: a.astype(jnp.float32), (params, xs, targets))
    f = lambda p, x: bptt.elman_contributions(p, x, _sse(targets))
    eager, jitted = f(params, xs), jax.jit(f)(params, xs)
    np.testing.assert_allclose(jitted["w_h"], eager["w_h"], rtol=1e-4, atol=1e-6)
    with pytest.raises(ShapeError, match="xs"):
        bptt.elman_contributions(params, xs[0], _sse(targets))
    with pytest.raises(ShapeError, match="w_x"):
        bptt.elman_contributions(params, xs[..., :2], _sse(targets))
    with pytest.raises(KeyError, match="w_q"):
        bptt.contributions(cell, params, xs, _sse(targets), weights=("w_q",))


def test_lag_profile_and_decay_rate_by_hand():
    m = np.array([[4.0, 2.0, 1.0],
                  [0.0, 6.0, 4.0],
                  [0.0, 0.0, 8.0]])
    np.testing.assert_allclose(bptt.lag_profile(m), [6.0, 3.0, 1.0])
    np.testing.assert_allclose(bptt.lag_profile(m, outputs=[1, 2]), [7.0, 3.0, 1.0])
    np.testing.assert_allclose(bptt.lag_profile(m, first_step=1), [7.0, 4.0])
    np.testing.assert_allclose(bptt.decay_rate(3.0 * 0.7 ** np.arange(30)), 0.7, rtol=1e-9)
    assert np.isnan(bptt.decay_rate([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="square"):
        bptt.lag_profile(np.zeros((2, 3)))


def test_bptt_experiment_smoke(tmp_path):
    from dlmodels import experiment
    _, results = experiment.run("bptt", ["--length", "8", "--delay", "3", "--hidden-size", "6",
                                         "--train-steps", "2", "--eval-every", "2",
                                         "--n-sequences", "2", "--n-test", "10"],
                                run_dir=str(tmp_path))
    assert set(results["cells"]) == {"rnn", "lstm"}
    assert results["rnn_lab_vs_autodiff_max_rel_diff"] < 1e-4
    for r in results["cells"].values():
        assert 0.0 <= r["test_accuracy"] <= 1.0 and np.isfinite(r["test_loss"])
        for key in ("init_w_h", "trained_w_h", "init_w_x", "trained_w_x"):
            s = r[key]
            lags = 7 if key.endswith("w_h") else 8  # W_h's step 0 (h_{-1} = 0) is left out
            assert len(s["lag_profile"]) == lags and len(s["decay_per_lag"]) == lags - 1
            assert np.all(np.isfinite(s["lag_profile"])) and s["lag_profile"][0] > 0
            assert 0 < s["decay_rate"] < 10 and 0 <= s["reach_1e-2"] < lags
    norms = json.loads((tmp_path / "norms.json").read_text())
    assert np.asarray(norms["lstm"]["trained"]["w_h"]).shape == (8, 8)
    for png in results["plots"]:
        assert (tmp_path / png).stat().st_size > 1000
