"""The command line and the experiment runner: overrides, run directories, one-step smoke runs."""

import dataclasses
import json
import re

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
    metrics = list((run_dir / "mlp").rglob("metrics.jsonl"))
    assert len(metrics) == 2
    assert all(len(m.read_text().splitlines()) == 2 for m in metrics)  # one line an epoch
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


# --- help, refusals before any work, library errors, resume -------------------------------------

@dataclasses.dataclass(frozen=True)
class Commented:
    # a heading on its own line is not a field doc
    epochs: int = 3           # passes over the data
    rates: tuple[float, ...] = (0.1,  # one
                                0.2)  # per phase
    name: str = "x#y"
    seed: int = 0  # the seed

    def method(self):
        inner: int = 1  # not a field
        return inner


def test_field_docs_are_the_trailing_comments():
    assert experiment.field_docs(Commented) == {
        "epochs": "passes over the data", "rates": "one per phase", "seed": "the seed"}


def test_every_experiment_documents_every_option():
    import importlib

    for name in experiment.names():
        config = importlib.import_module(f"dlmodels.experiments.{name}").Config
        docs = experiment.field_docs(config)
        missing = [f.name for f in dataclasses.fields(config) if not docs.get(f.name)]
        assert not missing, f"{name}: Config fields without a trailing '# ...' doc: {missing}"


