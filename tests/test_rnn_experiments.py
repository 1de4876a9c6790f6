"""One-step smoke runs of the recurrent experiments (tiny configs), plus the decay-rate fit."""

import json

import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.experiments.vanishing_gradients import decay_rate


def test_decay_rate_recovers_a_geometric_sequence():
    np.testing.assert_allclose(decay_rate(0.8 ** np.arange(40) * 3.0), 0.8, rtol=1e-6)
    underflowed = np.concatenate([0.5 ** np.arange(20), np.zeros(10)])
    np.testing.assert_allclose(decay_rate(underflowed), 0.5, rtol=1e-6)


@pytest.mark.slow
def test_adding_problem_smoke(tmp_path):
    _, results = experiment.run("adding_problem", ["--length", "12", "--hidden-size", "8",
                                                   "--steps", "4", "--eval-every", "2",
                                                   "--n-seeds", "2", "--n-test", "20",
                                                   "--clip-norms", "1"],
                                run_dir=str(tmp_path))
    assert set(results["runs"]) == {"lstm, clip 1", "rnn, clip 1"}
    for run in results["runs"].values():
        assert len(run["test_mse"]) == 2 and all(np.isfinite(run["test_mse"]))
    assert (tmp_path / "adding_problem.png").exists()
    assert json.loads((tmp_path / "results.json").read_text())["baseline_mse"] == 1 / 6


@pytest.mark.slow
def test_vanishing_gradients_smoke(tmp_path):
    _, results = experiment.run("vanishing_gradients", ["--length", "10", "--hidden-size", "6",
                                                        "--train-steps", "2", "--n-sequences", "2",
                                                        "--radii", "0.5,1.5", "--cells", "rnn,gru"],
                                run_dir=str(tmp_path))
    assert set(results["cells"]) == {"rnn", "gru"}
    assert results["radius_sweep"]["0.5"]["bound_holds"]
    assert (tmp_path / "vanishing_gradients.png").exists()
