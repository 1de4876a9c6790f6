"""Deep belief networks: greedy layer-wise RBM training, ancestral sampling, MLP initialisation.

A DBN with layers v = h_0, h_1, ..., h_L (Hinton, Osindero & Teh 2006) is a top RBM over
(h_{L-1}, h_L) with directed sigmoid connections below it:

    p(v, h_1, ..., h_L) = p(h_{L-1}, h_L) prod_{l=0}^{L-2} p(h_l | h_{l+1}),
    p(h_l = 1 | h_{l+1}) = sigmoid(b_l + W_l h_{l+1})

Greedy training fits RBM 1 to the data, then RBM l + 1 to the hidden activities p(h_l | h_{l-1})
of RBM l on the training data, and so on; each added layer improves a variational lower bound on
log p(v) (ibid., section 4). The stack is a list of RBM params, bottom first.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.energy import rbm, training


def pretrain(key: jax.Array, data, layer_sizes: Sequence[int],
             configs: training.RBMTrainConfig | Sequence[training.RBMTrainConfig], *,
             visible: str = "bernoulli", top_hidden: str = "bernoulli", init_std: float = 0.01,
             base_rate_init: bool = True, callback=None) -> tuple[list[rbm.Params], list[list[dict]]]:
    """Greedy layer-wise training of RBMs ``layer_sizes = (n_v, n_1, ..., n_L)`` on ``data [N, n_v]``.

    ``configs``: one ``RBMTrainConfig`` for every layer, or one per RBM. ``visible`` is the first
    RBM's visible type (``"gaussian"`` for standardised real data); the upper RBMs are binary and
    are trained on the hidden probabilities of the layer below. ``top_hidden="gaussian"`` gives the
    last RBM linear hidden units with unit-variance Gaussian noise (the code layer of Hinton &
    Salakhutdinov's 2006 deep autoencoder). With ``base_rate_init`` the visible
    biases of binary RBMs start at log p_i / (1 - p_i) of their training data.
    ``callback(layer, epoch, params, record)`` is forwarded to each RBM's ``training.train``.
    Returns ``(layers, histories)``: the RBM params bottom first and one training history each.
    """
    sizes = [int(n) for n in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least 2 positive sizes, got {tuple(layer_sizes)}")
    n_rbms = len(sizes) - 1
    if isinstance(configs, training.RBMTrainConfig):
        configs = [configs] * n_rbms
    if len(configs) != n_rbms:
        raise ValueError(f"{len(configs)} configs for {n_rbms} RBMs")
    x = np.asarray(data, np.float32)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ValueError(f"data must have shape [N, {sizes[0]}], got {x.shape}")
    layers, histories = [], []
    for i, (n_in, n_out, config) in enumerate(zip(sizes[:-1], sizes[1:], configs)):
        k_init, k_train = jax.random.split(jax.random.fold_in(key, i))
        kind = visible if i == 0 else "bernoulli"
        bias = rbm.base_rate_bias(x) if base_rate_init and kind == "bernoulli" else None
        params = rbm.init(k_init, n_in, n_out, std=init_std, visible=kind, b_visible=bias,
                          hidden=top_hidden if i == n_rbms - 1 else "bernoulli")
        layer_callback = None if callback is None else (
            lambda epoch, p, record, i=i: callback(i, epoch, p, record))
        params, history = training.train(k_train, params, x, config, callback=layer_callback)
        layers.append(params)
        histories.append(history)
        if i < n_rbms - 1:
            x = training.transform(params, x)
    return layers, histories


def up_pass(layers: Sequence[rbm.Params], v: jax.Array) -> list[jax.Array]:
    """The recognition pass ``[p(h_1 | v), p(h_2 | h_1), ...]`` with probabilities fed upwards:
    ``v [B, n_v]`` -> one ``[B, n_l]`` per layer."""
    out = []
    for params in layers:
        v = rbm.hidden_probs(params, v)
        out.append(v)
    return out


def sample(key: jax.Array, layers: Sequence[rbm.Params], n_samples: int, n_gibbs: int, *,
           top_init: jax.Array | None = None) -> jax.Array:
    """Ancestral samples from the DBN: ``n_gibbs`` block Gibbs steps in the top RBM (started at
    ``top_init [n_samples, n_{L-1}]``, e.g. the up-pass of training images, or at random bits at
    the top RBM's visible base rates), then one top-down pass h_l ~ p(h_l | h_{l+1}) through the
    directed layers, returning the visible means p(v | h_1) ``[n_samples, n_v]``."""
    if not layers:
        raise ValueError("a DBN needs at least one RBM")
    k_top, k_chain, k_down = jax.random.split(key, 3)
    top = layers[-1]
    if top_init is None:
        top_init = rbm._bernoulli(k_top, jnp.broadcast_to(jax.nn.sigmoid(top["b_visible"]),
                                                           (n_samples, top["w"].shape[0])))
    x = rbm.gibbs_chain(k_chain, top, top_init, n_gibbs)
    if len(layers) == 1:
        return rbm.visible_mean(top, rbm.sample_hidden(k_down, top, x)[0])
    keys = jax.random.split(k_down, len(layers))
    for l in range(len(layers) - 2, 0, -1):                   # h_{l+1} -> h_l
        x, _ = rbm.sample_visible(keys[l], layers[l], x)
    return rbm.visible_mean(layers[0], x)


def to_mlp_params(layers: Sequence[rbm.Params], key: jax.Array | None = None,
                  n_outputs: int | None = None, *, output_std: float = 0.01) -> dict:
    """The DBN's recognition weights as the params of ``dlmodels.mlp.mlp((n_v, n_1, ..., n_L[,
    n_outputs]), activation="sigmoid")``: ``layer_l = {"w": W_l, "b": c_l}`` (the hidden biases),
    so the MLP's hidden layers compute the up-pass p(h_l | h_{l-1}). With ``n_outputs`` a new top
    layer ``[n_L, n_outputs]`` ~ N(0, output_std^2) with zero bias is added (``key`` needed), for
    fine-tuning by backpropagation (Hinton & Salakhutdinov 2006)."""
    params = {}
    for i, layer in enumerate(layers):
        if rbm.has_gaussian_hidden(layer):
            raise ValueError("the MLP's hidden layers are sigmoid units; an RBM with Gaussian "
                             "hidden units unrolls into a linear layer (dlmodels.autoencoders.unroll)")
        if rbm.is_gaussian(layer):
            raise ValueError("a Gaussian visible layer scales its inputs by 1/sigma; standardise "
                             "the data and keep sigma = 1 to reuse the weights in an MLP")
        params[f"layer_{i}"] = {"w": layer["w"], "b": layer["b_hidden"]}
    if n_outputs is not None:
        if key is None:
            raise ValueError("the new output layer needs a key")
        n_top = layers[-1]["w"].shape[1]
        params[f"layer_{len(layers)}"] = {
            "w": output_std * jax.random.normal(key, (n_top, n_outputs), layers[-1]["w"].dtype),
            "b": jnp.zeros((n_outputs,), layers[-1]["w"].dtype)}
    return params
