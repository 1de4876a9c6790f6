"""Recurrent language models: a stacked RNN (Elman, LSTM or GRU) over token embeddings (or one-hot
inputs) with a softmax over the vocabulary; truncated BPTT over parallel streams, evaluation on
held-out text in nats / bits / perplexity with the carry flowing through, and sampling.

The model (Mikolov et al. 2010; Zaremba, Sutskever & Vinyals 2014), for tokens ``w_1..w_T``:

    x_t = E[w_t]                                (embedding, [V, E]; or one-hot(w_t), [V])
    h^l_t, c^l_t = cell_l(x^l_t, carry^l_{t-1})  x^1_t = D(x_t), x^{l+1}_t = D(h^l_t)
    p(w_{t+1} | w_{<=t}) = softmax(D(h^L_t) W_out + b)      (tied: W_out = E^T, Press & Wolf 2017)

``D`` is dropout on the non-recurrent connections only (Zaremba et al. 2014, section 3): the
input of every layer and the input of the softmax; the recurrent connections are left intact.

Training (truncated BPTT, Williams & Peng 1990; as in Zaremba et al.): the corpus is cut into B
parallel streams and each stream into windows of T (:func:`dlmodels.text.batching.streams`); the
carry at the end of window w is the initial carry of window w+1 (the gradient stops there); the
loss is the mean of ``-log p(target)`` over the window. :func:`tbptt` is the
:class:`~dlmodels.train.GradientEstimator` that ``fit`` runs (the carry is its model state).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import rnn
from dlmodels.model import Model
from dlmodels.nn import initializers
from dlmodels.nn.dropout import dropout as _dropout
from dlmodels.train.estimators import GradientEstimator
from dlmodels.validation import ShapeError, check_choice, check_in_range, check_positive

CELLS = {"elman": rnn.elman, "lstm": rnn.lstm, "gru": rnn.gru}


def _check_tokens(tokens, what: str) -> None:
    if jnp.ndim(tokens) != 2:
        raise ShapeError(f"{what}: expected token ids [B, T], got shape {jnp.shape(tokens)}")
    if not jnp.issubdtype(jnp.result_type(tokens), jnp.integer):
        raise TypeError(f"{what}: token ids must be integers, got {jnp.result_type(tokens)}")


def language_model(vocab_size: int, *, cell: str = "lstm", hidden: int = 256, layers: int = 1,
                   embed_dim: int | None = None, dropout: float = 0.0,
                   embed_dropout: float = 0.0, tie: bool = False,
                   one_hot: bool = False) -> Model:
    """An RNN language model (see the module docstring for the equations).

    ``apply(params, tokens int [B, T], carry=None, *, key=None, train=False) -> (logits [B, T,
    V], carry)``: ``logits[:, t]`` are the unnormalised log-probabilities of the token after
    ``tokens[:, t]``. ``carry``: a tuple with one cell carry per layer (``LSTMState(h, c)`` or
    ``RNNState(h)``, each ``[B, hidden]``); ``None`` starts from zeros (what
    :func:`initial_carry` returns). ``init(key, dtype=float32) -> params``.

    - ``cell``: "elman" (tanh), "lstm" (forget bias +1) or "gru", from :mod:`dlmodels.rnn`,
      ``layers`` of them stacked, each run by :func:`dlmodels.rnn.unroll` (the LSTM and the GRU
      through its fused path with the hand-written backward pass).
    - ``embed_dim``: size E of the embedding (default ``hidden``). ``one_hot=True`` feeds
      one-hot vectors ``[V]`` instead (the notes' local vs distributed representation; then there
      is no embedding table, and ``tie``, ``embed_dim``, ``embed_dropout`` do not apply).
    - ``dropout``: rate of the dropout on the input of every layer and of the softmax
      (non-recurrent connections, Zaremba et al. 2014); ``embed_dropout``: rate at which whole
      rows of the embedding table (word types) are dropped in a batch, the rest scaled by
      ``1 / (1 - rate)`` (Gal & Ghahramani 2016, section 4). Both only with ``train=True`` and a
      ``key``.
    - ``tie``: the output matrix is the embedding table transposed (Press & Wolf 2017; Inan et
      al. 2017), ``logits = h E^T + b``, one ``[V, E]`` table for both ends. When ``embed_dim !=
      hidden``, a linear projection ``P [hidden, E]`` maps the top layer's output to E first
      (``logits = (h P) E^T + b``). A tied table starts U(-0.1, 0.1), an untied one N(0, 1)
      (:func:`dlmodels.text.embedding.embedding`).

    Params: ``{"embed": {"table": [V, E]}, "rnn": {"layer_0": cell params, ...}, "out": {"w":
    [H, V], "b": [V]}}``; tied: ``"out": {"b": [V]}`` (and ``"proj": {"w": [H, E]}`` when E !=
    H); one-hot: no ``"embed"``, ``layer_0``'s ``w_x`` is ``[V, G*H]``.
    """
    check_positive("vocab_size", vocab_size)
    check_positive("hidden", hidden)
    check_positive("layers", layers)
    check_choice("cell", cell, tuple(CELLS))
    check_in_range("dropout", dropout, 0.0, 1.0, closed_high=False)
    check_in_range("embed_dropout", embed_dropout, 0.0, 1.0, closed_high=False)
    V, H, L = int(vocab_size), int(hidden), int(layers)
    if one_hot and (tie or embed_dim is not None or embed_dropout):
        raise ValueError("one_hot inputs have no embedding table: tie, embed_dim and "
                         "embed_dropout do not apply")
    if embed_dim is not None:
        check_positive("embed_dim", embed_dim)
    E = V if one_hot else (H if embed_dim is None else int(embed_dim))
    project = tie and E != H
    cells = [CELLS[cell](H) for _ in range(L)]
    from dlmodels.text import embedding as _embedding
    # tied: U(-0.1, 0.1) (Zaremba et al. 2014; Press & Wolf 2017), since the table is also the
    # output matrix; untied: the embedding's own N(0, 1)
    table = None if one_hot else _embedding.embedding(
        V, E, **({"w_init": initializers.uniform(0.1)} if tie else {}))

    def init(key, dtype=jnp.float32):
        k_embed, k_proj, k_out, *k_layers = jax.random.split(key, 3 + L)
        params: dict[str, Any] = {}
        if table is not None:
            params["embed"] = table.init(k_embed, dtype)
        params["rnn"] = {f"layer_{l}": c.init(k, E if l == 0 else H, dtype)
                         for l, (c, k) in enumerate(zip(cells, k_layers))}
        if project:
            params["proj"] = {"w": initializers.get("glorot_uniform")(k_proj, (H, E), dtype)}
        params["out"] = {"b": jnp.zeros((V,), dtype)}
        if not tie:
            params["out"]["w"] = initializers.get("glorot_uniform")(k_out, (H, V), dtype)
        return params

    def apply(params, tokens, carry=None, *, key=None, train=False):
        _check_tokens(tokens, "language_model")
        B = tokens.shape[0]
        drop = train and (dropout > 0 or embed_dropout > 0)
        if drop and key is None:
            raise ValueError("dropout in training mode needs a PRNG key: "
                             "apply(..., key=key, train=True)")
        keys = jax.random.split(key, L + 2) if drop else [None] * (L + 2)
        ids = tokens.T                                                 # [T, B], time-major inside
        if table is None:
            dtype = params["rnn"]["layer_0"]["w_x"].dtype
            x = jax.nn.one_hot(ids, V, dtype=dtype)                    # [T, B, V]
        else:
            x = table.apply(params["embed"], ids)                      # [T, B, E]
            if train and embed_dropout > 0:
                kept = jax.random.bernoulli(keys[L + 1], 1.0 - embed_dropout, (V,))
                scale = jnp.where(kept, 1.0 / (1.0 - embed_dropout), 0.0).astype(x.dtype)
                x = x * scale[ids][..., None]
        if carry is None:
            carry = tuple(c.initial_carry(B, x.dtype) for c in cells)
        elif len(carry) != L:
            raise ValueError(f"language_model: carry must hold {L} layer carries, got {len(carry)}")
        new_carry = []
        for l, c in enumerate(cells):
            x = _dropout(x, dropout, key=keys[l], train=train)
            x, layer_carry = rnn.unroll(c, params["rnn"][f"layer_{l}"], x,
                                        initial_carry=carry[l], time_major=True)  # [T, B, H]
            new_carry.append(layer_carry)
        x = _dropout(x, dropout, key=keys[L], train=train)
        if project:
            x = x @ params["proj"]["w"]                                # [T, B, E]
        w_out = params["embed"]["table"].T if tie else params["out"]["w"]
        logits = x @ w_out + params["out"]["b"][None, None, :]         # [T, B, V]
        return jnp.swapaxes(logits, 0, 1), tuple(new_carry)

    return Model(init, apply)


def initial_carry(model: Model, params, batch_size: int):
    """The zero carry of ``model`` for a batch of ``batch_size`` streams (the structure its
    ``apply`` returns for ``tokens [batch_size, 1]``, all zeros); what ``apply(..., carry=None)``
    starts from."""
    shapes = jax.eval_shape(lambda p: model.apply(p, jnp.zeros((batch_size, 1), jnp.int32))[1],
                            params)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def token_nats(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``-log softmax(logits)[target]`` per position: ``logits [..., V]``, ``targets int [...]``
    -> ``[...]`` (nats), computed in float32."""
    logits = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


