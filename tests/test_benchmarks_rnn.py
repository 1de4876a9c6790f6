"""The rnn benchmark suite's --quick smoke run: exit status and report keys (no timing asserted)."""

import json

import pytest

from dlmodels.benchmarks import rnn


@pytest.mark.slow
def test_rnn_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "rnn.json"
    assert rnn.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"suite", "environment", "config", "ratio", "results", "cases", "compile", "memory",
            "skipped", "failed_checks"} <= set(report)
    assert report["suite"] == "rnn" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] == 1
    assert {c["cell"] for c in report["cases"]} == {"lstm", "gru"}
    for case in report["cases"]:
        assert case["fused_vs_generic_rel_diff"] < 1e-4
        sides = {row["side"]: row for row in case["sides"]}
        assert {"dlmodels", "dlmodels generic"} <= set(sides)
        for row in sides.values():
            assert {"label", "ms", "gflops", "percent_of_peak"} <= set(row)
            assert row["ms"] > 0 and row["gflops"] > 0
        for name, row in sides.items():
            if name != "dlmodels":
                assert row["ratio_peer_over_ours"] > 0
    # every peer is either timed or reported as skipped
    for kind in ("lstm", "gru"):
        case = next(c for c in report["cases"] if c["cell"] == kind)
        timed = {row["side"] for row in case["sides"]}
        for peer in ("torch", "equinox", "haiku"):
            assert peer in timed or f"{kind}: {peer}" in report["skipped"]
    for r in report["results"]:
        assert {"case", "shapes", "ours", "peer", "ratio_peer_over_ours"} <= set(r)
        assert set(r["shapes"]) == {"B", "T", "D", "H"}
        assert len(r["ours"]["times_s"]) == len(r["peer"]["times_s"]) == 1
    assert set(report["compile"]["dlmodels"]["seconds"]) == {"10", "100"}
    assert {"dlmodels", "dlmodels remat"} <= set(report["memory"])
    for m in report["memory"].values():
        assert m["temp_bytes"] >= 0 and m["argument_bytes"] > 0
    assert "peer/ours" in capsys.readouterr().out
