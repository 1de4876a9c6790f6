"""Several processes: settings from arguments and the environment, the CLI's --mesh and process
options, the launcher, results equal to one process's, and a killed process stopping the others.

The runs of several processes are subprocesses (``jax.distributed`` is initialized once per process
and fixes the device count when JAX starts)."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from dlmodels import distributed
from dlmodels.cli import main

TINY = ["--dataset", "digits", "--variants", "relu", "--hidden", "8"]
# long enough to be killed mid-training: 5000 epochs of ~0.1 s
LONG = [*TINY, "--epochs", "5000", "--checkpoint-every", "1000000"]
PROCESS_VARIABLES = [*(v for pair in distributed._ENV.values() for v in pair),
                     "DLMODELS_LAUNCHER_PID"]


@pytest.fixture
def clean_env(monkeypatch):
    """No process variables from the surroundings (a cluster's JAX_* would leak in)."""
    for var in PROCESS_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_VARIABLES}
    env.update(PYTHONUNBUFFERED="1", CI="true", **extra)
    return env


# ---------------------------------------------------------------------------------------------
# settings and initialize: nothing is started

def test_settings_come_from_arguments_then_dlmodels_then_jax_variables():
    env = {"JAX_COORDINATOR_ADDRESS": "jaxhost:1000", "JAX_NUM_PROCESSES": "4",
           "JAX_PROCESS_ID": "3"}
    assert distributed.settings(environ={}) is None                # nothing set: one process
    assert distributed.settings(environ=env) == ("jaxhost:1000", 4, 3)
    env.update(DLMODELS_COORDINATOR="ours:2000", DLMODELS_PROCESS_ID="1")
    assert distributed.settings(environ=env) == ("ours:2000", 4, 1)
    assert distributed.settings("arg:3000", 2, 0, environ=env) == ("arg:3000", 2, 0)
    assert distributed.settings(process_id=2, environ=env) == ("ours:2000", 4, 2)
    assert distributed.settings("[::1]:1234", "2", "1", environ={}) == ("[::1]:1234", 2, 1)
    # a count of 1 is one process, whatever else is set
    assert distributed.settings(num_processes=1, process_id=0, environ=env) is None


@pytest.mark.parametrize("given, env, match", [
    ((None, 2, 2), {"DLMODELS_COORDINATOR": "h:1"}, r"--process-id must be in 0\.\.1 for 2"),
    ((None, None, None), {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "-1",
                          "JAX_COORDINATOR_ADDRESS": "h:1"}, r"JAX_PROCESS_ID must be in 0\.\.1"),
    (("h:1", 0, 0), {}, r"--num-processes must be >= 1, got 0"),
    ((None, None, None), {"DLMODELS_NUM_PROCESSES": "two"},
     r"DLMODELS_NUM_PROCESSES must be an integer, got 'two'"),
    (("h:1", 2, "x"), {}, r"--process-id must be an integer"),
    (("nohost", 2, 0), {}, r"--coordinator must be HOST:PORT .* got 'nohost'"),
    (("h:0", 2, 0), {}, r"must be HOST:PORT with a port in 1\.\.65535"),
    (("h:99999", 2, 0), {}, r"HOST:PORT"),
    ((":1234", 2, 0), {}, r"HOST:PORT"),
    ((None, 2, 0), {"DLMODELS_COORDINATOR": "h:http"}, r"DLMODELS_COORDINATOR must be HOST:PORT"),
    (("h:1", None, 0), {}, r"--coordinator and --process-id given without a process count"),
    ((None, 2, None), {"DLMODELS_COORDINATOR": "h:1"}, r"set this process's id"),
    ((None, 2, 1), {}, r"set the coordinator HOST:PORT"),
])
def test_settings_refuse_inconsistent_values(given, env, match):
    with pytest.raises(ValueError, match=match):
        distributed.settings(*given, environ=env)


def test_initialize_without_processes_does_nothing(clean_env):
    assert distributed.initialize() is None
    assert not jax.distributed.is_initialized()
    assert distributed.process_count() == 1 and distributed.is_main()
    assert distributed.broadcast_str("runs/x") == "runs/x"
    distributed.barrier("nothing to wait for")


def test_initialize_after_the_backend_started_is_an_error(clean_env):
    jax.devices()  # the backend starts
    with pytest.raises(RuntimeError, match="before JAX starts a backend"):
        distributed.initialize("127.0.0.1:1", 2, 0)
    with pytest.raises(ValueError, match="must be in 0..1"):  # values are checked first
        distributed.initialize("127.0.0.1:1", 2, 5)
    assert not jax.distributed.is_initialized()


