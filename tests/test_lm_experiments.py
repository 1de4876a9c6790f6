"""Smoke runs of experiments/char_lm.py and experiments/word_lm.py on their small synthetic
corpora (no download), a resumed run equal to an uninterrupted one, and the baselines' arithmetic
against direct computations."""

import bz2
import json
import lzma
import math
import shutil

import numpy as np
import pytest

from dlmodels import experiment

CHAR = ["--corpus", "synthetic", "--max-chars", "6000", "--hidden", "16", "--layers", "1",
        "--embed-dim", "8", "--batch-size", "4", "--window", "16", "--steps", "6",
        "--eval-every", "2", "--eval-streams", "4", "--eval-window", "32", "--sample-chars", "30",
        "--kn-order", "3"]
WORD = ["--corpus", "synthetic", "--hidden", "8", "--batch-size", "4", "--window", "8",
        "--steps", "4", "--eval-every", "2", "--eval-streams", "4", "--eval-window", "16",
        "--kn-order", "3"]


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _without_times(results: dict) -> dict:
    out = json.loads(json.dumps(results))
    for key in ("train_seconds", "eval_seconds", "train_chars_per_second"):
        out.pop(key, None)
    for row in out.get("models", {}).values():
        row.pop("train_seconds", None)
    for kn in (out.get("kneser_ney", {}), out.get("baselines", {}).get("kneser_ney", {})):
        kn.pop("seconds", None)
    return out


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_char_lm_smoke_and_resume(tmp_path):
    run_dir, results = experiment.run("char_lm", CHAR, run_dir=str(tmp_path / "a"))
    for key in ("test_nats", "test_bits", "test_perplexity", "valid_nats", "valid_bits",
                "params", "epochs"):
        assert _finite(results[key]), key
    assert results["test_bits"] == pytest.approx(results["test_nats"] / math.log(2))
    assert set(results["samples"]) == {"0.5", "1.0"}
    assert all(len(s) == 31 for s in results["samples"].values())   # prompt "\n" + 30
    assert results["unknown_chars"] == {"valid": 0, "test": 0}
    base = results["baselines"]
    text = experiment_text("test")
    assert base["compressors_bits"]["bzip2 -9"] == pytest.approx(
        8 * len(bz2.compress(text.encode(), 9)) / len(text))
    assert base["compressors_bits"]["xz -9e"] == pytest.approx(
        8 * len(lzma.compress(text.encode(), preset=9 | lzma.PRESET_EXTREME)) / len(text))
    train = experiment_text("train")
    freq = {c: train.count(c) + 1 for c in set(train) | {"<unk>"}}
    total = sum(freq.values())
    assert base["unigram_nats"] == pytest.approx(
        -np.mean([math.log(freq[c] / total) for c in text]), rel=1e-9)
    assert base["kneser_ney"]["available"] and _finite(base["kneser_ney"]["nats"])
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6]
    assert history[-1]["eval_nats"] == pytest.approx(results["valid_nats"], rel=1e-5)
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    assert "temperature 0.5" in (tmp_path / "a" / "samples.txt").read_text()

    # a run stopped after its first checkpoint (step 2) and resumed gives the same results
    stopped = tmp_path / "b"
    shutil.copytree(tmp_path / "a", stopped)
    ckpts = stopped / "train" / "checkpoints"
    for step in (4, 6):
        shutil.rmtree(ckpts / str(step))
    (stopped / "results.json").unlink()
    _, resumed = experiment.run("char_lm", [], run_dir=str(stopped), resume=True)
    assert _without_times(resumed) == _without_times(results)


def experiment_text(split):
    from dlmodels.experiments.char_lm import load_splits
    return load_splits("synthetic", 6000)[split]


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_word_lm_smoke(tmp_path):
    _, results = experiment.run("word_lm", WORD, run_dir=str(tmp_path))
    assert set(results["models"]) == {"elman", "lstm", "gru"}
    for row in results["models"].values():
        for key in ("test_perplexity", "valid_perplexity", "params", "train_seconds"):
            assert _finite(row[key]), key
        assert row["test_perplexity"] == pytest.approx(math.exp(row["test_nats"]))
    kn = results["kneser_ney"]
    assert kn["available"] and _finite(kn["perplexity"])
    assert results["lstm_over_kn"] == pytest.approx(
        results["models"]["lstm"]["test_perplexity"] / kn["perplexity"])
    assert isinstance(results["target_met"], bool)
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_word_lm_tokens_and_vocabulary():
    from dlmodels.experiments.word_lm import tokenize
    assert tokenize("Emma smiled.\nShe  said, \"No!\"\n\n\nCHAPTER II\n") == [
        "emma", "smiled", ".", "she", "said", ",", '"', "no", "!", '"', "<eos>",
        "chapter", "ii", "<eos>"]
