"""Deep (stacked) autoencoders: greedy layer-wise pretraining, unfolding, fine-tuning.

Hinton & Salakhutdinov (2006) pretrain a stack of RBMs n_0-n_1-...-n_L (the top one with linear,
Gaussian-noise hidden units for a real-valued code), then *unfold* it into an encoder
x -> h_1 -> ... -> h_L (the RBMs' weights W_l and hidden biases c_l) and a decoder
h_L -> ... -> r (the transposed weights W_l^T and visible biases b_l, top first), and fine-tune
the whole 2L-layer net by backpropagating the reconstruction error. Stacked (denoising)
autoencoders (Bengio et al. 2007; Vincent et al. 2010) pretrain each layer as a (denoising)
autoencoder with tied weights on the codes of the layer below instead.

``pretrain`` is the one greedy layer-wise path, for deep belief nets (``dlmodels.energy.dbn.
pretrain`` calls it with ``method="rbm"``) and (denoising) autoencoder stacks alike: each layer l
of ``layer_sizes = (n_0, ..., n_L)`` is trained on the codes of the trained layers below (the
hidden probabilities; the data for the first) through ``dlmodels.train.fit`` (checkpoints and
exact resume in ``run_dir/layer_<l>``, the non-finite guard):

- ``"rbm"``: an RBM trained by CD-k / PCD (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov
  2006), :func:`dlmodels.energy.rbm.train`;
- ``"ae"`` / ``"dae"``: an autoencoder with tied weights and a sigmoid decoder, plain or denoising
  (Bengio et al. 2007; Vincent et al. 2010), :func:`dlmodels.autoencoders.objective`.

A pretrained stack is a list of layers bottom first, each ``{"w": [n_{l-1}, n_l], "b_visible":
[n_{l-1}], "b_hidden": [n_l]}`` (RBM params, plus ``"sigma"`` for a Gaussian visible first layer;
for an autoencoder layer ``b_hidden`` is the encoder bias and ``b_visible`` the decoder bias).
One callback signature for every method: ``callback(layer, record)`` after each history entry of
each layer, ``record`` being the entry (``epoch``, ``step``, ``train_loss``, ``eval_...``).
``unfold`` turns the stack into a deep autoencoder's params; ``dlmodels.energy.dbn.
to_mlp_params(layers, key, n_classes)`` into a classifier's (the encoder as a feature
extractor, fine-tuned with a new softmax layer).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import validation
from dlmodels.autoencoders.objective import objective
from dlmodels.autoencoders.shallow import autoencoder
from dlmodels.energy import rbm
from dlmodels.mlp import mlp
from dlmodels.model import Model
from dlmodels.train import TrainConfig, fit

METHODS = ("rbm", "ae", "dae")


def deep_autoencoder(layer_sizes: Sequence[int], *, hidden: str = "sigmoid", code: str = "identity",
                     output: str = "sigmoid", w_init: str = "glorot_uniform_sigmoid") -> Model:
    """Encoder ``layer_sizes = (n_0, n_1, ..., n_L)`` and its mirror-image decoder:

        h_l = f(h_{l-1} W_l + c_l) (l < L),  code h_L = f_code(h_{L-1} W_L + c_L),
        r = f_out(g_1 V_1 + b_1),  g_{l} = f(g_{l+1} V_{l+1} + b_{l+1}),  g_L = h_L

    Params ``{"encoder": {"layer_0": {"w": [n_0, n_1], "b"}, ...}, "decoder": {"layer_0": {"w":
    [n_L, n_{L-1}], "b"}, ...}}`` (the decoder's layer 0 is the top one). ``apply(params, x, *,
    key=None, train=False, return_code=False)``: ``x [B, n_0] -> r [B, n_0]`` (and the code
    ``[B, n_L]``). Random init: ``w_init`` (Glorot's uniform with the 4x sigmoid scale)."""
    sizes = tuple(int(n) for n in layer_sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least 2 positive sizes, got {tuple(layer_sizes)}")
    enc = mlp(sizes, activation=hidden, output_activation=code, w_init=w_init)
    dec = mlp(sizes[::-1], activation=hidden, output_activation=output, w_init=w_init)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        k_enc, k_dec = jax.random.split(key)
        return {"encoder": enc.init(k_enc, dtype), "decoder": dec.init(k_dec, dtype)}

    def apply(params: dict, x: jax.Array, *, key=None, train: bool = False,
              return_code: bool = False):
        validation.check_shape(x, (None, sizes[0]), f"deep_autoencoder: input [batch, {sizes[0]}]")
        h = enc.apply(params["encoder"], x)
        r = dec.apply(params["decoder"], h)
        return (r, h) if return_code else r

    return Model(init, apply)


def unfold(layers: Sequence[dict]) -> dict:
    """Unfold a pretrained stack into the params of ``deep_autoencoder((n_0, ..., n_L))``: encoder
    layer l = (W_l, c_l), decoder layer L - 1 - l = (W_l^T, b_l) (Hinton & Salakhutdinov 2006,
    fig. 1, "unrolling")."""
    if not layers:
        raise ValueError("unfold needs at least one pretrained layer")
    for i, (below, above) in enumerate(zip(layers[:-1], layers[1:])):
        if below["w"].shape[1] != above["w"].shape[0]:
            raise ValueError(f"layer {i} has {below['w'].shape[1]} outputs but layer {i + 1} "
                             f"expects {above['w'].shape[0]} inputs")
    if "sigma" in layers[0]:
        raise ValueError("a Gaussian visible layer scales its inputs by 1/sigma; standardise the "
                         "data and keep sigma = 1, or pretrain with Bernoulli visible units")
    n = len(layers)
    return {
        "encoder": {f"layer_{i}": {"w": jnp.asarray(l["w"]), "b": jnp.asarray(l["b_hidden"])}
                    for i, l in enumerate(layers)},
        "decoder": {f"layer_{n - 1 - i}": {"w": jnp.asarray(l["w"]).T,
                                           "b": jnp.asarray(l["b_visible"])}
                    for i, l in enumerate(layers)},
    }


def _per_layer(value, n: int, name: str) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} layers")
    return values


def layer_seed(key: jax.Array, layer: int) -> int:
    """The seed of layer ``layer``'s training run: an int drawn from ``fold_in(key, layer)``."""
    return int(jax.random.randint(jax.random.fold_in(key, layer), (), 0, 2 ** 30))


def pretrain(key: jax.Array, data, layer_sizes: Sequence[int], *, method: str = "rbm",
             code: str = "sigmoid", visible: str = "bernoulli",
             epochs: int | Sequence[int] = 10, batch_size: int = 100,
             rbm_configs: rbm.RBMTrainConfig | Sequence[rbm.RBMTrainConfig] | None = None,
             base_rate_init: bool = True, init_std: float = 0.01,
             optimizer: optax.GradientTransformation | None = None,
             corruption: str = "mask", level: float | Sequence[float] = 0.25,
             reconstruction: str = "cross_entropy", run_dir: str | None = None,
             resume: bool = False, callback: Callable[[int, dict], None] | None = None
             ) -> tuple[list[dict], list[list[dict]]]:
    """Greedy layer-wise pretraining of ``layer_sizes = (n_0, ..., n_L)`` on ``data [N, n_0]``.

    ``method``: ``"rbm"``, ``"ae"`` or ``"dae"`` (module docstring). ``code``: the top layer's
    units, ``"sigmoid"`` or ``"identity"`` (linear; for RBMs, Gaussian hidden units with unit
    variance, the code layer of Hinton & Salakhutdinov 2006). ``visible``: the first RBM's visible
    units (``"gaussian"`` for standardised real data; the others are binary); data must be in
    [0, 1] otherwise. RBMs: ``rbm_configs`` (one ``RBMTrainConfig`` or one per layer; default
    ``RBMTrainConfig(epochs, batch_size)``; their ``seed`` and ``data_seed`` are replaced by
    :func:`layer_seed` and the layer index), weights ~ N(0, ``init_std``^2) and, with
    ``base_rate_init``, binary visible biases at log p_i / (1 - p_i) of the layer's data.
    Autoencoders: ``epochs``, ``batch_size``, ``optimizer`` (default Adam 1e-3), ``reconstruction``
    error, denoising by ``corruption`` at ``level`` (one value or one per layer).
    ``run_dir``: layer l trains in ``run_dir/layer_<l>`` (``resume=True`` continues there).
    ``callback(layer, record)`` after each history entry. Returns ``(layers, histories)``.
    """
    validation.check_choice("pretrain: method", method, METHODS)
    validation.check_choice("pretrain: code", code, ("sigmoid", "identity"))
    validation.check_choice("pretrain: visible", visible, rbm.UNITS)
    sizes = [int(n) for n in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least 2 positive sizes, got {tuple(layer_sizes)}")
    n_layers = len(sizes) - 1
    x = np.asarray(data, np.float32)
    validation.check_shape(x, (None, sizes[0]), "pretrain: data [N, n_0]")
    validation.check_finite("pretrain: data", x)
    if visible == "gaussian" and method != "rbm":
        raise ValueError("Gaussian visible units are an RBM's; autoencoder layers reconstruct "
                         "through a sigmoid decoder")
    if visible == "bernoulli" and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("pretraining needs data in [0, 1] (binary units / sigmoid reconstructions)")
    epochs = _per_layer(epochs, n_layers, "epochs")
    if method == "rbm":
        if rbm_configs is None:
            rbm_configs = [rbm.RBMTrainConfig(epochs=e, batch_size=batch_size) for e in epochs]
        configs = _per_layer(rbm_configs, n_layers, "rbm_configs")
    levels = _per_layer(level, n_layers, "level")
    optimizer = optimizer or optax.adam(1e-3)

    layers, histories = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        top = i == n_layers - 1
        layer_dir = None if run_dir is None else os.path.join(run_dir, f"layer_{i}")
        kind = visible if i == 0 else "bernoulli"
        if method == "rbm":
            model = rbm.rbm(n_in, n_out, visible=kind,
                            hidden="gaussian" if top and code == "identity" else "bernoulli")
            bias = rbm.base_rate_bias(x) if base_rate_init and kind == "bernoulli" else None
            config = dataclasses.replace(configs[i], seed=layer_seed(key, i), data_seed=i)
            result = rbm.train(model, x, config, run_dir=layer_dir, resume=resume,
                               init_fn=lambda k, model=model, bias=bias: model.init(
                                   k, std=init_std, b_visible=bias))
            params = result.state.params
        else:
            ae_model = autoencoder(n_in, n_out, encoder=code if top else "sigmoid",
                                   decoder="sigmoid", tied=True)
            loss_fn, eval_fn = objective(ae_model.apply, reconstruction=reconstruction,
                                         corruption=corruption if method == "dae" else None,
                                         level=levels[i] if method == "dae" else 0.0)
            result = fit(ae_model.init, loss_fn, optimizer, x,
                         TrainConfig(epochs=epochs[i], batch_size=batch_size,
                                     seed=layer_seed(key, i), data_seed=i, progress=False),
                         eval_fn=eval_fn, eval_data=x[:1000], run_dir=layer_dir, resume=resume)
            p = result.state.params
            params = {"w": p["encoder"]["w"], "b_visible": p["decoder"]["b"],
                      "b_hidden": p["encoder"]["b"]}
            model = rbm.rbm(n_in, n_out)   # its p(h | v) = sigmoid(x W + c) is the encoder
        layers.append(params)
        histories.append(result.history)
        if callback is not None:
            for record in result.history:
                callback(i, record)
        if not top:
            x = rbm.hidden_probabilities(model, params, x)
    return layers, histories
