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
    histories = json.loads((tmp_path / "histories.json").read_text())
    for name, run in results["runs"].items():
        # the reported test MSE is the last evaluation logged (steps 2 and 4), per seed
        logged = [json.loads(line) for line in
                  (tmp_path / f"{run['cell']}_clip1" / "metrics.jsonl").read_text().splitlines()]
        assert [h["step"] for h in logged] == [2, 4] and histories[name] == logged
        np.testing.assert_allclose(run["test_mse"], logged[-1]["eval_mse"], rtol=1e-6)
        assert run["solved"] == [m < results["solved_below"] for m in run["test_mse"]]
    assert (tmp_path / "adding_problem.png").stat().st_size > 1000


def test_adding_problem_baseline_is_the_variance_of_the_target():
    """The baseline (always predict 1) has MSE Var(u_1 + u_2) = 1/6: check the experiment's constant
    against the data generator by Monte Carlo (200,000 sequences: standard error ~3e-4)."""
    import jax

    from dlmodels.data import adding_problem
    from dlmodels.experiments.adding_problem import BASELINE_MSE

    x, y = adding_problem(jax.random.PRNGKey(0), 200_000, 4)
    y = np.asarray(y, np.float64)
    np.testing.assert_allclose(y, (np.asarray(x)[..., 0] * np.asarray(x)[..., 1]).sum(1), rtol=1e-6)
    assert abs(np.mean((y - 1.0) ** 2) - BASELINE_MSE) < 2e-3


@pytest.mark.slow
def test_vanishing_gradients_smoke(tmp_path):
    _, results = experiment.run("vanishing_gradients", ["--length", "10", "--hidden-size", "6",
                                                        "--train-steps", "2", "--n-sequences", "2",
                                                        "--radii", "0.5,1.5", "--cells", "rnn,gru"],
                                run_dir=str(tmp_path))
    assert set(results["cells"]) == {"rnn", "gru"}
    assert results["radius_sweep"]["0.5"]["bound_holds"]
    assert (tmp_path / "vanishing_gradients.png").exists()
