"""Smoke test of experiments/sentiment.py on a tiny generated polarity file (no fetched corpora:
``dlmodels.data.pattern.polarity`` is replaced by a reader of a fake csv in Pattern's format),
checking the JSON's keys, the protocol (vocabularies and choices never see the test fold) and
sane values."""

import json

import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.data import pattern

POSITIVE = ["great", "moving", "funny", "brilliant", "warm", "sharp"]
NEGATIVE = ["dull", "boring", "flat", "tedious", "weak", "messy"]
NEUTRAL = ["the", "film", "is", "a", "story", "with", "and", "cast", "plot", "."]


def fake_csv(n: int, seed: int = 0) -> str:
    """Rows ``"label","text"`` as in polarity-en-pang&lee2.csv (BOM, positives first)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in ("1", "-1"):
        for _ in range(n // 2):
            cue = POSITIVE if label == "1" else NEGATIVE
            words = list(rng.choice(NEUTRAL, rng.integers(2, 14))) + list(rng.choice(cue, 2))
            rng.shuffle(words)
            rows.append(f'"{label}","{" ".join(words)}"')
    return "\ufeff" + "\n".join(rows) + "\n"


TINY = {"n_folds": 2, "max_len": 12, "cell": "elman", "embed_dim": 8, "hidden": 8, "epochs": 2,
        "batch_size": 10, "dropout": (0.5,), "embed_dropout": (0.25,), "learning_rate": 0.01, "bow_epochs": 20,
        "bow_batch_size": 13, "bow_learning_rate": 0.1, "bow_cs": (1.0, 10.0),
        "checkpoint_every": 0}


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_sentiment_smoke(tmp_path, monkeypatch):
    text = fake_csv(60)
    monkeypatch.setattr(pattern, "polarity",
                        lambda kind="sentences": pattern.parse_polarity(text, "fake.csv"))
    run_dir, results = experiment.run("sentiment", TINY, run_dir=str(tmp_path / "run"))
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(on_disk) == set(results)
    assert set(results) >= {"data", "published", "models", "target", "target_met",
                            "bi_minus_bow", "plots", "seconds", "total_seconds"}
    assert results["data"]["sentences"] == 60 and results["data"]["positive"] == 30
    for sizes in results["data"]["fold_sizes"]:
        assert sizes["train"] + sizes["valid"] + sizes["test"] == 60
        assert sizes["test"] == 30
    assert set(results["models"]) == {"uni", "bi", "bow"}
    for name, row in results["models"].items():
        acc = np.asarray(row["fold_accuracies"])
        assert acc.shape == (2,) and np.all((0 <= acc) & (acc <= 1))
        assert row["mean"] == pytest.approx(acc.mean())
        assert row["std"] == pytest.approx(acc.std())
    for name in ("uni", "bi"):
        for choice in results["models"][name]["chosen"]:
            assert choice["dropout"] in TINY["dropout"] and 1 <= choice["epoch"] <= 2
            assert choice["embed_dropout"] in TINY["embed_dropout"]
    for choice in results["models"]["bow"]["chosen"]:
        assert choice["C"] in TINY["bow_cs"]
    assert isinstance(results["target_met"], bool)
    assert results["published"]["NBSVM-bi (Wang & Manning 2012, via Kim 2014)"] == 0.794
    if "sklearn" in results:
        assert len(results["sklearn"]["fold_accuracies"]) == 2
    assert (tmp_path / "run" / results["plots"]["folds"]).stat().st_size > 0
    # the bag of words separates this easy set; its accuracy is far above chance
    assert results["models"]["bow"]["mean"] > 0.7


def test_config_refuses_bad_values():
    from dlmodels.experiments.sentiment import Config
    with pytest.raises(ValueError, match="models"):
        Config(models=("cnn",))
    with pytest.raises(ValueError, match="valid_fraction"):
        Config(valid_fraction=0.0)
    with pytest.raises(ValueError, match="bow_cs"):
        Config(bow_cs=(0.0,))
