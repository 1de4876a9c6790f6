"""Data-parallel training and sharded sweeps (``fit(..., mesh=...)``, ``dlmodels.train.sharding``)
against the single-device trainer: the same params after 50 steps (MLP and LeNet-5 with dropout),
a 4-seed sweep on a 4 x 2 ("seeds", "data") mesh equal to the unsharded vmapped sweep, one
all-reduce per step in the compiled HLO, checkpoints that cross layouts, and clear errors.

The device count is fixed when JAX starts, so the mesh runs happen in subprocesses with 8 CPU
devices (``tests/sharded_runs.py``); this process has one device.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from dlmodels import data
from dlmodels.mlp import mlp
from dlmodels.train import TrainConfig, fit, sharding
from dlmodels.train.objectives import classifier

SCRIPT = os.path.join(os.path.dirname(__file__), "sharded_runs.py")
TOL = 1e-5   # the tolerance on params after 50 steps

# one xdist worker runs the whole module, so its two subprocess fixtures run once, not per worker
pytestmark = pytest.mark.xdist_group("sharding")


def _run(tmp_path, *args) -> dict:
    out = tmp_path / f"{args[0]}.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, SCRIPT, args[0], str(out), *map(str, args[1:])],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["devices"] == 8
    return result


@pytest.fixture(scope="module")
def mlp_and_errors(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("mlp"), "mlp,errors")


@pytest.fixture(scope="module")
def lenet_hlo_checkpoints(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lenet"), "lenet,hlo,checkpoints")


def test_data_parallel_mlp_equals_one_device(mlp_and_errors):
    r = mlp_and_errors
    assert r["mlp_param_scale"] > 0.1            # the params moved: a real comparison
    assert r["mlp_data8_params"] < TOL and r["mlp_data8_opt"] < TOL
    assert r["mlp_data8_loss"] < 1e-5 and r["mlp_data8_eval"] < 1e-6
    assert r["single_on_seeds_mesh"] < TOL      # one run on seeds x data: all 8 devices for data
    assert r["host_loading_data8"] < TOL and r["host_loading_sweep"] < TOL   # per-process rows


def test_use_mesh_reaches_fit(mlp_and_errors):
    assert mlp_and_errors["use_mesh_params"] < TOL
    assert "over the 3 devices" in mlp_and_errors["use_mesh_error"]   # the mesh was used
    assert mlp_and_errors["returned_sharding"] == "SingleDeviceSharding"  # as without a mesh


def test_sharded_sweep_equals_vmapped_sweep(mlp_and_errors):
    r = mlp_and_errors
    assert r["sweep_params"] < TOL and r["sweep_eval"] < 1e-6
    assert r["sweep_member1_vs_single"] < TOL   # member k is the run with seed k
    assert r["hyper_params"] < TOL              # a learning-rate sweep over "seeds" too


@pytest.mark.slow  # the LeNet subprocess fixture: ~2-3 min on 2 cores
def test_data_parallel_lenet_equals_one_device(lenet_hlo_checkpoints):
    r = lenet_hlo_checkpoints
    assert r["lenet_param_scale"] > 0.1
    assert r["lenet_data8_params"] < TOL


@pytest.mark.slow  # the LeNet subprocess fixture: ~2-3 min on 2 cores
def test_one_all_reduce_per_step(lenet_hlo_checkpoints):
    """XLA's combiner turns the gradients of every leaf (and the loss) into one all-reduce."""
    r = lenet_hlo_checkpoints
    for name in ("mlp", "lenet"):
        assert r[f"{name}_param_leaves"] >= 6
        assert r[f"{name}_steps1_all_reduce"] == 1    # one step per call
        assert r[f"{name}_steps5_all_reduce"] == 1    # the scanned body, run 5 times


@pytest.mark.slow  # the LeNet subprocess fixture: ~2-3 min on 2 cores
def test_checkpoints_cross_layouts_in_one_process(lenet_hlo_checkpoints):
    r = lenet_hlo_checkpoints
    keys = [k for k in r if k.startswith("ckpt_")]
    assert len(keys) == 10
    for k in keys:
        assert r[k] < TOL, k