def tbptt(model: Model, batch_size: int) -> GradientEstimator:
    """Truncated BPTT over parallel streams as a :class:`~dlmodels.train.GradientEstimator`.

    For ``fit(model.init, tbptt(model, B), optimizer, batching.trainer_data(batching.streams(ids,
    B, T)), TrainConfig(batch_size=B, shuffle=False, ...))``: each batch is one window
    ``{"inputs": int [B, T], "targets": int [B, T], "reset": bool [B]}``. The estimator's state
    (``TrainState.model_state``) is the carry, zeros at the start and wherever ``reset`` is set
    (window 0 of each epoch); otherwise the carry left by the previous window, with its gradient
    stopped (``jax.lax.stop_gradient``). Loss (``train_loss``) and gradient: the window's mean
    ``-log p(target)`` in nats,

        loss = 1/(B T) sum_{b,t} -log softmax(logits_{b,t})[target_{b,t}],

    differentiated through the T steps of the window only. Dropout keys come from the step's key.
    Gradient clipping belongs to the optimiser (``OptimizerConfig(clip_norm=...)``).
    """
    check_positive("batch_size", batch_size)

    def init(key, params, train_data):
        return initial_carry(model, params, batch_size)

    def estimate(key, params, carry, batch):
        reset = batch["reset"]
        carry = jax.tree.map(
            lambda c: jnp.where(reset.reshape((-1,) + (1,) * (c.ndim - 1)), jnp.zeros_like(c),
                                jax.lax.stop_gradient(c)), carry)

        def loss_fn(p):
            logits, new = model.apply(p, batch["inputs"], carry, key=key, train=True)
            return jnp.mean(token_nats(logits, batch["targets"])), new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return grads, jax.lax.stop_gradient(new), loss, ()

    return GradientEstimator(init, estimate)


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out text: the carry flows across the whole stream.

