"""The autoencoder zoo experiment: a smoke run on fake MNIST-shaped data (no data cache needed),
its measurements against independent numpy / autodiff references, and its linear probe on a
problem with a known answer."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.autoencoders import autoencoder
from dlmodels.experiments.autoencoder_zoo import (METRICS, VARIANTS, Config, code_metrics, linear_probe)

SIZES = {"train": 96, "valid": 32, "test": 40}


def fake_load(name, split):
    """Random MNIST-shaped arrays: x float32 [N, 784] in [0, 1], y int32 [N] in 0..9."""
    rng = np.random.default_rng(list(SIZES).index(split))
    n = SIZES[split]
    return rng.uniform(size=(n, 784)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)


def _is_fraction_of(values, n):
    scaled = np.asarray(values, np.float64) * n
    return bool(np.allclose(scaled, np.round(scaled), atol=1e-3) and np.all((0 <= scaled) & (scaled <= n)))


@pytest.mark.slow
def test_autoencoder_zoo_smoke(tmp_path, fake_data):
    overrides = {"n_hidden": 16, "epochs": 1, "batch_size": 32, "n_seeds": 2, "probe_epochs": 2,
                 "probe_batch_size": 32}
    _, results = experiment.run("autoencoder_zoo", overrides, run_dir=str(tmp_path))
    assert results["n_train"] == 96 and results["n_test"] == 40 and results["seeds"] == [0, 1]
    assert list(results["table"]) == [*VARIANTS, "raw pixels"]
    x_test = fake_load("mnist", "test")[0]
    predict_zero = np.mean(np.sum(x_test ** 2, axis=-1))      # the error of reconstructing 0
    for name in VARIANTS:
        row = results["per_seed"][name]
        for metric in METRICS:
            values = np.asarray(row[metric])
            assert values.shape == (2,) and np.all(np.isfinite(values)), (name, metric)
            assert results["table"][name][metric]["mean"] == pytest.approx(values.mean())
            assert results["table"][name][metric]["std"] == pytest.approx(values.std())
        # sigmoid outputs in (0, 1) on inputs in [0, 1]: below the all-zero reconstruction, above 0
        for metric in ("clean_error", "masked_error"):
            assert np.all((0 < np.asarray(row[metric])) & (np.asarray(row[metric]) < predict_zero))
        # fractions of the 40 x 16 codes, and of the 40 test digits
        assert _is_fraction_of(row["inactive_fraction"], 40 * 16)
        assert _is_fraction_of(row["probe_accuracy"], 40)
        # sigmoid codes: the mean activation of the units lies in (0, 1)
        assert np.all((0 < np.asarray(row["mean_activation"])) & (np.asarray(row["mean_activation"]) < 1))
    assert len(results["per_seed"]["raw pixels"]["probe_accuracy"]) == 1
    assert _is_fraction_of(results["per_seed"]["raw pixels"]["probe_accuracy"], 40)
    assert results["table_markdown"].count("\n") == 1 + 1 + len(VARIANTS)   # header, rule, rows
    for png in (results["features_png"], results["reconstructions_png"]):
        assert (tmp_path / png).exists()
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [h["variant"] for h in history] == list(VARIANTS)               # one epoch each
    assert json.loads((tmp_path / "results.json").read_text())["table"].keys() == results["table"].keys()


def test_code_metrics_match_numpy_and_autodiff_jacobian():
    model = autoencoder(12, 5)
    params = model.init(jax.random.PRNGKey(3))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(7, 12)).astype(np.float32)
    x_masked = np.where(rng.uniform(size=x.shape) < 0.3, 0.0, x).astype(np.float32)
    got = code_metrics(model.apply, params, jnp.asarray(x), jnp.asarray(x_masked))

    p = jax.tree.map(np.asarray, params)
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))
    h = sigmoid(x @ p["encoder"]["w"] + p["encoder"]["b"])
    decode = lambda code: sigmoid(code @ p["decoder"]["w"] + p["decoder"]["b"])
    h_masked = sigmoid(x_masked @ p["encoder"]["w"] + p["encoder"]["b"])
    np.testing.assert_allclose(got["clean_error"], np.mean(np.sum((x - decode(h)) ** 2, -1)), rtol=1e-5)
    # the masked reconstruction is scored against the CLEAN image
    np.testing.assert_allclose(got["masked_error"], np.mean(np.sum((x - decode(h_masked)) ** 2, -1)),
                               rtol=1e-5)
    np.testing.assert_allclose(got["mean_activation"], h.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["inactive_fraction"], np.mean(h < 0.1), rtol=1e-6)
    jacobian = jax.vmap(jax.jacfwd(lambda v: jax.nn.sigmoid(v @ params["encoder"]["w"]
                                                            + params["encoder"]["b"])))(jnp.asarray(x))
    np.testing.assert_allclose(got["jacobian_norm"], np.mean(np.sum(np.asarray(jacobian) ** 2, (1, 2))),
                               rtol=1e-4)


def test_linear_probe_separates_what_is_separable_per_feature_set():
    """Two feature sets probed at once: one linearly separable (three well-apart clusters), one
    pure noise; the probe must fit the first perfectly and the second at about chance."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600).astype(np.int32)
    centres = 4.0 * np.eye(3, 6, dtype=np.float32)
    separable = centres[y] + 0.3 * rng.normal(size=(600, 6)).astype(np.float32)
    noise = rng.normal(size=(600, 6)).astype(np.float32)
    features = np.stack([separable, noise])                                 # (2, 600, 6)
    out = linear_probe(features[:, :400], y[:400], features[:, 400:], y[400:], epochs=20,
                       batch_size=50, learning_rate=0.05, key=jax.random.PRNGKey(0), n_classes=3)
    assert out["test_accuracy"][0] == 1.0 and out["train_accuracy"][0] == 1.0
    assert out["test_accuracy"][1] < 0.5


@pytest.mark.parametrize("change", [{"n_seeds": 0}, {"n_hidden": 0}, {"denoising_level": 1.5},
                                    {"test_mask_level": -0.1}, {"sparsity_target": 1.0},
                                    {"contractive_weight": -1.0}, {"learning_rate": 0.0}])
def test_config_is_validated(change):
    with pytest.raises(ValueError):
        Config(**change)
