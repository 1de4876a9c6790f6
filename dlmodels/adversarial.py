"""Adversarial examples by the fast gradient sign method, and adversarial training (Goodfellow,
Shlens & Szegedy 2014, "Explaining and harnessing adversarial examples", ICLR 2015).

The functions here differentiate a loss with respect to the INPUTS, so they take an
``input_loss(params, x, y) -> scalar`` (the mean loss over the batch, a function of the inputs
``x``), not the trainer's ``loss_fn(params, batch, key) -> (loss, aux)``; `adversarial_classifier`
builds the trainer's pair from a classifier's ``apply``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels.train.objectives import classifier
from dlmodels.validation import check_in_range, check_nonnegative, is_traced

# input_loss(params, x, y) -> scalar: the MEAN loss over the batch, as a function of the inputs x.
InputLoss = Callable[[object, jax.Array, object], jax.Array]


def _check_eps(eps, where: str):
    """``eps`` as a float after checking ``0 <= eps < inf``; a traced ``eps`` (under jit or vmap,
    e.g. an eps sweep) cannot be checked and is passed through."""
    check_nonnegative(f"{where}: eps", eps)
    return eps if is_traced(eps) else float(eps)


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


def fgsm(input_loss: InputLoss, params, x: jax.Array, y, eps: float, *,
         clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
    """The fast gradient sign method: ``x_adv = clip(x + eps sign(grad_x J(params, x, y)))``.

    ``eta = eps sign(grad_x J(theta, x, y))`` is the max-norm-bounded perturbation (||eta||_inf <=
    eps) that maximises the linearised loss (Goodfellow et al. 2014, section 4).

    ``input_loss(params, x, y) -> scalar``: the MEAN loss over the batch. One gradient call serves
    the whole batch: for models whose examples do not interact (no batch statistics) ``grad_x`` of
    the mean is ``1 / B`` times each example's own gradient, whose sign is unchanged. ``x``: a floating
    array, e.g. ``[N, H, W, C]``; ``y``: whatever ``input_loss`` takes (labels ``[N]``).
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
    grad = jax.grad(input_loss, argnums=1)(params, x, y)
    return _perturb(x, grad, eps, clip)


def _adversarial_terms(input_loss, params, x, y, eps, clip):
    """``(J(x), J(x_adv))`` with ``x_adv`` a constant; one forward pass serves J(x) and grad_x J."""
    clean, grad = jax.value_and_grad(input_loss, argnums=1)(params, x, y)
    x_adv = jax.lax.stop_gradient(_perturb(x, grad, eps, clip))
    return clean, input_loss(params, x_adv, y)


def _check_alpha(alpha, where: str) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"{where}: alpha must be a number in [0, 1], got {alpha!r}")
    check_in_range(f"{where}: alpha", alpha, 0.0, 1.0)


def adversarial_loss(input_loss: InputLoss, alpha: float = 0.5, *, eps: float,
                     clip: tuple[float, float] | None = (0.0, 1.0)) -> InputLoss:
    """The adversarial objective ``J~(params, x, y) = alpha J(params, x, y) + (1 - alpha)
    J(params, x + eps sign(grad_x J(params, x, y)), y)`` (Goodfellow et al. 2014, eq. 3; alpha =
    0.5 there).

    ``input_loss(params, x, y) -> scalar`` mean loss, as in ``fgsm``; returns a function with the
    same signature. The adversarial example is a constant (``stop_gradient``): the gradient of ``J~``
    with respect to params (or x) is ``alpha grad J(x) + (1 - alpha) grad J(.)`` evaluated at the
    fixed ``x_adv``, as in the paper, which "continually updates the supply of adversarial
    examples" by recomputing them from the current params at every step. ``clip`` as in ``fgsm``
    (``None`` for eq. 3 as written, or for inputs that are not bounded pixels).
    """
    _check_alpha(alpha, "adversarial_loss")
    eps = _check_eps(eps, "adversarial_loss")
    clip = _check_clip(clip, "adversarial_loss")

    def loss(params, x, y):
        clean, adversarial = _adversarial_terms(input_loss, params, x, y, eps, clip)
        return alpha * clean + (1.0 - alpha) * adversarial

    return loss


def adversarial_classifier(apply: Callable, *, eps: float, alpha: float = 0.5,
                           clip: tuple[float, float] | None = (0.0, 1.0), **classifier_kwargs):
    """``(loss_fn, eval_fn)`` for adversarial training of a classifier, as ``classifier`` gives
    for plain training (same ``apply`` and batches ``(x, y)``; ``classifier_kwargs``: its ``loss``,
    ``n_classes``, ``l2``, ``train_mode``).

    ``loss_fn(params, batch, key) -> (J~, aux)``: ``J~ = alpha J(x) + (1 - alpha) J(x_adv)`` with
    ``J`` the classifier's training loss (its mean loss plus the L2 term, which therefore counts
    once since the weights sum to 1), ``x_adv`` from FGSM on that same ``J`` with the same dropout
    key, held constant (the trainer's ``loss_fn`` convention; inside, the FGSM step differentiates
    the ``input_loss`` ``(p, x, y) -> J``).
    ``aux = {"clean_loss": J(x), "adversarial_loss": J(x_adv)}``.
    ``eval_fn(params, batch)``: the classifier's per-example ``loss``, ``accuracy``, ``error`` and
    ``adversarial_loss``, ``adversarial_accuracy``, ``adversarial_error`` on FGSM examples made
    with ``eps`` against the evaluation-mode model.
    """
    _check_alpha(alpha, "adversarial_classifier")
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
