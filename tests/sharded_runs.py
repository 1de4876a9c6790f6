"""Runs for tests/test_sharding.py, in a process of its own with 8 CPU devices (the device count
is fixed when JAX starts): ``python tests/sharded_runs.py CHECK OUT.json``. Each check trains on
one device and on a mesh and writes the largest differences (and facts such as HLO op counts) to
OUT.json for the test to assert on."""

import json
import os
import sys

import jax

from dlmodels.train import sharding  # noqa: E402

sharding.request_cpu_devices(8)

import numpy as np  # noqa: E402
import optax  # noqa: E402

from dlmodels import data  # noqa: E402
from dlmodels.cnn.lenet import lenet5  # noqa: E402
from dlmodels.mlp import mlp  # noqa: E402
from dlmodels.train import Checkpointer, TrainConfig, fit  # noqa: E402
from dlmodels.train.objectives import classifier  # noqa: E402


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def digits():
    return data.load("digits", "train"), data.load("digits", "valid")


def mlp_runs(out: dict) -> None:
    """50 steps of a 64-128-10 MLP with dropout and Adam: one device vs data=8 vs seeds x data."""
    train, valid = digits()
    model = mlp((64, 128, 10), dropout_rate=0.2)
    loss_fn, eval_fn = classifier(model.apply)
    config = TrainConfig(epochs=50, batch_size=64, steps_per_call=10, max_steps=50, progress=False)
    kw = dict(eval_fn=eval_fn, eval_data=valid)
    one = fit(model.init, loss_fn, optax.adam(3e-3), train, config, **kw)
    eight = fit(model.init, loss_fn, optax.adam(3e-3), train, config,
                mesh=sharding.make_mesh("data=8"), **kw)
    out["mlp_data8_params"] = max_diff(one.state.params, eight.state.params)
    out["mlp_data8_opt"] = max_diff(one.state.opt_state, eight.state.opt_state)
    out["mlp_data8_eval"] = abs(one.final["accuracy"] - eight.final["accuracy"])
    out["mlp_data8_loss"] = max(abs(a["train_loss"] - b["train_loss"])
                                for a, b in zip(one.history, eight.history, strict=True))
    out["mlp_param_scale"] = max_diff(one.state.params, jax.tree.map(lambda x: 0 * x,
                                                                     one.state.params))
    seeds = [0, 1, 2, 3]
    sweep = fit(model.init, loss_fn, optax.adam(3e-3), train, config, seeds=seeds, **kw)
    sharded = fit(model.init, loss_fn, optax.adam(3e-3), train, config, seeds=seeds,
                  mesh=sharding.make_mesh("seeds=4,data=2"), **kw)
    out["sweep_params"] = max_diff(sweep.state.params, sharded.state.params)
    out["sweep_eval"] = max(abs(a - b) for a, b in zip(sweep.final["accuracy"],
                                                       sharded.final["accuracy"], strict=True))
    # member k of the sharded sweep is the single run with seed k
    single1 = fit(model.init, loss_fn, optax.adam(3e-3), train,
                  TrainConfig(**{**config.__dict__, "seed": 1}))
    out["sweep_member1_vs_single"] = max_diff(jax.tree.map(lambda x: x[1], sharded.state.params),
                                              single1.state.params)
    # learning-rate sweep over the seeds axis
    lrs = {"learning_rate": [1e-3, 3e-3]}
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    a = fit(model.init, loss_fn, opt, train, config, hyperparams=lrs)
    b = fit(model.init, loss_fn, opt, train, config, hyperparams=lrs,
            mesh=sharding.make_mesh("seeds=2,data=4"))
    out["hyper_params"] = max_diff(a.state.params, b.state.params)
    # a single run on a seeds x data mesh uses all 8 devices for data
    c = fit(model.init, loss_fn, optax.adam(3e-3), train, config,
            mesh=sharding.make_mesh("seeds=2,data=4"))
    out["single_on_seeds_mesh"] = max_diff(one.state.params, c.state.params)
    # the batches loaded per process on the host (the path of several processes), here in one
    original = sharding.Layout.__init__

    def host_loading(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.on_device = False
    sharding.Layout.__init__ = host_loading
    try:
        e = fit(model.init, loss_fn, optax.adam(3e-3), train, config, seeds=seeds,
                mesh=sharding.make_mesh("seeds=4,data=2"), **kw)
        f = fit(model.init, loss_fn, optax.adam(3e-3), train, config,
                mesh=sharding.make_mesh("data=8"), **kw)
    finally:
        sharding.Layout.__init__ = original
    out["host_loading_sweep"] = max_diff(sweep.state.params, e.state.params)
    out["host_loading_data8"] = max_diff(one.state.params, f.state.params)
    with sharding.use_mesh(sharding.make_mesh("data=4")):   # how the CLI's --mesh reaches fit
        d = fit(model.init, loss_fn, optax.adam(3e-3), train, config, **kw)
    out["use_mesh_params"] = max_diff(one.state.params, d.state.params)
    out["returned_sharding"] = type(jax.tree.leaves(d.state.params)[0].sharding).__name__
    try:
        with sharding.use_mesh(sharding.make_mesh("data=3")):
            fit(model.init, loss_fn, optax.adam(3e-3), train, config)
        out["use_mesh_error"] = None
    except ValueError as e:
        out["use_mesh_error"] = str(e)


def lenet_runs(out: dict) -> None:
    """50 steps of LeNet-5 with dropout on the digits scaled to 28x28 (each pixel 3x3, a margin
    of 2), one step per call as conv nets train on the CPU."""
    train, _ = digits()
    x = np.repeat(np.repeat(train[0].reshape(-1, 8, 8), 3, 1), 3, 2)
    train = (np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None], train[1])
    model = lenet5(10, dropout_rate=0.3)
    loss_fn, eval_fn = classifier(model.apply)
    config = TrainConfig(epochs=50, batch_size=32, steps_per_call=1, max_steps=50, progress=False)
    one = fit(model.init, loss_fn, optax.sgd(0.05, momentum=0.9), train, config)
    eight = fit(model.init, loss_fn, optax.sgd(0.05, momentum=0.9), train, config,
                mesh=sharding.make_mesh("data=8"))
    out["lenet_data8_params"] = max_diff(one.state.params, eight.state.params)
    out["lenet_param_scale"] = max_diff(one.state.params, jax.tree.map(lambda x: 0 * x,
                                                                       one.state.params))


