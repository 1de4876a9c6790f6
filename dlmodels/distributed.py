"""Several processes: ``jax.distributed`` set-up, process 0's role, and a launcher for one machine.

Every process runs the same program on the global mesh (all processes' devices); process 0 alone
writes the run's records. The process count, this process's id and the coordinator's address
come from arguments, else the environment::

    DLMODELS_COORDINATOR    (else JAX_COORDINATOR_ADDRESS)   HOST:PORT of process 0's coordinator
    DLMODELS_NUM_PROCESSES  (else JAX_NUM_PROCESSES)         N
    DLMODELS_PROCESS_ID     (else JAX_PROCESS_ID)            0 .. N-1

none of them set: one process, and :func:`initialize` does nothing.

A process that dies stops the others within a bounded time, launcher or not: their next
collective fails when its sockets close (gloo; at once, measured, after a SIGKILL on one machine),
JAX's coordination service aborts every process once one stops sending heartbeats
(``heartbeat_timeout_seconds``; measured 6.5 s after a SIGSTOP with the default of 10) and at
once when the coordinator (process 0) is gone. A process that fails with a Python error leaves
through ``os._exit`` (see ``dlmodels run``) so that its heartbeats stop too, rather than waiting
in the shutdown barrier (which would take ``shutdown_timeout_seconds`` and lose its exit code).

:func:`launch` starts N local processes for tests and users without a cluster (CPU collectives
over gloo); on a cluster, each host runs the same command with its own ``DLMODELS_PROCESS_ID``.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import NamedTuple

# Defaults of initialize's timeouts (seconds); see the module docstring.
HEARTBEAT_TIMEOUT = 10
INITIALIZATION_TIMEOUT = 120
SHUTDOWN_TIMEOUT = 30
# Seconds between SIGTERM and SIGKILL when the launcher stops its processes.
GRACE = 5.0

_ENV = {"coordinator": ("DLMODELS_COORDINATOR", "JAX_COORDINATOR_ADDRESS"),
        "num_processes": ("DLMODELS_NUM_PROCESSES", "JAX_NUM_PROCESSES"),
        "process_id": ("DLMODELS_PROCESS_ID", "JAX_PROCESS_ID")}


class Processes(NamedTuple):
    """Where this process stands among several: the coordinator ``HOST:PORT``, the process count
    and this process's id (``0 <= process_id < num_processes``)."""
    coordinator: str
    num_processes: int
    process_id: int


def _from_env(key: str, environ) -> tuple[str | None, str | None]:
    """(value, name of the variable it came from) of the first variable set for ``key``."""
    for var in _ENV[key]:
        value = environ.get(var, "").strip()
        if value:
            return value, var
    return None, None


