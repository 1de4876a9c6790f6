"""Benchmarks: the harness's helpers, and each suite's --quick smoke run (no timing asserted)."""

import json

import pytest

from dlmodels.benchmarks import harness, seeds


def test_time_fn_returns_median_of_all_repeats():
    calls = []
    timing = harness.time_fn(lambda x: calls.append(x) or x, 3, warmup=2, repeats=5)
    assert calls == [3] * 7 and len(timing.times) == 5
    assert timing.median == sorted(timing.times)[2]
    with pytest.raises(ValueError, match="repeats"):
        harness.time_fn(lambda: 0, repeats=0)


def test_ratio_is_peer_over_ours_and_table_says_so():
    case = harness.Case("c", {"layers": (2, 3), "batch": 4})
    result = harness.Result(case, harness.Measurement("fast", harness.Timing(1.0, (1.0,))),
                            harness.Measurement("slow", harness.Timing(3.0, (3.0,))))
    assert result.ratio == 3.0
    table = harness.format_table("t", [result])
    assert "> 1 means ours (fast) is faster" in table and "layers=2-3 batch=4" in table
    assert "3.00x" in table


@pytest.mark.slow
def test_seeds_quick_writes_report(tmp_path, capsys):
    out = tmp_path / "seeds.json"
    assert seeds.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"suite", "environment", "config", "ratio", "results", "failed_checks"} <= set(report)
    assert report["suite"] == "seeds" and report["failed_checks"] == []
    assert report["config"]["quick"] and report["config"]["repeats"] == 1
    env = report["environment"]
    assert {"device_kind", "platform", "cpu_count", "python", "versions", "date"} <= set(env)
    assert {"jax", "jaxlib", "flax", "optax", "numpy"} <= set(env["versions"])
    comparisons = {r["case"]: r["details"]["comparison"] for r in report["results"]}
    assert sorted(set(comparisons.values())) == ["loop-vs-scan", "seeds"]
    for r in report["results"]:
        assert {"case", "shapes", "details", "ours", "peer", "ratio_peer_over_ours",
                "checks"} <= set(r)
        assert set(r["shapes"]) == {"layers", "batch", "examples"}
        assert len(r["ours"]["times_s"]) == len(r["peer"]["times_s"]) == 1
        assert r["ratio_peer_over_ours"] > 0
        if r["details"]["comparison"] == "seeds":
            assert r["checks"]["max_rel_loss_diff"] < 1e-3
    assert "> 1 means ours (vmapped) is faster" in capsys.readouterr().out