def eval_data(ids, *, streams: int = 16, window: int = 256) -> dict:
    """Held-out token ids ``[N]`` as ``streams`` contiguous streams for :func:`eval_fn`: the
    ``N - 1`` predictions (of ``ids[1:]`` from what precedes them) cut into ``streams`` pieces of
    equal length (the last shorter), each padded to a multiple of ``window``. Returns ``{"inputs":
    int32 [S, L], "targets": int32 [S, L], "mask": float32 [S, L] (1 on real positions),
    "weight": float32 [S]}`` with ``weight = S / (N - 1)``, so that the mean over streams of
    ``weight * (sum of the stream's nats)`` is the nats per token of the whole text. Every target
    is predicted exactly once; only the first token of each stream loses the context before it."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size < 2:
        raise ShapeError(f"eval_data: expected token ids [N] with N >= 2, got shape {ids.shape}")
    check_positive("streams", streams)
    check_positive("window", window)
    n = ids.size - 1
    S = min(int(streams), n)
    per = -(-n // S)                                   # predictions per stream (the last: fewer)
    L = -(-per // window) * window
    inputs = np.zeros((S, L), np.int32)
    targets = np.zeros((S, L), np.int32)
    mask = np.zeros((S, L), np.float32)
    for s in range(S):
        lo, hi = s * per, min((s + 1) * per, n)
        inputs[s, :hi - lo], targets[s, :hi - lo] = ids[lo:hi], ids[lo + 1:hi + 1]
        mask[s, :hi - lo] = 1.0
    return {"inputs": inputs, "targets": targets, "mask": mask,
            "weight": np.full((S,), S / n, np.float32)}


def eval_fn(model: Model, window: int = 256):
    """``eval_fn(params, batch) -> {"nats": [S'], "bits": [S']}`` over rows of :func:`eval_data`
    (any subset of its streams, e.g. ``fit``'s eval batches): a ``lax.scan`` over the windows of
    each stream with the carry flowing from window to window, ``weight * sum of -log p`` per
    stream, so the mean over all streams is nats (bits: / ln 2) per token. For ``fit(...,
    eval_fn=eval_fn(model, window), eval_data=eval_data(ids, window=window))``."""

    def fn(params, batch):
        sums = _stream_nats(model, window, params, batch["inputs"], batch["targets"],
                            batch["mask"])
        nats = sums * batch["weight"]
        return {"nats": nats, "bits": nats / math.log(2.0)}

    return fn


def _stream_nats(model, window, params, inputs, targets, mask):
    """Per-stream sum of ``-log p(target)`` over ``[S, L]`` arrays, window by window."""
    S, L = inputs.shape
    if L % window:
        raise ShapeError(f"eval: stream length {L} is not a multiple of the window {window}")
    W = L // window

    def windows(a):
        return jnp.swapaxes(a.reshape(S, W, window), 0, 1)     # [W, S, window]

    def body(carry, xs):
        x, y, m = xs
        logits, carry = model.apply(params, x, carry)
        return carry, jnp.sum(token_nats(logits, y) * m, axis=1)

    _, sums = jax.lax.scan(body, initial_carry(model, params, S),
                           (windows(inputs), windows(targets), windows(mask)))
    return jnp.sum(sums, axis=0)                                 # [S]


@partial(jax.jit, static_argnums=(0, 1))
def _evaluate(model, window, params, data):
    return jnp.mean(eval_fn(model, window)(params, data)["nats"])


def evaluate(params, model: Model, ids, *, streams: int = 16, window: int = 256) -> jax.Array:
    """Nats per token of ``model`` on held-out token ids ``[N]``: the mean of ``-log p(ids[t+1]
    | ids[..t])`` over the ``N - 1`` predictions, read as ``streams`` contiguous streams in
    parallel (:func:`eval_data`), the carry flowing through each (in a jitted ``lax.scan`` over
    windows of ``window``). ``streams=1`` reads the text as one stream. Bits per token:
    :func:`bits`; perplexity: :func:`perplexity`."""
    return _evaluate(model, int(window), params, eval_data(ids, streams=streams, window=window))


def bits(nats) -> float:
    """Bits per token from nats per token: ``nats / ln 2``."""
    return float(nats) / math.log(2.0)


def perplexity(nats) -> float:
    """Perplexity from nats per token: ``exp(nats)``."""
    return float(math.exp(float(nats)))


# ---------------------------------------------------------------------------------------------
# Sampling.

def sample(key: jax.Array, params, model: Model, prompt_ids, n_steps: int, *,
           temperature: float = 1.0, top_k: int | None = None) -> jax.Array:
    """Continue each prompt ``prompt_ids int [B, P]`` (P >= 1) by ``n_steps`` tokens: ``ids [B, P
    + n_steps]`` (the prompt, then the samples).

    The prompt is read in one pass; then, inside a ``lax.scan`` with the key of step s
    ``split(key, n_steps)[s]``, ``w ~ softmax(logits / temperature)`` restricted to the ``top_k``
    most likely tokens (all with ``None``), and ``w`` is fed back. ``temperature=0`` takes the
    argmax (greedy decoding). Jitted; one compilation per (shapes, n_steps, temperature, top_k).
    """
    _check_tokens(prompt_ids, "sample")
    if prompt_ids.shape[1] < 1:
        raise ShapeError(f"sample: the prompt needs at least one token, got {prompt_ids.shape}")
    check_positive("n_steps", n_steps)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None:
        check_positive("top_k", top_k)
    return _sample(model, int(n_steps), float(temperature), None if top_k is None else int(top_k),
                   key, params, jnp.asarray(prompt_ids, jnp.int32))


def _draw(key, logits, temperature: float, top_k: int | None):
    """One token per row of ``logits [B, V]``."""
    logits = logits.astype(jnp.float32)
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]                # [B, 1]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _sample(model, n_steps, temperature, top_k, key, params, prompt):
    logits, carry = model.apply(params, prompt)

    def body(state, k):
        last, carry = state
        token = _draw(k, last, temperature, top_k)                   # [B]
        logits, carry = model.apply(params, token[:, None], carry)
        return (logits[:, 0], carry), token

    _, tokens = jax.lax.scan(body, (logits[:, -1], carry), jax.random.split(key, n_steps))
    return jnp.concatenate([prompt, tokens.T], axis=1)
