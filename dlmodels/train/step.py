"""Jitted training steps built from any ``loss_fn(params, batch, key) -> (loss, aux)`` (or a
:class:`~dlmodels.train.estimators.GradientEstimator`) and any optax optimizer, and a scanned
multi-step that runs many updates in one compiled call.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dlmodels.nn.conv import MAX_UNROLLED_MEMBERS, seed_batching, stack_members
from dlmodels.train.estimators import GradientEstimator, LossFn, Updater, as_estimator
from dlmodels.train.state import TrainState

Objective = LossFn | GradientEstimator | Updater


class StepMetrics(NamedTuple):
    """Per-step outputs: the loss, whether loss and gradients were finite, and the loss's aux."""

    loss: jax.Array
    finite: jax.Array
    aux: Any


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def _gradients_finite(loss, grads) -> jax.Array:
    """``isfinite(loss) & isfinite(||g||_2)``: one reduction over the gradients (the same
    expression as ``optax.clip_by_global_norm``'s norm, which XLA may then compute once; not
    checked in the HLO). A gradient whose
    squared norm overflows (``||g|| > 1.8e19`` in float32) counts as non-finite as well.
    Measured (reduced AlexNet, B = 32, 2-core CPU): with the update under ``lax.cond``, the step
    is within ~1-3 % of a hand-written one, against +10 % for a per-leaf check and a select of
    every leaf of the new or old state."""
    return jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))


def _select(pred, new, old):
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o), new, old)


def make_train_step(loss_fn: Objective, optimizer: optax.GradientTransformation):
    """``train_step(state, batch) -> (state, StepMetrics)``: one gradient update.

    ``g = grad_params loss_fn(params, batch, fold_in(key, step))`` (a GradientEstimator gives
    ``g, model_state, loss, aux = estimate(fold_in(key, step), params, model_state, batch)``);
    ``params <- params + optimizer.update(g)``. A non-finite loss, gradient (its global norm,
    :func:`_gradients_finite`) or carried state leaves params, optimizer state and carried state
    as they were (the update runs under ``lax.cond``; the step counter still advances) and
    reports ``finite=False``.

    An :class:`~dlmodels.train.estimators.Updater` makes the step itself: ``params, opt_state,
    model_state, loss, aux = update(fold_in(key, step), params, opt_state, model_state, batch)``,
    kept only if the loss, the new params and the carried state are finite.
    """
    step = _guarded_step(loss_fn, optimizer, halt=False)
    return lambda state, batch: step(state, batch, jnp.array(True))


def _guarded_step(loss_fn: Objective, optimizer: optax.GradientTransformation, *, halt: bool):
    """``step(state, batch, active) -> (state, StepMetrics)``: :func:`make_train_step`'s update,
    kept only where ``active & finite`` (one ``lax.cond``, or one select per leaf when vmapped).
    The step counter advances where ``active``, and with ``halt`` only where also finite: the
    scanned steps' non-finite halt freezes the whole state at the last good step without a
    second pass over it."""
    estimator = as_estimator(loss_fn)
    if isinstance(estimator, Updater):
        return _updater_step(estimator, halt)

    def train_step(state: TrainState, batch, active) -> tuple[TrainState, StepMetrics]:
        key = jax.random.fold_in(state.key, state.step)
        grads, model_state, loss, aux = estimator.estimate(key, state.params, state.model_state,
                                                           batch)
        finite = _gradients_finite(loss, grads) & _all_finite(model_state)

        def update(_):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return optax.apply_updates(state.params, updates), opt_state, model_state

        def keep(_):
            return state.params, state.opt_state, state.model_state

        # a branch, not a select of every leaf: one pass less over params and optimizer state
        # (vmapped over seeds, the cond becomes that select again)
        params, opt_state, model_state = jax.lax.cond(finite & active, update, keep, None)
        advance = (active & finite) if halt else active
        new = TrainState(params, opt_state, state.step + advance.astype(state.step.dtype),
                         state.key, model_state)
        return new, StepMetrics(loss, finite, aux)

    return train_step


