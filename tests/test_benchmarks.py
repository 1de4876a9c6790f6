"""Benchmarks: the harness's helpers, and the seeds suite's --quick run: the report's ratios are
peer median / our median of the recorded times, its cases and shapes are the ones run, and its
same-work check compares the vmapped members with the sequential runs (a sabotaged vmapped program
makes the suite fail)."""

import json
import os
import statistics
import subprocess
import sys
import time

import pytest

from dlmodels.benchmarks import harness, seeds


def test_time_fn_returns_median_of_all_repeats():
    calls = []
    timing = harness.time_fn(lambda x: calls.append(x) or x, 3, warmup=2, repeats=5)
    assert calls == [3] * 7 and len(timing.times) == 5
    assert timing.median == sorted(timing.times)[2]
    with pytest.raises(ValueError, match="repeats"):
        harness.time_fn(lambda: 0, repeats=0)


def test_time_interleaved_leads_each_timed_call_with_its_own_side():
    """Each timed call follows ``lead`` untimed calls of the same side (a training loop's order),
    rounds interleave the sides in a rotating order, and only the timed calls are kept."""
    calls = []
    timings = harness.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                       warmup=1, repeats=3, lead=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert {k: len(t.times) for k, t in timings.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="lead"):
        harness.time_interleaved({"a": lambda: 0}, lead=-1)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="OtherLoad reads Linux's /proc/stat")
def test_other_load_counts_another_process_and_not_our_own_work():
    """A busy child process running beside an idle block shows up as about one core's share of
    the machine (more if something else ran too); our own busy loop is not counted as other."""
    code = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    with harness.OtherLoad() as other:
        child = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(1.0)
    child.wait()
    one_core = 1 / os.cpu_count()
    assert other.share is not None and other.share >= 0.6 * one_core
    # what is subtracted is this process's CPU time: a busy loop here shows up in it
    before = harness.OtherLoad._own_busy()
    t = time.perf_counter()
    while time.perf_counter() - t < 0.5:
        pass
    assert harness.OtherLoad._own_busy() - before >= 0.2


def test_ratio_is_peer_over_ours_and_table_says_so():
    case = harness.Case("c", {"layers": (2, 3), "batch": 4})
    result = harness.Result(case, harness.Measurement("fast", harness.Timing(1.0, (1.0,))),
                            harness.Measurement("slow", harness.Timing(3.0, (3.0,))))
    assert result.ratio == 3.0
    table = harness.format_table("t", [result])
    assert "> 1 means ours (fast) is faster" in table and "layers=2-3 batch=4" in table
    assert "3.00x" in table


def test_headline_is_the_median_of_the_round_ratios():
    """Rounds (ours, peer) (1, 2), (2, 2), (4, 4.4), (10, 10): per-round ratios 2, 1, 1.1, 1,
    median 1.05; the ratio of medians, 3.2 / 3.0, is another number."""
    case = harness.Case("c", {})
    ours, peer = (1.0, 2.0, 4.0, 10.0), (2.0, 2.0, 4.4, 10.0)
    result = harness.Result(case, harness.Measurement("o", harness.Timing(statistics.median(ours), ours)),
                            harness.Measurement("p", harness.Timing(statistics.median(peer), peer)))
    assert result.round_ratios == pytest.approx((2.0, 1.0, 1.1, 1.0))
    assert result.ratio == pytest.approx(1.05)                         # median of 2, 1, 1.1, 1
    assert result.ratio_of_medians == pytest.approx(3.2 / 3.0)
    q25, q75 = result.ratio_quartiles()
    assert q25 <= result.ratio <= q75
    assert result.summary()["median_round_ratio"] == result.ratio