def _integer(value, source: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{source} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be an integer, got {value!r}") from None


def check_address(address: str, source: str = "coordinator") -> str:
    """``address`` if it reads ``HOST:PORT`` (``[v6]:PORT`` too) with a port in 1..65535; else
    ``ValueError`` naming ``source``."""
    host, sep, port = str(address).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{source} must be HOST:PORT with a port in 1..65535, got {address!r}")
    return str(address)


def settings(coordinator: str | None = None, num_processes: int | None = None,
             process_id: int | None = None, *, environ=None) -> Processes | None:
    """The processes asked for by the arguments, else the environment (``os.environ``, or
    ``environ``); ``None`` for one process (nothing set, or a count of 1).

    Each value comes from its argument, else ``DLMODELS_*``, else ``JAX_*``. Raises
    ``ValueError`` naming the option or variable: a count < 1, an id outside ``0..count-1``,
    an address that is not ``HOST:PORT``, a coordinator or id without a count, a count > 1
    without an id or a coordinator. Starts nothing."""
    environ = os.environ if environ is None else environ
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    values, sources = {}, {}
    for key, value in given.items():
        source = "--" + key.replace("_", "-")
        if value is None:
            value, source = _from_env(key, environ)
        values[key], sources[key] = value, source
    if values["num_processes"] is None:
        named = [sources[k] for k in ("coordinator", "process_id") if values[k] is not None]
        if named:
            raise ValueError(f"{' and '.join(named)} given without a process count: set "
                             f"--num-processes (or DLMODELS_NUM_PROCESSES) too")
        return None
    count = _integer(values["num_processes"], sources["num_processes"])
    if count < 1:
        raise ValueError(f"{sources['num_processes']} must be >= 1, got {count}")
    index = None
    if values["process_id"] is not None:
        index = _integer(values["process_id"], sources["process_id"])
        if not 0 <= index < count:
            raise ValueError(f"{sources['process_id']} must be in 0..{count - 1} for {count} "
                             f"processes, got {index}")
    if count == 1:
        return None
    if index is None:
        raise ValueError(f"{count} processes: set this process's id with --process-id (or "
                         f"DLMODELS_PROCESS_ID), 0 .. {count - 1}")
    if values["coordinator"] is None:
        raise ValueError(f"{count} processes: set the coordinator HOST:PORT (process 0's host) "
                         f"with --coordinator (or DLMODELS_COORDINATOR)")
    address = check_address(values["coordinator"], sources["coordinator"])
    return Processes(address, count, index)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *,
               heartbeat_timeout_seconds: int = HEARTBEAT_TIMEOUT,
               initialization_timeout_seconds: int = INITIALIZATION_TIMEOUT,
               shutdown_timeout_seconds: int = SHUTDOWN_TIMEOUT,
               environ=None) -> Processes | None:
    """Join the processes :func:`settings` reads from the arguments or the environment, through
    ``jax.distributed.initialize``; one process: nothing to do, returns ``None``.

    CPU collectives go over gloo. A process that stops sending heartbeats for
    ``heartbeat_timeout_seconds`` makes every other abort; processes that have not all joined
    within ``initialization_timeout_seconds`` fail. Must come before anything starts a JAX
    backend (``jax.devices()``, any computation): else ``RuntimeError``. Calling it again with
    the same values returns them; with others, ``RuntimeError``."""
    import jax

    wanted = settings(coordinator, num_processes, process_id, environ=environ)
    if wanted is None:
        return None
    if jax.distributed.is_initialized():
        state = jax._src.distributed.global_state
        joined = Processes(state.coordinator_address, state.num_processes, state.process_id)
        if joined != wanted:
            raise RuntimeError(f"jax.distributed is already initialized as {joined}, not "
                               f"{wanted}")
        return joined
    if _backend_started():
        raise RuntimeError("dlmodels.distributed.initialize must be called before JAX starts a "
                           "backend (before jax.devices() or any computation); call it first "
                           "thing in the program")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(wanted.coordinator, wanted.num_processes, wanted.process_id,
                               initialization_timeout=initialization_timeout_seconds,
                               heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                               shutdown_timeout_seconds=shutdown_timeout_seconds)
    return wanted


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # the private module moved: let jax.distributed say it
        return False
    return bool(xla_bridge.backends_are_initialized())


def _joined() -> bool:
    """Whether jax.distributed is initialized (without starting a backend)."""
    if "jax" not in sys.modules:
        return False
    import jax

    return jax.distributed.is_initialized()


def process_count() -> int:
    """The number of processes (1 unless :func:`initialize` joined several)."""
    if not _joined():
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    """This process's id, 0 .. process_count() - 1."""
    if not _joined():
        return 0
    import jax

    return jax.process_index()


def is_main() -> bool:
    """Whether this is process 0, the one that writes records (always, with one process)."""
    return process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier ``name`` (one process: returns)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_str(text: str) -> str:
    """Process 0's ``text`` in every process (each process passes its own; only 0's counts)."""
    if process_count() == 1:
        return text
    import numpy as np
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), dtype=np.uint8) if is_main() else np.zeros(0, np.uint8)
    size = multihost_utils.broadcast_one_to_all(np.array([data.size], dtype=np.int32))
    buffer = np.zeros(int(np.asarray(size)[0]), np.uint8)
    if is_main():
        buffer[:] = data
    out = multihost_utils.broadcast_one_to_all(buffer)
    return np.asarray(out, dtype=np.uint8).tobytes().decode()


# ---------------------------------------------------------------------------------------------
# The launcher.

