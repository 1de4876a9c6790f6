"""Smoke test of experiments/sequence_mnist.py: a tiny run on fake MNIST-shaped data (no data
cache needed), checking what it writes against independent values: the saved row-LSTM's test
accuracy and loss recomputed by a numpy LSTM, the quoted published numbers against the papers. The ``permuted`` variant stands for both pixel variants
(``pixels`` runs the same code without the permutation), which keeps the test under 30 s."""

import json

import numpy as np
import pytest

import numpy_nets
from dlmodels import experiment
from dlmodels.train import Checkpointer

SIZES = {"train": 64, "valid": 32, "test": 40}


def fake_load(name, split):
    """Random MNIST-shaped arrays: x float32 [N, 784] in [0, 1], y int32 [N] in 0..9."""
    rng = np.random.default_rng(list(SIZES).index(split))
    n = SIZES[split]
    return rng.uniform(size=(n, 784)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)


TINY = {"variants": ("rows", "permuted"), "hidden_size": 8, "epochs": 2, "batch_size": 16,
        "pixel_hidden_size": 4, "pixel_steps": 4, "pixel_batch_size": 16, "pixel_evals": 2,
        "pixel_eval_examples": 16}


@pytest.mark.slow
def test_sequence_mnist_smoke(tmp_path, monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)
    run_dir, results = experiment.run("sequence_mnist", TINY, run_dir=str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert set(on_disk) == set(results)
    assert set(results) >= {"rows", "permuted", "published", "target_accuracy",
                            "target_met", "plots", "total_seconds"}
    assert results["n_train"] == 64 and results["n_test"] == 40
    assert "pixels" not in results  # not asked for
    for name, T, D in (("rows", 28, 28), ("permuted", 784, 1)):
        row = results[name]
        assert row["train_seconds"] > 0
        assert (row["sequence_length"], row["input_size"]) == (T, D)
        assert row["test_error"] == pytest.approx(1.0 - row["test_accuracy"], abs=1e-6)
        scaled = 40 * row["test_accuracy"]                      # k of the 40 test sequences
        assert scaled == pytest.approx(round(scaled), abs=1e-4)
    # the saved row model (an LSTM over the 28 rows, a softmax head on the last step), run by numpy
    params, _ = Checkpointer(tmp_path / "rows" / "checkpoints").restore_params()
    x_test, y_test = fake_load("mnist", "test")
    logits = numpy_nets.lstm_last_step_classifier(params, x_test.reshape(-1, 28, 28))
    assert results["rows"]["test_accuracy"] == pytest.approx(numpy_nets.accuracy(logits, y_test),
                                                             abs=1e-6)
    assert results["rows"]["test_loss"] == pytest.approx(numpy_nets.cross_entropy(logits, y_test),
                                                         rel=1e-4)
    assert results["rows"]["steps"] == 2 * (64 // 16)
    assert results["target_met"] is results["rows"]["target_met"]
    budget = results["permuted"]["budget"]
    assert budget["steps"] == 4 and budget["examples_seen"] == 4 * 16
    # the quoted test accuracies, as printed in the papers (permuted pixel MNIST)
    published = results["permuted"]["published"]
    assert published["Le et al. 2015 (sec. 4.2) IRNN"] == 0.82
    assert published["Arjovsky et al. 2016 (sec. 4.3) uRNN"] == 0.914
    assert published["Cooijmans et al. 2016 (Table 1) BN-LSTM"] == 0.954
    # one learning-curve point per chunk of the budget, the chunks resuming one another
    metrics = [json.loads(line) for line in
               (tmp_path / "permuted" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]
    assert len((tmp_path / "rows" / "metrics.jsonl").read_text().splitlines()) == 2
    for path in results["plots"].values():
        assert (tmp_path / path).stat().st_size > 1000
    assert set(results["plots"]) == {"rows", "pixels"}


def test_config_rejects_unknown_variants():
    from dlmodels.experiments.sequence_mnist import Config

    with pytest.raises(ValueError, match="variants"):
        Config(variants=("rows", "columns"))
    with pytest.raises(ValueError, match="pixel_evals"):
        Config(pixel_steps=2, pixel_evals=3)