def _updater_step(updater: Updater, halt: bool):
    def train_step(state: TrainState, batch, active) -> tuple[TrainState, StepMetrics]:
        key = jax.random.fold_in(state.key, state.step)
        params, opt_state, model_state, loss, aux = updater.update(
            key, state.params, state.opt_state, state.model_state, batch)
        finite = jnp.isfinite(loss) & _all_finite(params) & _all_finite(model_state)
        keep = finite & active
        advance = (active & finite) if halt else active
        new = TrainState(_select(keep, params, state.params),
                         _select(keep, opt_state, state.opt_state),
                         state.step + advance.astype(state.step.dtype), state.key,
                         _select(keep, model_state, state.model_state))
        return new, StepMetrics(loss, finite, aux)

    return train_step


def make_train_steps(loss_fn: Objective, optimizer: optax.GradientTransformation, *,
                     halt_on_nonfinite: bool = True):
    """``run(state, data, indices) -> (state, StepMetrics stacked over steps)``.

    ``data``: a pytree of arrays with a leading example axis ``[N, ...]`` (kept on the device);
    ``indices``: int ``[S, B]``, the examples of each of S steps. The S updates run inside one
    ``lax.scan``. With ``halt_on_nonfinite`` the first non-finite step freezes the state (step
    counter included) for the rest of the call, so the caller can stop at the last good state;
    the metrics' ``finite`` is then False from that step on (the frozen steps make no update).
    """
    return _scanned(_guarded_step(loss_fn, optimizer, halt=halt_on_nonfinite), halt_on_nonfinite,
                    vmapped=False)


def has_convolution(fn, *args) -> bool:
    """Whether ``fn(*args)`` (traced abstractly under ``seed_batching``, nothing runs) contains a
    convolution, also inside nested calls, custom derivatives, loops and branches: jax's
    ``conv_general_dilated``, or a ``dlmodels.nn`` convolution carrying its seed rule (a
    ``custom_vmap``, whatever it computes inside, e.g. the CPU's im2col)."""
    avals = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), args)
    with seed_batching():
        jaxpr = jax.make_jaxpr(fn)(*avals).jaxpr
    return _jaxpr_has(jaxpr, ("conv_general_dilated", "custom_vmap_call"))


