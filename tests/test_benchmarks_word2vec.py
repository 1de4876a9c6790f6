"""The word2vec benchmark suite in its quickest form on its generated corpus (no download): the
report's rates and ratios recomputed from the recorded times and the corpus (vocabulary by
collections.Counter), gensim's sides present with 1 and 2 workers (skipped, with the reason, when
gensim is not installed); the generated Zipf corpus against its law."""

import collections
import importlib.util
import json
import statistics

import numpy as np
import pytest

from dlmodels.benchmarks import word2vec as bench

HAVE_GENSIM = importlib.util.find_spec("gensim") is not None


def test_synthetic_sentences_follow_zipf():
    n, vocab = 200_000, 1000
    sentences = bench.synthetic_sentences(n, vocab, seed=3)
    assert sum(len(s) for s in sentences) == n
    assert all(5 <= len(s) <= 30 for s in sentences[:-1]) and 1 <= len(sentences[-1]) <= 30
    counts = collections.Counter(w for s in sentences for w in s)
    harmonic = sum(1.0 / r for r in range(1, vocab + 1))
    for rank in (1, 2, 10):
        p = 1.0 / rank / harmonic
        sd = np.sqrt(n * p * (1 - p))
        assert abs(counts[f"w{rank - 1}"] - n * p) < 5 * sd, rank
    same = bench.synthetic_sentences(5000, 50, seed=1)
    assert same == bench.synthetic_sentences(5000, 50, seed=1)


def test_quick_report(tmp_path, capsys):
    out = tmp_path / "w2v.json"
    args = ["--quick", "--corpus", "synthetic", "--synthetic-vocab", "2000", "--words", "8000",
            "--out", str(out)]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    assert (tmp_path / "w2v.md").read_text().strip() == report["markdown"].strip()
    assert report["suite"] == "word2vec" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] <= 2
    sentences = bench.synthetic_sentences(8000, 2000)
    counts = collections.Counter(w for s in sentences for w in s)
    in_vocab = sum(c for c in counts.values() if c >= 5)
    assert report["corpus"]["words"] == 8000
    assert report["corpus"]["in_vocab_words"] == in_vocab
    assert report["corpus"]["vocabulary"] == sum(c >= 5 for c in counts.values())

    peers = ["gensim workers=1", "gensim workers=2"] if HAVE_GENSIM else []
    if not HAVE_GENSIM:
        assert "gensim" in report["skipped"]
    assert [(r["model"], r["loss"]) for r in report["rows"]] == [
        (m, l) for m in bench.MODELS for l in bench.LOSSES]
    results = report["results"]
    assert len(results) == 4 * len(peers)
    for r in results:
        ours, peer = r["ours"]["times_s"], r["peer"]["times_s"]
        assert len(ours) == len(peer) == report["config"]["repeats"]
        assert r["ratio_of_medians"] == pytest.approx(
            statistics.median(peer) / statistics.median(ours), rel=1e-12)
        assert r["ratio_peer_over_ours"] == pytest.approx(  # the headline
            statistics.median(p / o for p, o in zip(peer, ours)), rel=1e-12)
        assert r["round_ratios"] == pytest.approx([p / o for p, o in zip(peer, ours)])
        assert r["checks"]["same_vocabulary_words"] is True
        assert r["checks"]["first_call_seconds"] > 0
    for row in report["rows"]:
        assert sorted(row["words_per_second"]) == sorted(["dlmodels", *peers])
        mine = [r for r in results if r["case"] == row["case"]]
        for r in mine:
            assert row["words_per_second"]["dlmodels"] == pytest.approx(
                in_vocab / r["ours"]["median_s"])
            assert row["words_per_second"][r["peer"]["label"]] == pytest.approx(
                in_vocab / r["peer"]["median_s"])
            h = row["headline"][r["peer"]["label"]]
            assert h["median_round_ratio"] == pytest.approx(statistics.median(r["round_ratios"]))
            assert h["met"] == (h["median_round_ratio"] >= 1.0)
    printed = capsys.readouterr().out
    assert "| model | loss | ours words/s" in printed


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--corpus", "synthetic", "--words", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--corpus", "synthetic", "--workers", "0"])


def test_a_diverging_case_is_reported(tmp_path, monkeypatch):
    def trainer(sentences, vocab, model, loss, seed=0):
        def go():
            raise FloatingPointError("word2vec: the loss became nan in epoch 0; lower alpha")
        return go

    monkeypatch.setattr(bench, "ours_trainer", trainer)
    out = tmp_path / "w2v.json"
    assert bench.main(["--quick", "--corpus", "synthetic", "--words", "3000", "--models",
                       "cbow", "--losses", "hierarchical", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["results"] == [] and report["rows"] == []
    assert report["diverged"] == {
        "cbow hierarchical": "FloatingPointError: word2vec: the loss became nan in epoch 0; "
                             "lower alpha"}
    assert report["failed_checks"] == ["cbow hierarchical: ours diverged"]
