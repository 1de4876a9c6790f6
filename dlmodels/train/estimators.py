"""What a training step follows: a loss to differentiate, or a gradient estimator.

``fit`` and the step builders take either a ``loss_fn(params, batch, key) -> (loss, aux)``, whose
gradient ``jax.value_and_grad`` computes, or a :class:`GradientEstimator` that returns gradients
directly (contrastive divergence for RBMs, whose log-likelihood gradient has no tractable loss)
and may carry state from step to step (PCD's persistent Gibbs chains) in ``TrainState.model_state``.
Every loss_fn becomes an estimator through :func:`as_estimator`, so one step runs both.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]


class GradientEstimator(NamedTuple):
    """A gradient estimator and the state it carries between updates.

    ``init(key, params, train_data) -> model_state``: the carried state at step 0 (``()`` for
    none), e.g. persistent chains started at random training examples; ``train_data`` is the
    pytree given to ``fit`` (on the device).
    ``estimate(key, params, model_state, batch) -> (grads, model_state, loss, aux)``: ``grads`` has
    the structure of ``params`` and goes straight into ``optimizer.update`` (a direction to
    *descend*); ``loss`` is the scalar reported as ``train_loss``; ``aux`` any pytree (stacked over
    the steps of a call: keep it small). ``key`` is the step's key, ``fold_in(state.key, step)``.
    """

    init: Callable[[jax.Array, Any, Any], Any]
    estimate: Callable[[jax.Array, Any, Any, Any], tuple[Any, Any, jax.Array, Any]]
    export: Callable[[Any, Any], Any] | None = None


class Updater(NamedTuple):
    """A training step that makes its own optimizer updates: several players with their own
    optimizers, or several updates per step (a GAN's k discriminator updates and one generator
    update, Goodfellow et al. 2014, Algorithm 1).

    ``init(key, params, train_data) -> model_state``, as for a :class:`GradientEstimator`.
    ``update(key, params, opt_state, model_state, batch) -> (params, opt_state, model_state, loss,
    aux)``: the new params, optimizer state and carried state after the step; ``loss`` the scalar
    reported as ``train_loss``. ``opt_state`` starts as ``optimizer.init(params)`` for the
    optimizer given to ``fit``, so that optimizer must build the state ``update`` expects.
    A non-finite loss, params or carried state drops the step as for any objective.

    ``export(params, model_state) -> pytree`` (optional, also on :class:`GradientEstimator`):
    what ``fit`` gives ``eval_fn`` and ``probe_fn`` in place of the params (e.g. params and
    batch-norm running statistics together); ``None``: the params.
    """

    init: Callable[[jax.Array, Any, Any], Any]
    update: Callable[[jax.Array, Any, Any, Any, Any], tuple[Any, Any, Any, jax.Array, Any]]
    export: Callable[[Any, Any], Any] | None = None


def _no_state(key, params, train_data):
    return ()


def from_loss(loss_fn: LossFn) -> GradientEstimator:
    """The estimator of ``loss_fn``: ``grads = grad_params loss_fn(params, batch, key)``, no
    carried state."""

    def estimate(key, params, model_state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        return grads, model_state, loss, aux

    return GradientEstimator(_no_state, estimate)


def as_estimator(loss_fn_or_estimator: LossFn | GradientEstimator | Updater
                 ) -> GradientEstimator | Updater:
    """A :class:`GradientEstimator` or :class:`Updater` as it is; a loss_fn through
    :func:`from_loss`."""
    if isinstance(loss_fn_or_estimator, (GradientEstimator, Updater)):
        return loss_fn_or_estimator
    if not callable(loss_fn_or_estimator):
        raise TypeError(f"expected a loss_fn(params, batch, key) -> (loss, aux), a "
                        f"GradientEstimator or an Updater, got {type(loss_fn_or_estimator).__name__}")
    return from_loss(loss_fn_or_estimator)


def exported(objective: GradientEstimator | Updater, params: Any, model_state: Any) -> Any:
    """What evaluation sees: ``objective.export(params, model_state)``, or ``params``."""
    export = getattr(objective, "export", None)
    return params if export is None else export(params, model_state)