# ---------------------------------------------------------------------------------------------
# the CLI: options refused before any work, the mesh recorded

@pytest.mark.parametrize("args, match", [
    (["--mesh", "data=0"], r"--mesh: mesh spec 'data=0': size of 'data' must be >= 1"),
    (["--mesh", "model=2"], r"--mesh: .*unknown axis 'model'"),
    (["--mesh", "data=2,data=2"], r"--mesh: .*given twice"),
    (["--mesh", "data"], r"--mesh: .*not NAME=SIZE"),
    (["--mesh", "data=3", "--num-processes", "2", "--process-id", "0", "--coordinator",
      "127.0.0.1:1"], r"--mesh data=3 spans 3 devices, which 2 processes cannot share evenly"),
    (["--num-processes", "2", "--process-id", "0"], r"set the coordinator HOST:PORT"),
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "h:1"],
     r"--process-id must be in 0\.\.1 for 2 processes, got 2"),
    (["--num-processes", "2", "--process-id", "1", "--coordinator", "h"],
     r"--coordinator must be HOST:PORT"),
    (["--process-id", "1"], r"--process-id given without a process count"),
])
def test_run_refuses_bad_mesh_and_process_options(args, match, tmp_path, capsys, clean_env):
    assert main(["run", "mlp", *TINY, "--epochs", "1", *args, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dlmodels run mlp: ")
    assert re.search(match, err[0]), err[0]
    assert not any(tmp_path.iterdir())  # refused before any work: no run directory
    assert not jax.distributed.is_initialized()


def test_run_refuses_a_mesh_larger_than_the_devices(tmp_path, capsys, clean_env):
    n = len(jax.devices())  # the backend has started: no more CPU devices can be made
    assert main(["run", "mlp", *TINY, "--epochs", "1", "--mesh", f"data={n + 1}",
                 "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and f"already started with {n} devices" in err[0]
    assert not any(tmp_path.iterdir())


def test_run_help_lists_the_device_and_process_options(capsys):
    assert main(["run", "mlp", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--mesh SPEC", "--coordinator HOST:PORT", "--num-processes N",
                   "--process-id I", "DLMODELS_COORDINATOR", "JAX_PROCESS_ID", "dlmodels launch"):
        assert option in out


def test_mesh_is_recorded_in_config_json_and_a_resume_may_change_it(tmp_path, capsys, clean_env):
    plain, meshed = tmp_path / "plain", tmp_path / "meshed"
    assert main(["run", "mlp", *TINY, "--epochs", "1", "--run-dir", str(plain)]) == 0
    assert json.loads((plain / "config.json").read_text())["mesh"] is None
    # 2 devices: a process of its own (the device count is fixed when JAX starts)
    done = subprocess.run([sys.executable, "-m", "dlmodels", "run", "mlp", *TINY, "--epochs", "1",
                           "--mesh", "data=2", "--run-dir", str(meshed)],
                          capture_output=True, text=True, env=_child_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    config = json.loads((meshed / "config.json").read_text())
    assert config["mesh"] == {"data": 2} and config["hidden"] == [8]
    # resumed on one device (the finished phase returns at once); config.json is left as it was
    assert main(["run", "mlp", "--resume", str(meshed)]) == 0
    assert json.loads((meshed / "config.json").read_text()) == config


# ---------------------------------------------------------------------------------------------
# the launcher

def test_launch_refuses_bad_commands_before_starting_anything(tmp_path, capsys, clean_env):
    def refused(args, match):
        assert main(["launch", *args]) == 2
        err = capsys.readouterr().err
        assert re.search(match, err), err

    refused(["--processes", "2", "--", "run", "mlp", *TINY, "--mesh", "data=3",
             "--root", str(tmp_path)], r"--mesh data=3 spans 3 devices, which 2 processes")
    refused(["--processes", "2", "--", "run", "mlp", "--epochs", "0", "--root", str(tmp_path)],
            r"--epochs must be >= 1")
    refused(["--processes", "2", "run", "mlp", "--process-id", "1", "--root", str(tmp_path)],
            r"--process-id: the launcher sets these")
    refused(["--processes", "0", "--", "list"], r"--processes must be >= 1")
    refused(["--processes", "2", "--coordinator", "nohost", "--", "list"],
            r"--coordinator must be HOST:PORT")
    refused(["--processes", "2"], r"name the command to run")
    assert not any(tmp_path.iterdir()), list(tmp_path.rglob("*"))


def test_launch_returns_the_first_failure(tmp_path, capsys, clean_env):
    # two processes that fail at once (an unknown data set: exit 1), without JAX distributed
    assert main(["launch", "--processes", "2", "--", "data", "fetch", "nope"]) == 1
    err = capsys.readouterr().err
    assert "dlmodels launch: process " in err and "exited with code 1" in err
    assert main(["launch", "--processes", "2", "list"]) == 0   # no `--` needed


SUM_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    from dlmodels import distributed

    jax.config.update("jax_num_cpu_devices", 2)
    joined = distributed.initialize()
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    rows = np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * jax.process_index()
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), rows)
    total = jax.jit(lambda x: x.sum(0), out_shardings=NamedSharding(mesh, P()))(x)
    name = distributed.broadcast_str("r\u00e9pertoire/" + str(jax.process_index()))
    distributed.barrier("done")
    print(joined.process_id, jax.process_count(), jax.device_count(), distributed.is_main(),
          np.asarray(total).tolist(), name)
""")


def test_processes_share_a_global_array_and_process_0s_string(tmp_path, clean_env):
    """Two processes of 2 CPU devices each (gloo), started by the launcher's environment
    variables: a sum over the global batch equals numpy's over both processes' rows, and
    broadcast_str gives process 0's string to both."""
    script = tmp_path / "sum.py"
    script.write_text(SUM_SCRIPT)
    port = distributed.free_port()
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.PIPE,
                              env=_child_env(DLMODELS_COORDINATOR=f"127.0.0.1:{port}",
                                             DLMODELS_NUM_PROCESSES="2",
                                             DLMODELS_PROCESS_ID=str(i)))
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    rows = np.concatenate([np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * i
                           for i in range(2)])
    for i, (out, _) in enumerate(outs):
        pid, count, devices, main_, *rest = out.splitlines()[-1].split(maxsplit=4)
        assert (int(pid), int(count), int(devices), main_) == (i, 2, 4, str(i == 0))
        total, name = rest[0].rsplit(" ", 1)
        np.testing.assert_allclose(json.loads(total), rows.sum(0))
        assert name == "r\u00e9pertoire/0"


def _numbers(tree, prefix=""):
    """{path: number} of a JSON tree's numbers, without wall-clock times."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() if "seconds" not in key
                for k, v in _numbers(value, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree)
                for k, v in _numbers(value, f"{prefix}/{i}").items()}
    return {prefix: tree}


def test_two_launched_processes_reproduce_one_process(tmp_path, clean_env):
    """`dlmodels launch --processes 2 -- run mlp ...` (data=2 over two processes, dropout on)
    equals the same run in one process on one device: results.json, every metrics line and the
    final params, to float tolerance; process 0 alone wrote the records."""
    args = [*TINY, "--epochs", "2", "--batch-size", "64"]
    one = tmp_path / "one"
    done = subprocess.run([sys.executable, "-m", "dlmodels", "run", "mlp", *args, "--run-dir",
                           str(one)], capture_output=True, text=True, env=_child_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "dlmodels", "launch", "--processes", "2", "--",
                           "run", "mlp", *args, "--root", str(root)],
                          capture_output=True, text=True, env=_child_env(), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (two,) = (root / "mlp").iterdir()  # the launcher made one run directory for both
    assert json.loads((two / "config.json").read_text())["mesh"] == {"data": 2}
    assert f"run directory: {two}" in done.stdout
    assert f"run directory: {two}" in (two / "logs" / "process-1.log").read_text()

    a, b = (_numbers(json.loads((d / "results.json").read_text())) for d in (one, two))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    lines = [[json.loads(line) for line in (d / "relu" / "metrics.jsonl").read_text().splitlines()]
             for d in (one, two)]
    assert len(lines[0]) == len(lines[1]) == 2     # one line an epoch, written once
    for x, y in zip(*lines):
        x, y = _numbers(x), _numbers(y)
        assert x.keys() == y.keys()
        for key in x:
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), key

    from dlmodels.train import Checkpointer

    params = [Checkpointer(d / "relu" / "checkpoints").restore_params()[0] for d in (one, two)]
    assert jax.tree.structure(params[0]) == jax.tree.structure(params[1])
    for x, y in zip(jax.tree.leaves(params[0]), jax.tree.leaves(params[1])):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# a killed process stops the others

def _wait_for_training(path, procs, timeout=240.0):
    """Wait until ``path`` (process 0's metrics.jsonl) has a line: training is under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        dead = [p.poll() for p in procs if p.poll() is not None]
        assert not dead, f"a process ended before training: {dead}"
        time.sleep(0.2)
    raise AssertionError(f"no metrics after {timeout} s")


def _stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _two_by_hand(root):
    """Two `dlmodels run mlp` processes started each on its own (as on a cluster, no launcher),
    without --run-dir (process 0 names the run directory for both); returns them and the run
    directory once process 0 has logged an epoch."""
    port = distributed.free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dlmodels", "run", "mlp", *LONG, "--root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=_child_env(DLMODELS_COORDINATOR=f"127.0.0.1:{port}", DLMODELS_NUM_PROCESSES="2",
                       DLMODELS_PROCESS_ID=str(i))) for i in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not (root / "mlp").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        (run_dir,) = (root / "mlp").iterdir()
        _wait_for_training(run_dir / "relu" / "metrics.jsonl", procs)
    except BaseException:
        _stop_all(procs)
        raise
    return procs, run_dir


def _signal_process_1(tmp_path, sig):
    """Two processes started by hand; ``sig`` to process 1; process 0's output and how long it
    took to stop (it must within 60 s)."""
    procs, _ = _two_by_hand(tmp_path / "runs")
    try:
        procs[1].send_signal(sig)
        sent = time.monotonic()
        out, _ = procs[0].communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        _stop_all(procs)
    return procs, out, elapsed


def test_killing_one_of_two_processes_started_by_hand_stops_the_other(tmp_path, clean_env):
    """Process 1 gets SIGKILL mid-training: process 0 must exit non-zero within 60 s. Here its
    all-reduce fails at once (gloo sees the socket close) and it says so in one line."""
    procs, out, elapsed = _signal_process_1(tmp_path, signal.SIGKILL)
    assert procs[0].returncode != 0
    assert ("dlmodels run mlp: process 0 of 2 stopped: JaxRuntimeError" in out
            or "stopped sending heartbeats" in out), out[-3000:]
    print(f"process 0 stopped {elapsed:.1f} s after process 1 was killed")


@pytest.mark.slow  # an experiment's smoke run: kept out of the 15-minute default run
def test_a_frozen_process_stops_the_other_through_the_heartbeat(tmp_path, clean_env):
    """Process 1 frozen by SIGSTOP (its sockets stay open, its heartbeats stop: a host gone from
    the network): the coordination service aborts process 0 after the heartbeat timeout (10 s),
    well within 60 s, instead of a hang."""
    procs, out, elapsed = _signal_process_1(tmp_path, signal.SIGSTOP)
    assert procs[0].returncode != 0
    assert "stopped sending heartbeats" in out, out[-3000:]
    print(f"process 0 stopped {elapsed:.1f} s after process 1 froze")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _process_id(pid: int) -> int:
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    return int(env[b"DLMODELS_PROCESS_ID"])


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie: dead, not reaped
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds children through /proc")
@pytest.mark.parametrize("event", ["kill process 1", pytest.param("ctrl-c", marks=pytest.mark.slow),
                                   pytest.param("kill the launcher", marks=pytest.mark.slow)])
def test_launched_processes_stop_together(event, tmp_path, clean_env):
    """Under `dlmodels launch --processes 2`, mid-training: SIGKILL to process 1 makes the
    launcher stop process 0 and exit 137 (128 + SIGKILL), naming the process; Ctrl-C (SIGINT to
    the launcher) is forwarded and both stop, exit 130; SIGKILL to the launcher takes both
    processes with it. All within 60 s."""
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "dlmodels", "launch", "--processes", "2", "--", "run", "mlp",
         *LONG, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env())
    children = []
    try:
        deadline = time.monotonic() + 60
        while len(children) < 2 and time.monotonic() < deadline:
            children = _children(launcher.pid)
            time.sleep(0.1)
        ids = {_process_id(c): c for c in children}
        assert sorted(ids) == [0, 1]
        _wait_for_training(run_dir / "relu" / "metrics.jsonl", [launcher])
        if event == "kill process 1":
            os.kill(ids[1], signal.SIGKILL)
        else:
            launcher.send_signal(signal.SIGINT if event == "ctrl-c" else signal.SIGKILL)
        out, _ = launcher.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while not all(_gone(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        _stop_all([launcher])
    assert all(_gone(c) for c in children)
    if event == "kill process 1":
        assert launcher.returncode == 137, out[-3000:]
        assert "dlmodels launch: process 1 was killed by SIGKILL; stopping the others" in out
    elif event == "ctrl-c":
        assert launcher.returncode == 130, out[-3000:]
        assert f"interrupted; continue with: dlmodels run mlp --resume {run_dir}" in out
        log = (run_dir / "logs" / "process-1.log").read_text()
        assert "interrupted; continue with" in log
    else:
        assert launcher.returncode == -signal.SIGKILL
