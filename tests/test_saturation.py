"""One-step smoke test of the saturation experiment (tiny sizes), and its finding detector."""

import json
import os

import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.experiments import saturation


@pytest.mark.slow
def test_saturation_smoke(tmp_path):
    overrides = {"steps": (2,), "record_every": 1, "hidden_size": 8, "n_hidden_layers": 3,
                 "n_stats_examples": 20, "hist_bins": 10,
                 "activations": ("sigmoid", "tanh"), "learning_rates": (1.0, 0.1)}
    run_dir, results = experiment.run("saturation", overrides, run_dir=str(tmp_path))
    with open(os.path.join(run_dir, "results.json")) as f:
        saved = json.load(f)
    assert {"dataset", "variants", "sigmoid_finding", "plots", "seconds"} <= set(saved)
    assert set(saved["variants"]) == {"sigmoid/standard", "sigmoid/glorot", "tanh/standard",
                                      "tanh/glorot"}
    for summary in saved["variants"].values():
        assert 0.0 <= summary["test_error"] <= 1.0
        assert len(summary["layer_mean"]["end"]) == 3
        assert len(summary["preact_grad_var"]["init"]) == 4  # 3 hidden + output layer
    assert {"top_mean_min", "top_mean_min_step", "observed", "recovered"} <= set(
        saved["sigmoid_finding"])
    for name in ("sigmoid_activations.png", "percentiles_tanh.png",
                 "activation_histograms_tanh.png", "activation_histograms_init_tanh.png",
                 "gradient_histograms_tanh.png", "gradient_variance.png", "curves.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 1000, name
    assert all(os.path.exists(os.path.join(run_dir, p)) for p in saved["plots"])
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 4 * 3  # 4 variants x (initial + 2 records)
    assert rows[0]["train_loss"] is None and rows[1]["step"] == 1


def _history(top, lower):
    steps = np.arange(len(top)) * 10
    mean = np.column_stack([np.broadcast_to(l, len(top)) for l in lower] + [top])
    return {"step": steps, "layer_mean": mean}


def test_sigmoid_finding_detector():
    top = np.array([0.5, 0.05, 0.02, 0.01, 0.02, 0.3])
    found = saturation.sigmoid_finding(_history(top, [0.5, 0.52, 0.6]), 0.1, 500)
    assert found["observed"] and found["recovered"]
    assert found["first_step_below_level"] == 10 and found["top_mean_min_step"] == 30
    assert found["recovery_step"] == 50 and found["top_mean_min"] == pytest.approx(0.01)
    # lower layers not ordered upwards: not the paper's picture
    assert not saturation.sigmoid_finding(_history(top, [0.7, 0.5, 0.6]), 0.1, 500)["observed"]
    # saturation too late (after 10 % of the updates)
    assert not saturation.sigmoid_finding(_history(top, [0.5, 0.52, 0.6]), 0.1, 50)["observed"]
    # never saturates
    flat = saturation.sigmoid_finding(_history(np.full(6, 0.5), [0.5] * 3), 0.1, 500)
    assert not flat["observed"] and flat["first_step_below_level"] is None


def test_config_checks():
    with pytest.raises(ValueError, match="one learning_rates value per activation"):
        saturation.Config(activations=("sigmoid",), learning_rates=(1.0, 0.1), steps=(10,),
                          record_every=5)
    with pytest.raises(ValueError, match="multiples of record_every"):
        saturation.Config(steps=(10,), record_every=3)
    config = saturation.Config(activations=("sigmoid", "relu"), learning_rates=(0.5,),
                               steps=(100, 50), record_every=50)
    assert config.per_activation() == {"sigmoid": (0.5, 100), "relu": (0.5, 50)}
    # the command line gives tuples
    from dlmodels.experiment import parse_overrides
    assert parse_overrides(saturation.Config, ["--steps", "500", "--dataset", "mnist"]) == {
        "steps": (500,), "dataset": "mnist"}
