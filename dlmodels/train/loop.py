"""The epoch loop: batches, scanned steps, evaluation, metrics.jsonl, checkpoints and resume,
for one run or for K runs (seeds or hyper-parameter settings) trained as one vmapped program.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from dlmodels import validation
from dlmodels.data.batching import batch_indices
from dlmodels.train.checkpoint import Checkpointer, CheckpointError, step_of
from dlmodels.train.estimators import as_estimator, exported
from dlmodels.train.state import TrainState, init_state, init_states, set_hyperparams
from dlmodels.train import sharding
from dlmodels.train.step import (Objective, make_evaluate, make_sharded_train_steps,
                                 make_train_steps, make_vmapped_train_steps)


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; ``step`` is the update that produced it."""

    def __init__(self, message: str, step: int, state: Any = None):
        super().__init__(message)
        self.step, self.state = step, state


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. Steps are counted in updates; an epoch is ``N // batch_size`` updates.

    ``seed`` draws the initial params and dropout keys; ``data_seed`` the order of examples (the
    same for all runs of a vmapped group). ``steps_per_call`` updates run in one compiled
    ``lax.scan``. ``max_steps > 0`` stops early (e.g. to resume later). ``on_nonfinite``: "raise"
    stops with ``NonFiniteError`` naming the step, keeping the last finite state; "skip" drops
    that update and goes on. ``progress=None`` shows a bar only on a terminal and not under CI.
    ``eval_every > 0`` writes a history entry (evaluation, probes, the mean training loss since
    the previous entry) every ``eval_every`` updates instead of once per epoch. ``shuffle=False``
    takes the examples in order (batch k of every epoch is examples ``kB..(k+1)B-1``): truncated BPTT
    over parallel streams needs window k+1 of each stream right after window k.
    """

    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    data_seed: int = 0
    steps_per_call: int = 100
    eval_batch_size: int = 1000
    max_steps: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    on_nonfinite: str = "raise"
    progress: bool | None = None
    eval_every: int = 0
    shuffle: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "steps_per_call", "eval_batch_size", "keep_checkpoints"):
            validation.check_positive(f"TrainConfig.{name}", getattr(self, name))
        for name in ("max_steps", "checkpoint_every", "eval_every"):
            validation.check_nonnegative(f"TrainConfig.{name}", getattr(self, name))
        validation.check_choice("TrainConfig.on_nonfinite", self.on_nonfinite, ("raise", "skip"))


class FitResult(NamedTuple):
    """``state``: the final state (stacked for K runs); ``history``: one dict per epoch, as written
    to metrics.jsonl; ``final``: the last evaluation (lists over runs for K runs)."""

    state: TrainState
    history: list
    final: dict


def summarize(values) -> dict:
    """``{"mean", "std", "min", "max"}`` of a list of numbers (std with ddof=0)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max())}


def _progress_enabled(setting: bool | None) -> bool:
    if setting is not None:
        return setting
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


