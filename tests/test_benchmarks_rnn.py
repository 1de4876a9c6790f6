"""The rnn benchmark suite's --quick smoke run: its report is consistent with its own recorded
timings (ratios, rates, compile ratio), the memory report counts the step's real arguments, and the
fused path agrees with the generic one (the check the suite makes of its outputs)."""

import json

import pytest

from dlmodels.benchmarks import rnn


@pytest.mark.slow
def test_rnn_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "rnn.json"
    assert rnn.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["suite"] == "rnn" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] == 1
    assert {c["cell"] for c in report["cases"]} == {"lstm", "gru"}
    approx = lambda x: pytest.approx(x, rel=1e-9)
    ratios = {}
    for case in report["cases"]:
        s = case["shape"]
        assert case["step_gflop"] == approx(rnn.step_flops(case["cell"], rnn.Shape(**s)) / 1e9)
        # matmul flops of the step, by hand: 3 * 2 T B (D + H) G H
        G = {"lstm": 4, "gru": 3}[case["cell"]]
        assert case["step_gflop"] == approx(
            6 * s["steps"] * s["batch"] * (s["input_size"] + s["hidden_size"]) * G * s["hidden_size"] / 1e9)
        assert case["fused_vs_generic_rel_diff"] < 1e-4
        sides = {row["side"]: row for row in case["sides"]}
        assert {"dlmodels", "dlmodels generic"} <= set(sides)
        ours_ms = sides["dlmodels"]["ms"]
        for name, row in sides.items():
            assert row["gflops"] == approx(case["step_gflop"] / (row["ms"] / 1e3))
            assert row["percent_of_peak"] == approx(100 * row["gflops"] / case["peak_gflops"])
            if name == "dlmodels":
                assert "ratio_peer_over_ours" not in row
            else:
                assert row["ratio_peer_over_ours"] == approx(row["ms"] / ours_ms)
                ratios[(case["case"], row["label"])] = row["ratio_peer_over_ours"]
        for peer in ("torch", "equinox", "haiku"):    # every peer is timed or reported skipped
            assert peer in sides or f"{case['cell']}: {peer}" in report["skipped"]
    assert len(report["results"]) == len(ratios)
    for r in report["results"]:
        assert set(r["shapes"]) == {"B", "T", "D", "H"}
        (ours_s,), (peer_s,) = r["ours"]["times_s"], r["peer"]["times_s"]
        assert r["ours"]["median_s"] == ours_s and r["peer"]["median_s"] == peer_s
        assert r["ratio_peer_over_ours"] == approx(peer_s / ours_s)
        assert r["ratio_peer_over_ours"] == approx(ratios[(r["case"], r["peer"]["label"])])
    compiled = report["compile"]["dlmodels"]
    assert compiled["ratio_long_over_short"] == approx(compiled["seconds"]["100"] / compiled["seconds"]["10"])
    # the memory step's arguments: LSTM params (w_x [D, 4H], w_h [H, 4H], b [4H]) and xs [B, T, D]
    m = report["config"]["memory_shape"]
    B, T, D, H = m["batch"], m["steps"], m["input_size"], m["hidden_size"]
    arguments = 4 * ((D + H + 1) * 4 * H + B * T * D)
    for side in ("dlmodels", "dlmodels remat"):
        assert report["memory"][side]["argument_bytes"] == arguments
        assert report["memory"][side]["output_bytes"] >= arguments + 4   # the loss and the grads
    assert "peer/ours" in capsys.readouterr().out
