"""Per-layer statistics of deep MLPs: activation values, saturation, and back-propagated gradients,
the measurements of Glorot & Bengio (2010), "Understanding the difficulty of training deep
feedforward neural networks".

The functions work on any model whose ``apply(params, x, *, return_hidden=True)`` returns
``(outputs, [h_1, ..., h_L])`` (``dlmodels.mlp.mlp`` does) and, for the gradients, whose params are
``{"layer_0": {"w", "b"}, ..., "layer_L": {"w", "b"}}`` with layer l's pre-activation
``a_l = h_{l-1} W_l + b_l`` (``h_0 = x``; ``layer_L`` is the output layer). All but `histograms`
are pure jnp and can be jitted, e.g.
``jax.jit(partial(layer_statistics, model.apply, activation="tanh"))``.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# (low, high): a unit's output h counts as saturated low when h <= low and saturated high when
# h >= high (None: no such side). sigmoid near 0 or 1; tanh near -1 or +1; softsign approaches
# +-1 only polynomially (|h| >= 0.9 needs |a| >= 9), so its bound is looser; relu: "low" is exactly
# 0 (h <= 0 only when h == 0), a unit that passes no gradient for that example.
SATURATION_THRESHOLDS: dict[str, tuple[float | None, float | None]] = {
    "sigmoid": (0.01, 0.99),
    "tanh": (-0.99, 0.99),
    "softsign": (-0.9, 0.9),
    "relu": (0.0, None),
}

DEFAULT_PERCENTILES = (2.0, 50.0, 98.0)


def layer_names(params: dict) -> list[str]:
    """The dense layers of an MLP's params, in order: ``["layer_0", ..., "layer_L"]``."""
    names = [k for k in params if re.fullmatch(r"layer_\d+", k)]
    if not names:
        raise ValueError(f"expected MLP params with keys 'layer_0', 'layer_1', ...; "
                         f"got {list(params)}")
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def activation_statistics(hidden: Sequence[jax.Array], *, activation: str | None = None,
                          thresholds: tuple[float | None, float | None] | None = None,
                          percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict:
    """Statistics of each layer's activations ``hidden = [h_1, ..., h_L]``, each ``[B, n_l]``,
    taken over all examples and units of the layer. Returns arrays with a leading layer axis:

    - ``mean``, ``std`` ``[L]``: mean and standard deviation of the values (Glorot & Bengio's
      Figure 2 plots these over training);
    - ``percentiles`` ``[L, P]`` at the levels ``percentiles`` (default 2, 50, 98; their Figure 3
      plots the 98th);
    - with ``thresholds = (low, high)`` (default ``SATURATION_THRESHOLDS[activation]``):
      ``saturated_low`` = fraction of values ``h <= low``, ``saturated_high`` = fraction with
      ``h >= high``, ``saturated`` = their sum, ``dead_units`` = fraction of units with
      ``h <= low`` on every example (for relu: units that pass no gradient on this batch). A side
      given as None counts 0. Without thresholds these keys are absent.
    """
    if thresholds is None and activation is not None:
        thresholds = SATURATION_THRESHOLDS.get(activation)
    levels = jnp.asarray(percentiles, dtype=float)
    out: dict = {"mean": [], "std": [], "percentiles": []}
    if thresholds is not None:
        out.update(saturated_low=[], saturated_high=[], saturated=[], dead_units=[])
    for h in hidden:
        h = jnp.asarray(h)
        out["mean"].append(jnp.mean(h))
        out["std"].append(jnp.std(h))
        out["percentiles"].append(jnp.percentile(h, levels))
        if thresholds is not None:
            low, high = thresholds
            is_low = h <= low if low is not None else jnp.zeros(h.shape, bool)
            is_high = h >= high if high is not None else jnp.zeros(h.shape, bool)
            out["saturated_low"].append(jnp.mean(is_low))
            out["saturated_high"].append(jnp.mean(is_high))
            out["saturated"].append(jnp.mean(is_low | is_high))
            out["dead_units"].append(jnp.mean(jnp.all(is_low, axis=0)))
    return {k: jnp.stack(v) for k, v in out.items()}


def layer_statistics(model_apply: Callable, params: dict, x: jax.Array, *,
                     activation: str | None = None,
                     thresholds: tuple[float | None, float | None] | None = None,
                     percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict:
    """Per-hidden-layer activation statistics of ``model_apply(params, x)`` on a batch
    ``x [B, n_in]`` (evaluation mode: no dropout). ``activation`` names the hidden units' function
    to pick the saturation thresholds (see `SATURATION_THRESHOLDS`; or pass ``thresholds``).
    Returns `activation_statistics` of ``[h_1, ..., h_L]``: ``mean, std [L]``,
    ``percentiles [L, P]``, and ``saturated_low, saturated_high, saturated, dead_units [L]``.
    """
    _, hidden = model_apply(params, x, return_hidden=True)
    return activation_statistics(hidden, activation=activation, thresholds=thresholds,
                                 percentiles=percentiles)


def gradients(model_apply: Callable, params: dict, x: jax.Array, y, output_loss: Callable):
    """The loss and its exact gradients w.r.t. the weights and w.r.t. every layer's pre-activations.

    ``output_loss(outputs [B, n_out], y) -> scalar``: any loss of the batch's outputs (a function
    of the model's outputs, not the trainer's ``loss_fn(params, batch, key)``). Returns
    ``(loss, param_grads, preact_grads)``: ``param_grads`` has the structure of ``params``;
    ``preact_grads = [dL/da_1, ..., dL/da_{L+1}]``, each ``[B, n_l]`` (the last is the output
    layer's), the back-propagated "deltas".

    Method: a zero offset ``e_l [B, n_l]`` is added to each pre-activation, ``a_l + e_l``, and
    ``dL/de_l`` at ``e = 0`` equals ``dL/da_l`` exactly. The model adds ``b_l`` to every example's
    pre-activation, so the offset enters as a per-example bias ``b_l + e_l[i]``, with the model
    vmapped over examples (which XLA turns back into the ordinary batched matmuls).
    """
    names = layer_names(params)
    offsets = {n: jnp.zeros((x.shape[0],) + params[n]["b"].shape, params[n]["b"].dtype)
               for n in names}

    def forward_one(p, offset, x_i):
        shifted = {**p, **{n: {**p[n], "b": p[n]["b"] + offset[n]} for n in names}}
        return model_apply(shifted, x_i[None])[0]

    def total(p, offset):
        outputs = jax.vmap(forward_one, in_axes=(None, 0, 0))(p, offset, x)  # (B, n_out)
        return output_loss(outputs, y)

    loss, (param_grads, offset_grads) = jax.value_and_grad(total, argnums=(0, 1))(params, offsets)
    return loss, param_grads, [offset_grads[n] for n in names]


def backprop_statistics(model_apply: Callable, params: dict, x: jax.Array, y,
                        output_loss: Callable, *,
                        percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict:
    """Per-layer statistics of the back-propagated gradients (Glorot & Bengio 2010, section 4.2).

    For every dense layer l = 1..L+1 (the last is the output layer), from `gradients`:

    - ``preact_grad_norm`` ``||dL/da_l||_F`` over the ``[B, n_l]`` batch of deltas,
      ``preact_grad_var`` their variance over examples and units (the paper's
      ``Var[dCost/ds^l]``), ``preact_grad_mean_abs``, ``preact_grad_percentiles [L+1, P]``;
    - ``weight_grad_norm`` ``||dL/dW_l||_F``, ``weight_grad_var`` the variance of the entries of
      ``dL/dW_l`` (the paper's ``Var[dCost/dw^l]``), ``bias_grad_norm``.

    Arrays have a leading axis of L+1 layers; ``loss`` is the scalar loss.
    ``output_loss(outputs, y) -> scalar``, as in `gradients`, e.g.
    ``lambda z, y: losses.softmax_cross_entropy(z, y).mean()``.
    """
    loss, param_grads, deltas = gradients(model_apply, params, x, y, output_loss)
    levels = jnp.asarray(percentiles, dtype=float)
    names = layer_names(params)
    w = [param_grads[n]["w"] for n in names]
    return {
        "loss": loss,
        "preact_grad_norm": jnp.stack([jnp.linalg.norm(d) for d in deltas]),
        "preact_grad_var": jnp.stack([jnp.var(d) for d in deltas]),
        "preact_grad_mean_abs": jnp.stack([jnp.mean(jnp.abs(d)) for d in deltas]),
        "preact_grad_percentiles": jnp.stack([jnp.percentile(d, levels) for d in deltas]),
        "weight_grad_norm": jnp.stack([jnp.linalg.norm(g) for g in w]),
        "weight_grad_var": jnp.stack([jnp.var(g) for g in w]),
        "bias_grad_norm": jnp.stack([jnp.linalg.norm(param_grads[n]["b"]) for n in names]),
    }


def histograms(values: Sequence, bins: int = 50, *, value_range: tuple[float, float] | None = None,
               density: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of several layers' values on common bins (host-side numpy).

    ``values``: one array per layer (any shapes; flattened). ``value_range``: the bins' span
    (default: the min and max over all layers). Returns ``(counts [L, bins], edges [bins + 1])``;
    with ``density`` each row is normalised to integrate to 1 (as Glorot & Bengio's "normalized
    histograms"), else raw counts.
    """
    arrays = [np.asarray(v, np.float64).ravel() for v in values]
    if not arrays:
        raise ValueError("histograms needs at least one array")
    if value_range is None:
        value_range = (min(a.min() for a in arrays), max(a.max() for a in arrays))
        if value_range[0] == value_range[1]:
            value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    counts = np.stack([np.histogram(a, bins=edges, density=density)[0] for a in arrays])
    return counts, edges