def _jaxpr_has(jaxpr, primitives: tuple[str, ...]) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in primitives:
            return True
        for value in eqn.params.values():
            for sub in (value if isinstance(value, (tuple, list)) else (value,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns") and _jaxpr_has(inner, primitives):
                    return True
    return False


def _unrolled_members(train_step, n_runs: int):
    """``step(states, batch, active [K])``: ``train_step`` of member k on the shared batch for
    k = 0 .. K-1, one after another in the one program (one member's temporaries at a time,
    ``nn.conv.stack_members``), stacked: the same updates as K single runs."""
    return lambda state, batch, active: stack_members(train_step, n_runs, (True, False, True),
                                                      (state, batch, active))


def _use_unrolled(members: str, train_step, state: TrainState, batch) -> bool:
    """``members`` "unroll" / "vmap", or "auto": unrolled on the CPU when one member's step
    contains a convolution (and K <= ``nn.conv.MAX_UNROLLED_MEMBERS``, as compile time grows with
    K)."""
    if members != "auto":
        return members == "unroll"
    n_runs = state.step.shape[0]
    if jax.default_backend() != "cpu" or n_runs > MAX_UNROLLED_MEMBERS:
        return False
    member = jax.tree.map(lambda a: a[0], state)
    return has_convolution(train_step, member, batch, jnp.array(True))


def _scanned(train_step, halt_on_nonfinite: bool, *, vmapped: bool,
             gathered: bool = False, constrain=None, members: str = "vmap"):
    """``run(state, data, indices)``: ``train_step(state, batch, active)`` (:func:`_guarded_step`,
    vmapped when ``vmapped``) scanned over the rows of ``indices``, with the non-finite halt
    (``active`` false from the first non-finite step on). ``vmapped``: the state has a leading run axis K; each batch is gathered once
    and broadcast to the K runs, and the metrics come back ``[K, S]``. ``gathered``: instead
    ``run(state, batches)`` with the batches already gathered, ``[S, B, ...]`` (the sharded path,
    where each process loads its own rows). ``constrain(batch)``: a sharding constraint put on
    each step's batch (``[K, B, ...]`` when vmapped)."""

    def run(state: TrainState, data, indices: jax.Array | None = None):
        if vmapped:  # on the CPU: K ordinary convolutions, not a grouped one (nn.conv)
            with seed_batching():
                return traced(state, data, indices)
        return traced(state, data, indices)

    def traced(state: TrainState, data, indices: jax.Array | None = None):
        n_runs = state.step.shape[0] if vmapped else None
        unrolled = []   # decided once, at the first trace of the body

        def body(carry, xs):
            state, halted = carry
            batch = xs if gathered else jax.tree.map(lambda a: a[xs], data)  # once for all runs
            step = train_step
            if vmapped:
                if not unrolled:
                    unrolled.append(_use_unrolled(members, train_step, state, batch))
                if unrolled[0]:
                    step = _unrolled_members(train_step, n_runs)
                else:
                    step = jax.vmap(train_step)
                    batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_runs,) + a.shape), batch)
            if constrain is not None:
                batch = constrain(batch)
            new, metrics = step(state, batch, ~halted)
            if halt_on_nonfinite:
                halted = halted | ~metrics.finite
                # the running halt flag, not `finite`, is the per-step output: the same up to the
                # first non-finite step, and XLA:CPU then overlaps more of the step's independent
                # kernels (8 vmapped seeds of a 64-32-10 MLP with SGD: 82 instead of 97 us per
                # step; Adam, single runs and 784-256-10 unchanged)
                metrics = metrics._replace(finite=halted)
            return (new, halted), metrics

        halted = jnp.zeros((n_runs,), bool) if vmapped else jnp.array(False)
        xs = data if gathered else indices
        if jax.tree.leaves(xs)[0].shape[0] == 1:
            # one step per call without a loop: XLA:CPU runs some convolutions inside a while
            # loop ~20x slower than outside (a 16-32 map convnet step: 0.87 s vs 0.04 s), so
            # on the CPU conv nets train with steps_per_call=1 (dlmodels.backend.conv_steps_per_call
            # chooses it by backend)
            (state, _), metrics = body((state, halted), jax.tree.map(lambda a: a[0], xs))
            metrics = jax.tree.map(lambda a: a[None], metrics)
        else:
            (state, _), metrics = jax.lax.scan(body, (state, halted), xs)
        if halt_on_nonfinite:
            metrics = metrics._replace(finite=~metrics.finite)   # from the halt flags (above)
        if vmapped:
            metrics = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), metrics)  # [S, K] -> [K, S]
        return state, metrics

    return run


def make_sharded_train_steps(loss_fn: Objective, optimizer: optax.GradientTransformation,
                             layout, *, halt_on_nonfinite: bool = True):
    """The steps of :func:`make_train_steps` (one run) or :func:`make_vmapped_train_steps`
    (``layout.n_runs`` runs) for a mesh, jitted with ``layout``'s shardings
    (:class:`~dlmodels.train.sharding.Layout`): the runs' state over ``"seeds"`` (kept from call
    to call), each step's batch ``[B, ...]`` (``[K, B, ...]`` for K runs) over the data axes.

    ``layout.on_device`` (one process): ``run(state, data, indices [S, B])`` with ``data``
    replicated on the mesh, each batch gathered on the devices. Otherwise ``run(state, batches)``
    with ``batches [S, B, ...]`` placed by ``layout.load_batches``."""
    step = _guarded_step(loss_fn, optimizer, halt=halt_on_nonfinite)
    gathered = not layout.on_device
    if layout.n_runs is None:
        run = _scanned(step, halt_on_nonfinite, vmapped=False, gathered=gathered,
                       constrain=layout.constrain_batch)
    else:
        run = _scanned(step, halt_on_nonfinite, vmapped=True, gathered=gathered,
                       constrain=layout.constrain_runs)
    inputs = ((layout.state, layout.batches) if gathered
              else (layout.state, layout.replicated, layout.batches))
    return jax.jit(run, in_shardings=inputs, out_shardings=(layout.state, layout.replicated))


