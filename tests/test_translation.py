"""Smoke test of experiments/translation.py on a tiny in-memory "language" (no fetched corpus:
``translation.load_pairs`` is replaced): numbers 0..199 spelled digit by digit, English in order,
the target reversed in French digit names, so the decoder must reorder. Checks the JSON's layout,
BLEU recomputed independently with sacrebleu from the saved samples' strings, exact match against
the error count, the plots, and a run killed during the first model's training that resumes
from its checkpoint (no evaluation lost or repeated)."""

import dataclasses
import json

import numpy as np
import pytest

from dlmodels import experiment

EN = "zero one two three four five six seven eight nine".split()
FR = "zéro un deux trois quatre cinq six sept huit neuf".split()


def fake_pairs(pair, split):
    rng = np.random.default_rng(0)
    order = rng.permutation(200)
    index = {"train": order[:140], "valid": order[140:170], "test": order[170:]}[split]
    index = np.sort(index)
    pairs = [(" ".join(EN[int(d)] for d in str(n)), " ".join(FR[int(d)] for d in str(n)[::-1]))
             for n in index]
    return pairs, index.astype(np.int64)


TINY = {"models": ("bahdanau", "none"), "hidden": 16, "embed_dim": 8, "epochs": 2,
        "batch_size": 35, "learning_rate": 0.01, "evals_per_epoch": 2, "beams": (1,),
        "decode_batch": 16, "heatmap_numbers": 2}
STEPS = 2 * (140 // 35)            # 2 epochs of 4 updates; an evaluation every 2 updates


class Killed(Exception):
    pass


def test_config_checks():
    from dlmodels.experiments import translation

    for bad in ({"models": ("transformer",)}, {"pairs": ("en-xx",)}, {"beams": (0,)},
                {"hidden": 0}, {"dropout": 1.0}, {"cell": "lstmx"}):
        with pytest.raises(ValueError):
            translation.Config(**bad)


@pytest.mark.slow  # ~60 s: a training run killed and resumed in subprocesses
def test_translation_smoke_killed_and_resumed(tmp_path, monkeypatch):
    from dlmodels.experiments import translation

    monkeypatch.setattr(translation, "load_pairs", fake_pairs)
    real_fit = translation.fit

    def killed_fit(*args, **kwargs):     # the first model dies after 3 of its 8 updates
        config = dataclasses.replace(args[4], max_steps=3)
        real_fit(*args[:4], config, **kwargs)
        raise Killed

    monkeypatch.setattr(translation, "fit", killed_fit)
    run = tmp_path / "run"
    with pytest.raises(Killed):
        experiment.run("translation", TINY, run_dir=str(run))
    partial = [json.loads(line) for line in
               (run / "en-fr" / "bahdanau" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in partial if not e.get("partial")] == [2]
    monkeypatch.setattr(translation, "fit", real_fit)
    _, results = experiment.run("translation", TINY, run_dir=str(run), resume=True)

    on_disk = json.loads((run / "results.json").read_text())
    assert set(on_disk) == set(results)
    assert results["config"]["hidden"] == 16 and on_disk["config"]["models"] == ["bahdanau", "none"]
    pair = results["pairs"]["en-fr"]
    assert pair["data"]["train"] == 140 and pair["data"]["test"] == 30
    assert pair["data"]["longest_tgt"] == 3
    test_pairs, test_numbers = fake_pairs("en-fr", "test")
    for name in ("bahdanau", "none"):
        row = pair["models"][name]
        assert set(row["test"]) == {"greedy", "beam1"}
        for dec, r in row["test"].items():
            assert 0 <= r["bleu"] <= 100 and 0 <= r["exact_match"] <= 1
            assert r["sentences"] == 30
            if r["sacrebleu"] is not None:
                assert r["bleu_equal_1e-9"] and abs(r["bleu"] - r["sacrebleu"]) <= 1e-9
            # by digits: the counts add up to the test set, exact match weighted back = overall
            groups = row["by_digits"][dec]
            assert sum(g["n"] for g in groups.values()) == 30
            assert sum(g["n"] * g["exact_match"] for g in groups.values()) == pytest.approx(
                30 * r["exact_match"])
        assert set(row["by_digits"]["greedy"]) == {str(len(str(n))) for n in test_numbers}
        assert row["beam1_equals_greedy"] is True       # the issue's beam-1 = greedy check
        # one history entry per evaluation, none repeated by the resume; the chosen checkpoint
        # is the best on valid (greedy exact match, then loss)
        hist = [json.loads(line) for line in
                (run / "en-fr" / name / "metrics.jsonl").read_text().splitlines()]
        assert [e["step"] for e in hist] == [2, 4, 6, 8]
        best = min(hist, key=lambda e: (-e["probe_valid_exact"], e["eval_loss"], e["step"]))
        assert row["chosen"]["step"] == best["step"]
        assert row["greedy_errors"] == round(30 * (1 - row["test"]["greedy"]["exact_match"]))
        for s in row["samples"]:
            i = int(np.flatnonzero(test_numbers == s["number"])[0])
            assert (s["source"], s["reference"]) == test_pairs[i]
    # sacrebleu on the saved greedy samples' strings (an independent BLEU on a subset)
    sacrebleu = pytest.importorskip("sacrebleu")
    from dlmodels.text import bleu

    s = pair["models"]["bahdanau"]["samples"]
    hyps, rs = [x["greedy"] for x in s], [x["reference"] for x in s]
    assert bleu.corpus_bleu(hyps, [rs]).score == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [rs]).score, abs=1e-9)
    for key, target in pair["targets"].items():
        assert target["met"] == (target["margin"] >= 0 if "BLEU >=" in key
                                 else target["margin"] > 0)
    assert set(results["targets_met"]) == set(pair["targets"])
    for f in pair["plots"].values():
        assert (run / f).stat().st_size > 1000
    assert "attention_bahdanau" in pair["plots"] and "attention_none" not in pair["plots"]


def test_compare_runs(tmp_path):
    from dlmodels.experiments import translation

    dirs = []
    for n, (a, b) in {500: (90.0, 60.0), 50000: (100.0, 99.5)}.items():
        d = tmp_path / str(n)
        d.mkdir()
        models = {name: {"test": {"greedy": {"bleu": v, "exact_match": v / 100}}}
                  for name, v in (("bahdanau", a), ("none", b))}
        (d / "results.json").write_text(json.dumps(
            {"pairs": {"en-fr": {"data": {"train": n}, "models": models}}}))
        dirs.append(str(d))
    points = translation.compare_runs(dirs[::-1], str(tmp_path / "sizes.png"))
    assert points == {"bahdanau": [(500, 90.0, 0.9), (50000, 100.0, 1.0)],
                      "none": [(500, 60.0, 0.6), (50000, 99.5, 0.995)]}
    assert (tmp_path / "sizes.png").stat().st_size > 1000