def free_port() -> int:
    """A TCP port of localhost free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_launcher() -> None:
    """In a process started by :func:`launch`: get SIGKILL when the launcher dies (Linux's
    PR_SET_PDEATHSIG; SIGKILL because jax.distributed catches SIGTERM as a preemption notice),
    and leave at once if it is already gone. Does nothing in a process the launcher did not
    start."""
    launcher = os.environ.get("DLMODELS_LAUNCHER_PID")
    if not launcher:
        return
    # the launcher forwards Ctrl-C as SIGINT: a KeyboardInterrupt here, even when the launcher
    # was started with SIGINT ignored (a shell's background job) and this process inherited that
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != int(launcher):  # it died before the call above
        os._exit(128 + signal.SIGKILL)


def _exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: 128 + N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _copy_lines(stream, path: str) -> None:
    with open(path, "w") as log:
        for line in iter(stream.readline, b""):
            log.write(line.decode(errors="replace"))
            log.flush()
    stream.close()


def _tail(path: str, lines: int = 20) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()[-lines:]
    except OSError:
        return []


class _Terminated(Exception):
    pass


def launch(processes: int, argv: list[str], *, coordinator: str | None = None,
           log_dir: str | None = None, grace: float = GRACE) -> int:
    """Run ``python -m dlmodels <argv>`` as ``processes`` local processes that join each other;
    returns the exit status: 0 when all exit 0, else the first failure's (128 + N for signal N;
    among failures seen at the same check, a process killed by a signal comes first).

    Each child gets ``DLMODELS_COORDINATOR`` (``coordinator``, default a free port of
    127.0.0.1), ``DLMODELS_NUM_PROCESSES`` and ``DLMODELS_PROCESS_ID``. Process 0 writes to this
    process's stdout and stderr; process i > 0 to ``log_dir/process-<i>.log`` (default: a new
    temporary folder), whose last lines are shown if it fails. When one process fails (non-zero
    exit or a signal) the others get SIGTERM, then SIGKILL after ``grace`` seconds (JAX takes a
    SIGTERM for a preemption notice and goes on, so it is the SIGKILL that ends them). Ctrl-C
    (SIGINT) and SIGTERM are forwarded to every child; Ctrl-C returns 130. Children get SIGKILL
    if the launcher itself dies (:func:`die_with_launcher`, called by ``dlmodels``'s main)."""
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    address = check_address(coordinator) if coordinator else f"127.0.0.1:{free_port()}"
    if log_dir is None:
        import tempfile

        log_dir = tempfile.mkdtemp(prefix="dlmodels-launch-")
    os.makedirs(log_dir, exist_ok=True)
    logs = {i: os.path.join(log_dir, f"process-{i}.log") for i in range(1, processes)}
    children: list[subprocess.Popen] = []
    copiers = []

    def on_sigterm(signum, frame):
        raise _Terminated

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        for i in range(processes):
            env = {**os.environ, "DLMODELS_COORDINATOR": address,
                   "DLMODELS_NUM_PROCESSES": str(processes), "DLMODELS_PROCESS_ID": str(i),
                   "DLMODELS_LAUNCHER_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
            out = None if i == 0 else subprocess.PIPE
            # own session: a terminal's Ctrl-C reaches the launcher only, which forwards it once
            children.append(subprocess.Popen(
                [sys.executable, "-m", "dlmodels", *argv], env=env, stdout=out,
                stderr=None if i == 0 else subprocess.STDOUT, start_new_session=True))
        for i in logs:
            t = threading.Thread(target=_copy_lines, args=(children[i].stdout, logs[i]),
                                 daemon=True)
            t.start()
            copiers.append(t)
        if logs:
            print(f"dlmodels launch: {processes} processes, coordinator {address}; output of "
                  f"process 0 below, of the others in {log_dir}/process-<i>.log", file=sys.stderr,
                  flush=True)
        status = _watch(children, logs, grace)
    except KeyboardInterrupt:
        _stop(children, signal.SIGINT, grace)
        status = 130
    except _Terminated:
        _stop(children, signal.SIGTERM, grace)
        status = 128 + signal.SIGTERM
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(children, signal.SIGTERM, grace)  # nothing left to stop, normally
        for t in copiers:
            t.join(timeout=5)
    return status


def _watch(children: list[subprocess.Popen], logs: dict[int, str], grace: float) -> int:
    """Wait for every child; at the first failure, stop the others and return its status."""
    while True:
        codes = [c.poll() for c in children]
        # a process killed by a signal first: the others' errors are likely its consequence
        failed = sorted((i for i, rc in enumerate(codes) if rc not in (None, 0)),
                        key=lambda i: (codes[i] > 0, i))
        if failed:
            i = failed[0]
            print(f"dlmodels launch: process {i} {_describe(codes[i])}; stopping the others",
                  file=sys.stderr, flush=True)
            _stop(children, signal.SIGTERM, grace)
            if i in logs:
                time.sleep(0.2)  # let the copier catch the last lines
                for line in _tail(logs[i]):
                    print(f"[p{i}] {line}", file=sys.stderr)
                print(f"(all of process {i}'s output: {logs[i]})", file=sys.stderr, flush=True)
            return _exit_code(codes[i])
        if all(rc == 0 for rc in codes):
            return 0
        time.sleep(0.1)


def _stop(children: list[subprocess.Popen], sig: int, grace: float) -> None:
    """Send ``sig`` to the children still running, then SIGKILL those left after ``grace``."""
    living = [c for c in children if c.poll() is None]
    for c in living:
        try:
            c.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for c in living:
        try:
            c.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()


def mesh_size(shape: dict[str, int]) -> int:
    """The number of devices a mesh of ``shape`` (``{"data": 8}``) spans."""
    return math.prod(shape.values())
