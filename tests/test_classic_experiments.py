"""Smoke runs of the perceptron and associative-memory experiments (tiny configs)."""

import json

import numpy as np
import pytest

from dlmodels import experiment


def test_perceptron_smoke(tmp_path):
    _, results = experiment.run("perceptron", ["--dims", "2", "--margins", "0.05,0.2",
                                               "--n-points", "40", "--n-seeds", "2",
                                               "--max-epochs", "300", "--xor-max-epochs", "7"],
                                run_dir=str(tmp_path))
    assert results["all_converged"] and results["all_under_bound"]
    assert results["all_under_bound_svm"] and 0 < results["max_mistakes_over_bound"] <= 1
    row = results["sweep"]["d=2"]["margin=0.05"]
    for rate in ("fixed", "normalised"):
        assert np.all(np.asarray(row[rate]["mistakes"]) <= np.asarray(row["bound"]))
        xor = results["xor"][rate]
        assert not xor["converged"] and xor["epochs"] == 7 and xor["errors_after"] > 0
    assert results["xor_not_converged_at_limit"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["plots"] == ["perceptron.png", "perceptron_bound.png"]
    assert all((tmp_path / p).stat().st_size > 1000 for p in saved["plots"])


@pytest.mark.slow
def test_associative_memory_smoke(tmp_path):
    _, results = experiment.run("associative_memory", [
        "--n", "64", "--m", "64", "--ones", "4", "--pair-counts", "5,400", "--offsets", "0,2",
        "--offset-pairs", "20", "--linear-n", "8", "--linear-counts", "4,8,16",
        "--linear-trials", "2", "--images-per-class", "1", "--noise-levels", "0,0.1",
        "--image-trials", "3", "--recall-iterations", "3"], run_dir=str(tmp_path))
    low, high = results["willshaw_load"]["5"], results["willshaw_load"]["400"]
    assert low["exact"] == 1.0 and low["missing_ones"] == 0.0
    assert high["false_ones"] > 0 and high["missing_ones"] == 0.0  # overload: false ones only
    spurious = results["willshaw_offsets"]["2 spurious ones"]
    assert spurious["0"]["missing_ones"] > 0 and spurious["2"]["missing_ones"] == 0
    lin = results["linear"]
    assert lin["least_squares"][0] < 1e-3 and lin["least_squares"][2] > 0.1  # exact to P = n
    assert lin["hebbian_orthonormal"][1] < 1e-3 and lin["hebbian_orthonormal"][2] is None
    images = results["images"]["1_per_class"]
    assert images["stored"] == 10 and images["noise"]["0"]["exact"] == 1.0
    flips = images["noise_figure"]
    assert flips["wrong_pixels_after"] < flips["wrong_pixels_before"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["plots"] == ["associative_memory.png", "associative_recall.png"]
    assert all((tmp_path / p).stat().st_size > 1000 for p in saved["plots"])
