"""Smoke runs of the gan_mnist experiment on fake MNIST-shaped data (no data cache needed): the
results' keys and files, numbers recomputed from what the run wrote, and a run stopped after a few
updates then resumed equals an uninterrupted one."""

import dataclasses
import json

import numpy as np
import pytest

import fake_mnist
from dlmodels import experiment
from dlmodels.experiments import gan_mnist

SIZES = {"train": 200, "valid": 60, "test": 50}


fake_load = fake_mnist.loader(SIZES)


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr("dlmodels.data.load", fake_load)


TINY = dict(models=("mlp",), n_seeds=2, mlp_epochs=2, mlp_batch_size=20, mlp_generator=(16,),
            mlp_discriminator=(8,), n_samples=64, feature_epochs=1, grid_points=2,
            evals_per_epoch=2, n_monitor=30)


def _check(results, run_dir, models, n_seeds):
    assert set(results) >= {"dataset", "n_train", "real_data", "models", "feature_net",
                            "paper_table1_parzen", "samples_png", "histograms_png", "losses_png"}
    assert results["paper_table1_parzen"]["GAN (Goodfellow et al. 2014)"] == [225, 2]
    assert results["n_train"] == 200 and results["n_valid_parzen"] == 60
    for key in ("samples_png", "histograms_png", "losses_png"):
        assert (run_dir / results[key]).stat().st_size > 1000
    real = results["real_data"]
    assert set(real) >= {"frechet_distance", "classifier_score", "class_counts", "parzen"}
    assert sum(real["class_counts"]) == 64 and 1.0 <= real["classifier_score"] <= 10.0
    for name in models:
        model = results["models"][name]
        assert (run_dir / results[f"{name}_grids_png"]).stat().st_size > 1000
        rows = model["per_seed"]
        assert [r["seed"] for r in rows] == list(range(n_seeds))
        for r in rows:
            assert sum(r["class_counts"]) == 64
            assert np.isfinite([r["parzen_mean"], r["parzen_se"], r["frechet_distance"]]).all()
            assert np.isclose(np.logspace(-1, 0, 10), r["parzen_sigma"], rtol=1e-6).any()
            assert 1.0 - 1e-5 <= r["classifier_score"] <= 10.0
        # the summary is the mean and std over the seeds' numbers
        assert model["summary"]["parzen_mean"]["mean"] == pytest.approx(
            np.mean([r["parzen_mean"] for r in rows]))
        assert model["summary"]["frechet_distance"]["std"] == pytest.approx(
            np.std([r["frechet_distance"] for r in rows]))
        assert len(model["curves"]) == n_seeds


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_gan_mnist_smoke_and_resume(tmp_path):
    config = gan_mnist.Config(**TINY)
    # uninterrupted, through the CLI's entry point (config.json, results.json)
    _, results = experiment.run("gan_mnist", TINY, run_dir=str(tmp_path / "whole"))
    whole = tmp_path / "whole"
    _check(results, whole, ("mlp",), 2)
    assert json.loads((whole / "results.json").read_text())["models"]["mlp"]["per_seed"] == \
        results["models"]["mlp"]["per_seed"]
    # 200 // 20 = 10 updates per epoch, 20 in all; an entry every 5; the monitor losses per seed
    lines = (whole / "mlp" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [h["step"] for h in logged] == [5, 10, 15, 20]
    curve = results["models"]["mlp"]["curves"][1]
    assert curve["g_loss"] == [h["eval_g_loss"][1] for h in logged]
    assert results["models"]["mlp"]["per_seed"][1]["final_d_real"] == logged[-1]["eval_d_real"][1]

    # stopped after 7 updates (a checkpoint between two entries), then resumed: the same numbers
    parts = tmp_path / "parts"
    parts.mkdir()
    gan_mnist.main(dataclasses.replace(config, stop_after=7), str(parts))
    lines = (parts / "mlp" / "metrics.jsonl").read_text().splitlines()
    partial = [json.loads(line) for line in lines]
    assert [h["step"] for h in partial] == [5, 7]
    resumed = gan_mnist.main(config, str(parts))
    assert resumed["models"]["mlp"]["curves"] == results["models"]["mlp"]["curves"]
    for a, b in zip(resumed["models"]["mlp"]["per_seed"], results["models"]["mlp"]["per_seed"]):
        assert a == pytest.approx(b, rel=1e-5)
    # the feature network was read back, not retrained
    assert resumed["feature_net"] == results["feature_net"] or \
        resumed["feature_net"]["test_accuracy"] == pytest.approx(
            results["feature_net"]["test_accuracy"])


@pytest.mark.slow
def test_gan_mnist_dcgan_smoke(tmp_path):
    """The DCGAN branch: seeds one after another on the CPU (backend.vmap_conv_seeds), each with its
    own run directory and checkpoints, sample grids from them."""
    overrides = dict(TINY, models=("dcgan",), dcgan_epochs=1, dcgan_batch_size=20,
                     dcgan_generator=(8, 4), dcgan_discriminator=(4, 8))
    _, results = experiment.run("gan_mnist", overrides, run_dir=str(tmp_path))
    _check(results, tmp_path, ("dcgan",), 2)
    model = results["models"]["dcgan"]
    assert model["steps"] == 10 and model["seeds_vmapped"] is False
    for seed in (0, 1):
        logged = (tmp_path / "dcgan" / f"seed_{seed}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in logged] == [5, 10]
