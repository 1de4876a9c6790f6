"""Per-layer MLP statistics against numpy: the forward pass, the delta rule, saturation counts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import losses
from dlmodels.analysis import mlp_stats
from dlmodels.mlp import mlp
from dlmodels.plots import plot_layer_histograms

NUMPY_F = {
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda h: h * (1 - h)),
    "tanh": (np.tanh, lambda h: 1 - h ** 2),
    "relu": (lambda a: np.maximum(a, 0), lambda h: (h > 0).astype(float)),
}


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _numpy_forward(params, x, f):
    """Hidden layers h_l = f(h_{l-1} W_l + b_l) and output logits, in numpy."""
    names = mlp_stats.layer_names(params)
    ws = [np.asarray(params[n]["w"]) for n in names]
    bs = [np.asarray(params[n]["b"]) for n in names]
    hs = [x]
    for w, b in zip(ws[:-1], bs[:-1]):
        hs.append(f(hs[-1] @ w + b))
    return ws, hs, hs[-1] @ ws[-1] + bs[-1]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("activation", sorted(NUMPY_F))
def test_hidden_layers_equal_numpy_forward(activation, x64):
    model = mlp((6, 9, 8, 7, 4), activation=activation, b_init="normal")
    params = model.init(jax.random.PRNGKey(0), jnp.float64)
    x = np.random.default_rng(0).normal(size=(11, 6))
    out, hidden = model.apply(params, x, return_hidden=True)
    _, hs, logits = _numpy_forward(params, x, NUMPY_F[activation][0])
    assert len(hidden) == 3
    for h, ref in zip(hidden, hs[1:]):
        np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(model.apply(params, x), out)  # default unchanged


def test_return_hidden_with_dropout_gives_pre_dropout_values():
    model = mlp((5, 6, 3), activation="sigmoid", dropout_rate=0.5)
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    _, hidden_train = model.apply(params, x, key=jax.random.PRNGKey(2), train=True,
                                  return_hidden=True)
    _, hidden_eval = model.apply(params, x, return_hidden=True)
    np.testing.assert_allclose(hidden_train[0], hidden_eval[0], rtol=1e-6)


LOSSES = {
    # name: (loss_fn(outputs, y) for jax, numpy (loss, dL/d outputs))
    "softmax_ce_mean": (
        lambda z, y: jnp.mean(losses.softmax_cross_entropy(z, y)),
        lambda z, y: (np.mean(-np.log(_softmax(z)[np.arange(len(y)), y])),
                      (_softmax(z) - np.eye(z.shape[1])[y]) / len(y))),
    # couples the examples: not a sum of per-example terms
    "batch_coupled": (
        lambda z, y: jnp.square(jnp.sum(z)),
        lambda z, y: (z.sum() ** 2, 2 * z.sum() * np.ones_like(z))),
}


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(NUMPY_F))
def test_preactivation_gradients_equal_numpy_delta_rule(activation, loss_name, x64):
    model = mlp((5, 7, 6, 4, 3), activation=activation, b_init="normal")
    params = model.init(jax.random.PRNGKey(3), jnp.float64)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5))
    y = rng.integers(0, 3, size=8)
    jax_loss, np_loss = LOSSES[loss_name]
    f, df = NUMPY_F[activation]
    ws, hs, logits = _numpy_forward(params, x, f)
    ref_loss, delta = np_loss(logits, y)
    deltas = [delta]  # dL/da for the output layer, then back down: delta_l = (delta_{l+1} W^T) f'
    for l in range(len(ws) - 1, 0, -1):
        delta = (delta @ ws[l].T) * df(hs[l])
        deltas.insert(0, delta)
    ref_w = [h.T @ d for h, d in zip(hs, deltas)]

    loss, grads, preact = mlp_stats.gradients(model.apply, params, x, y, jax_loss)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    assert len(preact) == 4
    for got, ref in zip(preact, deltas):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)
    for name, ref in zip(mlp_stats.layer_names(params), ref_w):
        np.testing.assert_allclose(grads[name]["w"], ref, rtol=1e-10, atol=1e-14)

    stats = jax.jit(functools.partial(mlp_stats.backprop_statistics, model.apply,
                                      output_loss=jax_loss))(params, x, y)
    np.testing.assert_allclose(stats["preact_grad_norm"], [np.linalg.norm(d) for d in deltas],
                               rtol=1e-10)
    np.testing.assert_allclose(stats["preact_grad_var"], [d.var() for d in deltas], rtol=1e-9,
                               atol=1e-300)
    np.testing.assert_allclose(stats["weight_grad_norm"], [np.linalg.norm(g) for g in ref_w],
                               rtol=1e-10)
    np.testing.assert_allclose(stats["weight_grad_var"], [g.var() for g in ref_w], rtol=1e-9,
                               atol=1e-300)
    np.testing.assert_allclose(stats["preact_grad_percentiles"],
                               [np.percentile(d, [2, 50, 98]) for d in deltas], rtol=1e-9,
                               atol=1e-14)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_saturation_fractions_equal_numpy_counts(activation):
    # large weights: many units saturate, many do not
    model = mlp((10, 40, 30, 5), activation=activation, w_init=jax.nn.initializers.normal(1.5),
                b_init="normal")
    params = model.init(jax.random.PRNGKey(4))
    x = jax.random.normal(jax.random.PRNGKey(5), (64, 10))
    stats = jax.jit(functools.partial(mlp_stats.layer_statistics, model.apply,
                                      activation=activation))(params, x)
    _, hidden = model.apply(params, x, return_hidden=True)
    low, high = mlp_stats.SATURATION_THRESHOLDS[activation]
    for l, h in enumerate(hidden):
        h = np.asarray(h)
        n_low = (h <= low).sum()
        n_high = (h >= high).sum() if high is not None else 0
        assert stats["saturated_low"][l] == pytest.approx(n_low / h.size, abs=1e-7)
        assert stats["saturated_high"][l] == pytest.approx(n_high / h.size, abs=1e-7)
        assert stats["saturated"][l] == pytest.approx((n_low + n_high) / h.size, abs=1e-7)
        assert stats["dead_units"][l] == pytest.approx((h <= low).all(0).mean(), abs=1e-7)
        assert stats["mean"][l] == pytest.approx(h.mean(), rel=1e-5, abs=1e-6)
        assert stats["std"][l] == pytest.approx(h.std(), rel=1e-5)
        np.testing.assert_allclose(stats["percentiles"][l], np.percentile(h, [2, 50, 98]),
                                   rtol=1e-5, atol=1e-6)
        assert 0 < n_low + n_high < h.size  # the test sees both kinds
    if activation == "relu":
        np.testing.assert_array_equal(stats["saturated_high"], 0.0)
        np.testing.assert_allclose(stats["saturated_low"],
                                   [(np.asarray(h) == 0).mean() for h in hidden], atol=1e-7)


def test_explicit_thresholds_and_none():
    hidden = [jnp.array([[0.0, 0.2, 0.5], [0.8, 1.0, 0.3]])]
    stats = mlp_stats.activation_statistics(hidden, thresholds=(0.2, 0.8))
    np.testing.assert_allclose(stats["saturated_low"], [2 / 6])
    np.testing.assert_allclose(stats["saturated_high"], [2 / 6])
    np.testing.assert_allclose(stats["dead_units"], [0.0])
    assert "saturated" not in mlp_stats.activation_statistics(hidden)


def test_histograms_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(30, 4)), rng.normal(2.0, size=(50,))]
    counts, edges = mlp_stats.histograms(values, 12, density=False)
    assert counts.shape == (2, 12) and edges.shape == (13,)
    assert edges[0] == min(v.min() for v in values) and edges[-1] == max(v.max() for v in values)
    for c, v in zip(counts, values):
        np.testing.assert_array_equal(c, np.histogram(v.ravel(), bins=edges)[0])
    dens, edges = mlp_stats.histograms(values, 12, value_range=(-5, 7))
    np.testing.assert_allclose((dens * np.diff(edges)).sum(1), 1.0)

    path = plot_layer_histograms({"a": values, "b": values}, tmp_path / "h.png", log_y=True)
    assert (tmp_path / "h.png").stat().st_size > 1000 and path.endswith("h.png")
