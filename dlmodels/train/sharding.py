"""Meshes and shardings for the trainer: data parallelism over a ``"data"`` axis, K runs of a sweep
spread over a ``"seeds"`` axis, both at once, on one process or several (``jax.distributed``).

Everything goes through ``jax.sharding`` under ``jit`` (no ``pmap``, no hand-written collectives):
the trainer places the train state and each global batch with a :class:`NamedSharding` and XLA's
SPMD partitioner writes the collectives. For a loss that is a mean over the batch, the gradient
of the global batch is ``g = (1/B) sum_b grad l_b``; sharded over D devices each computes the
partial sum of its ``B/D`` examples and one all-reduce (XLA's combiner fuses the leaves into one tuple
all-reduce) gives ``g`` on every device, so the update is the single-device update up to the order
of the float additions. Random draws (dropout) use the partitionable threefry, so the mask of
example ``b`` does not depend on where ``b`` lives.

Layouts (``S`` steps per call, global batch ``B``, ``K`` runs):

* one run: params and optimizer state replicated; batches ``[S, B, ...]`` sharded on ``B`` over
  every axis of the mesh (``"data"``, and ``"seeds"`` too if the mesh has one: a single run has no
  seeds to spread, so it uses those devices for data);
* K runs: state leaves ``[K, ...]`` sharded on ``K`` over ``"seeds"``, replicated over ``"data"``;
  batches ``[S, B, ...]`` sharded on ``B`` over ``"data"`` and broadcast to the runs as
  ``[K, B, ...]`` with ``P("seeds", "data")``.

In several processes each process holds the whole training set on the host (as given to ``fit``)
but puts on its devices only its rows of each global batch
(``jax.make_array_from_process_local_data``); the program and the result are those of one process.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from typing import Any, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ("seeds", "data")
CPU_COLLECTIVE_TIMEOUT = 600    # seconds a device may wait for the others in a CPU collective

class MeshError(ValueError):
    """A mesh that does not fit the run: a batch or a number of runs not divisible by its axes,
    or more devices than there are."""


_current: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("dlmodels_mesh",
                                                                       default=None)


def parse_mesh(spec: str) -> dict[str, int]:
    """``"data=8"`` -> ``{"data": 8}``; ``"seeds=4,data=2"`` -> ``{"seeds": 4, "data": 2}`` (the
    order given is the mesh's axis order). Raises ``ValueError`` for an axis other than
    ``"seeds"``/``"data"``, a repeated axis, or a size that is not an integer >= 1."""
    shape: dict[str, int] = {}
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"mesh spec {spec!r} is empty; write e.g. data=8 or seeds=4,data=2")
    for part in parts:
        name, eq, size = part.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"mesh spec {spec!r}: {part!r} is not NAME=SIZE (e.g. data=8)")
        if name not in AXES:
            raise ValueError(f"mesh spec {spec!r}: unknown axis {name!r}; axes are {AXES}")
        if name in shape:
            raise ValueError(f"mesh spec {spec!r}: axis {name!r} given twice")
        try:
            n = int(size)
        except ValueError:
            raise ValueError(f"mesh spec {spec!r}: size of {name!r} must be an integer, "
                             f"got {size!r}") from None
        if n < 1:
            raise ValueError(f"mesh spec {spec!r}: size of {name!r} must be >= 1, got {n}")
        shape[name] = n
    return shape


def make_mesh(shape: dict[str, int] | str, devices=None) -> Mesh:
    """A :class:`Mesh` of ``shape`` (a dict or a spec for :func:`parse_mesh`) over the first
    ``prod(shape)`` of ``devices`` (default ``jax.devices()``: every process's devices, in id
    order, so each process's devices are contiguous along the last axis). With several processes
    the mesh must use every device. Raises ``ValueError`` if there are too few devices."""
    if isinstance(shape, str):
        shape = parse_mesh(shape)
    check_axes(tuple(shape))
    devices = list(jax.devices() if devices is None else devices)
    n = math.prod(shape.values())
    if n > len(devices):
        hint = (" (on the CPU, request more devices before JAX starts: "
                "dlmodels.train.sharding.request_cpu_devices(n), or "
                "XLA_FLAGS=--xla_force_host_platform_device_count=n)"
                if devices and devices[0].platform == "cpu" else "")
        raise MeshError(f"mesh {describe_shape(shape)} needs {n} devices, only {len(devices)} "
                         f"present{hint}")
    if jax.process_count() > 1 and n != len(devices):
        raise MeshError(f"mesh {describe_shape(shape)} uses {n} of {len(devices)} devices; with "
                         f"{jax.process_count()} processes a mesh must use all of them")
    return Mesh(np.array(devices[:n], dtype=object).reshape(tuple(shape.values())), tuple(shape))


def describe_shape(shape: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in shape.items())


def describe(mesh: Mesh | None) -> dict[str, int] | None:
    """``{"seeds": 4, "data": 2}``: the axis sizes in order (``None`` for no mesh)."""
    return None if mesh is None else {str(k): int(v) for k, v in mesh.shape.items()}


def check_axes(names) -> None:
    bad = [a for a in names if a not in AXES]
    if bad:
        raise ValueError(f"mesh axes must be among {AXES}, got {tuple(names)}")
    if len(set(names)) != len(tuple(names)):
        raise ValueError(f"mesh axes repeat: {tuple(names)}")


@contextlib.contextmanager
def use_mesh(mesh: Mesh | None) -> Iterator[Mesh | None]:
    """Inside the ``with`` block, ``fit(..., mesh=None)`` trains on ``mesh`` (the CLI's
    ``--mesh`` works this way, so every experiment that trains through ``fit`` gains it)."""
    if mesh is not None:
        check_axes(mesh.axis_names)
    token = _current.set(mesh)
    try:
        yield mesh
    finally:
        _current.reset(token)


def current_mesh() -> Mesh | None:
    """The mesh set by the innermost :func:`use_mesh`, or ``None``."""
    return _current.get()


def request_cpu_devices(n: int) -> None:
    """Make the CPU backend start with ``n`` devices (``jax_num_cpu_devices``; nothing when it
    already has ``n`` or more), and give its collectives ``CPU_COLLECTIVE_TIMEOUT`` seconds
    (``XLA_FLAGS``, unless set there). It only affects the CPU backend (a GPU machine's GPUs
    are unchanged). Must run before JAX starts its backends; raises ``ValueError`` if they already started with
    fewer CPU devices."""
    if n < 1:
        raise ValueError(f"request_cpu_devices: n must be >= 1, got {n}")
    from jax._src import xla_bridge  # no public way to ask whether the backends started

    if xla_bridge.backends_are_initialized():
        have = len(jax.devices("cpu"))
        if have < n:
            raise ValueError(f"the CPU backend already started with {have} devices; request "
                             f"{n} before any JAX computation (or set XLA_FLAGS="
                             f"--xla_force_host_platform_device_count={n})")
        return
    if jax.config.jax_num_cpu_devices < n:
        jax.config.update("jax_num_cpu_devices", n)
    # host devices share the cores: on a loaded machine one device's thread can reach a
    # collective long after another, and XLA:CPU aborts the process after 40 s by default
    # (seen once at a load average of 5 with 8 devices on 2 cores)
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in ("xla_cpu_collective_timeout_seconds",
                 "xla_cpu_collective_call_terminate_timeout_seconds"):
        if flag not in flags:
            flags += f" --{flag}={CPU_COLLECTIVE_TIMEOUT}"
    os.environ["XLA_FLAGS"] = flags.strip()


class Layout:
    """Where the trainer puts the state and each batch on ``mesh`` (see the module docstring).

    ``n_runs``: K for a vmapped group, ``None`` for one run. Raises ``ValueError`` when the global
    ``batch_size`` is not divisible by the devices its batch axis spreads over, or K by the
    ``"seeds"`` axis (:class:`MeshError`, a ``ValueError``).
    """

    def __init__(self, mesh: Mesh, n_runs: int | None, batch_size: int):
        check_axes(mesh.axis_names)
        self.mesh, self.n_runs = mesh, n_runs
        names = tuple(mesh.axis_names)
        if n_runs is None:
            self.batch_axes = names                      # a single run uses every device for data
            self.run_axis = None
        else:
            self.batch_axes = tuple(a for a in names if a == "data")
            self.run_axis = "seeds" if "seeds" in names else None
        self.data_devices = math.prod(mesh.shape[a] for a in self.batch_axes)
        if batch_size % self.data_devices:
            raise MeshError(
                f"the global batch of {batch_size} examples cannot be split evenly over the "
                f"{self.data_devices} devices of mesh axes {self.batch_axes} (mesh "
                f"{describe_shape(describe(mesh))}); choose a batch size divisible by "
                f"{self.data_devices}")
        if self.run_axis is not None and n_runs % mesh.shape["seeds"]:
            raise MeshError(f"{n_runs} runs cannot be split evenly over the 'seeds' axis of "
                            f"{mesh.shape['seeds']} devices; use a number of seeds divisible "
                            f"by it")
        batch_spec = self.batch_axes if len(self.batch_axes) != 1 else self.batch_axes[0]
        self._batch_spec = batch_spec if self.batch_axes else None
        self.replicated = NamedSharding(mesh, P())
        self.state = NamedSharding(mesh, P() if self.run_axis is None else P(self.run_axis))
        self.batches = NamedSharding(mesh, P(None, self._batch_spec))   # [S, B, ...]
        # one process: the training set is replicated on the mesh and each step gathers its
        # batch there from indices [S, B] (sharded like the batches), as the one-device trainer
        # does; several processes: each loads its rows on the host (load_batches)
        self.on_device = jax.process_count() == 1

    def constrain_runs(self, batch):
        """Inside the vmapped step: the batch broadcast to ``[K, B, ...]``, K over ``"seeds"``
        and B over ``"data"``."""
        sharding = NamedSharding(self.mesh, P(self.run_axis, self._batch_spec))
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), batch)

    def constrain_batch(self, batch):
        """A batch ``[B, ...]`` (evaluation) sharded like the training batches."""
        sharding = NamedSharding(self.mesh, P(self._batch_spec))
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), batch)

    def place(self, tree, sharding: NamedSharding) -> Any:
        """Host values (the same on every process) as global arrays with ``sharding``."""
        def put(x):
            x = np.asarray(jax.device_get(x))
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
        return jax.tree.map(put, tree)

    def place_state(self, state):
        return self.place(state, self.state)

    def local_rows(self, batch_size: int, steps: int) -> np.ndarray:
        """The positions within a global batch whose examples this process's devices hold, in
        the order ``make_array_from_process_local_data`` expects (its slices, ascending)."""
        index_map = self.batches.addressable_devices_indices_map((steps, batch_size))
        spans = sorted({(s[1].start or 0, batch_size if s[1].stop is None else s[1].stop)
                        for s in index_map.values()})
        return np.concatenate([np.arange(a, b) for a, b in spans])

    def load_batches(self, data, idx: np.ndarray):
        """The global batches ``[S, B, ...]`` of ``idx [S, B]`` from the host arrays ``data``
        (a pytree, leading example axis): this process gathers only its rows."""
        steps, batch_size = idx.shape
        local = idx[:, self.local_rows(batch_size, steps)]

        def make(a):
            return jax.make_array_from_process_local_data(
                self.batches, a[local], (steps, batch_size) + a.shape[1:])
        return jax.tree.map(make, data)

    def gather(self, tree):
        """Global arrays as fully replicated ones (``np.asarray`` works on every process)."""
        return jax.jit(lambda t: t, out_shardings=self.replicated)(tree)


__all__ = ["AXES", "Layout", "MeshError", "parse_mesh", "make_mesh", "describe", "use_mesh",
           "current_mesh", "request_cpu_devices", "check_axes"]