def _check_ratio(result):
    """``ratio_peer_over_ours`` and the medians recomputed from the recorded times."""
    ours, peer = result["ours"]["times_s"], result["peer"]["times_s"]
    assert min(ours) > 0 and min(peer) > 0
    assert result["ours"]["median_s"] == pytest.approx(statistics.median(ours), rel=1e-12)
    assert result["peer"]["median_s"] == pytest.approx(statistics.median(peer), rel=1e-12)
    assert result["ratio_of_medians"] == pytest.approx(
        statistics.median(peer) / statistics.median(ours), rel=1e-12)
    assert result["ratio_peer_over_ours"] == pytest.approx(   # the median of per-round ratios
        statistics.median(p / o for p, o in zip(peer, ours)), rel=1e-12)


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
    # the cases run: per optimizer, the library's vmap, plain jax.vmap, and loop vs scan
    assert [r["case"] for r in report["results"]] == [
        f"tiny {opt}: {what}" for opt in ("sgd-momentum", "adam")
        for what in ("fit's vmap", "plain jax.vmap", "one run")]
    for r in report["results"]:
        assert r["shapes"] == {"layers": [8, 8, 4], "batch": 4, "examples": 64}  # QUICK_SHAPES
        assert len(r["ours"]["times_s"]) == len(r["peer"]["times_s"]) == 1
        _check_ratio(r)
        if r["details"]["comparison"] == "seeds":
            assert r["peer"]["label"] == "sequential x8" and r["details"]["seeds"] == 8
            assert 0 <= r["checks"]["max_rel_loss_diff"] < seeds.MAX_REL_LOSS_DIFF
        else:
            assert r["details"]["comparison"] == "loop-vs-scan"
            assert (r["ours"]["label"], r["peer"]["label"]) == ("scan", "python loop")
            assert r["checks"]["final_max_abs_param_diff"] < 1e-5   # the same run, two ways
    assert "> 1 means ours (vmapped) is faster" in capsys.readouterr().out


def test_seeds_check_fails_when_the_vmapped_program_does_other_work(tmp_path, monkeypatch, capsys):
    """The same-work check compares against the sequential runs: a vmapped program with another
    learning rate must be reported (non-zero exit, its cases in ``failed_checks``)."""
    import optax

    real = seeds.make_vmapped_train_steps
    monkeypatch.setattr(seeds, "make_vmapped_train_steps",
                        lambda loss_fn, optimizer: real(loss_fn, optax.sgd(1.0)))
    out = tmp_path / "seeds.json"
    assert seeds.main(["--quick", "--optimizers", "adam", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["failed_checks"] == ["tiny adam: fit's vmap"]
    by_case = {r["case"]: r for r in report["results"]}
    assert by_case["tiny adam: fit's vmap"]["checks"]["max_rel_loss_diff"] > seeds.MAX_REL_LOSS_DIFF
    assert by_case["tiny adam: plain jax.vmap"]["checks"]["max_rel_loss_diff"] < seeds.MAX_REL_LOSS_DIFF
    assert "FAILED" in capsys.readouterr().err


def test_goals_are_judged_only_on_a_quiet_full_run(capsys):
    """A goal is met from the median of the per-round ratios against its target (at or above, or
    at or below); a run where other processes took more than MAX_OTHER_SHARE of the CPUs, or a
    --quick run, gets no verdict."""
    goals = [harness.goal_row("up", 1.2, (1.1, 1.3), 1.0, above=True),
             harness.goal_row("down", 1.05, None, 1.03, above=False)]
    assert [g["met"] for g in goals] == [True, False] and goals[1]["q25_q75"] == [1.05, 1.05]
    harness.print_goals(goals, 0.02, quick=False)
    out = capsys.readouterr().out
    assert "up: 1.20x [1.10-1.30], target >= 1.0: met" in out and "down: 1.05x" in out
    assert "target <= 1.03: MISSED" in out
    harness.print_goals(goals, harness.MAX_OTHER_SHARE + 0.05, quick=False)
    assert capsys.readouterr().out.count("not judged (machine loaded") == 2
    harness.print_goals(goals, 0.0, quick=True)
    assert capsys.readouterr().out.count("not judged (--quick)") == 2
