"""Adversarial examples by the fast gradient sign method, and adversarial training (Goodfellow,
Shlens & Szegedy 2014, "Explaining and harnessing adversarial examples", ICLR 2015)."""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.train.objectives import classifier

# loss_fn(params, x, y) -> scalar: the MEAN loss over the batch.
BatchLoss = Callable[[object, jax.Array, object], jax.Array]


def _check_eps(eps, where: str):
    """``eps`` as a float after checking ``0 <= eps < inf``; a traced ``eps`` (under jit or vmap,
    e.g. an eps sweep) cannot be checked and is passed through."""
    if isinstance(eps, jax.core.Tracer):
        return eps
    value = np.asarray(eps)
    if value.shape != () or not np.issubdtype(value.dtype, np.number) or value.dtype == bool:
        raise ValueError(f"{where}: eps must be a real scalar, got {eps!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{where}: eps must be finite and >= 0, got {eps!r}")
    return value


def _check_clip(clip, where: str):
    if clip is None:
        return None
    try:
        lo, hi = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: clip must be None or a pair (low, high), got {clip!r}") from None
    if not lo <= hi:
        raise ValueError(f"{where}: clip needs low <= high, got {clip!r}")
    return lo, hi


def _perturb(x, grad, eps, clip):
    x_adv = x + jnp.asarray(eps, x.dtype) * jnp.sign(grad)
    return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def fgsm(loss_fn: BatchLoss, params, x: jax.Array, y, eps: float, *,
         clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
    """The fast gradient sign method: ``x_adv = clip(x + eps sign(grad_x J(params, x, y)))``.

    ``eta = eps sign(grad_x J(theta, x, y))`` is the max-norm-bounded perturbation (||eta||_inf <=
    eps) that maximises the linearised loss (Goodfellow et al. 2014, section 4).

    ``loss_fn(params, x, y) -> scalar``: the MEAN loss over the batch. One gradient call serves the
    whole batch: for models whose examples do not interact (no batch statistics) ``grad_x`` of the
    mean is ``1 / B`` times each example's own gradient, whose sign is unchanged. ``x``: a floating
    array, e.g. ``[N, H, W, C]``; ``y``: whatever ``loss_fn`` takes (labels ``[N]``).
    ``eps >= 0``, finite (a traced eps is not checked). ``clip=(low, high)`` clips ``x_adv`` into
    the valid input range, e.g. [0, 1] pixels; ``None`` leaves it unclipped. Where the gradient is
    exactly zero ``sign`` is 0 and ``x`` is unchanged. Returns ``x_adv`` with ``x``'s shape and
    dtype; differentiating through it gives no gradient through ``sign`` (zero almost everywhere).
    """
    eps = _check_eps(eps, "fgsm")
    clip = _check_clip(clip, "fgsm")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"fgsm: x must be a floating-point array, got {x.dtype}")
    grad = jax.grad(loss_fn, argnums=1)(params, x, y)
    return _perturb(x, grad, eps, clip)


def _adversarial_terms(loss_fn, params, x, y, eps, clip):
    """``(J(x), J(x_adv))`` with ``x_adv`` a constant; one forward pass serves J(x) and grad_x J."""
    clean, grad = jax.value_and_grad(loss_fn, argnums=1)(params, x, y)
    x_adv = jax.lax.stop_gradient(_perturb(x, grad, eps, clip))
    return clean, loss_fn(params, x_adv, y)


def adversarial_loss(loss_fn: BatchLoss, alpha: float = 0.5, *, eps: float,
                     clip: tuple[float, float] | None = (0.0, 1.0)) -> BatchLoss:
    """The adversarial objective ``J~(params, x, y) = alpha J(params, x, y) + (1 - alpha)
    J(params, x + eps sign(grad_x J(params, x, y)), y)`` (Goodfellow et al. 2014, eq. 3; alpha =
    0.5 there).

    ``loss_fn(params, x, y) -> scalar`` mean loss, as in ``fgsm``; returns a function with the same
    signature. The adversarial example is a constant (``stop_gradient``): the gradient of ``J~``
    with respect to params (or x) is ``alpha grad J(x) + (1 - alpha) grad J(.)`` evaluated at the
    fixed ``x_adv``, as in the paper, which "continually updates the supply of adversarial
    examples" by recomputing them from the current params at every step. ``clip`` as in ``fgsm``
    (``None`` for eq. 3 as written, or for inputs that are not bounded pixels).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"adversarial_loss: alpha must be a number in [0, 1], got {alpha!r}")
    eps = _check_eps(eps, "adversarial_loss")
    clip = _check_clip(clip, "adversarial_loss")

    def loss(params, x, y):
        clean, adversarial = _adversarial_terms(loss_fn, params, x, y, eps, clip)
        return alpha * clean + (1.0 - alpha) * adversarial

    return loss


def adversarial_classifier(apply: Callable, *, eps: float, alpha: float = 0.5,
                           clip: tuple[float, float] | None = (0.0, 1.0), **classifier_kwargs):
    """``(loss_fn, eval_fn)`` for adversarial training of a classifier, as ``classifier`` gives
    for plain training (same ``apply`` and batches ``(x, y)``; ``classifier_kwargs``: its ``loss``,
    ``n_classes``, ``l2``, ``dropout``).

    ``loss_fn(params, batch, key) -> (J~, aux)``: ``J~ = alpha J(x) + (1 - alpha) J(x_adv)`` with
    ``J`` the classifier's training loss (its mean loss plus the L2 term, which therefore counts
    once since the weights sum to 1), ``x_adv`` from FGSM on that same ``J`` with the same dropout
    key, held constant. ``aux = {"clean_loss": J(x), "adversarial_loss": J(x_adv)}``.
    ``eval_fn(params, batch)``: the classifier's per-example ``loss``, ``accuracy``, ``error`` and
    ``adversarial_loss``, ``adversarial_accuracy``, ``adversarial_error`` on FGSM examples made
    with ``eps`` against the evaluation-mode model.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"adversarial_classifier: alpha must be a number in [0, 1], got {alpha!r}")
    eps = _check_eps(eps, "adversarial_classifier")
    clip = _check_clip(clip, "adversarial_classifier")
    clean_loss_fn, clean_eval_fn = classifier(apply, **classifier_kwargs)

    def loss_fn(params, batch, key):
        x, y = batch
        train_loss = lambda p, x, y: clean_loss_fn(p, (x, y), key)[0]  # noqa: E731
        clean, adversarial = _adversarial_terms(train_loss, params, x, y, eps, clip)
        value = alpha * clean + (1.0 - alpha) * adversarial
        return value, {"clean_loss": clean, "adversarial_loss": adversarial}

    def eval_fn(params, batch):
        x, y = batch
        metrics = clean_eval_fn(params, batch)
        eval_loss = lambda p, x, y: jnp.mean(clean_eval_fn(p, (x, y))["loss"])  # noqa: E731
        x_adv = fgsm(eval_loss, params, x, y, eps, clip=clip)
        adversarial = clean_eval_fn(params, (x_adv, y))
        return {**metrics, **{f"adversarial_{k}": v for k, v in adversarial.items()}}

    return loss_fn, eval_fn
