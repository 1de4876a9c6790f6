"""The word2vec experiment (experiments/word2vec.py): a smoke run on its generated corpus (no
download) with both implementations, its numbers recomputed from the per-run records and the
corpus (vocabulary and word counts by collections.Counter, words/s from the recorded seconds,
means and stds by numpy, targets by hand), our evaluation equal to gensim's own on gensim's
vectors, resume skipping finished runs, the synthetic evaluation files read back by the data
module's parsers, the gensim keyword mapping and the config checks."""

import collections
import importlib.util
import json
import os

import numpy as np
import pytest

from dlmodels import experiment
from dlmodels.data import word_similarity
from dlmodels.experiments import word2vec as w2v_exp

HAVE_GENSIM = importlib.util.find_spec("gensim") is not None

IMPLEMENTATIONS = "dlmodels,gensim" if HAVE_GENSIM else "dlmodels"
SMOKE = ["--corpus", "synthetic", "--n-seeds", "2", "--epochs", "1", "--vector-size", "16",
         "--implementations", IMPLEMENTATIONS]


def _run_files(run_dir):
    folder = os.path.join(run_dir, "runs")
    return {f: json.load(open(os.path.join(folder, f))) for f in sorted(os.listdir(folder))}


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_smoke_numbers_and_resume(tmp_path):
    run_dir, results = experiment.run("word2vec", SMOKE, run_dir=str(tmp_path / "run"))
    for name in ("results.json", "config.json", "metrics.jsonl", "table.md", "table.png",
                 "pca.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    sentences = w2v_exp.synthetic_corpus()
    counts = collections.Counter(w for s in sentences for w in s)
    kept = {w: c for w, c in counts.items() if c >= 5}
    corpus = results["corpus"]
    assert corpus["words"] == sum(counts.values())
    assert corpus["vocabulary"] == len(kept)
    assert corpus["in_vocab_words"] == sum(kept.values())

    impls = IMPLEMENTATIONS.split(",")
    runs = results["runs"]
    assert len(runs) == 2 * 2 * 2 * len(impls)          # models x losses x seeds x impls
    for r in runs:
        assert r["vocab_size"] == len(kept)
        assert r["words_per_second"] == pytest.approx(sum(kept.values()) * 1 / r["train_seconds"])
        a = r["evaluation"]["analogy"]
        # every synthetic question is in the vocabulary: 56 semantic + 56 syntactic
        assert a["questions"] == {"semantic": 56, "syntactic": 56, "total": 112}
        correct = sum(s["correct"] for s in a["sections"].values())
        assert a["total"] == pytest.approx(100 * correct / 112)
        # one of the 25 WordSim pairs has a word outside the corpus; SimLex holds pairs[::2]
        assert r["evaluation"]["wordsim353"]["oov_percent"] == pytest.approx(100 / 25)
        assert r["evaluation"]["simlex999"]["oov_percent"] == pytest.approx(100 / 13)
        if r["implementation"] == "gensim":
            assert r["gensim_check"]["equal"], r["gensim_check"]["mismatched"]
            assert r["same_vocabulary_as_ours"]["same_words"]
            assert r["gensim_params"]["workers"] == 2
    if HAVE_GENSIM:
        assert results["gensim_evaluation_check"] == {
            "runs": 8, "all_equal": True,
            "max_abs_diff": results["gensim_evaluation_check"]["max_abs_diff"]}

    # the table: mean and std (ddof 1) over seeds, differences and targets by hand
    for key, row in results["summary"].items():
        model, loss = key.split("-")
        per = {impl: [r for r in runs if (r["model"], r["loss"], r["implementation"])
                      == (model, loss, impl)] for impl in impls}
        for impl in impls:
            total = [r["evaluation"]["analogy"]["total"] for r in per[impl]]
            assert row[impl]["analogy_total"]["mean"] == pytest.approx(np.mean(total))
            assert row[impl]["analogy_total"]["std"] == pytest.approx(np.std(total, ddof=1))
            rho = [r["evaluation"]["simlex999"]["spearman"] for r in per[impl]]
            assert row[impl]["simlex999_spearman"]["mean"] == pytest.approx(np.mean(rho))
            wps = [r["words_per_second"] for r in per[impl]]
            assert row[impl]["words_per_second"]["std"] == pytest.approx(np.std(wps, ddof=1))
        if HAVE_GENSIM:
            c = row["comparison"]
            diff = (np.mean([r["evaluation"]["analogy"]["total"] for r in per["dlmodels"]])
                    - np.mean([r["evaluation"]["analogy"]["total"] for r in per["gensim"]]))
            assert c["analogy_total"]["difference"] == pytest.approx(diff)
            assert c["analogy_total"]["met"] == (diff >= -2.0)
            assert c["analogy_total"]["margin"] == pytest.approx(diff + 2.0)
            ratio = (np.mean([r["words_per_second"] for r in per["dlmodels"]])
                     / np.mean([r["words_per_second"] for r in per["gensim"]]))
            assert c["words_per_second"]["ratio"] == pytest.approx(ratio)
            assert c["words_per_second"]["met"] == (ratio >= 1.0)
    pca = next(r for r in _run_files(run_dir).values() if "pca" in r)["pca"]
    assert set(pca["coords"]) == {w for t in pca["groups"].values() for p in t for w in p}
    assert len(pca["coords"]) == 32

    # resume: finished runs are read back, not retrained (their recorded times unchanged)
    before = _run_files(run_dir)
    os.remove(os.path.join(run_dir, "runs", "cbow-negative-dlmodels-seed1.json"))
    _, again = experiment.run("word2vec", [], run_dir=run_dir, resume=True)
    after = _run_files(run_dir)
    assert set(after) == set(before)
    for name in before:
        if name != "cbow-negative-dlmodels-seed1.json":
            assert after[name] == before[name], name
    assert again["runs"][0] == results["runs"][0]


def test_analogy_summary_by_hand():
    q = ("a", "b", "c", "d")
    sections = [{"section": "capital-common-countries", "correct": [q] * 3, "incorrect": [q]},
                {"section": "family", "correct": [], "incorrect": [q] * 4},
                {"section": "gram1-adjective-to-adverb", "correct": [q] * 1, "incorrect": [q] * 1},
                {"section": "Total accuracy", "correct": [q] * 4, "incorrect": [q] * 6}]
    s = w2v_exp.analogy_summary(sections)
    assert s["semantic"] == pytest.approx(100 * 3 / 8)
    assert s["syntactic"] == pytest.approx(100 * 1 / 2)
    assert s["total"] == pytest.approx(100 * 4 / 10)
    assert s["questions"] == {"semantic": 8, "syntactic": 2, "total": 10}
    empty = w2v_exp.analogy_summary([{"section": "gram2-opposite", "correct": [],
                                      "incorrect": []}])
    assert empty["total"] is None and empty["syntactic"] is None


def test_compare_targets_by_hand():
    config = w2v_exp.Config()

    def side(total, ws, sl, wps):
        out = {k: {"mean": None} for k, *_ in w2v_exp.METRICS}
        out.update(analogy_total={"mean": total}, wordsim353_spearman={"mean": ws},
                   simlex999_spearman={"mean": sl}, words_per_second={"mean": wps})
        return out

    c = w2v_exp.compare(side(10.0, 0.50, 0.20, 3e5), side(12.5, 0.52, 0.25, 2e5), config)
    assert c["analogy_total"]["difference"] == pytest.approx(-2.5)
    assert c["analogy_total"]["met"] is False
    assert c["analogy_total"]["margin"] == pytest.approx(-0.5)
    assert c["wordsim353_spearman"]["met"] is True
    assert c["wordsim353_spearman"]["margin"] == pytest.approx(0.01)
    assert c["simlex999_spearman"]["met"] is False
    assert c["simlex999_spearman"]["margin"] == pytest.approx(-0.02)
    assert c["words_per_second"]["ratio"] == pytest.approx(1.5) and c["words_per_second"]["met"]
    assert c["analogy_semantic"] == {"difference": None}


def test_compare_evaluations_flags_differences():
    ours = {"analogy": {"total": 10.0, "sections": {"s": {"correct": 3, "questions": 30}}},
            "analogy_cosmul": {"total": 99.0}, "wordsim353": {"spearman": 0.5}}
    theirs = {"analogy": {"total": 10.0, "sections": {"s": {"correct": 3, "questions": 30}}},
              "wordsim353": {"spearman": 0.5 + 1e-8}}
    ok = w2v_exp.compare_evaluations(ours, theirs)
    assert ok["equal"] and ok["max_abs_diff"] == pytest.approx(1e-8)
    theirs["analogy"]["sections"]["s"]["correct"] = 4
    bad = w2v_exp.compare_evaluations(ours, theirs)
    assert not bad["equal"] and bad["mismatched"] == ["analogy.sections.s.correct"]


def test_synthetic_evaluation_files_read_back(tmp_path):
    analogies, pairs = w2v_exp.synthetic_evaluation()
    text = open(w2v_exp.write_analogies(str(tmp_path / "a.txt"), analogies)).read()
    assert word_similarity.parse_analogies(text) == analogies
    text = open(w2v_exp.write_pairs(str(tmp_path / "p.tsv"), pairs["wordsim353"])).read()
    assert word_similarity.parse_pairs(text) == pairs["wordsim353"]


def test_gensim_params_mirror_ours():
    config = w2v_exp.Config()
    hs = w2v_exp.gensim_params(config, "cbow", "hierarchical", 3)
    assert (hs["sg"], hs["hs"], hs["negative"], hs["alpha"], hs["seed"]) == (0, 1, 0, 0.05, 3)
    ns = w2v_exp.gensim_params(config, "skipgram", "negative", 0)
    assert (ns["sg"], ns["hs"], ns["negative"], ns["alpha"]) == (1, 0, 5, 0.025)
    assert ns["workers"] == 2 and ns["cbow_mean"] == 1 and ns["epochs"] == 5
    ours = w2v_exp._ours_config(config, "cbow", "hierarchical", 3)
    assert (ours.model, ours.loss, ours.start_alpha, ours.seed, ours.window) == \
        ("cbow", "hierarchical", 0.05, 3, 5)


@pytest.mark.parametrize("changes, match", [
    ({"corpus": "wiki"}, "corpus"),
    ({"models": ("skipgram", "glove")}, "models"),
    ({"losses": ()}, "losses"),
    ({"implementations": ("gensim", "gensim")}, "implementations"),
    ({"window": 0}, "window"),
    ({"max_words": -1}, "max_words"),
    ({"min_alpha": 0.1}, "min_alpha"),
    ({"n_seeds": 0}, "n_seeds"),
])
def test_invalid_configs_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        experiment.make_config(w2v_exp, changes)


def test_a_diverged_run_is_reported_not_fatal(tmp_path, monkeypatch):
    real = w2v_exp.train_ours

    def diverging(config, model, loss, seed, *args):
        if (model, loss) == ("cbow", "hierarchical"):
            raise FloatingPointError("word2vec: the loss became nan in epoch 0; lower alpha")
        return real(config, model, loss, seed, *args)

    monkeypatch.setattr(w2v_exp, "train_ours", diverging)
    run_dir, results = experiment.run(
        "word2vec", ["--corpus", "synthetic", "--n-seeds", "1", "--epochs", "1",
                     "--vector-size", "8", "--models", "cbow", "--implementations", "dlmodels"],
        run_dir=str(tmp_path / "run"))
    row = results["summary"]["cbow-hierarchical"]["dlmodels"]
    assert row["failed_runs"] == {
        "cbow-hierarchical-dlmodels-seed0":
            "FloatingPointError: word2vec: the loss became nan in epoch 0; lower alpha"}
    assert row["analogy_total"]["mean"] is None and row["analogy_questions"] is None
    assert results["summary"]["cbow-negative"]["dlmodels"]["analogy_total"]["n"] == 1
    assert "cbow-hierarchical-dlmodels-seed0: FloatingPointError" in results["table_markdown"]
    # not stored: a resumed run tries it again
    assert sorted(os.listdir(os.path.join(run_dir, "runs"))) == ["cbow-negative-dlmodels-seed0.json"]
