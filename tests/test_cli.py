"""The command line and the experiment runner: overrides, run directories, one-step smoke runs."""

import dataclasses
import json

import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.cli import main


@dataclasses.dataclass(frozen=True)
class Demo:
    epochs: int = 1
    rate: float = 0.1
    name: str = "a"
    flag: bool = False
    sizes: tuple[int, ...] = (3, 4)
    limit: int | None = None


def test_overrides_are_type_checked():
    got = experiment.parse_overrides(Demo, ["--epochs", "3", "--rate=0.5", "--flag", "true",
                                            "--sizes", "8,16,32", "--limit", "none", "--name", "b"])
    assert got == {"epochs": 3, "rate": 0.5, "flag": True, "sizes": (8, 16, 32), "limit": None,
                   "name": "b"}
    assert experiment.parse_overrides(Demo, ["--limit", "7"]) == {"limit": 7}
    with pytest.raises(ValueError, match="expects int"):
        experiment.parse_overrides(Demo, ["--epochs", "three"])
    with pytest.raises(ValueError, match="true/false"):
        experiment.parse_overrides(Demo, ["--flag", "maybe"])
    with pytest.raises(ValueError, match=r"unknown option --epoch\b.*--epochs.*--rate"):
        experiment.parse_overrides(Demo, ["--epoch", "3"])
    with pytest.raises(ValueError, match="needs a value"):
        experiment.parse_overrides(Demo, ["--epochs"])


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tour" in out and "mlp" in out


def test_unknown_key_is_an_error(capsys, tmp_path):
    assert main(["run", "tour", "--epoch", "1", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown option --epoch" in err and "--n_seeds" in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_tour_smoke(tmp_path, capsys):
    run_dir = tmp_path / "tour"
    assert main(["run", "tour", "--epochs", "2", "--n-seeds", "2", "--rbm-epochs", "3",
                 "--run-dir", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["experiment"] == "tour" and config["epochs"] == 2 and config["n_seeds"] == 2
    results = json.loads((run_dir / "results.json").read_text())
    for row in results["mlp"]["variants"].values():
        assert len(row["test_accuracy"]) == 2 and 0.0 <= row["summary"]["mean"] <= 1.0
    assert (run_dir / "mlp_curves.png").stat().st_size > 1000
    metrics = list(run_dir.rglob("metrics.jsonl"))
    assert len(metrics) == 2
    assert len(metrics[0].read_text().splitlines()) == 2
    assert "test accuracy" in capsys.readouterr().out
    for row in results["energy"]["rbm_test_log_likelihood"].values():
        assert abs(row["ais"] - row["exact"]) < 0.2    # AIS against exact enumeration


@pytest.mark.slow
def test_mlp_smoke_on_digits(tmp_path):
    run_dir, results = experiment.run(
        "mlp", ["--dataset", "digits", "--epochs", "1", "--notes-epochs", "1", "--hidden", "16"],
        run_dir=str(tmp_path))
    assert set(results) >= {"relu", "notes", "plot"}
    assert 0.0 <= results["relu"]["test_accuracy"] <= 1.0
    assert (tmp_path / "curves.png").exists() and (tmp_path / "results.json").exists()


def test_missing_data_says_how_to_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLMODELS_DATA", str(tmp_path / "empty"))
    assert main(["run", "mlp", "--root", str(tmp_path)]) == 1
    assert "dlmodels data fetch mnist" in capsys.readouterr().err


def test_bench_unknown_suite(capsys):
    assert main(["bench", "nope"]) == 2
    assert "available" in capsys.readouterr().err


def test_metrics_log_writes_one_flushed_json_line_per_record(tmp_path):
    log = experiment.MetricsLog(tmp_path)
    log(epoch=1, loss=np.float32(0.5), grads=np.arange(3), name="a")
    # flushed: readable before close, as after a crash
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {
        "epoch": 1, "loss": 0.5, "grads": [0, 1, 2], "name": "a"}
    with log:
        log(epoch=2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2] and log._file.closed
