"""Smoke runs of the convolutional-network experiments on fake MNIST-shaped data (no data cache
needed): tiny configs, checking what they write."""

import json

import numpy as np
import pytest

from dlmodels import experiment

SIZES = {"train": 96, "valid": 32, "test": 40}


def fake_load(name, split):
    """Random MNIST-shaped arrays: x float32 [N, 784] in [0, 1], y int32 [N] in 0..9."""
    rng = np.random.default_rng(list(SIZES).index(split))
    n = SIZES[split]
    return rng.uniform(size=(n, 784)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)


@pytest.mark.parametrize("name, overrides", [
    ("cnn_mnist", {"epochs": 1, "batch_size": 32}),
    ("cnn_fashion", {"epochs": 1, "batch_size": 32, "channels": (4, 8), "hidden": 16}),
])
@pytest.mark.slow
def test_classifier_experiments_smoke(tmp_path, name, overrides):
    _, results = experiment.run(name, overrides, run_dir=str(tmp_path))
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert results["test_error"] == pytest.approx(1.0 - results["test_accuracy"])
    assert results["n_train"] == 96 and len(results["history"]) == 1
    assert (tmp_path / results["curves_png"]).exists()
    assert json.loads((tmp_path / "results.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_fgsm_smoke(tmp_path):
    _, results = experiment.run("fgsm", {"softmax_epochs": 1, "cnn_epochs": 1, "batch_size": 32,
                                         "eps": (0.1, 0.25)}, run_dir=str(tmp_path))
    assert set(results["models"]) == {"softmax, plain", "softmax, adversarial", "cnn, plain",
                                      "cnn, adversarial"}
    for row in results["models"].values():
        assert set(row) >= {"clean", "eps=0.1", "eps=0.25"}
        assert all(0.0 <= row[k]["error"] <= 1.0 for k in ("clean", "eps=0.1", "eps=0.25"))
    # the attack on the plain softmax regression can only raise its error
    softmax = results["models"]["softmax, plain"]
    assert softmax["eps=0.25"]["error"] >= softmax["clean"]["error"]
    for png in results["examples_png"]:
        assert (tmp_path / png).exists()


@pytest.mark.slow
def test_translation_invariance_smoke(tmp_path):
    _, results = experiment.run("translation_invariance",
                                {"channels": (4,), "hidden": 8, "epochs": 1, "batch_size": 32,
                                 "max_shift": 2, "n_seeds": 2}, run_dir=str(tmp_path))
    assert results["shifts"] == [0, 1, 2]
    for row in results["networks"].values():
        assert np.asarray(row["accuracy_by_shift"]).shape == (3, 2)     # shifts x seeds
    assert (tmp_path / results["plot"]).exists()


def test_shift_moves_pixels_and_fills_zeros():
    from dlmodels.experiments.translation_invariance import shift
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(shift(x, 1, 0)[0, 1:, :, 0], x[0, :3, :, 0])
    np.testing.assert_array_equal(shift(x, 0, -2)[0, :, :2, 0], x[0, :, 2:, 0])
    assert not shift(x, 1, 0)[0, 0].any() and not shift(x, 0, -2)[0, :, 2:].any()


@pytest.mark.slow
def test_filters_and_dropout_smoke(tmp_path):
    _, filters = experiment.run("filters", {"channels": (4, 8), "hidden": 8, "epochs": 1,
                                            "batch_size": 32}, run_dir=str(tmp_path / "f"))
    assert len(filters["first_layer_kernel_norms"]) == 4
    assert (tmp_path / "f" / filters["filters_png"]).exists()
    assert (tmp_path / "f" / filters["feature_maps_png"]).exists()
    _, dropout = experiment.run("dropout", {"channels": (4,), "hidden": 8, "n_train": 64,
                                            "epochs": 1, "batch_size": 32, "n_seeds": 2},
                                run_dir=str(tmp_path / "d"))
    assert set(dropout["variants"]) == {"no dropout", "dropout 0.5"}
    for row in dropout["variants"].values():
        assert len(row["train_accuracy"]) == 2 and len(row["test_accuracy"]) == 2
    assert (tmp_path / "d" / dropout["curves_png"]).exists()
