"""Fault injection: an experiment run from the command line is killed with SIGKILL several times
(at seeded random moments after progress, and while orbax is writing a checkpoint), continued
each time with ``dlmodels run NAME --resume RUN_DIR``, and must end with the same final params
(bitwise) and the same results.json, histories and metrics.jsonl as a run that was never
interrupted. After every kill, the newest checkpoint seen before it and every checkpoint present
must still restore.

Wall-clock fields are left out of the comparison: ``train_seconds`` in results.json and
``seconds`` in each history entry / metrics.jsonl line. Everything else must be equal.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dlmodels.train import Checkpointer

# The mlp experiment on the embedded digits set: 1,257 training images, batch 128 -> 9 updates an
# epoch; a checkpoint every 4 updates, so that most land inside an epoch.
OPTIONS = ["--dataset", "digits", "--variants", "relu", "--epochs", "12", "--hidden", "32",
           "--checkpoint-every", "4"]
TMP = ".orbax-checkpoint-tmp"
TIMEOUT = 300


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CI": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlmodels", "run", "mlp", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    return out


def _steps(ckpt: Path) -> list[int]:
    """Complete checkpoints: orbax renames a finished one to its step number, and one that a kill
    caught while orbax was removing it (beyond ``keep``) has lost an item (``Checkpointer.steps``)."""
    try:
        return sorted(int(p) for p in os.listdir(ckpt) if p.isdigit()
                      and all((ckpt / p / item).is_dir() for item in ("state", "config")))
    except FileNotFoundError:
        return []


def _tmp_dirs(ckpt: Path) -> set[str]:
    """Orbax's temporary directories: checkpoints being written (or left by a kill)."""
    try:
        return {p for p in os.listdir(ckpt) if TMP in p}
    except FileNotFoundError:
        return set()


def _after(ready, delay: float):
    """A test that turns true ``delay`` seconds after ``ready()`` first does."""
    since = []

    def test():
        if not since and ready():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= delay
    return test


def _kill_when(proc: subprocess.Popen, ready, ckpt: Path, what: str) -> list[int]:
    """SIGKILL ``proc`` as soon as ``ready()``; returns the complete checkpoints seen just
    before."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        seen = _steps(ckpt)
        if ready():
            break
        if proc.poll() is not None:
            pytest.fail(f"the run finished before the kill ({what}): {proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting to kill ({what})")
        time.sleep(0.0005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return seen


def _params(run_dir: Path):
    ckpt = Checkpointer(run_dir / "relu" / "checkpoints")
    try:
        steps = ckpt.steps()
        return steps[-1], ckpt.restore_params()[0]
    finally:
        ckpt.close()


def _readable(ckpt_dir: Path, steps: list[int]) -> None:
    ckpt = Checkpointer(ckpt_dir)
    try:
        for step in steps:
            params, _ = ckpt.restore_params(step=step)
            assert all(np.isfinite(np.asarray(a)).all() for a in _leaves(params))
    finally:
        ckpt.close()


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def _without(records, key):
    return [{k: v for k, v in r.items() if k != key} for r in records]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    rng = np.random.default_rng(12)
    reference = tmp_path / "reference"
    _finish(_start(*OPTIONS, "--run-dir", str(reference), cwd=tmp_path))

    run_dir = tmp_path / "killed"
    ckpt = run_dir / "relu" / "checkpoints"
    writing, after_start, after_checkpoint = ("while a checkpoint is written",
                                              "at a random moment after the start",
                                              "at a random moment after a checkpoint")
    # kills spread over the 108 updates: (when, the newest checkpoint's step it waits for)
    targets = sorted(int(t) for t in rng.choice(np.arange(8, 100, 4), size=4, replace=False))
    kills = [(writing, targets[0]), (after_start, 0), (after_checkpoint, targets[1]),
             (writing, targets[2]), (after_checkpoint, targets[3])]
    proc = _start(*OPTIONS, "--run-dir", str(run_dir), cwd=tmp_path)
    left_tmp = 0
    for what, target in kills:
        old_tmp = _tmp_dirs(ckpt)
        reached = lambda t=target: bool(_steps(ckpt)) and _steps(ckpt)[-1] >= t  # noqa: E731
        if what == writing:  # a new temporary directory: orbax is writing a checkpoint now
            ready = lambda r=reached: r() and bool(_tmp_dirs(ckpt) - old_tmp)  # noqa: E731
        elif what == after_start:  # during imports, compilation or training
            ready = _after((run_dir / "config.json").exists, float(rng.uniform(0.0, 3.0)))
        else:
            ready = _after(reached, float(rng.uniform(0.0, 0.3)))
        before = _kill_when(proc, ready, ckpt, what)
        after = _steps(ckpt)
        left_tmp += bool(_tmp_dirs(ckpt) - old_tmp)
        # no checkpoint lost: the newest one seen before the kill is still there, and every
        # complete checkpoint present restores
        if before:
            assert before[-1] in after, (what, before, after)
        _readable(ckpt, after)
        proc = _start("--resume", str(run_dir), cwd=tmp_path)
    _finish(proc)
    # at least one kill landed inside a checkpoint write and left orbax's temporary directory,
    # which the resumed runs then lived with
    assert left_tmp >= 1

    ref_step, ref_params = _params(reference)
    step, params = _params(run_dir)
    assert step == ref_step
    for a, b in zip(_leaves(ref_params), _leaves(params), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)

    def results(d):
        r = json.loads((d / "results.json").read_text())
        for variant in ("relu",):
            r[variant].pop("train_seconds")
        return r

    assert results(run_dir) == results(reference)
    hist = json.loads((run_dir / "histories.json").read_text())["relu"]
    ref_hist = json.loads((reference / "histories.json").read_text())["relu"]
    assert len(ref_hist) == 12 and _without(hist, "seconds") == _without(ref_hist, "seconds")
    lines = [json.loads(x) for x in (run_dir / "relu" / "metrics.jsonl").read_text().splitlines()]
    assert _without(lines, "seconds") == _without(ref_hist, "seconds")
