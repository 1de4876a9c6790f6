"""Threshold units, Rosenblatt's perceptron and the Hebb rule.

Conventions used throughout: labels ``y`` in {0, 1}; the step function ``Theta(u) = 1`` for
``u >= 0`` and 0 otherwise (so ``Theta(0) = 1``); the bias ``b`` is the weight of a constant input
1, i.e. a threshold ``s = -b``, and the perceptron works on the augmented inputs
``x~ = (x, 1)`` and weights ``w~ = (w, b)`` (homogeneous separation, as in Novikoff's theorem).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.extras import optional_import
from dlmodels.validation import ShapeError, check_choice, check_positive, concrete

RATES = ("fixed", "normalised")


class PerceptronResult(NamedTuple):
    """What `fit` returns. ``w [d]``, ``b []`` (same dtype as the inputs); ``mistakes []`` int32:
    the total number of updates; ``epochs []`` int32: the epochs run, the error-free one included;
    ``converged []`` bool: whether the last epoch made no mistake; ``mistakes_per_epoch
    [max_epochs]`` int32, zero after the last epoch run."""

    w: jax.Array
    b: jax.Array
    mistakes: jax.Array
    epochs: jax.Array
    converged: jax.Array
    mistakes_per_epoch: jax.Array


class NovikoffBound(NamedTuple):
    """``radius`` R = max_j ||x~_j||, ``margin`` gamma = min_j t_j u . x~_j of the unit separator
    u, ``bound`` (R / gamma)^2 (all on the augmented inputs ``x~ = (x, 1)``, t = 2 y - 1), and
    the separator ``u = (w, b) / ||(w, b)||`` [d + 1] used."""

    radius: float
    margin: float
    bound: float
    separator: np.ndarray


def threshold_unit(w: jax.Array, x: jax.Array, s) -> jax.Array:
    """McCulloch-Pitts unit ``y = Theta(sum_i w_i x_i - s)``, with ``Theta(0) = 1``.

    McCulloch & Pitts (1943). ``w [d]`` (one unit) or ``[d, m]`` (m units side by side), ``x
    [..., d]``, threshold ``s`` a scalar or ``[m]``. Returns 0/1 values ``[...]`` (or ``[..., m]``)
    in the dtype of ``x @ w``, so units compose into networks.
    """
    w, x = jnp.asarray(w), jnp.asarray(x)
    if w.ndim not in (1, 2) or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"threshold_unit: expected w [d] or [d, m] and x [..., d]; got w "
                         f"{w.shape}, x {x.shape}")
    u = x @ w
    s = jnp.broadcast_to(jnp.asarray(s, u.dtype), u.shape)
    return (u - s >= 0).astype(u.dtype)


def _augment(x: jax.Array) -> jax.Array:
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)  # [..., d + 1]


def _check(x, y, *, learning_rate, max_epochs, rate) -> None:
    if jnp.ndim(x) != 2:
        raise ShapeError(f"perceptron: expected x of rank 2 [n, d], got shape {jnp.shape(x)}")
    n = jnp.shape(x)[0]
    if n < 1:
        raise ShapeError("perceptron: expected at least one example, got x of shape "
                         f"{jnp.shape(x)}")
    if jnp.shape(y) != (n,):
        raise ShapeError(f"perceptron: expected y of shape [n] = ({n},), got {jnp.shape(y)}")
    check_choice("perceptron: rate", rate, RATES)
    integral = isinstance(max_epochs, (int, np.integer)) and not isinstance(max_epochs, bool)
    if not integral or max_epochs < 1:
        raise ValueError(f"perceptron: max_epochs must be an integer >= 1, got {max_epochs!r}")
    check_positive("perceptron: learning_rate", learning_rate)
    x_values, y_values = concrete(x), concrete(y)
    if x_values is not None and not np.all(np.isfinite(x_values)):
        raise ValueError("perceptron: x must be finite, got NaN or inf entries")
    if y_values is not None:
        labels = np.unique(y_values)
        if not np.all(np.isin(labels, (0, 1))):
            raise ValueError(f"perceptron: labels must be 0 or 1, got values {labels.tolist()}")


@functools.partial(jax.jit, static_argnames=("normalised", "max_epochs", "shuffle"))
def _train(key, x_aug, y, learning_rate, *, normalised: bool, max_epochs: int, shuffle: bool):
    n, dim = x_aug.shape
    eps = learning_rate / jnp.linalg.norm(x_aug, axis=-1) if normalised else jnp.broadcast_to(
        learning_rate, (n,))  # [n]

    def step(w, i):
        x_i = x_aug[i]
        prediction = (x_i @ w >= 0).astype(jnp.int32)
        delta = y[i] - prediction  # +1: missed a 1, -1: false 1, 0: correct
        return w + (eps[i] * delta.astype(w.dtype)) * x_i, delta != 0

    def epoch(carry):
        w, t, per_epoch, _ = carry
        order = (jax.random.permutation(jax.random.fold_in(key, t), n) if shuffle
                 else jnp.arange(n))
        w, wrong = jax.lax.scan(step, w, order)
        errors = wrong.sum(dtype=jnp.int32)
        return w, t + 1, per_epoch.at[t].set(errors), errors

    def keep_going(carry):
        _, t, _, errors = carry
        return (t < max_epochs) & (errors > 0)

    w0 = jnp.zeros((dim,), x_aug.dtype)
    per_epoch0 = jnp.zeros((max_epochs,), jnp.int32)
    w, t, per_epoch, errors = jax.lax.while_loop(
        keep_going, epoch, (w0, jnp.int32(0), per_epoch0, jnp.int32(1)))
    return PerceptronResult(w=w[:-1], b=w[-1], mistakes=per_epoch.sum(dtype=jnp.int32), epochs=t,
                            converged=errors == 0, mistakes_per_epoch=per_epoch)


def fit(key: jax.Array, x: jax.Array, y: jax.Array, *, learning_rate: float = 1.0,
        rate: Literal["fixed", "normalised"] = "fixed", max_epochs: int = 100,
        shuffle: bool = True) -> PerceptronResult:
    """Rosenblatt's perceptron rule, from ``w~ = 0``, until an error-free epoch or ``max_epochs``.

    Rosenblatt (1958); course notes' perceptron learning rule. For each example in turn, with
    ``x~ = (x, 1)``, ``w~ = (w, b)`` and prediction ``y^ = Theta(w~ . x~)``:
    ``w~ <- w~ + eps_x (y - y^) x~`` -- add ``x~`` on a missed 1, subtract it on a false 1.
    ``rate="fixed"``: ``eps_x = learning_rate`` (from ``w~ = 0`` its value only scales ``w~``, so
    the mistakes do not depend on it); ``rate="normalised"``: ``eps_x = learning_rate / ||x~||``,
    the rate of the convergence theorem (the perceptron on unit-length inputs). Either way the
    number of updates is at most Novikoff's ``(R / gamma)^2`` on separable data (`novikoff_bound`).

    ``key``: the per-epoch example order is ``jax.random.permutation(fold_in(key, epoch), n)``;
    ``shuffle=False`` keeps the given order. ``x [n, d]`` float, ``y [n]`` 0/1 labels.
    Runs entirely in jit (epochs in ``lax.while_loop``, examples in ``lax.scan``); also works
    under ``jax.jit`` / ``jax.vmap`` (the value checks -- finiteness, labels -- are then skipped
    for traced arguments). Raises ``ShapeError`` (a ``ValueError``) on wrong shapes, ``ValueError``
    on wrong labels or settings.
    """
    _check(x, y, learning_rate=learning_rate, max_epochs=max_epochs, rate=rate)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    y = jnp.asarray(y).astype(jnp.int32)
    return _train(key, _augment(x), y, jnp.asarray(learning_rate, x.dtype),
                  normalised=rate == "normalised", max_epochs=int(max_epochs),
                  shuffle=bool(shuffle))


def predict(params, x: jax.Array) -> jax.Array:
    """The perceptron's outputs ``Theta(w . x + b)`` (0/1 in the dtype of ``x @ w``).

    ``params``: a `PerceptronResult`, a dict ``{"w", "b"}`` or a pair ``(w, b)``; ``w [d]``, ``b
    []``; ``x [..., d]`` -> ``[...]``.
    """
    if isinstance(params, PerceptronResult):
        w, b = params.w, params.b
    elif isinstance(params, dict):
        w, b = params["w"], params["b"]
    else:
        w, b = params
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.asarray(w).dtype)
    return threshold_unit(w, x, -jnp.asarray(b))


def novikoff_bound(x, y, w_star=None, b_star: float = 0.0) -> NovikoffBound:
    """Novikoff's (1962) mistake bound ``(R / gamma)^2`` for the perceptron on separable data.

    On the augmented inputs ``x~ = (x, 1)`` (the bias is a weight, so separation is homogeneous):
    ``R = max_j ||x~_j||``, ``gamma = min_j t_j u . x~_j`` with ``t = 2 y - 1`` and the unit
    separator ``u = (w*, b*) / ||(w*, b*)||``. Any separator gives a valid bound; the max-margin
    one the tightest. ``w_star [d]`` with ``b_star`` (e.g. the plane that generated the data), or
    ``w_star [d + 1]`` already augmented; ``None``: a near max-margin separator from
    scikit-learn's ``LinearSVC`` (hinge loss, no intercept, C = 1e6) on ``x~``, checked to
    separate (its margin can fall short of the maximum when the solver stops early).
    ``x [n, d]``, ``y [n]`` 0/1. Computed on the host in float64. Raises ``ValueError`` if the
    separator does not separate the data (gamma <= 0).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ShapeError(f"novikoff_bound: expected x [n, d] and y [n]; got x {x.shape}, "
                         f"y {y.shape}")
    x_aug = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    t = 2.0 * y - 1.0
    if w_star is None:
        import warnings

        svm_module = optional_import("sklearn.svm", needed_for="novikoff_bound(w_star=None)")
        exceptions = optional_import("sklearn.exceptions", needed_for="novikoff_bound")
        svm = svm_module.LinearSVC(C=1e6, loss="hinge", fit_intercept=False, max_iter=100_000, tol=1e-8,
                        random_state=0)
        with warnings.catch_warnings():  # an unconverged solution is still a valid separator
            warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
            u = svm.fit(x_aug, y).coef_[0]
    else:
        u = np.asarray(w_star, np.float64)
        if u.shape == (x.shape[1],):
            u = np.append(u, b_star)
        elif u.shape != (x.shape[1] + 1,):
            raise ShapeError(f"novikoff_bound: expected w_star [d] = ({x.shape[1]},) or [d + 1]"
                             f" = ({x.shape[1] + 1},), got {u.shape}")
    u = u / np.linalg.norm(u)
    margin = float(np.min(t * (x_aug @ u)))
    if margin <= 0:
        raise ValueError(f"novikoff_bound: the separator does not separate the data (margin "
                         f"{margin:.3g} <= 0)")
    radius = float(np.max(np.linalg.norm(x_aug, axis=1)))
    return NovikoffBound(radius=radius, margin=margin, bound=(radius / margin) ** 2, separator=u)


