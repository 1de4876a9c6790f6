"""The conv benchmark suite's --quick smoke run: exit status, report keys, the same-function checks
(every side's first training losses equal ours) and positive ratios (no timing asserted)."""

import json

import pytest

from dlmodels.benchmarks import conv


@pytest.mark.slow
def test_conv_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "conv.json"
    assert conv.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"suite", "environment", "config", "ratio", "results", "cases", "skipped",
            "failed_checks"} <= set(report)
    assert report["suite"] == "conv" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] == 1
    assert [c["case"] for c in report["cases"]] == ["lenet5", "alexnet"]
    for case in report["cases"]:
        checks = case["checks"]
        assert checks["passed"] and checks["steps"] == conv.CHECK_STEPS
        assert len(checks["losses"]["dlmodels"]) == conv.CHECK_STEPS
        for name, diff in checks["max_rel_loss_diff"].items():
            assert diff <= conv.MAX_REL_LOSS_DIFF, name
        sides = {row["side"]: row for row in case["sides"]}
        assert {"dlmodels", "dlmodels train_step", "flax"} <= set(sides)
        for name in ("torch", "torch channels_last"):      # timed, or reported as not installed
            assert name in sides or f"{case['case']}: {name}" in report["skipped"]
        for name, row in sides.items():
            assert row["ms"] > 0 and row["gflops"] > 0
            if name != "dlmodels":
                assert row["ratio_peer_over_ours"] > 0
                assert name in checks["max_rel_loss_diff"]
        assert case["step_gflop"] > 0 and case["ours_gflops"] > 0
        assert case["context_gflops"]["peak matmul"] > 0
        assert case["fastest_peer"] in ("flax", "torch", "torch channels_last")
        assert case["ratio_fastest_peer_over_ours"] > 0
    for r in report["results"]:
        assert {"case", "shapes", "ours", "peer", "ratio_peer_over_ours", "checks"} <= set(r)
        assert r["ratio_peer_over_ours"] > 0 and r["checks"]["same_function"]
        assert len(r["ours"]["times_s"]) == len(r["peer"]["times_s"]) == 1
    assert {r["peer"]["label"] for r in report["results"]} >= {"flax", conv.FASTEST}
    printed = capsys.readouterr().out
    assert "peer/ours" in printed and "summary" in printed