def hlo_runs(out: dict) -> None:
    """The compiled data-parallel step (MLP and LeNet, one step per call and 5 scanned): how many
    all-reduce ops its HLO holds, against its number of parameter leaves."""
    from dlmodels.data.batching import batch_indices
    from dlmodels.train import init_state
    from dlmodels.train.estimators import as_estimator
    from dlmodels.train.step import make_sharded_train_steps

    train, _ = digits()
    x = np.repeat(np.repeat(train[0].reshape(-1, 8, 8), 3, 1), 3, 2)
    images = (np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None], train[1])
    mesh = sharding.make_mesh("data=8")
    for name, model, arrays in (("mlp", mlp((64, 128, 64, 10), dropout_rate=0.2), train),
                                ("lenet", lenet5(10, dropout_rate=0.3), images)):
        loss_fn, _ = classifier(model.apply)
        optimizer = optax.adam(1e-3)
        layout = sharding.Layout(mesh, None, 64)
        state = layout.place_state(init_state(model.init, optimizer, 0))
        for steps in (1, 5):
            idx = batch_indices(jax.random.PRNGKey(0), len(arrays[1]), 64)[:steps]
            run = make_sharded_train_steps(as_estimator(loss_fn), optimizer, layout)
            hlo = run.lower(state, layout.place(arrays, layout.replicated),
                            jax.device_put(idx, layout.batches)).compile().as_text()
            out[f"{name}_steps{steps}_all_reduce"] = sum(
                1 for line in hlo.splitlines()
                if " all-reduce(" in line or " all-reduce-start(" in line)
        out[f"{name}_param_leaves"] = len(jax.tree.leaves(state.params))


