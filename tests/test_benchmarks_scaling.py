"""The scaling benchmark suite in its quickest form, run as users run it (`dlmodels bench scaling`)
in a process of its own, since it asks JAX for 8 CPU devices before the backend starts: every case
is in the report, the ratios and throughputs are recomputed from the recorded times and the shapes,
the correctness checks passed; a sabotaged sharded program makes the suite exit 1."""

import json
import os
import statistics
import subprocess
import sys

import pytest

from dlmodels.benchmarks import scaling

MODELS = ("mlp", "lenet5")
PATHS = ("fit", "steps")


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)   # the suite forces its devices itself
    return env


@pytest.mark.slow  # ~70 s: the whole quick suite in subprocesses
def test_quick_report(tmp_path):
    out = tmp_path / "scaling.json"
    proc = subprocess.run([sys.executable, "-m", "dlmodels.cli", "bench", "scaling", "--quick",
                           "--out", str(out)], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["suite"] == "scaling" and report["failed_checks"] == []
    assert report["environment"]["device_count"] == 8 and report["skipped"] == {}
    assert report["config"]["quick"] and report["config"]["forced_cpu_devices"]
    assert (tmp_path / "scaling.md").read_text().strip() == report["markdown"].strip()

    expected = [f"{m} {p} data={n}" for m in MODELS for p in PATHS for n in (1, 2, 4, 8)]
    expected += [f"sweep {p} {w}" for p in PATHS for w in ("seeds=8", "vmapped")]
    results = report["results"]
    assert [r["case"] for r in results] == expected
    quick = {s.name: s for s in scaling.QUICK_SHAPES}
    for r in results:
        ours, peer = r["ours"]["times_s"], r["peer"]["times_s"]
        assert len(ours) == len(peer) == 1 and min(ours) > 0 and min(peer) > 0
        assert r["ratio_peer_over_ours"] > 0
        assert r["ratio_peer_over_ours"] == pytest.approx(
            statistics.median(peer) / statistics.median(ours), rel=1e-12)
        assert r["round_ratios"] == pytest.approx([p / o for p, o in zip(peer, ours)])
        shape = quick[r["shapes"]["model"]]
        assert r["shapes"]["batch"] == shape.batch_size and r["shapes"]["steps"] == shape.steps
        examples = shape.steps * shape.batch_size
        d = r["details"]
        if r["case"].startswith("sweep"):
            assert r["peer"]["label"] == "sequential x8" and r["shapes"]["seeds"] == 8
            examples *= 8
            ours_key = "sharded" if "seeds=8" in r["case"] else "vmapped"
            peer_key = "sequential"
            assert d["mesh"] == ({"seeds": 8} if ours_key == "sharded" else None)
            assert r["checks"]["max_abs_param_diff_member_vs_sequential"] <= 1e-5
        else:
            assert (r["ours"]["label"], r["peer"]["label"]) == ("sharded", "plain")
            ours_key, peer_key = "sharded", "plain"
            assert d["devices"] == int(r["case"].rsplit("=", 1)[1])
            # on the CPU conv nets make one step per call (dlmodels.backend)
            assert d["steps_per_call"] == (1 if shape.model == "lenet5" else shape.steps_per_call)
            assert 0 <= r["checks"]["max_abs_param_diff_vs_plain"] <= 1e-5
        assert d["examples_per_s"][ours_key] == pytest.approx(examples / statistics.median(ours))
        assert d["examples_per_s"][peer_key] == pytest.approx(examples / statistics.median(peer))
    checks = report["checks"]
    assert sorted(checks) == sorted([*expected[:16], "sweep fit sharded", "sweep steps sharded"])
    assert all(c["passed"] for c in checks.values())
    assert "overhead of sharding, not speed-up" in proc.stdout
    assert "| mlp | fit |" in proc.stdout and "| fit | sharded, mesh seeds=8 |" in proc.stdout


SABOTAGE = """
import sys, optax
import dlmodels.train.step as step
real = step.make_sharded_train_steps
step.make_sharded_train_steps = lambda loss, opt, layout, **kw: real(loss, optax.sgd(1.0), layout)
from dlmodels.benchmarks import scaling
sys.exit(scaling.main(sys.argv[1:]))
"""


def test_a_sharded_program_that_computes_otherwise_fails_the_check(tmp_path):
    """The check compares the sharded params with the plain path's: a sharded steps program with
    another learning rate is reported (exit 1, its case in ``failed_checks``); fit's own path is
    untouched and passes."""
    out = tmp_path / "scaling.json"
    proc = subprocess.run([sys.executable, "-c", SABOTAGE, "--quick", "--devices", "1",
                           "--models", "mlp", "--no-sweep", "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed_checks"] == ["mlp steps data=1"]
    assert report["checks"]["mlp fit data=1"]["max_abs_param_diff_vs_plain"] == 0.0
    assert "FAILED" in proc.stderr


def test_bad_arguments_are_refused():
    for devices in ("0", "1,1", "two"):
        with pytest.raises(SystemExit):
            scaling.main(["--quick", "--devices", devices])