def test_run_help_lists_options_with_type_default_and_doc(capsys):
    from dlmodels.experiments import mlp

    assert main(["run", "mlp", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    docs = experiment.field_docs(mlp.Config)
    for f in dataclasses.fields(mlp.Config):
        line = next(x for x in lines if x.split()[:1] == [f"--{f.name}"])
        kind = {int: "INT", float: "FLOAT", str: "STR"}.get(f.type if isinstance(f.type, type)
                                                             else None)
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
        assert f"(default {shown})" in line and line.rstrip().endswith(docs[f.name])
        if kind:
            assert line.split()[1] == kind
    assert any(x.strip().startswith("--resume RUN_DIR") for x in lines)


def _refused(capsys, args, tmp_path, match):
    assert main([*args, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    assert not any(tmp_path.iterdir())  # refused before any work: no run directory


@pytest.mark.parametrize("args, match", [
    (["--epochs", "0"], r"^dlmodels run mlp: --epochs must be >= 1, got 0"),
    (["--epochs", "-2"], r"--epochs must be >= 1"),
    (["--notes-epochs", "0"], r"--notes_epochs must be >= 1"),
    (["--learning-rate", "nan"], r"--learning_rate must be finite"),
    (["--learning-rate", "inf"], r"--learning_rate must be finite"),
    (["--learning-rate", "-0.1"], r"--learning_rate must be finite and > 0"),
    (["--learning-rate", "0"], r"--learning_rate must be finite and > 0"),
    (["--dataset", "cifar"], r"--dataset must name a data set, one of digits, mnist"),
    (["--hidden", "16,0"], r"--hidden must be >= 1"),
    (["--dropout", "1.5"], r"--dropout must be in \[0, 1\)"),
    (["--epochs", "two"], r"--epochs expects int"),
    (["--variants", "relu,sigmoid"], r"variants must be drawn from"),  # the Config's own check
])
def test_invalid_values_are_refused_with_one_line(capsys, tmp_path, args, match):
    _refused(capsys, ["run", "mlp", *args], tmp_path, match)


def test_other_experiments_are_checked_by_field_meaning(capsys, tmp_path):
    _refused(capsys, ["run", "sequence_mnist", "--pixel-learning-rate", "-1"], tmp_path,
             r"--pixel_learning_rate must be finite and > 0")
    _refused(capsys, ["run", "adding_problem", "--steps", "0"], tmp_path, r"--steps must be >= 1")
    _refused(capsys, ["run", "nope"], tmp_path, r"unknown experiment 'nope'; available: .*mlp")


def test_invalid_value_exit_code_from_the_command(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "dlmodels", "run", "tour", "--epochs", "0"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["dlmodels run tour: --epochs must be >= 1, got 0"]
    assert not any(tmp_path.iterdir())


def _library_error(capsys, args, kind):
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"dlmodels run mlp: {kind}: ")
    assert err[1].startswith("hint: ") and err[1].endswith("(--debug shows the traceback)")
    return err


TINY = ["--dataset", "digits", "--variants", "relu", "--epochs", "1", "--hidden", "8"]


def test_data_error_is_one_line_and_a_hint(tmp_path, monkeypatch, capsys):
    from dlmodels.data import DataError

    monkeypatch.setenv("DLMODELS_DATA", str(tmp_path / "empty"))
    err = _library_error(capsys, ["run", "mlp", "--root", str(tmp_path)], "DataError")
    assert "dlmodels data fetch mnist" in err[0]
    with pytest.raises(DataError):  # --debug: the exception and its traceback
        main(["run", "mlp", "--root", str(tmp_path), "--debug"])


def test_non_finite_error_is_one_line_and_a_hint(tmp_path, capsys):
    from dlmodels.train import NonFiniteError

    args = ["run", "mlp", *TINY, "--learning-rate", "1e30", "--root", str(tmp_path)]
    err = _library_error(capsys, args, "NonFiniteError")
    assert "non-finite loss or gradient at step" in err[0] and "--learning_rate" in err[1]
    with pytest.raises(NonFiniteError):
        main([*args, "--debug"])


def test_checkpoint_error_is_one_line_and_a_hint(tmp_path, capsys):
    from dlmodels.train import CheckpointError

    run_dir = tmp_path / "run"
    assert main(["run", "mlp", *TINY, "--run-dir", str(run_dir)]) == 0
    # damage every file of the saved params: resuming (the finished phase restores) must fail
    # with the library's CheckpointError, not an orbax traceback
    damaged = [p for p in (run_dir / "relu" / "checkpoints").rglob("*")
               if p.is_file() and "state" in p.parts]
    assert damaged
    for p in damaged:
        p.write_bytes(b"\0garbage")
    capsys.readouterr()
    err = _library_error(capsys, ["run", "mlp", "--resume", str(run_dir)], "CheckpointError")
    assert "could not be read" in err[0]
    with pytest.raises(CheckpointError):
        main(["run", "mlp", "--resume", str(run_dir), "--debug"])


def test_resume_refuses_options_that_disagree_with_the_saved_config(tmp_path, capsys):
    from dlmodels.experiments import mlp

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = {"experiment": "mlp", **dataclasses.asdict(mlp.Config(dataset="digits", epochs=3))}
    experiment.write_json(run_dir / "config.json", saved)
    before = sorted(p.name for p in run_dir.iterdir())

    def refused(args, match):
        assert main(["run", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and re.search(match, err), err
        assert sorted(p.name for p in run_dir.iterdir()) == before

    refused(["mlp", "--resume", str(run_dir), "--epochs", "4"],
            r"--epochs 4 disagrees with the run being resumed \(epochs=3 in .*config.json\)")
    refused(["mlp", "--resume", str(run_dir), "--dataset", "mnist"], r"--dataset mnist disagrees")
    refused(["tour", "--resume", str(run_dir)], r"a run of 'mlp', not 'tour'")
    refused(["mlp", "--resume", str(tmp_path)], r"no config.json there")
    refused(["mlp", "--resume", str(run_dir), "--run-dir", str(tmp_path / "x")], r"drop --run-dir")
    refused(["mlp", "--run-dir", str(run_dir)], r"already holds a run; continue it with --resume")
    # agreeing options pass the check, and the config is the saved one (tuples restored)
    config = experiment.saved_config(mlp, "mlp", run_dir, {"epochs": 3, "hidden": (512, 512)})
    assert config == mlp.Config(dataset="digits", epochs=3)