def checkpoint_runs(out: dict, tmp: str) -> None:
    """Checkpoints written on one layout restore on another: a run stopped at step 20 on one
    layout and resumed to step 50 on another equals the uninterrupted single-device run."""
    train, _ = digits()
    model = mlp((64, 32, 10), dropout_rate=0.2)
    loss_fn, _ = classifier(model.apply)
    config = TrainConfig(epochs=50, batch_size=64, steps_per_call=10, max_steps=50,
                         checkpoint_every=10, progress=False)
    half = TrainConfig(**{**config.__dict__, "max_steps": 20})

    def run(name, cfg, mesh, resume=False, **kw):
        return fit(model.init, loss_fn, optax.adam(3e-3), train, cfg, mesh=mesh,
                   run_dir=os.path.join(tmp, name), resume=resume, **kw)

    straight = fit(model.init, loss_fn, optax.adam(3e-3), train, config)
    meshes = {"none": None, "data8": sharding.make_mesh("data=8"),
              "data2": sharding.make_mesh("data=2")}
    for first, second in (("data8", "none"), ("none", "data8"), ("data8", "data2")):
        name = f"{first}_to_{second}"
        run(name, half, meshes[first])
        resumed = run(name, config, meshes[second], resume=True)
        out[f"ckpt_{name}"] = max_diff(straight.state.params, resumed.state.params)
        out[f"ckpt_{name}_opt"] = max_diff(straight.state.opt_state, resumed.state.opt_state)
    seeds = [0, 1, 2, 3]
    sweep = fit(model.init, loss_fn, optax.adam(3e-3), train, config, seeds=seeds)
    for first, second in (("seeds=4,data=2", None), (None, "seeds=2,data=4"),
                          ("seeds=4,data=2", "seeds=2,data=2")):
        name = f"sweep_{first}_to_{second}".replace("=", "").replace(",", "_")
        run(name, half, first and sharding.make_mesh(first), seeds=seeds)
        resumed = run(name, config, second and sharding.make_mesh(second), resume=True,
                      seeds=seeds)
        out[f"ckpt_{name}"] = max_diff(sweep.state.params, resumed.state.params)
    # params alone, as saved by a sharded sweep, read back without any mesh
    params, _ = Checkpointer(os.path.join(tmp, "sweep_seeds4_data2_to_None",
                                          "checkpoints")).restore_params()
    out["ckpt_restore_params"] = max_diff(sweep.state.params, params)


def resume_run(out: dict, run_dir: str, mesh: str, max_steps: int, seeds: str) -> None:
    """Train (or resume) the checkpointed MLP of :func:`checkpoint_runs` in ``run_dir`` on
    ``mesh`` ("none" for one device) up to ``max_steps``; the params go to ``run_dir/params.npz``:
    the test resumes the same run in its own one-device process."""
    train, _ = digits()
    model = mlp((64, 32, 10), dropout_rate=0.2)
    loss_fn, _ = classifier(model.apply)
    config = TrainConfig(epochs=50, batch_size=64, steps_per_call=10, max_steps=max_steps,
                         checkpoint_every=10, progress=False)
    r = fit(model.init, loss_fn, optax.adam(3e-3), train, config, run_dir=run_dir, resume=True,
            mesh=None if mesh == "none" else sharding.make_mesh(mesh),
            seeds=[int(s) for s in seeds.split(",")] if seeds else None)
    leaves = jax.tree_util.tree_leaves_with_path(r.state.params)
    np.savez(os.path.join(run_dir, "params.npz"),
             **{jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves})
    out["step"] = int(np.max(np.asarray(r.state.step)))


def error_runs(out: dict) -> None:
    """The messages of a global batch not divisible by the data axis, and of K runs not
    divisible by the seeds axis."""
    train, _ = digits()
    model = mlp((64, 32, 10))
    loss_fn, _ = classifier(model.apply)
    for name, mesh, kw in (("batch", "data=8", {}), ("seeds", "seeds=4,data=2",
                                                      {"seeds": [0, 1, 2]})):
        try:
            fit(model.init, loss_fn, optax.sgd(0.1), train,
                TrainConfig(epochs=1, batch_size=60, progress=False),
                mesh=sharding.make_mesh(mesh), **kw)
            out[f"error_{name}"] = None
        except ValueError as e:
            out[f"error_{name}"] = str(e)


CHECKS = {"mlp": mlp_runs, "lenet": lenet_runs, "hlo": hlo_runs, "errors": error_runs,
          "checkpoints": lambda out: checkpoint_runs(out, os.path.dirname(os.path.abspath(
              sys.argv[2])))}

if __name__ == "__main__":
    checks, path = sys.argv[1], sys.argv[2]
    result: dict = {"devices": len(jax.devices())}
    if checks == "resume":       # resume RUN_DIR MESH MAX_STEPS [SEEDS]
        resume_run(result, sys.argv[3], sys.argv[4], int(sys.argv[5]),
                   sys.argv[6] if len(sys.argv) > 6 else "")
    else:
        for check in checks.split(","):
            CHECKS[check](result)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
