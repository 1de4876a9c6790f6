"""Smoke run of experiments/capsnet_mnist.py on fake MNIST-shaped data (no data cache needed), a
tiny CapsNet: the keys and files it writes, numbers that can be recomputed from what it saved, and a
run stopped after its first checkpoint and resumed, equal to the uninterrupted run."""

import json
import shutil

import numpy as np
import pytest

import fake_mnist
from dlmodels import experiment

SIZES = {"train": 96, "valid": 32, "test": 40}
TINY = {"conv_channels": 4, "primary_types": 2, "epochs": 2, "batch_size": 16,
        "compare_epochs": 1, "max_test_shift": 1, "checkpoint_every": 6}


fake_load = fake_mnist.loader(SIZES)


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)


def _without_times(results: dict) -> dict:
    out = json.loads(json.dumps(results))
    for key in ("train_seconds", "wall_seconds"):
        out.pop(key)
    for entry in out["history"]:
        entry.pop("seconds")
    for row in out["routing_comparison"].values():
        if isinstance(row, dict):
            row.pop("train_seconds")
    return out


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_capsnet_smoke_and_resume(tmp_path):
    run_dir, results = experiment.run("capsnet_mnist", TINY, run_dir=str(tmp_path / "a"))
    for name in ("config.json", "results.json", "metrics.jsonl", "curves.png",
                 "reconstructions.png", "figure4_perturbations.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0, name
    assert results["figure4_png"] == "figure4_perturbations.png"
    assert results["n_train"] == 96 and results["epochs"] == 2
    # conv1 9x9x1x4 + 4; PrimaryCaps 9x9x4x16 + 16; 6x6x2 = 72 capsules x 10 x 16 x 8; decoder
    decoder = (160 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
    assert results["n_params"] == 81 * 4 + 4 + 81 * 4 * 16 + 16 + 72 * 10 * 16 * 8 + decoder
    # accuracies are averages of 0/1 outcomes over the 40 test digits
    assert results["test_error"] == pytest.approx(1 - results["test_accuracy"], abs=1e-6)
    assert np.isclose(results["test_accuracy"] * 40, round(results["test_accuracy"] * 40))
    assert results["shifts"] == [0, 1] and len(results["accuracy_by_shift"]) == 2
    assert results["accuracy_by_shift"][0] == pytest.approx(results["test_accuracy"], abs=1e-6)
    shifted = results["accuracy_by_shift"][1] * 160                 # 4 directions x 40 digits
    assert np.isclose(shifted, round(shifted))
    assert set(results["routing_comparison"]) == {"epochs", "r=1", "r=3"}
    assert all(0 <= results["routing_comparison"][r]["test_error"] <= 1 for r in ("r=1", "r=3"))
    assert results["paper_table_1_test_error_percent"]["CapsNet, routing 3, reconstruction"] == \
        "0.25 +- 0.005"
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert results["history"] == logged and [h["step"] for h in logged] == [6, 12]
    assert all(np.isfinite(h["train_loss"]) for h in logged)
    assert {"eval_error", "eval_margin", "eval_reconstruction"} <= set(logged[0])

    # stopped after its first checkpoint (step 6 of 12) and resumed: the same results
    stopped = tmp_path / "b"
    shutil.copytree(tmp_path / "a", stopped)
    shutil.rmtree(stopped / "checkpoints" / "12")
    (stopped / "results.json").unlink()
    _, resumed = experiment.run("capsnet_mnist", [], run_dir=str(stopped), resume=True)
    assert _without_times(resumed) == _without_times(results)


def test_config_checks():
    with pytest.raises(ValueError, match="dataset"):
        experiment.run("capsnet_mnist", {"dataset": "cifar10"}, run_dir="/nonexistent/never")
    with pytest.raises(ValueError, match="compare_epochs"):
        experiment.run("capsnet_mnist", {"compare_epochs": 0}, run_dir="/nonexistent/never")
    # the option is usable from the command line: no paired runs
    assert experiment.parse_overrides(experiment.load("capsnet_mnist").Config,
                                      ["--compare_routing", "false"]) == {"compare_routing": False}