def _finite_mean(losses: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the finite values (NaN where there are none)."""
    finite = np.isfinite(losses)
    total = np.where(finite, losses, 0.0).sum(-1)
    count = finite.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _jsonable(x):
    a = np.asarray(x)
    return a.item() if a.ndim == 0 else a.tolist()


def _losses_to_json(losses: list[np.ndarray]) -> dict:
    """The losses of an unfinished period (``[..., S]`` arrays) as JSON: values (non-finite ones
    as None; the period's mean ignores them anyway) and dtype. float32 -> float -> JSON -> float
    -> float32 is exact, so a resumed period's mean is bitwise the uninterrupted one."""
    if not losses:
        return {}
    a = np.concatenate(losses, axis=-1)
    wide = a.astype(np.float64)
    return {"values": np.where(np.isfinite(wide), wide, None).tolist(), "dtype": str(a.dtype)}


def _losses_from_json(saved: dict | None) -> list[np.ndarray]:
    if not saved:
        return []
    a = np.array(saved["values"], dtype=object)
    return [np.where(a == None, np.nan, a).astype(np.float64).astype(saved["dtype"])]  # noqa: E711


def _read_history(path: str, step: int, *, write: bool = True) -> list[dict]:
    """The entries of ``path`` (metrics.jsonl) that an uninterrupted run has at ``step``: complete
    (newline-terminated, parseable) lines with ``entry["step"] <= step``, except the entry of an
    earlier stop by ``max_steps`` (``"partial": true``, not at an epoch/eval boundary). The file is
    rewritten with exactly those lines (a torn last line and lines written after the checkpoint
    are dropped), so appending continues it (by the process that writes, ``write``)."""
    kept: list[dict] = []
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        for line in text.split("\n")[:-1]:     # the piece after the last newline is torn or empty
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("step", math.inf) <= step \
                    and not entry.get("partial"):
                kept.append(entry)
    if write:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in kept)
        os.replace(tmp, path)
    return kept


def _final_from(entry: dict, multi: bool) -> dict:
    """The evaluation stored in a history entry (``eval_<name>``; the ``_mean``/``_std`` summaries
    of K runs left out)."""
    names = {k[5:] for k in entry if k.startswith("eval_")}
    if multi:
        names = {n for n in names if not (n.endswith(("_mean", "_std"))
                                          and n.rsplit("_", 1)[0] in names)}
    return {n: entry[f"eval_{n}"] for n in sorted(names)}


def fit(init_fn: Callable[[jax.Array], Any] | Sequence[Callable[[jax.Array], Any]],
        loss_fn: Objective, optimizer: optax.GradientTransformation, train_data,
        config: TrainConfig, *, eval_fn: Callable[[Any, Any], dict] | None = None,
        eval_data=None, probe_fn: Callable[[Any], dict] | None = None,
        run_dir: str | os.PathLike | None = None, resume: bool = False,
        seeds: Sequence[int] | None = None, hyperparams: dict | None = None,
        record: dict | None = None, mesh: jax.sharding.Mesh | None = None) -> FitResult:
    """Train ``init_fn``'s params on ``train_data`` by minimising ``loss_fn`` with ``optimizer``.

    ``train_data``/``eval_data``: pytrees (e.g. ``(x, y)``) of arrays with a leading example axis.
    ``loss_fn(params, batch, key) -> (scalar loss, aux)``, differentiated by ``value_and_grad``; or
    a :class:`~dlmodels.train.estimators.GradientEstimator` that returns the gradients itself and
    carries state between steps in ``state.model_state`` (CD-k / PCD for RBMs). ``eval_fn(params,
    batch) -> {name: per-example values [B]}``, averaged over ``eval_data`` at every history entry
    (after every epoch, or every ``config.eval_every`` updates). ``probe_fn(params) -> {name:
    array}``: any statistics of the params (e.g. per-layer activations on a fixed batch), stored
    in each entry as ``probe_<name>`` (lists for arrays).

    ``seeds``: train one run per seed in one vmapped program (``None``: one run with
    ``config.seed``). ``hyperparams``: ``{name: [v_1..v_K]}`` for an ``optax.inject_hyperparams``
    optimizer, one value per run (seeds default to ``config.seed`` for every run). ``init_fn`` may
    be a sequence of K init functions (K initialisation schemes trained side by side).

    With ``run_dir``: each entry is appended to ``run_dir/metrics.jsonl``; checkpoints go to
    ``run_dir/checkpoints`` every ``checkpoint_every`` steps and at the end, with ``record`` (e.g.
    the experiment's config) and this ``config``. ``resume=True`` continues from the newest
    checkpoint there (or starts afresh if there is none): the history returned and the rewritten
    metrics.jsonl are those of an uninterrupted run (the lines up to the checkpoint's step are
    kept, a torn line and later ones dropped), and params, optimizer and carried state are
    bitwise those of an uninterrupted run; a run whose checkpoint is at the last step returns at
    once. Without ``resume`` a directory that already holds checkpoints is refused rather than
    overwritten.

    ``mesh``: a ``jax.sharding.Mesh`` with axes among ``"data"`` and ``"seeds"``
    (:mod:`dlmodels.train.sharding`; ``None``: the mesh of an enclosing ``sharding.use_mesh``, or
    one device). Each global batch of ``config.batch_size`` is sharded over ``"data"`` (the same
    examples in the same order as on one device, so the result is the single-device result to
    float rounding); K runs are spread over ``"seeds"``; params and optimizer state are replicated
    and XLA reduces the gradients inside the jitted step. After ``jax.distributed.initialize`` the
    processes run one program: each loads only its rows of every batch, process 0 alone writes
    metrics.jsonl, and all write the checkpoints together (orbax). Checkpoints restore across
    layouts: a sharded run resumes on one device and vice versa. The returned state is whole on
    this process's default device, as without a mesh, so the code that uses it after ``fit`` runs
    unchanged.
    """
    if mesh is None:
        mesh = sharding.current_mesh()
    if hyperparams:
        sizes = {len(v) for v in hyperparams.values()}
        if len(sizes) != 1:
            raise ValueError(f"hyperparams need the same number of values each, got {sizes}")
        k = sizes.pop()
        seeds = list(seeds) if seeds is not None else [config.seed] * k
        if len(seeds) != k:
            raise ValueError(f"{len(seeds)} seeds but {k} hyper-parameter values")
    if not callable(init_fn) and seeds is None:
        seeds = [config.seed] * len(init_fn)
    multi = seeds is not None
    if multi and len(seeds) == 0:
        raise ValueError("seeds is empty")

    validation.check_finite("train_data", train_data)
    if eval_data is not None:
        validation.check_finite("eval_data", eval_data)
    layout = (None if mesh is None else
              sharding.Layout(mesh, len(seeds) if multi else None, config.batch_size))
    writer = jax.process_index() == 0
    if layout is None:
        data = jax.device_put(jax.tree.map(jnp.asarray, train_data))
    elif layout.on_device:      # one process: the data on every device, batches gathered there
        data = layout.place(train_data, layout.replicated)
    else:                       # several: each process loads its rows of each batch from the host
        data = jax.tree.map(np.asarray, train_data)
    sizes = {a.shape[0] for a in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"train_data arrays have different numbers of examples: {sorted(sizes)}")
    n = sizes.pop()
    steps_per_epoch = n // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({n})")
    total = config.epochs * steps_per_epoch
    stop = min(total, config.max_steps) if config.max_steps else total
    period = config.eval_every or steps_per_epoch           # updates between history entries

    estimator = as_estimator(loss_fn)
    init_model_state = lambda key, params: estimator.init(key, params, data)  # noqa: E731
    state = (init_states(init_fn, optimizer, seeds, init_model_state) if multi
             else init_state(init_fn, optimizer, config.seed, init_model_state))
    if hyperparams:
        state = state._replace(opt_state=set_hyperparams(state.opt_state, **hyperparams))

    checkpointer = None
    saved = {"train_config": dataclasses.asdict(config), "record": record or {},
             "seeds": list(seeds) if multi else None}
    pending: list[np.ndarray] = []      # losses of the current period, [S] or [K, S] each
    skipped = 0
    history: list[dict] = []
    metrics_path = None
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        metrics_path = os.path.join(run_dir, "metrics.jsonl")
        checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"),
                                    keep=config.keep_checkpoints)
        if checkpointer.steps():
            if not resume:
                raise CheckpointError(
                    f"{checkpointer.directory} already holds checkpoints {checkpointer.steps()}; "
                    "pass resume=True to continue from them, or use a new run directory")
            state, restored = checkpointer.restore(state)  # opt_state carries injected hyper-params
            period_state = restored.get("period") or {}
            pending = _losses_from_json(period_state.get("losses"))
            skipped = int(period_state.get("skipped", 0))
        history = _read_history(metrics_path, int(np.max(np.asarray(state.step))), write=writer)
    elif resume:
        raise ValueError("resume=True needs a run_dir holding checkpoints")

    halt = config.on_nonfinite == "raise"
    out = {} if layout is None else {"out_shardings": layout.replicated}
    if layout is not None:
        state = layout.place_state(state)
        run = make_sharded_train_steps(estimator, optimizer, layout, halt_on_nonfinite=halt)
    else:
        run = jax.jit(make_vmapped_train_steps(estimator, optimizer, halt_on_nonfinite=halt)
                      if multi else make_train_steps(estimator, optimizer, halt_on_nonfinite=halt))
    evaluate = None
    if eval_fn is not None and eval_data is not None:
        constrain = (layout.constrain_batch if layout is not None
                     and config.eval_batch_size % layout.data_devices == 0 else None)
        evaluate = make_evaluate(eval_fn, config.eval_batch_size, constrain=constrain)
        evaluate = jax.jit(jax.vmap(evaluate, in_axes=(0, None)) if multi else evaluate, **out)
        eval_data = (jax.device_put(jax.tree.map(jnp.asarray, eval_data)) if layout is None
                     else layout.place(eval_data, layout.replicated))
    probe = (None if probe_fn is None
             else jax.jit(jax.vmap(probe_fn) if multi else probe_fn, **out))

    def view(state):    # what eval_fn and probe_fn see
        return exported(estimator, state.params, state.model_state)

    def save(state):
        checkpointer.save(state, config={**saved, "period": {
            "losses": _losses_to_json(pending), "skipped": skipped}})

    data_key = jax.random.PRNGKey(config.data_seed)
    final: dict = {}
    step = step_of(state)
    t_entry = time.perf_counter()
    bar = tqdm(total=stop, initial=step,
               disable=not (writer and _progress_enabled(config.progress)),
               unit="step", dynamic_ncols=True)
    try:
        while step < stop:
            epoch, offset = divmod(step, steps_per_epoch)
            length = min(config.steps_per_call, steps_per_epoch - offset, stop - step,
                         period - step % period)
            if config.checkpoint_every:
                length = min(length, config.checkpoint_every - step % config.checkpoint_every)
            idx = batch_indices(data_key, n, config.batch_size, epoch=epoch,
                                shuffle=config.shuffle)[offset:offset + length]
            if layout is None:
                state, metrics = run(state, data, jnp.asarray(idx))
            elif layout.on_device:
                state, metrics = run(state, data, jax.device_put(idx, layout.batches))
            else:
                state, metrics = run(state, layout.load_batches(data, idx))
            finite = np.asarray(metrics.finite)  # [S] or [K, S]
            if not finite.all():
                bad = np.argwhere(~finite.reshape(-1, length))  # rows: (run, step in call)
                if config.on_nonfinite == "raise":
                    first = int(bad[:, 1].min())
                    who = (f" in run {sorted(set(int(r) for r in bad[bad[:, 1] == first, 0]))}"
                           if multi else "")
                    raise NonFiniteError(
                        f"non-finite loss or gradient at step {step + first}{who} (epoch {epoch}); "
                        f"params are kept from the last finite step. Lower the learning rate, clip "
                        f"gradients, or set on_nonfinite='skip'.", step + first, state)
                skipped += int((~finite).sum())
            pending.append(np.asarray(metrics.loss))
            step += length
            bar.update(length)
            if step % period == 0 or step == stop:
                entry = {"epoch": round(step / steps_per_epoch, 4), "step": step,
                         "seconds": time.perf_counter() - t_entry,
                         "train_loss": _jsonable(_finite_mean(np.concatenate(pending, axis=-1)))}
                if step % period and step < total:
                    entry["partial"] = True   # stopped by max_steps inside a period
                if skipped:
                    entry["skipped_steps"] = skipped
                if evaluate is not None:
                    final = {k: _jsonable(v) for k, v in evaluate(view(state), eval_data).items()}
                    entry.update({f"eval_{k}": v for k, v in final.items()})
                if probe is not None:
                    entry.update({f"probe_{k}": _jsonable(v)
                                  for k, v in probe(view(state)).items()})
                if multi:
                    for k in [k for k in entry if k.startswith(("train_", "eval_"))]:
                        s = summarize(entry[k])
                        entry[f"{k}_mean"], entry[f"{k}_std"] = s["mean"], s["std"]
                history.append(entry)
                if metrics_path and writer:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(entry) + "\n")
                bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v)
                                 for k, v in entry.items() if k in ("train_loss", "train_loss_mean",
                                                                    "eval_accuracy",
                                                                    "eval_accuracy_mean")})
                if step % period == 0:
                    pending, t_entry = [], time.perf_counter()
            if checkpointer is not None and config.checkpoint_every and \
                    step % config.checkpoint_every == 0 and step < stop:
                save(state)
    finally:
        bar.close()
    if not final and evaluate is not None and history and history[-1]["step"] == step:
        final = _final_from(history[-1], multi)
    if checkpointer is not None:
        if step not in checkpointer.steps():
            save(state)
        checkpointer.close()
    if layout is not None:   # whole on this process's default device, as without a mesh
        state = jax.tree.map(jnp.asarray, jax.device_get(
            state if layout.on_device else layout.gather(state)))
    return FitResult(state, history, final)
