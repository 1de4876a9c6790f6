"""Smoke runs of the autoencoder experiments on scikit-learn's digits (8x8, no download): tiny
configs, checking what they write and the relations that must hold at any budget."""

import json

import numpy as np
import pytest

from dlmodels import experiment


def test_linear_ae_pca_smoke(tmp_path):
    _, results = experiment.run("linear_ae_pca", {"dataset": "digits", "n_train": 500, "ks": (2, 4),
                                                  "steps": 400, "record_every": 200,
                                                  "learning_rate": 1e-2}, run_dir=str(tmp_path))
    for k in ("2", "4"):
        row = results["ks"][k]
        # PCA is the optimum of the squared error: the autoencoder cannot beat it
        assert row["autoencoder_error"] >= row["pca_error"] * (1 - 1e-4)
        assert 0.0 <= row["max_angle_decoder_degrees"] <= 90.0
        assert len(row["angles_decoder_degrees"]) == int(k)
    assert (tmp_path / results["angles_png"]).exists()
    assert (tmp_path / results["components_png"]).exists()


def test_principal_angles_against_a_rotation_by_a_known_angle():
    from dlmodels.experiments.linear_ae_pca import principal_angles

    e = np.eye(4)
    t = np.radians(30.0)
    a = e[:, :2]
    b = np.stack([e[:, 0], np.cos(t) * e[:, 1] + np.sin(t) * e[:, 2]], 1) @ np.array([[2.0, 1.0],
                                                                                      [0.0, 3.0]])
    np.testing.assert_allclose(principal_angles(a, b), [0.0, 30.0], atol=1e-6)


@pytest.mark.slow
def test_deep_autoencoder_smoke(tmp_path):
    _, results = experiment.run("deep_autoencoder", {
        "dataset": "digits", "hidden": (16,), "code": 4, "code_2d": 2, "pretrain_epochs": 1,
        "finetune_epochs": 1, "finetune_epochs_2d": 1, "n_train": 400}, run_dir=str(tmp_path))
    row = results["code_30"]
    assert list(row["layer_sizes"]) == [64, 16, 4]
    for name in ("pretrained_finetuned", "unfolded_before_finetuning", "random_init_finetuned", "pca"):
        assert np.isfinite(row[name]) and row[name] > 0
    assert row["beats_pca"] == (row["pretrained_finetuned"] < row["pca"])
    assert list(results["code_2d"]["layer_sizes"]) == [64, 16, 2]
    for png in ("scatter_png", "reconstructions_png", "curves_png"):
        assert (tmp_path / results[png]).exists()
    assert json.loads((tmp_path / "results.json").read_text())["published"]["pca"] == 13.87


@pytest.mark.slow
def test_sdae_smoke(tmp_path):
    _, results = experiment.run("sdae", {"dataset": "digits", "hidden": (16, 8), "levels": (0.1, 0.2),
                                         "pretrain_epochs": 1, "finetune_epochs": 1,
                                         "n_train": 500}, run_dir=str(tmp_path))
    assert list(results["layer_sizes"]) == [64, 16, 8, 10]
    for init in ("pretrained", "random"):
        assert 0.0 <= results[init]["test_error_mean"] <= 1.0
    assert [r["level"] for r in results["pretraining"][0]] == [0.1, 0.2]
    assert (tmp_path / results["features_png"]).exists()


def test_experiment_configs_reject_bad_values():
    from dlmodels.experiments import deep_autoencoder, linear_ae_pca, sdae

    with pytest.raises(ValueError, match="one masking level per layer"):
        sdae.Config(hidden=(10, 10), levels=(0.1,))
    with pytest.raises(ValueError, match="ks"):
        linear_ae_pca.Config(ks=(0,))
    with pytest.raises(ValueError, match="learning rates"):
        deep_autoencoder.Config(learning_rate=0.0)
