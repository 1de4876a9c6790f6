"""Smoke test of experiments/pos_tagging.py on a tiny generated corpus (no fetched data needed:
``dlmodels.data.pattern.tagged`` and ``wsj`` are replaced), checking the JSON's keys, the
accuracies against a plain recount of the saved predictions, and the plots."""

import json
import os

import numpy as np
import pytest

from dlmodels import experiment

LEXICON = {
    "DT": ["the", "a", "The", "A", "this"],
    "JJ": ["big", "red", "old", "happy", "green"],
    "NN": ["dog", "cat", "house", "walk", "run", "tree"],
    "VBZ": ["walks", "runs", "sees", "likes"],
    "RB": ["quickly", "slowly", "often"],
    "IN": ["near", "under", "with"],
    ".": [".", "!"],
}


def fake_corpus(n: int, seed: int):
    """Sentences DT (JJ) NN VBZ (RB) (IN DT NN) . of (word, tag); "walk" and "run" are nouns
    here and "walks"/"runs" verbs; now and then a new word (unknown at test time)."""
    rng = np.random.default_rng(seed)

    def pick(tag):
        if rng.random() < 0.08 and tag in ("NN", "JJ"):
            return f"new{tag.lower()}{rng.integers(1000)}", tag
        return str(rng.choice(LEXICON[tag])), tag

    sentences = []
    for _ in range(n):
        s = [pick("DT")] + ([pick("JJ")] if rng.random() < 0.5 else []) + [pick("NN"), pick("VBZ")]
        if rng.random() < 0.5:
            s.append(pick("RB"))
        if rng.random() < 0.5:
            s += [pick("IN"), pick("DT"), pick("NN")]
        sentences.append(s + [pick(".")])
    return sentences


SIZES = {"train": 64, "valid": 12, "test": 12}


def fake_tagged(language="en", split="train", seed=0):
    return fake_corpus(SIZES[split], list(SIZES).index(split) + 10 * seed)


def fake_wsj():
    return fake_corpus(10, 99)


# the default test runs the three baselines and the BiLSTM-CRF (the BiLSTM is the same code
# without the CRF; the slow test below runs all five)
TINY = {"models": ("mft", "hmm", "perceptron", "bilstm_crf"), "perceptron_epochs": 2,
        "embed_dim": 8, "char_dim": 4, "char_hidden": 6, "hidden": 8, "epochs": 3,
        "batch_size": 8, "bucket_lengths": (8, 16), "learning_rate": 0.01,
        "confusion_tags": 4}


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_pos_tagging_smoke(tmp_path, monkeypatch):
    monkeypatch.setattr("dlmodels.data.pattern.tagged", fake_tagged)
    monkeypatch.setattr("dlmodels.data.pattern.wsj", fake_wsj)
    run_dir, results = experiment.run("pos_tagging", TINY, run_dir=str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert set(on_disk) == set(results)
    assert set(results) >= {"language", "splits", "n_tags", "models", "best_on_valid",
                            "best_on_test", "confusion", "published", "plots", "target_accuracy",
                            "target_met", "total_seconds"}
    assert results["splits"]["train"]["sentences"] == 64
    assert set(results["splits"]) == {"train", "valid", "test", "wsj"}
    assert results["n_tags"] == len(LEXICON)
    assert set(results["models"]) == set(TINY["models"])
    assert isinstance(results["target_met"], bool)
    for name, row in results["models"].items():
        for split in ("valid", "test", "wsj"):
            assert 0.0 <= row[f"{split}_accuracy"] <= 1.0
        assert row["train_seconds"] >= 0
    # the baselines' saved predictions, recounted token by token
    test = fake_tagged(split="test")
    for name in ("mft", "hmm", "perceptron"):
        saved = json.loads((tmp_path / name / "predictions.json").read_text())["predictions"]
        pairs = [(t, p) for s, pred in zip(test, saved["test"]) for (_, t), p in zip(s, pred)]
        want = sum(t == p for t, p in pairs) / len(pairs)
        assert results["models"][name]["test_accuracy"] == pytest.approx(want)
    # the neural tagger trained through fit: its history and checkpoints are there
    for name in ("bilstm_crf",):
        row = results["models"][name]
        assert row["steps"] == 3 * row["steps_per_epoch"]
        assert len(row["valid_curve"]) == 3
        assert os.path.isdir(tmp_path / name / "checkpoints")
    # a corpus this regular is learnt: the HMM gets almost every known word right
    assert results["models"]["hmm"]["test_known_accuracy"] > 0.9
    for plot in results["plots"].values():
        assert (tmp_path / plot).stat().st_size > 1000
    assert (tmp_path / "table.md").read_text().count("\n") == 2 + len(TINY["models"])


@pytest.mark.slow
def test_pos_tagging_all_five_and_resume(tmp_path, monkeypatch):
    """All five taggers; then a second call of ``main`` on the finished run directory resumes
    every phase (the neural taggers from their final checkpoints, the baselines from their saved
    predictions) and reproduces every accuracy exactly."""
    monkeypatch.setattr("dlmodels.data.pattern.tagged", fake_tagged)
    monkeypatch.setattr("dlmodels.data.pattern.wsj", fake_wsj)
    tiny = {**TINY, "models": ("mft", "hmm", "perceptron", "bilstm", "bilstm_crf")}
    run_dir, first = experiment.run("pos_tagging", tiny, run_dir=str(tmp_path))
    assert set(first["models"]) == set(tiny["models"])
    assert first["models"]["bilstm"]["steps"] == 3 * first["models"]["bilstm"]["steps_per_epoch"]
    _, again = experiment.run("pos_tagging", {}, run_dir=run_dir, resume=True)
    for name in tiny["models"]:
        for split in ("valid", "test", "wsj"):
            assert again["models"][name][f"{split}_accuracy"] == \
                first["models"][name][f"{split}_accuracy"]


def test_config_checks():
    with pytest.raises(ValueError, match="language"):
        experiment.make_config(experiment.load("pos_tagging"), {"language": "fr"})
    with pytest.raises(ValueError, match="models"):
        experiment.make_config(experiment.load("pos_tagging"), {"models": ("crf",)})
