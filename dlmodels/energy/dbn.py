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

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from dlmodels.energy import rbm


def pretrain(key: jax.Array, data, layer_sizes: Sequence[int],
             configs: rbm.RBMTrainConfig | Sequence[rbm.RBMTrainConfig], *,
             visible: str = "bernoulli", top_hidden: str = "bernoulli", init_std: float = 0.01,
             base_rate_init: bool = True, run_dir: str | None = None, resume: bool = False,
             callback: Callable[[int, dict], None] | None = None
             ) -> tuple[list[rbm.Params], list[list[dict]]]:
    """Greedy layer-wise training of RBMs ``layer_sizes = (n_v, n_1, ..., n_L)`` on ``data [N, n_v]``:
    ``dlmodels.autoencoders.pretrain(method="rbm")``, the one pretraining path (every RBM through
    ``dlmodels.train.fit``; RBM l in ``run_dir/layer_<l>``).

    ``configs``: one ``RBMTrainConfig`` for every layer, or one per RBM. ``visible`` is the first
    RBM's visible type (``"gaussian"`` for standardised real data); the upper RBMs are binary and
    are trained on the hidden probabilities of the layer below. ``top_hidden="gaussian"`` gives the
    last RBM linear hidden units with unit-variance Gaussian noise (the code layer of Hinton &
    Salakhutdinov's 2006 deep autoencoder). With ``base_rate_init`` the visible biases of binary
    RBMs start at log p_i / (1 - p_i) of their training data. ``callback(layer, record)`` after
    each epoch of each RBM. Returns ``(layers, histories)``: the RBM params bottom first and one
    training history each.
    """
    from dlmodels.autoencoders.deep import pretrain as greedy   # autoencoders import energy

    return greedy(key, data, layer_sizes, method="rbm", visible=visible,
                  code="identity" if top_hidden == "gaussian" else "sigmoid",
                  rbm_configs=configs, init_std=init_std, base_rate_init=base_rate_init,
                  run_dir=run_dir, resume=resume, callback=callback)


def models(layers: Sequence[rbm.Params], *, visible: str = "bernoulli",
           top_hidden: str = "bernoulli") -> list[rbm.RBM]:
    """The RBM of each layer (sizes from the weights; ``visible`` the bottom one's visible units,
    ``top_hidden`` the top one's hidden units, binary elsewhere), as ``pretrain`` built them."""
    if not layers:
        raise ValueError("a DBN needs at least one RBM")
    last = len(layers) - 1
    return [rbm.rbm(*layer["w"].shape, visible=visible if i == 0 else "bernoulli",
                    hidden=top_hidden if i == last else "bernoulli")
            for i, layer in enumerate(layers)]


def up_pass(layers: Sequence[rbm.Params], v: jax.Array, *, visible: str = "bernoulli",
            top_hidden: str = "bernoulli") -> list[jax.Array]:
    """The recognition pass ``[p(h_1 | v), p(h_2 | h_1), ...]`` with probabilities fed upwards:
    ``v [B, n_v]`` -> one ``[B, n_l]`` per layer."""
    out = []
    for model, params in zip(models(layers, visible=visible, top_hidden=top_hidden), layers):
        v = model.hidden_probs(params, v)
        out.append(v)
    return out


def sample(key: jax.Array, layers: Sequence[rbm.Params], n_samples: int, n_gibbs: int, *,
           top_init: jax.Array | None = None, visible: str = "bernoulli",
           top_hidden: str = "bernoulli") -> jax.Array:
    """Ancestral samples from the DBN: ``n_gibbs`` block Gibbs steps in the top RBM (started at
    ``top_init [n_samples, n_{L-1}]``, e.g. the up-pass of training images, or at random bits at
    the top RBM's visible base rates), then one top-down pass h_l ~ p(h_l | h_{l+1}) through the
    directed layers, returning the visible means p(v | h_1) ``[n_samples, n_v]``."""
    rbms = models(layers, visible=visible, top_hidden=top_hidden)
    k_top, k_chain, k_down = jax.random.split(key, 3)
    top, top_model = layers[-1], rbms[-1]
    if top_init is None:
        top_init = rbm._bernoulli(k_top, jnp.broadcast_to(jax.nn.sigmoid(top["b_visible"]),
                                                           (n_samples, top["w"].shape[0])))
    x = top_model.gibbs_chain(k_chain, top, top_init, n_gibbs)
    if len(layers) == 1:
        return top_model.visible_mean(top, top_model.sample_hidden(k_down, top, x)[0])
    keys = jax.random.split(k_down, len(layers))
    for l in range(len(layers) - 2, 0, -1):                   # h_{l+1} -> h_l
        x, _ = rbms[l].sample_visible(keys[l], layers[l], x)
    return rbms[0].visible_mean(layers[0], x)


def to_mlp_params(layers: Sequence[rbm.Params], key: jax.Array | None = None,
                  n_outputs: int | None = None, *, output_std: float = 0.01) -> dict:
    """The DBN's recognition weights as the params of ``dlmodels.mlp.mlp((n_v, n_1, ..., n_L[,
    n_outputs]), activation="sigmoid")``: ``layer_l = {"w": W_l, "b": c_l}`` (the hidden biases),
    so the MLP's hidden layers compute the up-pass p(h_l | h_{l-1}) of binary hidden units (a
    stack with a linear top layer unfolds into a deep autoencoder instead,
    ``dlmodels.autoencoders.unfold``). With ``n_outputs`` a new top layer ``[n_L, n_outputs]`` ~
    N(0, output_std^2) with zero bias is added (``key`` needed), for fine-tuning by
    backpropagation (Hinton & Salakhutdinov 2006)."""
    params = {}
    for i, layer in enumerate(layers):
        if "sigma" in layer:
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
