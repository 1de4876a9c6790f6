"""Hopfield networks (Hopfield 1982): Hebbian storage of +-1 patterns, the energy, and recall by
asynchronous or synchronous sign updates, as pure functions.

Conventions (Hertz, Krogh & Palmer 1991, ch. 2; Amit, Gutfreund & Sompolinsky 1985): ``N`` units
with states ``z_i = +-1``, symmetric weights ``w_ij = (1/N) sum_nu x_i^nu x_j^nu`` with
``w_ii = 0``, local field ``h_i = sum_j w_ij z_j``, update ``z_i <- sign(h_i)``. A field of
exactly 0 keeps the unit's current value (so an update never raises the energy and a tie is never
a change). States and patterns are float or integer arrays of +-1 whose last axis is ``N``.

Asynchronous recall keeps the local field ``h = W z`` and, when unit ``i`` flips by
``delta = z_i' - z_i``, adds ``delta W[:, i]`` to it: O(N) per unit update instead of O(N^2).
The field is recomputed from scratch at the start of each sweep, so round-off cannot build up
across sweeps (within a sweep, a field within round-off of an exact 0 may be decided differently
from a from-scratch ``W[i] . z``). A batch of states ``[B, N]`` is updated in one shared order and
skips the field update at a unit where none of them flips (a real branch only outside vmap;
under vmap both branches run).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.classic.perceptron import hebbian
from dlmodels.validation import ShapeError, check_choice, concrete

Mode = Literal["async", "sync"]


class RecallInfo(NamedTuple):
    """What ``recall_with_info`` returns; leading dims ``[...]`` are those of the probe.

    state ``[..., N]``: the final state; sweeps ``[...]`` (int32): sweeps done, counting the
    final one that changed nothing; converged ``[...]`` (bool): whether the last sweep changed
    nothing (a fixed point); energy ``[...]``: H of the final state; energies
    ``[..., max_sweeps + 1]``: H of the probe, then after each sweep (entries after the stop
    repeat the final energy, the state no longer changing).
    """

    state: jax.Array
    sweeps: jax.Array
    converged: jax.Array
    energy: jax.Array
    energies: jax.Array


def _check_plus_minus_one(x, name: str) -> None:
    values = concrete(x)
    if values is not None and values.size and not np.all(np.abs(values) == 1):
        bad = np.unique(values[np.abs(values) != 1])[:5]
        raise ValueError(f"{name} must hold only +1 and -1; found {bad.tolist()}")


def _check_weights(weights) -> int:
    shape = jnp.shape(weights)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ShapeError(f"hopfield: weights must be a square matrix [N, N]; got shape {shape}")
    return shape[0]


def _check_state(state, n_units: int, name: str) -> None:
    shape = jnp.shape(state)
    if len(shape) < 1 or shape[-1] != n_units:
        raise ShapeError(f"hopfield: {name} must be [..., N] with N = {n_units} (the weights' size); "
                         f"got shape {shape}")


def _sign_keep(field, current):
    """``sign(field)``, keeping ``current`` where the field is exactly 0."""
    return jnp.where(field > 0, jnp.ones_like(current),
                     jnp.where(field < 0, -jnp.ones_like(current), current))


def store(patterns, *, zero_diagonal: bool = True,
          normalise: Literal["n_units", "n_patterns"] = "n_units", dtype=jnp.float32) -> jax.Array:
    """Hebbian weights ``w_ij = (1/k) sum_nu x_i^nu x_j^nu`` of +-1 patterns (Hopfield 1982).

    ``k = N`` (``normalise="n_units"``, default, as in Amit, Gutfreund & Sompolinsky 1985 and
    Hertz, Krogh & Palmer 1991 ch. 2, which gives a stored pattern a signal term of ~1 in its
    local field and the load ``alpha = p/N`` its meaning) or ``k = p`` (``"n_patterns"``, the
    course notes' alternative; it rescales W, which changes no sign update). ``zero_diagonal``
    sets ``w_ii = 0`` (no self-coupling; needed for the energy argument as usually stated).
    The outer products are summed by the library's one Hebbian rule, ``perceptron.hebbian``.

    patterns ``[p, N]`` of +-1 -> weights ``[N, N]`` (``dtype``, float32 by default; symmetric).
    """
    shape = jnp.shape(patterns)
    if len(shape) != 2:
        raise ShapeError(f"hopfield.store: patterns must be [p, N]; got shape {shape}")
    check_choice("normalise", normalise, ("n_units", "n_patterns"))
    _check_plus_minus_one(patterns, "patterns")
    n_patterns, n_units = shape
    x = jnp.asarray(patterns, dtype)
    weights = hebbian(x, x) / (n_units if normalise == "n_units" else max(n_patterns, 1))
    if zero_diagonal:
        weights = weights * (1.0 - jnp.eye(n_units, dtype=weights.dtype))
    return weights


def energy(weights, state) -> jax.Array:
    """``H(z) = -1/2 sum_ij w_ij z_i z_j`` (Hopfield 1982; Hertz, Krogh & Palmer 1991 ch. 2).

    weights ``[N, N]``, state ``[..., N]`` -> ``[...]``.
    """
    n_units = _check_weights(weights)
    _check_state(state, n_units, "state")
    z = jnp.asarray(state).astype(jnp.result_type(weights))
    return -0.5 * jnp.einsum("...i,ij,...j->...", z, weights, z)


def overlap(state, pattern) -> jax.Array:
    """Overlap ``m = (1/N) sum_i z_i x_i`` in [-1, 1] (Amit, Gutfreund & Sompolinsky 1985).

    state and pattern ``[..., N]`` (broadcast against each other) -> ``[...]``.
    """
    state, pattern = jnp.broadcast_arrays(jnp.asarray(state, jnp.float32),
                                          jnp.asarray(pattern, jnp.float32))
    return jnp.mean(state * pattern, axis=-1)


def local_field(weights, state) -> jax.Array:
    """``h_i = sum_j w_ij z_j``. weights ``[N, N]``, state ``[..., N]`` -> ``[..., N]``."""
    z = jnp.asarray(state).astype(jnp.result_type(weights))
    return jnp.einsum("ij,...j->...i", weights, z)


def _update(z, h, unit, column):
    """``update_unit`` on a batch: z, h ``[B, N]`` (float), column ``[N]`` = ``W[:, unit]``."""
    current = z[:, unit]
    new = _sign_keep(h[:, unit], current)
    delta = new - current                                                     # [B]
    # Skipped when no unit of the batch flips: then a unit update costs O(B), not O(B N).
    h = jax.lax.cond(jnp.any(delta != 0), lambda h: h + delta[:, None] * column[None, :],
                     lambda h: h, h)
    return z.at[:, unit].set(new), h


def update_unit(weights, state, field, unit):
    """One asynchronous update ``z_i <- sign(h_i)`` (0 keeps ``z_i``) of unit ``i = unit``, with
    the field kept current by the rank-1 update ``h <- h + (z_i' - z_i) W[:, i]`` (O(N)).

    weights ``[N, N]``, state ``[..., N]``, field ``[..., N]`` (= ``local_field(weights,
    state)``), unit: int scalar -> ``(state [..., N], field [..., N])``.
    """
    n_units = _check_weights(weights)
    _check_state(state, n_units, "state")
    state, weights = jnp.asarray(state), jnp.asarray(weights)
    dtype = weights.dtype
    column = jax.lax.dynamic_index_in_dim(weights, unit, axis=1, keepdims=False)
    z, h = _update(state.reshape(-1, n_units).astype(dtype),
                   jnp.asarray(field, dtype).reshape(-1, n_units), unit, column)
    return z.reshape(state.shape).astype(state.dtype), h.reshape(state.shape)


def sweep_order(key, sweep, n_units: int) -> jax.Array:
    """The random order of units in asynchronous sweep number ``sweep`` (0-based) of a recall
    run with ``key``: ``permutation(fold_in(key, sweep), N)`` -> int32 ``[N]``."""
    return jax.random.permutation(jax.random.fold_in(key, sweep), n_units)


def async_sweep(weights, state, order) -> jax.Array:
    """One asynchronous sweep: ``update_unit`` for each unit in ``order``, in turn (Hopfield
    1982), the field computed once at the start and then updated incrementally.

    weights ``[N, N]``, state ``[..., N]`` (every leading index updated in the same order),
    order int ``[L]`` (usually a permutation of range(N)) -> state ``[..., N]``.
    """
    n_units = _check_weights(weights)
    _check_state(state, n_units, "state")
    state, weights, order = jnp.asarray(state), jnp.asarray(weights), jnp.asarray(order)
    z = state.reshape(-1, n_units).astype(weights.dtype)                      # [B, N]
    columns = weights.T  # row i is column i of W: contiguous reads in the loop

    def body(k, carry):
        unit = order[k]
        return _update(*carry, unit, columns[unit])

    z, _ = jax.lax.fori_loop(0, jnp.shape(order)[0], body, (z, z @ columns))
    return z.reshape(state.shape).astype(state.dtype)


def sync_step(weights, state) -> jax.Array:
    """One synchronous (Little 1974) update of every unit at once: ``z <- sign(W z)``, 0 keeping
    the current value. weights ``[N, N]``, state ``[..., N]`` -> ``[..., N]``."""
    return _sign_keep(local_field(weights, state), jnp.asarray(state))


def recall_with_info(key, weights, probe, max_sweeps: int, *, mode: Mode = "async") -> RecallInfo:
    """Recall from ``probe``: sweeps of updates ``z_i <- sign(sum_j w_ij z_j)`` (0 keeps z_i)
    until a sweep changes nothing (a fixed point) or ``max_sweeps`` sweeps (Hopfield 1982).

    ``mode="async"``: sweep ``s`` updates the units one at a time in the order
    ``sweep_order(key, s, N)``; the energy never increases for symmetric weights with a
    non-negative diagonal, so this reaches a fixed point given enough sweeps.
    ``mode="sync"``: each sweep is one ``sync_step`` (all units at once; ``key`` is unused), which
    can end in a 2-cycle and then reports ``converged = False``.

    key: a PRNG key; weights ``[N, N]``; probe ``[..., N]`` of +-1, each leading index an
    independent run, all sharing the key's update order (vmap over keys for independent orders);
    ``max_sweeps``: a Python int >= 1. The loop stops when every run has reached a fixed point;
    a converged run does not change in the sweeps the others still need. Returns ``RecallInfo``
    (see there); state has the probe's dtype.
    """
    n_units = _check_weights(weights)
    _check_state(probe, n_units, "probe")
    _check_plus_minus_one(probe, "probe")
    check_choice("mode", mode, ("async", "sync"))
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, (int, np.integer)):
        raise TypeError("max_sweeps must be a Python int (it sizes the energy trace), "
                        f"got {type(max_sweeps).__name__}")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    max_sweeps = int(max_sweeps)
    probe, weights = jnp.asarray(probe), jnp.asarray(weights)
    batch = probe.shape[:-1]
    z0 = probe.reshape(-1, n_units)                                           # [B, N]
    slots = jnp.arange(max_sweeps + 1)

    def cond(carry):
        _, sweep, converged, _, _ = carry
        return (sweep < max_sweeps) & ~jnp.all(converged)

    def body(carry):
        z, sweep, converged, sweeps, energies = carry
        if mode == "async":
            new = async_sweep(weights, z, sweep_order(key, sweep, n_units))
        else:
            new = sync_step(weights, z)
        sweeps = sweeps + (~converged).astype(jnp.int32)
        converged = converged | jnp.all(new == z, axis=-1)
        energies = jnp.where(slots[None, :] > sweep, energy(weights, new)[:, None], energies)
        return new, sweep + 1, converged, sweeps, energies

    b = z0.shape[0]
    e0 = energy(weights, z0)
    init = (z0, jnp.int32(0), jnp.zeros((b,), bool), jnp.zeros((b,), jnp.int32),
            jnp.broadcast_to(e0[:, None], (b, max_sweeps + 1)))
    z, _, converged, sweeps, energies = jax.lax.while_loop(cond, body, init)
    return RecallInfo(z.reshape(probe.shape), sweeps.reshape(batch), converged.reshape(batch),
                      energies[:, -1].reshape(batch), energies.reshape(batch + (max_sweeps + 1,)))


def recall(key, weights, probe, max_sweeps: int, *, mode: Mode = "async") -> jax.Array:
    """The final state of ``recall_with_info`` (see there): probe ``[..., N]`` -> ``[..., N]``."""
    return recall_with_info(key, weights, probe, max_sweeps, mode=mode).state