def make_vmapped_train_steps(loss_fn: Objective, optimizer: optax.GradientTransformation, *,
                             halt_on_nonfinite: bool = True, members: str = "auto"):
    """``run(states, data, indices) -> (states, StepMetrics [K, S, ...])``: K runs (seeds or
    hyper-parameter settings) trained on the same batches in one compiled ``lax.scan``.

    ``states``: a :class:`TrainState` whose leaves have a leading axis K (``init_states``);
    ``data`` and ``indices [S, B]`` as in :func:`make_train_steps`, shared by the K runs. Member k
    makes the same updates as ``make_train_steps`` run on member k alone, halting included.

    Each step's batch is gathered once and broadcast to ``[K, B, ...]`` before the vmapped update,
    so every layer's matmul is a dot batched over K on the weights' stacked ``[K, n_in, n_out]``
    layout. ``jax.vmap(make_train_steps(...), in_axes=(0, None, None))`` instead leaves the shared
    batch unbatched, and JAX folds K into one matmul ``x @ [W_1 ... W_K]`` for the first layer,
    whose weights must then be transposed to ``[n_in, K * n_out]`` and their gradient back on every
    step. On a 2-core CPU, at 784-256-10 with batch 128, that made 8 seeds 1.3x (SGD with
    momentum) to 1.45x (Adam) slower than 8 sequential runs, where this is at parity; at
    64-32-10 with batch 32 the fold was up to 10% faster (``benchmarks/RESULTS.md``, "seeds").

    ``members``: "vmap" (the above), "unroll" (member k's step runs after member k - 1's in the
    same program, on the shared batch: bitwise the updates of K single runs) or "auto" (default):
    unrolled on the CPU when the step contains a convolution, vmapped otherwise. On a quiet 2-core
    CPU, 8 LeNet-5 seeds (B = 128) took 73 ms per step unrolled, 85 ms vmapped (with the
    convolutions' seed rule) and 74 ms as 8 single-run steps; XLA:CPU has no batched convolution
    that beats K ordinary ones, while an MLP's batched dots do beat K single runs (8 seeds of
    64-32-10 with SGD: 1.46x vmapped).
    """
    if members not in ("auto", "vmap", "unroll"):
        raise ValueError(f"make_vmapped_train_steps: members must be 'auto', 'vmap' or 'unroll', "
                         f"got {members!r}")
    return _scanned(_guarded_step(loss_fn, optimizer, halt=halt_on_nonfinite),
                    halt_on_nonfinite, vmapped=True, members=members)


def make_evaluate(eval_fn: Callable[[Any, Any], dict], batch_size: int, *, constrain=None):
    """``evaluate(params, data) -> {name: mean over examples}`` in one compiled call.

    ``eval_fn(params, batch) -> {name: per-example values [B]}``. The data are cut into batches of
    ``batch_size``; the last one is padded and the padding masked out of the means.
    ``constrain(batch)``: a sharding constraint on each batch (a mesh's data axis).
    """

    def evaluate(params, data) -> dict:
        data = jax.tree.map(jnp.asarray, data)
        n = jax.tree.leaves(data)[0].shape[0]
        n_batches = -(-n // batch_size)
        idx = jnp.arange(n_batches * batch_size)
        mask = (idx < n).reshape(n_batches, batch_size)
        idx = jnp.minimum(idx, n - 1).reshape(n_batches, batch_size)

        def body(totals, xs):
            i, m = xs
            batch = jax.tree.map(lambda a: a[i], data)
            values = eval_fn(params, batch if constrain is None else constrain(batch))
            return jax.tree.map(lambda t, v: t + jnp.sum(jnp.where(m, v, 0.0)), totals, values), None

        first = jax.eval_shape(eval_fn, params, jax.tree.map(lambda a: a[idx[0]], data))
        zeros = jax.tree.map(lambda s: jnp.zeros((), jnp.float32), first)
        totals, _ = jax.lax.scan(body, zeros, (idx, mask))
        return jax.tree.map(lambda t: t / n, totals)

    return evaluate
