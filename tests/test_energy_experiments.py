"""Smoke runs of the RBM / DBN experiments on the embedded digits (tiny configs), and the rbm
benchmark's --quick report (no timing asserted)."""

import json

import numpy as np
import pytest

from dlmodels.benchmarks import rbm as rbm_bench
from dlmodels import experiment


@pytest.mark.slow
def test_rbm_mnist_smoke_on_digits(tmp_path):
    _, results = experiment.run("rbm_mnist", ["--dataset", "digits", "--n-hidden", "16",
                                              "--variants", "cd1,pcd", "--epochs", "2,2",
                                              "--batch-size", "50", "--ais-betas", "300",
                                              "--ais-chains", "20", "--sample-steps", "5"],
                                run_dir=str(tmp_path))
    assert set(results["models"]) == {"cd1", "pcd"}
    for model in results["models"].values():
        assert np.isfinite(model["test_log_likelihood"]) and model["test_log_likelihood"] < 0
        assert len(model["log_z_runs"]) == 2
    assert results["models"]["cd1"]["published_test_log_likelihood"] == -125.53
    for png in ("samples_png", "filters_png", "curves_png"):
        assert (tmp_path / results[png]).exists()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["variant"] == "cd1"


@pytest.mark.slow
def test_dbn_mnist_smoke_on_digits(tmp_path):
    _, results = experiment.run("dbn_mnist", ["--dataset", "digits", "--hidden", "16,12",
                                              "--seeds", "3", "--pretrain-epochs", "1",
                                              "--finetune-epochs", "1", "--batch-size", "50",
                                              "--sample-steps", "5"],
                                run_dir=str(tmp_path))
    assert list(results["layer_sizes"]) == [64, 16, 12, 10]
    for init in ("pretrained", "random"):
        assert len(results[init]["test_errors"]) == 1
        assert 0.0 <= results[init]["test_error_mean"] <= 1.0
    assert (tmp_path / results["samples_png"]).exists()
    assert (tmp_path / results["curves_png"]).exists()


def test_rbm_bench_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "rbm.json"
    assert rbm_bench.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["suite"] == "rbm" and report["config"]["quick"]
    assert [r["case"] for r in report["results"]] == ["epoch CD-1", "epoch PCD-1"]
    for r in report["results"]:
        assert r["ratio_peer_over_ours"] > 0
        assert 0 < r["checks"]["fraction_of_matmul_rate"]
    assert report["floor"]["matmul_gflops"] > 0
