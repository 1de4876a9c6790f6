"""Orbax checkpoints of a ``TrainState`` together with the run's config and step.

Layout: ``<directory>/<step>/state`` (params as nested dicts, the optimizer state's leaves, the
step, the key and the carried model state's leaves, if it has any) and ``<directory>/<step>/config``
(JSON). A state sharded over a mesh is saved by all processes together (orbax's multi-host path) and
restored whole, whatever the mesh or device count that wrote it (``fit`` places it on its own). Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a crash during a save leaves the earlier ones
intact; a checkpoint that cannot be read raises ``CheckpointError`` and nothing is overwritten.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from dlmodels.train.state import TrainState

logging.getLogger("absl").setLevel(logging.WARNING)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not match the state it is restored into."""


def _leaves(tree) -> dict:
    return {f"leaf_{i}": x for i, x in enumerate(jax.tree.leaves(tree))}


def _unflatten(target, saved: dict):
    treedef = jax.tree.structure(target)
    return jax.tree.unflatten(treedef, [saved[f"leaf_{i}"] for i in range(treedef.num_leaves)])


def _to_tree(state: TrainState) -> dict:
    tree = {"params": state.params, "opt_state": _leaves(state.opt_state),
            "step": state.step, "key": state.key}
    if jax.tree.leaves(state.model_state):  # absent when empty: older checkpoints still match
        tree["model_state"] = _leaves(state.model_state)
    return tree


def _describe(tree) -> dict:
    return {jax.tree_util.keystr(p): (tuple(x.shape), str(x.dtype))
            for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def step_of(state: TrainState) -> int:
    """The step of a state: the largest of K runs' counters, read from this process's shards when
    the runs are spread over several processes (a "seeds" axis)."""
    step = state.step
    if isinstance(step, jax.Array) and not step.is_fully_addressable:
        return int(max(np.max(np.asarray(s.data)) for s in step.addressable_shards))
    return int(np.max(np.asarray(step)))


_ITEMS = ("state", "config")   # a checkpoint's orbax items


class Checkpointer:
    """Saves and restores train states in ``directory``, keeping the newest ``keep``."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers=dict(zip(_ITEMS, (ocp.StandardCheckpointHandler(),
                                            ocp.JsonCheckpointHandler()))))

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints present, oldest first.

        A step directory without both items (``state`` and ``config``) is not one: orbax removes
        a checkpoint beyond ``keep`` with a recursive delete, ``config`` first, so a process killed
        during that removal leaves ``<step>/state`` alone (seen in the kill-and-resume test). Such
        a directory is left on disk, and ``restore(step=...)`` of it still raises
        ``CheckpointError``."""
        self._manager.reload()
        return sorted(step for step in self._manager.all_steps()
                      if all(os.path.isdir(os.path.join(self.directory, str(step), item))
                             for item in _ITEMS))

    def save(self, state: TrainState, *, config: dict | None = None) -> str:
        """Write ``state`` (and ``config`` as JSON) under its step; returns the checkpoint's path."""
        step = step_of(state)
        args = ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)),
                                  config=ocp.args.JsonSave(config or {}))
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()
        return os.path.join(self.directory, str(step))

    def _read(self, step: int | None) -> tuple[dict, dict, str]:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; "
                                  f"available steps: {steps}")
        path = os.path.join(self.directory, str(step))
        try:
            # every leaf whole on this process's first device, whatever mesh wrote it: the
            # trainer then places the state on its own layout (sharded <-> unsharded)
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                  self._manager.item_metadata(step)["state"])
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            raise CheckpointError(
                f"checkpoint {path} could not be read ({type(e).__name__}: {e}). It was left as it "
                f"is; other steps available: {[s for s in steps if s != step]} "
                f"(restore one with step=...)") from e
        return restored.state, dict(restored.config or {}), path

    def restore_params(self, *, step: int | None = None) -> tuple[Any, dict]:
        """Only the params (as saved: nested dicts, leading axis K for K vmapped runs) and the
        config, without needing the optimizer state's structure: for analysis or fine-tuning."""
        tree, config, _ = self._read(step)
        return tree["params"], config

    def restore(self, target: TrainState, *, step: int | None = None) -> tuple[TrainState, dict]:
        """Restore into the structure of ``target`` (a state, or its ``jax.eval_shape``).

        ``step=None`` takes the newest checkpoint. Returns ``(state, config)``. Raises
        ``CheckpointError`` when there is none, when it cannot be read, or when its shapes, dtypes
        or tree structure differ from ``target``'s.
        """
        tree, config, path = self._read(step)
        expected = _describe(_to_tree(target))
        found = _describe(tree)
        if expected != found:
            diff = sorted(set(expected.items()) ^ set(found.items()))[:6]
            raise CheckpointError(f"checkpoint {path} does not match the state being restored "
                                  f"(model or optimizer changed?); differing leaves: {diff}")
        opt_state = _unflatten(target.opt_state, tree["opt_state"])
        model_state = _unflatten(target.model_state, tree.get("model_state", {}))
        params = jax.tree.map(lambda t, x: x, target.params, tree["params"])
        return TrainState(params, opt_state, tree["step"], tree["key"], model_state), config

    def close(self) -> None:
        self._manager.close()
