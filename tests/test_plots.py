"""Plots write PNG files and never change the caller's matplotlib backend or leave pyplot figures."""

import matplotlib
import numpy as np
import pytest

from dlmodels import plots
from dlmodels.autoencoders import features

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)

PLOTS = {
    "training_curves": lambda path: plots.training_curves(
        {"a": [{"epoch": 1, "train_loss": 1.0, "eval_accuracy": 0.5},
               {"epoch": 2, "train_loss": 0.5, "eval_accuracy": 0.7}],
         "vmapped": [{"epoch": 1, "train_loss": [1.0, 2.0], "eval_accuracy": [0.4, 0.6]}]}, path),
    "plot_layer_histograms": lambda path: plots.plot_layer_histograms(
        {"tanh": [RNG.normal(size=50), RNG.normal(size=(5, 10))]}, path, log_y=True),
    "plot_layer_curves": lambda path: plots.plot_layer_curves(
        {"p": {"steps": [0, 1, 2], "values": RNG.normal(size=(3, 2)),
               "spread": np.ones((3, 2)), "markers": RNG.normal(size=(3, 2))}}, path,
        marker_label="98th"),
    "plot_per_layer": lambda path: plots.plot_per_layer({"p": {"s": [1.0, 2.0, 4.0]}}, path,
                                                        log_y=True),
    "image_grid": lambda path: plots.image_grid({"x": RNG.uniform(size=(7, 16))}, path, n_cols=3,
                                                image_shape=(4, 4), symmetric=True),
    "code_scatter": lambda path: plots.code_scatter(
        {"pca": (RNG.normal(size=(30, 2)), RNG.integers(0, 3, size=30))}, path),
    "figure_and_save": lambda path: plots.save(plots.figure(2, 3, figsize=(6, 4))[0], path, "t"),
    "feature_grid": lambda path: features.feature_grid(RNG.normal(size=(16, 6)), path,
                                                       image_shape=(4, 4), n_units=6),
}


@pytest.fixture
def caller_backend():
    """A backend set by 'the caller' (not Agg, which plots used to force), restored afterwards."""
    before = matplotlib.get_backend()
    matplotlib.use("svg", force=True)
    yield matplotlib.get_backend()
    matplotlib.use(before, force=True)


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_plot_keeps_the_callers_backend(name, caller_backend, tmp_path):
    import matplotlib.pyplot as plt

    assert caller_backend == "svg"
    open_before = plt.get_fignums()
    path = PLOTS[name](tmp_path / f"{name}.png")
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == open_before  # nothing registered with pyplot, nothing to close
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