def hebbian_step(w: jax.Array, x: jax.Array, y: jax.Array, learning_rate: float) -> jax.Array:
    """One Hebbian update ``w <- w + eps y x`` (Hebb 1949).

    ``w [d]`` with ``x [d]``, ``y []``; or ``w [d, m]`` with ``x [d]``, ``y [m]`` (outer product
    ``x y^T``).
    """
    w, x, y = jnp.asarray(w), jnp.asarray(x), jnp.asarray(y)
    if x.shape != w.shape[:1] or y.shape != w.shape[1:]:
        raise ShapeError(f"hebbian_step: expected x [d] and y [] or [m] for w {w.shape}; got x "
                         f"{x.shape}, y {y.shape}")
    return w + learning_rate * jnp.tensordot(x, y, axes=0)


def hebbian(x: jax.Array, y: jax.Array, learning_rate: float = 1.0) -> jax.Array:
    """Hebb's rule summed over examples: ``w = eps sum_j x_j y_j^T`` (Hebb 1949), from ``w = 0``.

    ``x [n, d]``, ``y [n]`` -> ``w [d]``; ``y [n, m]`` -> ``w [d, m]`` (``eps X^T Y``): inputs
    along rows, outputs along columns, the layout of ``dense`` (``y = x w``). The one Hebbian
    storage of the library: the linear associator (``associative.linear_hebbian``), the clipped
    binary memory (``associative.binary_store``) and the Hopfield network (``hopfield.store``,
    ``x = y``) all store through it.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ShapeError(f"hebbian: expected x [n, d] and y [n] or [n, m]; got x {x.shape}, "
                         f"y {y.shape}")
    return learning_rate * jnp.tensordot(x, y, axes=(0, 0))
