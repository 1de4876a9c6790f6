"""The conv benchmark suite's --quick run: every recorded ratio is the peer's median time over ours,
every GFLOP/s figure is the step's FLOPs (LeNet-5's counted here by hand) over its time, the cases
and shapes are the quick nets', and the same-function check compares every side's first training
losses with ours (a peer that starts from other weights makes the suite fail)."""

import json
import statistics

import jax
import numpy as np
import pytest

from dlmodels.benchmarks import conv

# LeNet-5 on 28x28 (C1 padded by 2), multiply-adds counted as 2 FLOPs, per image:
# C1 5x5x1->6 at 28x28, C3 5x5x6->16 at 10x10, C5 400->120, F6 120->84, output 84->10
LENET_FORWARD_FLOPS = 2 * (25 * 1 * 6 * 28 * 28 + 25 * 6 * 16 * 10 * 10 + 400 * 120 + 120 * 84
                           + 84 * 10)


def _max_rel_diff(losses, reference):
    a, ref = np.asarray(losses), np.asarray(reference)
    return float(np.max(np.abs(a - ref) / np.abs(ref)))


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
    lenet, alex = report["cases"]
    assert lenet["shapes"] == {"batch": 8, "input": [28, 28, 1], "classes": 10}
    assert {k: alex["shapes"][k] for k in ("batch", "input", "classes", "width")} == {
        "batch": 2, "input": [64, 64, 3], "classes": 10, "width": 1 / 16}
    # AlexNet's 96-256-384-384-256 channels and 4096-unit fc layers at width 1/16; a 64x64 input
    # leaves 1x1 maps after pool5, so fc6 sees the 16 channels
    assert alex["shapes"]["channels"] == [6, 16, 24, 24, 16]
    assert alex["shapes"]["fc"] == [16, 256, 256]
    assert lenet["step_gflop"] == pytest.approx(3 * 8 * LENET_FORWARD_FLOPS / 1e9, rel=1e-9)

    for case in report["cases"]:
        checks = case["checks"]
        assert checks["passed"] and checks["steps"] == conv.CHECK_STEPS
        ours_losses = checks["losses"]["dlmodels"]
        assert len(ours_losses) == conv.CHECK_STEPS
        # at init the logits are small: the first loss is near chance, log(n_classes)
        assert abs(ours_losses[0] - np.log(10)) < 1.0
        sides = {row["side"]: row for row in case["sides"]}
        assert {"dlmodels", "dlmodels train_step", "flax"} <= set(sides)
        for name in ("torch", "torch channels_last"):      # timed, or reported as not installed
            assert name in sides or f"{case['case']}: {name}" in report["skipped"]
        for name, row in sides.items():
            assert row["gflops"] == pytest.approx(case["step_gflop"] / (row["ms"] / 1e3), rel=1e-9)
            if name == "dlmodels":
                continue
            assert row["ratio_peer_over_ours"] == pytest.approx(row["ms"] / sides["dlmodels"]["ms"],
                                                                rel=1e-9)
            # the check compared this side's recorded losses with ours
            assert checks["max_rel_loss_diff"][name] == pytest.approx(
                _max_rel_diff(checks["losses"][name], ours_losses), rel=1e-6, abs=1e-12)
            assert checks["max_rel_loss_diff"][name] <= conv.MAX_REL_LOSS_DIFF
        assert case["ours_gflops"] == pytest.approx(sides["dlmodels"]["gflops"], rel=1e-9)
        assert case["context_gflops"]["peak matmul"] > 0
        peers = [n for n in ("flax", "torch", "torch channels_last") if n in sides]
        assert case["fastest_peer"] == min(peers, key=lambda n: sides[n]["ms"])
        assert case["ratio_fastest_peer_over_ours"] == pytest.approx(
            sides[case["fastest_peer"]]["ratio_peer_over_ours"], rel=1e-9)
    for r in report["results"]:
        assert {"case", "shapes", "ours", "peer", "ratio_peer_over_ours", "checks"} <= set(r)
        assert r["checks"]["same_function"]
        assert len(r["ours"]["times_s"]) == len(r["peer"]["times_s"]) == 1
        ours, peer = r["ours"]["times_s"], r["peer"]["times_s"]
        assert r["ratio_peer_over_ours"] == pytest.approx(
            statistics.median(peer) / statistics.median(ours), rel=1e-12)
        assert r["shapes"] == {c["case"]: c["shapes"] for c in report["cases"]}[r["case"]]
    assert {r["peer"]["label"] for r in report["results"]} >= {"flax", conv.FASTEST}
    printed = capsys.readouterr().out
    assert "peer/ours" in printed and "summary" in printed


@pytest.mark.slow
def test_conv_check_fails_when_a_peer_computes_something_else(tmp_path, monkeypatch, capsys):
    """A Flax side started from weights 1 % off ours trains another function: the suite must
    say so (non-zero exit, the case in ``failed_checks``)."""
    real = conv.flax_side
    monkeypatch.setattr(conv, "flax_side", lambda net, params, x, y: real(
        net, jax.tree.map(lambda a: a * 1.01, params), x, y))
    out = tmp_path / "conv.json"
    assert conv.main(["--quick", "--nets", "lenet5", "--peers", "flax", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert len(report["failed_checks"]) == 1 and report["failed_checks"][0].startswith("lenet5")
    checks = report["cases"][0]["checks"]
    assert not checks["passed"] and checks["max_rel_loss_diff"]["flax"] > conv.MAX_REL_LOSS_DIFF
    assert "FAILED" in capsys.readouterr().err


def test_vmapped_seeds_case_runs_the_same_steps_and_reports_per_round_ratios():
    net = next(n for n in conv.QUICK_NETS if n.kind == "lenet5")
    result, row = conv.vmapped_seeds(net, 2, warmup=0, repeats=3)
    assert row["seeds"] == 2 and row["max_rel_loss_diff"] <= conv.MAX_REL_LOSS_DIFF
    ratios = [s / v for s, v in zip(row["sequential_times_s"], row["vmapped_times_s"])]
    assert row["ratio_sequential_over_vmapped"] == pytest.approx(statistics.median(ratios))
    assert row["ratio_q25_q75"][0] <= row["ratio_sequential_over_vmapped"] <= row["ratio_q25_q75"][1]
    assert result.checks["same_function"]