def test_errors(mlp_and_errors):
    assert "global batch of 60 examples cannot be split evenly over the 8 devices" in \
        mlp_and_errors["error_batch"]
    assert "3 runs cannot be split evenly over the 'seeds' axis of 4" in \
        mlp_and_errors["error_seeds"]


MODEL = mlp((64, 32, 10), dropout_rate=0.2)
LOSS_FN, _ = classifier(MODEL.apply)


def _config(max_steps):
    return TrainConfig(epochs=50, batch_size=64, steps_per_call=10, max_steps=max_steps,
                       checkpoint_every=10, progress=False)


def _params(path):
    with np.load(path) as f:
        return dict(f)


def _flat(params):
    return {jax.tree_util.keystr(p): np.asarray(x)
            for p, x in jax.tree_util.tree_leaves_with_path(params)}


@pytest.mark.parametrize("seeds", [None, pytest.param([0, 1, 2, 3], marks=pytest.mark.slow)])
def test_checkpoints_cross_processes(tmp_path, seeds):
    """A checkpoint written on 8 devices (data=8, or seeds=4,data=2) resumes in this one-device
    process, and one written here resumes on 8 devices; both equal the uninterrupted run."""
    train = data.load("digits", "train")
    straight = _flat(fit(MODEL.init, LOSS_FN, optax.adam(3e-3), train, _config(50),
                         seeds=seeds).state.params)
    mesh = "data=8" if seeds is None else "seeds=4,data=2"
    seed_arg = "" if seeds is None else ",".join(map(str, seeds))
    there = str(tmp_path / "sharded_first")
    _run(tmp_path, "resume", there, mesh, 20, seed_arg)
    here = fit(MODEL.init, LOSS_FN, optax.adam(3e-3), train, _config(50), run_dir=there,
               resume=True, seeds=seeds)
    assert int(np.max(np.asarray(here.state.step))) == 50
    for k, v in _flat(here.state.params).items():
        np.testing.assert_allclose(v, straight[k], atol=TOL, rtol=0)
    back = str(tmp_path / "single_first")
    fit(MODEL.init, LOSS_FN, optax.adam(3e-3), train, _config(20), run_dir=back, seeds=seeds)
    assert _run(tmp_path, "resume", back, mesh, 50, seed_arg)["step"] == 50
    for k, v in _params(os.path.join(back, "params.npz")).items():
        np.testing.assert_allclose(v, straight[k], atol=TOL, rtol=0)


def test_parse_mesh():
    assert sharding.parse_mesh("data=8") == {"data": 8}
    assert sharding.parse_mesh("seeds=4, data=2") == {"seeds": 4, "data": 2}
    for bad, msg in (("model=2", "unknown axis"), ("data=0", ">= 1"), ("data=x", "integer"),
                     ("data=2,data=2", "twice"), ("data", "NAME=SIZE"), ("", "empty")):
        with pytest.raises(ValueError, match=msg):
            sharding.parse_mesh(bad)


def test_make_mesh_needs_the_devices():
    assert sharding.describe(sharding.make_mesh("data=1")) == {"data": 1}
    with pytest.raises(ValueError, match="needs 8 devices, only 1 present.*request_cpu_devices"):
        sharding.make_mesh({"data": 8})
    with pytest.raises(ValueError, match="backend already started with 1 devices"):
        sharding.request_cpu_devices(8)


def test_cli_mesh_that_does_not_divide_the_batch(tmp_path):
    """`dlmodels run` reports a batch the mesh cannot split in one line with a hint (exit 1)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dlmodels", "run", "mlp", "--dataset", "digits", "--variants",
         "relu", "--epochs", "1", "--hidden", "8", "--batch_size", "60", "--mesh", "data=8",
         "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("dlmodels run mlp: MeshError: the global batch of 60 examples")
    assert lines[-1].startswith("hint: choose a --mesh") and "Traceback" not in proc.stderr
