"""Deep belief nets: greedy stacking, the MLP initialisation, and ancestral sampling against
exact enumeration on a tiny net."""

import dataclasses
import itertools

import jax
import numpy as np
import pytest

from dlmodels.autoencoders.deep import layer_seed
from dlmodels.energy import dbn, rbm
from dlmodels.mlp import mlp


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_rbm(key, n_v, n_h, scale=1.5):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"w": scale * jax.random.normal(k1, (n_v, n_h)),
            "b_visible": jax.random.normal(k2, (n_v,)), "b_hidden": jax.random.normal(k3, (n_h,))}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    prototypes = (rng.random((4, 12)) < 0.4).astype(np.float32)
    return prototypes[rng.integers(0, 4, 400)]


def test_pretrain_trains_each_rbm_on_the_hidden_probabilities_below(data):
    config = rbm.RBMTrainConfig(epochs=3, batch_size=20)
    seen = []
    layers, histories = dbn.pretrain(jax.random.PRNGKey(0), data, (12, 8, 5), config,
                                     callback=lambda layer, record: seen.append((layer, record)))
    assert [l["w"].shape for l in layers] == [(12, 8), (8, 5)]
    assert len(histories) == 2 and all(len(h) == 3 for h in histories)
    assert seen == [(i, r) for i, h in enumerate(histories) for r in h]   # callback(layer, record)
    # the second RBM, retrained by hand on numpy's p(h | v) of the first, gives the same params
    w, c = np.asarray(layers[0]["w"], np.float64), np.asarray(layers[0]["b_hidden"], np.float64)
    h1 = _sigmoid(data @ w + c).astype(np.float32)
    model = rbm.rbm(8, 5)
    second = rbm.train(model, h1, dataclasses.replace(
        config, seed=layer_seed(jax.random.PRNGKey(0), 1), data_seed=1),
        init_fn=lambda k: model.init(k, std=0.01, b_visible=rbm.base_rate_bias(h1))).state.params
    for name in ("w", "b_visible", "b_hidden"):
        np.testing.assert_allclose(layers[1][name], second[name], atol=2e-4)


def test_pretrain_resumes_layer_by_layer(data, tmp_path):
    config = rbm.RBMTrainConfig(epochs=2, batch_size=20, method="pcd", n_chains=20)
    straight, _ = dbn.pretrain(jax.random.PRNGKey(0), data, (12, 8, 5), config)
    # a run killed after the first RBM: the second layer's directory never written
    dbn.pretrain(jax.random.PRNGKey(0), data, (12, 8), config, run_dir=str(tmp_path))
    resumed, histories = dbn.pretrain(jax.random.PRNGKey(0), data, (12, 8, 5), config,
                                      run_dir=str(tmp_path), resume=True)
    assert [len(h) for h in histories] == [2, 2]
    for a, b in zip(straight, resumed, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_pretrain_rejects_bad_arguments(data):
    config = rbm.RBMTrainConfig(epochs=1, batch_size=20)
    with pytest.raises(ValueError, match="layer_sizes"):
        dbn.pretrain(jax.random.PRNGKey(0), data, (12,), config)
    with pytest.raises(ValueError, match="configs"):
        dbn.pretrain(jax.random.PRNGKey(0), data, (12, 8, 5), [config])
    with pytest.raises(ValueError, match=r"\[N, n_0\].*\[\*, 10\]"):
        dbn.pretrain(jax.random.PRNGKey(0), data, (10, 8), config)


def test_mlp_initialised_from_the_dbn_computes_the_up_pass():
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    layers = [_random_rbm(keys[0], 6, 5), _random_rbm(keys[1], 5, 4)]
    params = dbn.to_mlp_params(layers, keys[2], 3)
    assert params["layer_2"]["w"].shape == (4, 3) and not np.any(params["layer_2"]["b"])
    x = np.random.default_rng(1).random((7, 6)).astype(np.float32)
    h = x.astype(np.float64)
    for layer in layers:
        h = _sigmoid(h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b_hidden"]))
    _, hidden = mlp((6, 5, 4, 3), activation="sigmoid").apply(params, x, return_hidden=True)
    np.testing.assert_allclose(hidden[-1], h, atol=1e-5)
    np.testing.assert_allclose(dbn.up_pass(layers, x)[-1], h, atol=1e-5)
    with pytest.raises(ValueError, match="key"):
        dbn.to_mlp_params(layers, None, 3)


def _states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def test_ancestral_samples_have_the_exact_marginal_mean():
    """E[p(v | h_1)] under the DBN's generative model, by enumeration: the top RBM's marginal over
    h_2 (its visible layer), then p(h_1 | h_2) and p(v | h_1) of the directed layers."""
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    layers = [_random_rbm(keys[0], 4, 3, 1.0), _random_rbm(keys[1], 3, 3, 1.0),
              _random_rbm(keys[2], 3, 2, 1.0)]
    top = {k: np.asarray(v, np.float64) for k, v in layers[2].items()}
    h2, h3 = _states(3), _states(2)
    log_joint = h2 @ top["w"] @ h3.T + (h2 @ top["b_visible"])[:, None] + (h3 @ top["b_hidden"])[None]
    p_h2 = np.exp(log_joint).sum(1)
    p_h2 /= p_h2.sum()
    mid = {k: np.asarray(v, np.float64) for k, v in layers[1].items()}
    h1 = _states(3)
    q = _sigmoid(h2 @ mid["w"].T + mid["b_visible"])                      # p(h1_i = 1 | h2)
    p_h1_given_h2 = np.prod(np.where(h1[None] == 1, q[:, None], 1 - q[:, None]), -1)
    p_h1 = p_h2 @ p_h1_given_h2
    bottom = {k: np.asarray(v, np.float64) for k, v in layers[0].items()}
    expected = p_h1 @ _sigmoid(h1 @ bottom["w"].T + bottom["b_visible"])
    samples = jax.jit(dbn.sample, static_argnums=(2, 3))(jax.random.PRNGKey(3), layers, 40000, 30)
    assert samples.shape == (40000, 4)
    np.testing.assert_allclose(np.mean(np.asarray(samples), 0), expected, atol=0.01)
