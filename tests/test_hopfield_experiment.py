"""Smoke run of the Hopfield capacity experiment (tiny config), plus its closed form and crossing."""

import json
import math

import numpy as np

from dlmodels import experiment
from dlmodels.experiments.hopfield_capacity import crossing, one_step_error_theory


def test_one_step_error_theory_at_alpha_c():
    # Hertz, Krogh & Palmer (1991, ch. 2): P_error = 0.0036 at p/N = 0.138.
    np.testing.assert_allclose(one_step_error_theory(0.138), [0.0036], atol=5e-5)
    np.testing.assert_allclose(one_step_error_theory([0.1]), 0.5 * math.erfc(math.sqrt(5.0)))


def test_crossing_interpolates_and_reports_none():
    assert crossing([0.1, 0.2, 0.3], [1.0, 0.9, 0.5], 0.8) == 0.225
    assert crossing([0.1, 0.2], [1.0, 0.9], 0.8) is None
    assert crossing([0.1, 0.2], [0.5, 0.4], 0.8) is None


def test_hopfield_capacity_smoke(tmp_path):
    experiment.run("hopfield_capacity",
                   ["--n-units", "100", "--alphas", "0.3,0.03", "--n-seeds", "2", "--n-probes", "4",
                    "--max-sweeps", "10"],
                   run_dir=str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["alphas"] == [0.03, 0.3] and results["n_patterns"] == [3, 30]
    assert np.shape(results["overlap_per_seed"]) == (2, 2)
    assert np.shape(results["one_step_error_per_seed"]) == (2, 2)
    for key in ("overlap_mean", "retrieved_fraction", "sweeps_mean", "converged_fraction",
                "one_step_error", "one_step_error_theory"):
        assert len(results[key]) == 2 and np.all(np.isfinite(results[key])), key
    assert results["overlap_mean"][0] > 0.95
    # one-step error of a stored bit, Hertz, Krogh & Palmer (1991, eq. 2.13): (1/2) erfc(1/sqrt(2 alpha))
    np.testing.assert_allclose(results["one_step_error_theory"],
                               [0.5 * math.erfc(1 / math.sqrt(2 * a)) for a in (0.03, 0.3)], rtol=1e-6)
    assert results["plot"] == "hopfield_capacity.png"
    assert (tmp_path / "hopfield_capacity.png").exists()
