"""The text benchmark suite: its headline is the median of the per-round ratios against the
fastest peer (checked on hand-made timings), the LM's flop count by hand, and the --quick run's
report (ratios and tokens/s recomputed from the recorded times, the CRF agreeing with pytorch-crf,
peers that are not installed reported as skipped rather than failing the run)."""

import json
import statistics
import sys

import pytest

from dlmodels.benchmarks import harness, text


def _result(peer_label, ours_times, peer_times):
    case = harness.Case("c", {})
    t = lambda times: harness.Timing(statistics.median(times), tuple(times))
    return harness.Result(case, harness.Measurement("dlmodels", t(ours_times)),
                          harness.Measurement(peer_label, t(peer_times)))


def test_headline_is_median_round_ratio_against_fastest_peer():
    ours = [1.0, 2.0, 1.0, 1.0, 4.0]
    slow = _result("slow", ours, [3.0, 3.0, 3.0, 3.0, 3.0])
    # the fastest peer by median time (1.5 < 3.0); per-round ratios 1.5/1, 1/2, 2/1, 1.5/1, 1.5/4
    fast = _result("fast", ours, [1.5, 1.0, 2.0, 1.5, 1.5])
    h = text.headline([slow, fast])
    assert h["fastest_peer"] == "fast"
    rounds = sorted([1.5, 0.5, 2.0, 1.5, 0.375])
    assert h["median_round_ratio"] == pytest.approx(rounds[2])            # 1.5
    assert h["round_ratio_q25_q75"] == pytest.approx([rounds[1], rounds[3]])  # inclusive quartiles
    assert h["ratio_of_medians"] == pytest.approx(1.5 / 1.0)
    assert h["met"] is True and h["target"] == 1.0
    assert h["per_peer"]["slow"]["median_round_ratio"] == pytest.approx(3.0)
    assert text.headline([_result("p", [2.0, 2.0], [1.0, 1.5])])["met"] is False
    assert text.headline([]) is None


def test_lm_step_flops_by_hand():
    s = text.LM_SHAPE
    assert (s.vocab, s.batch, s.steps, s.hidden, s.layers) == (84, 64, 128, 512, 2)
    forward = (2 * 128 * 64 * (64 + 512) * 4 * 512 + 2 * 128 * 64 * (512 + 512) * 4 * 512
               + 2 * 128 * 64 * 512 * 84)
    assert text.lm_step_flops(s) == pytest.approx(3 * forward)


def _check_report(report, *, lm_peers, crf_peer):
    assert report["suite"] == "text" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] <= 2
    env = report["environment"]
    assert {"device_kind", "platform", "cpu_count", "python", "versions", "date"} <= set(env)
    by_case = {}
    for r in report["results"]:
        by_case.setdefault(r["case"], []).append(r)
        ours, peer = r["ours"]["times_s"], r["peer"]["times_s"]
        assert len(ours) == len(peer) == report["config"]["repeats"]
        assert r["ratio_of_medians"] == pytest.approx(
            statistics.median(peer) / statistics.median(ours), rel=1e-12)
        assert r["ratio_peer_over_ours"] == pytest.approx(  # the headline
            statistics.median(p / o for p, o in zip(peer, ours)), rel=1e-12)
        assert r["round_ratios"] == pytest.approx([p / o for p, o in zip(peer, ours)])
    lm_results = by_case.get("char-LM train step", [])
    assert sorted(r["peer"]["label"] for r in lm_results) == sorted(lm_peers)
    # tokens/s of every side = S B T / its recorded time
    s = report["config"]["lm_shape"]
    tokens = s["windows"] * s["batch"] * s["steps"]
    sides = {row["label"]: row for row in report["lm_sides"]}
    assert set(sides) == {"dlmodels", *lm_peers}
    for row in sides.values():
        assert row["tokens_per_s"] == pytest.approx(tokens / row["seconds_per_call"])
    for r in lm_results:
        assert sides[r["peer"]["label"]]["seconds_per_call"] == r["peer"]["median_s"]
        assert sides["dlmodels"]["seconds_per_call"] == r["ours"]["median_s"]
    h = report["headlines"]["lm"]
    if lm_peers:
        fastest = min(lm_results, key=lambda r: r["peer"]["median_s"])
        assert h["fastest_peer"] == fastest["peer"]["label"]
        assert h["median_round_ratio"] == pytest.approx(statistics.median(fastest["round_ratios"]))
        assert h["met"] == (h["median_round_ratio"] >= 1.0)
    else:
        assert h is None
    crf_cases = ("CRF log-likelihood + gradient", "CRF Viterbi decode")
    if crf_peer:
        for case in crf_cases:
            (r,) = by_case[case]
            assert r["shapes"] == {"B": 4, "T": 6, "K": 5, "calls_per_round": 2}
            diffs = r["checks"]["max_rel_diff"]
            assert set(diffs) == {"log_likelihood", "d_emissions", "d_transitions", "d_start",
                                  "d_end"}
            assert max(diffs.values()) < 1e-4 and r["checks"]["viterbi_paths_equal"]
        assert report["headlines"]["crf"]["fastest_peer"] == "pytorch-crf forward+backward"
    else:
        assert not any(c in by_case for c in crf_cases)
        assert report["headlines"]["crf"] is None
        assert "crf: pytorch-crf" in report["skipped"]


def test_text_quick_writes_report(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("torchcrf")
    out = tmp_path / "text.json"
    assert text.main(["--quick", "--breakdown", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    _check_report(report, lm_peers=["torch nn.LSTM", "flax OptimizedLSTMCell"], crf_peer=True)
    # the parts of the step, timed in the same rounds: per-round fractions of our step's time
    parts = report["lm_breakdown"]
    assert set(parts) == {"dlmodels model value_and_grad", "dlmodels LSTM layers only",
                          "torch nn.LSTM layers only"}
    ours = report["results"][0]["ours"]["times_s"]
    for part in parts.values():
        assert part["fraction_of_ours_per_round"] == pytest.approx(
            [a / b for a, b in zip(part["times_s"], ours)])
    fc = report["results"][0]["checks"]["fit_check"]
    assert fc["calls"] == 3 and len(fc["seconds_per_window_after_compile"]) == 2
    assert all(x > 0 for x in fc["seconds_per_window_after_compile"])
    assert "vs the fastest peer" in capsys.readouterr().out


def test_text_quick_skips_missing_peers(tmp_path, monkeypatch, capsys):
    # torch, pytorch-crf and Flax Linen "not installed": the suite still runs ours and says so
    for module in ("torch", "torchcrf", "flax.linen"):
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "text.json"
    assert text.main(["--quick", "--no-fit-check", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["skipped"]) == {"lm: torch", "lm: flax", "crf: pytorch-crf"}
    assert all("not installed" in v for v in report["skipped"].values())
    _check_report(report, lm_peers=[], crf_peer=False)
    assert report["results"] == []
    assert "skipped torch" in capsys.readouterr().out
