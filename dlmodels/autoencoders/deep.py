"""Deep (stacked) autoencoders: greedy layer-wise pretraining, unrolling, fine-tuning.

Hinton & Salakhutdinov (2006) pretrain a stack of RBMs n_0-n_1-...-n_L (the top one with linear,
Gaussian-noise hidden units for a real-valued code), then *unroll* it into an encoder
x -> h_1 -> ... -> h_L (the RBMs' weights W_l and hidden biases c_l) and a decoder
h_L -> ... -> r (the transposed weights W_l^T and visible biases b_l, top first), and fine-tune
the whole 2L-layer net by backpropagating the reconstruction error. Stacked (denoising)
autoencoders (Bengio et al. 2007; Vincent et al. 2010) pretrain each layer as a (denoising)
autoencoder with tied weights on the codes of the layer below instead.

A pretrained stack is a list of layers bottom first, each ``{"w": [n_{l-1}, n_l], "b_visible":
[n_{l-1}], "b_hidden": [n_l]}`` (RBM params; for an autoencoder layer, ``b_hidden`` is the encoder
bias and ``b_visible`` the decoder bias). ``dlmodels.energy.dbn.to_mlp_params(layers, key,
n_classes)`` turns the same list into a classifier's initial params (the encoder as a feature
extractor, fine-tuned with a new softmax layer).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels.autoencoders.objective import objective
from dlmodels.autoencoders.shallow import autoencoder
from dlmodels.energy import dbn, rbm, training
from dlmodels.mlp import mlp
from dlmodels.model import Model

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
        if x.ndim != 2 or x.shape[1] != sizes[0]:
            raise ValueError(f"deep_autoencoder: expected x of shape [B, {sizes[0]}], got {x.shape}")
        h = enc.apply(params["encoder"], x)
        r = dec.apply(params["decoder"], h)
        return (r, h) if return_code else r

    return Model(init, apply)


def unroll(layers: Sequence[dict]) -> dict:
    """The params of ``deep_autoencoder((n_0, ..., n_L))`` from a pretrained stack: encoder layer l
    = (W_l, c_l), decoder layer L - 1 - l = (W_l^T, b_l) (Hinton & Salakhutdinov 2006, fig. 1)."""
    if not layers:
        raise ValueError("unroll needs at least one pretrained layer")
    for i, (below, above) in enumerate(zip(layers[:-1], layers[1:])):
        if below["w"].shape[1] != above["w"].shape[0]:
            raise ValueError(f"layer {i} has {below['w'].shape[1]} outputs but layer {i + 1} "
                             f"expects {above['w'].shape[0]} inputs")
    if rbm.is_gaussian(layers[0]):
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


def pretrain(key: jax.Array, data, layer_sizes: Sequence[int], *, method: str = "rbm",
             code: str = "sigmoid", epochs: int | Sequence[int] = 10, batch_size: int = 100,
             rbm_configs: training.RBMTrainConfig | Sequence[training.RBMTrainConfig] | None = None,
             optimizer: optax.GradientTransformation | None = None,
             corruption: str = "mask", level: float | Sequence[float] = 0.25,
             reconstruction: str = "cross_entropy", callback: Callable | None = None
             ) -> tuple[list[dict], list[list[dict]]]:
    """Greedy layer-wise pretraining of ``layer_sizes = (n_0, ..., n_L)`` on ``data [N, n_0]`` in
    [0, 1]; each layer is trained on the codes (hidden probabilities) of the trained layers below.

    ``method``: ``"rbm"`` (CD, via ``dlmodels.energy.dbn.pretrain``; ``rbm_configs``, default
    ``RBMTrainConfig(epochs, batch_size)``), ``"ae"`` (autoencoders with tied weights, sigmoid
    decoder, ``reconstruction`` error) or ``"dae"`` (the same, denoising: inputs corrupted by
    ``corruption`` at ``level``, one value or one per layer). ``code``: the top layer's units,
    ``"sigmoid"`` or ``"identity"`` (linear; for RBMs, Gaussian hidden units with unit variance).
    ``optimizer`` (autoencoder layers): default Adam 1e-3. ``callback(layer, epoch, record)``.
    Returns ``(layers, histories)``: the stack (see the module docstring), one history per layer.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if code not in ("sigmoid", "identity"):
        raise ValueError(f"code must be 'sigmoid' or 'identity', got {code!r}")
    sizes = [int(n) for n in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least 2 positive sizes, got {tuple(layer_sizes)}")
    n_layers = len(sizes) - 1
    x = np.asarray(data, np.float32)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ValueError(f"data must have shape [N, {sizes[0]}], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("data contains NaN or inf")
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("pretraining needs data in [0, 1] (binary units / sigmoid reconstructions)")
    epochs = _per_layer(epochs, n_layers, "epochs")

    if method == "rbm":
        if rbm_configs is None:
            rbm_configs = [training.RBMTrainConfig(epochs=e, batch_size=batch_size) for e in epochs]
        forward = None if callback is None else (
            lambda layer, epoch, params, record: callback(layer, epoch, record))
        return dbn.pretrain(key, x, sizes, rbm_configs,
                            top_hidden="gaussian" if code == "identity" else "bernoulli",
                            callback=forward)

    from dlmodels.train import TrainConfig, fit

    levels = _per_layer(level, n_layers, "level")
    optimizer = optimizer or optax.adam(1e-3)
    layers, histories = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        top = i == n_layers - 1
        model = autoencoder(n_in, n_out, encoder=code if top else "sigmoid", decoder="sigmoid",
                            tied=True)
        loss_fn, eval_fn = objective(model.apply, reconstruction=reconstruction,
                                     corruption=corruption if method == "dae" else None,
                                     level=levels[i] if method == "dae" else 0.0)
        k_layer = jax.random.fold_in(key, i)
        result = fit(model.init, loss_fn, optimizer, x,
                     TrainConfig(epochs=epochs[i], batch_size=batch_size,
                                 seed=int(jax.random.randint(k_layer, (), 0, 2 ** 30)),
                                 data_seed=i, progress=False),
                     eval_fn=eval_fn, eval_data=x[:1000])
        p = result.state.params
        layers.append({"w": p["encoder"]["w"], "b_visible": p["decoder"]["b"],
                       "b_hidden": p["encoder"]["b"]})
        histories.append(result.history)
        if callback is not None:
            for record in result.history:
                callback(i, record["epoch"], record)
        if not top:
            encode = jax.jit(lambda p, v: jax.nn.sigmoid(v @ p["w"] + p["b_hidden"][None, :]))
            x = np.concatenate([np.asarray(encode(layers[-1], jnp.asarray(x[j:j + 10000])))
                                for j in range(0, len(x), 10000)])
    return layers, histories
