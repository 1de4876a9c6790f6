"""Smoke runs of the convolutional-network experiments on fake MNIST-shaped data (no data cache
needed): tiny configs, checking what they write against what can be recomputed without the
library (the saved model's test accuracy by a numpy forward pass, the logged history)."""

import json

import numpy as np
import pytest

import fake_mnist
import numpy_nets
from dlmodels import experiment
from dlmodels.train import Checkpointer

SIZES = {"train": 96, "valid": 32, "test": 40}


fake_load = fake_mnist.loader(SIZES)


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)


def _is_fraction_of(values, n):
    """Every value is k / n for an integer k: an average of 0/1 outcomes over the n test images."""
    scaled = np.asarray(values, np.float64) * n
    return np.allclose(scaled, np.round(scaled), atol=1e-4) and np.all((scaled >= 0) & (scaled <= n))


@pytest.mark.parametrize("name, overrides, forward", [
    ("cnn_mnist", {"epochs": 1, "batch_size": 32}, numpy_nets.lenet5_relu_max),
    ("cnn_fashion", {"epochs": 1, "batch_size": 32, "channels": (4, 8), "hidden": 16},
     numpy_nets.convnet_max),
])
@pytest.mark.slow
def test_classifier_experiments_smoke(tmp_path, name, overrides, forward):
    _, results = experiment.run(name, overrides, run_dir=str(tmp_path))
    # the saved model, evaluated by numpy on the test split, has the reported accuracy
    params, _ = Checkpointer(tmp_path / "checkpoints").restore_params()
    x, y = fake_load(name, "test")
    logits = forward(params, x.reshape(-1, 28, 28, 1))
    assert results["test_accuracy"] == pytest.approx(numpy_nets.accuracy(logits, y), abs=1e-6)
    assert results["test_error"] == pytest.approx(1.0 - results["test_accuracy"], abs=1e-6)
    assert results["n_train"] == 96 and results["epochs"] == 1
    assert results["n_params"] == sum(np.size(a) for layer in params.values() for a in layer.values())
    # the history is the metrics log, one entry for the one epoch of 96 // 32 steps
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert results["history"] == logged and [h["step"] for h in logged] == [3]
    assert np.isfinite(logged[0]["train_loss"])
    # the epoch's evaluation on the validation split is the final model's numpy cross-entropy
    x_valid, y_valid = fake_load(name, "valid")
    valid_logits = forward(params, x_valid.reshape(-1, 28, 28, 1))
    assert logged[0]["eval_loss"] == pytest.approx(numpy_nets.cross_entropy(valid_logits, y_valid),
                                                   rel=1e-4)
    assert logged[0]["eval_error"] == pytest.approx(1 - numpy_nets.accuracy(valid_logits, y_valid),
                                                    abs=1e-6)
    assert (tmp_path / results["curves_png"]).stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["test_accuracy"] == results["test_accuracy"]


@pytest.mark.slow
def test_fgsm_smoke(tmp_path):
    _, results = experiment.run("fgsm", {"softmax_epochs": 1, "cnn_epochs": 1, "batch_size": 32,
                                         "eps": (0.1, 0.25)}, run_dir=str(tmp_path))
    assert set(results["models"]) == {"softmax, plain", "softmax, adversarial", "cnn, plain",
                                      "cnn, adversarial"}
    for row in results["models"].values():
        assert set(row) >= {"clean", "eps=0.1", "eps=0.25"}
        assert _is_fraction_of([row[k]["error"] for k in ("clean", "eps=0.1", "eps=0.25")], 40)
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
        # shift 0: the 40 test images; shift k > 0: the mean over 4 directions, 160 outcomes
        assert _is_fraction_of(row["accuracy_by_shift"][0], 40)
        assert _is_fraction_of(row["accuracy_by_shift"][1:], 160)
        np.testing.assert_allclose(row["mean_accuracy_by_shift"],
                                   np.mean(row["accuracy_by_shift"], axis=1), rtol=1e-6)
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
        assert _is_fraction_of(row["train_accuracy"], 64) and _is_fraction_of(row["test_accuracy"], 40)
    assert (tmp_path / "d" / dropout["curves_png"]).exists()
