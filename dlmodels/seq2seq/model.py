"""The RNN encoder-decoder (Sutskever, Vinyals & Le 2014; Cho et al. 2014), with additive
(Bahdanau, Cho & Bengio 2015) or multiplicative (Luong, Pham & Manning 2015) attention.

For a source ``x_1..x_S`` (its own length ``L <= S``, the rest padding) and a target
``y_0 = <bos>, y_1..y_m``, teacher forcing gives the decoder the true previous token:

    encoder:  h_s = RNN_enc(E_src[x_s], h_{s-1}),  s = 1..L    (layers stacked, optionally
              bidirectional: h_s = [h_fwd_s ; h_bwd_s]; padding never reaches a state)
    bridge:   carry^l_0 = carry^l_enc(L)                                  (unidirectional)
              carry^l_0 = tanh([carry^l_fwd(L) ; carry^l_bwd(1)] W^l + b^l)  (bidirectional;
              one projection per layer and per carry part, h and, for the LSTM, c)
    decoder:  s_t = RNN_dec(in_t, s_{t-1}),  p(y_t | y_<t, x) = softmax(o_t W_out + b_out)

    no attention:  in_t = E_tgt[y_{t-1}],        o_t = s_t
    "bahdanau":    e_ts = v^T tanh(s_{t-1} W_s + h_s W_h)     (additive; s = top decoder layer)
                   a_t = softmax_s(e_t) over s < L,   c_t = sum_s a_ts h_s
                   in_t = [E_tgt[y_{t-1}] ; c_t],    o_t = [s_t ; c_t]
    "luong":       e_ts = s_t^T h_s                           (dot; s = top decoder layer)
                   "luong_general": e_ts = s_t^T (h_s W_a); plain "luong" uses this form too
                   when the encoder states are not of the decoder's size (bidirectional)
                   a_t, c_t as above,   s~_t = tanh([c_t ; s_t] W_c)
                   in_t = [E_tgt[y_{t-1}] ; s~_{t-1}]   (input feeding, Luong et al. sec. 3.3;
                   s~_0 = 0),   o_t = s~_t

``h_s W_h`` (and ``h_s W_a``) are computed once per sentence, not per step. Scores of padded
source positions are set to -inf before the softmax and the weights there to exactly 0.
Dropout (inverted, rate ``dropout``, training only, drawn from the explicit key) on the input of
every RNN layer (the embedded tokens, the outputs of the layer below; for the decoder's first
layer on ``[E_tgt[y_{t-1}] ; c_t or s~_{t-1}]``, drawn for the two parts apart) and on ``o_t``
before the output projection.

The decoder step is one function (``core`` in :func:`encoder_decoder`: attention, the stacked
cells, the output features o_t) used both by the teacher-forced ``lax.scan`` of ``apply`` and by
the decoding step function of :mod:`dlmodels.seq2seq.decode`. Its two per-token ends, the
embedding with its share of the first layer's input projection (``E_tgt[y] W_x[:E] + b``) and
the output projection, run on all target positions at once outside the scan in ``apply`` (one
large matrix product each), and on the one new token per step in decoding.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import rnn
from dlmodels.model import Model
from dlmodels.nn import dense, initializers
from dlmodels.nn.dropout import dropout as _dropout
from dlmodels.rnn.cell import output_of
from dlmodels.text.embedding import embedding
from dlmodels.text.lm import CELLS as LM_CELLS
from dlmodels.validation import (ShapeError, check_choice, check_in_range, check_positive,
                                 concrete)

CELLS = {**LM_CELLS, "rnn": rnn.elman}          # the language models' cells by name, "rnn" = Elman
ATTENTIONS = (None, "bahdanau", "luong", "luong_general")


class DecoderState(NamedTuple):
    """The decoder's carry between steps: one cell carry per layer (``LSTMState(h, c)`` or
    ``RNNState(h)``, each ``[B, hidden]``), and ``feed [B, hidden]``, the previous attentional
    hidden state s~_{t-1} (Luong's input feeding; ``None`` for the other variants)."""

    carries: tuple
    feed: Any


class Memory(NamedTuple):
    """What the decoder attends to, computed once per sentence: ``values [B, S, He]`` (the top
    encoder layer's outputs h_s, zero at padding), ``keys [B, S, A]`` (``h_s W_h`` for Bahdanau,
    ``h_s W_a`` or ``h_s`` for Luong), ``mask [B, S]`` bool (real source positions)."""

    values: jax.Array
    keys: jax.Array
    mask: jax.Array


class Parts(NamedTuple):
    """The pieces of an encoder-decoder that decoding needs (``model.apply.parts``):
    ``encode(params, src, src_lengths, key=None, train=False) -> (DecoderState, Memory)``,
    ``step(params, state, y_prev [B], memory, key=None, train=False) -> (logits [B, V],
    state, attention [B, S] or None)``, ``forward(params, src, src_lengths, tgt_in, key, train)
    -> (logits [B, T, V], attention [B, T, S] or None)``, ``check(src, src_lengths, tgt_in=None)``
    (the input checks, to run outside jit where values are known), and the sizes."""

    encode: Callable
    step: Callable
    forward: Callable
    check: Callable
    src_vocab: int
    tgt_vocab: int
    attention: str | None


def parts_of(model: Model) -> Parts:
    """The :class:`Parts` of a model made by :func:`encoder_decoder` (TypeError otherwise)."""
    parts = getattr(model.apply, "parts", None) if isinstance(model, Model) else None
    if not isinstance(parts, Parts):
        raise TypeError("expected a model made by dlmodels.seq2seq.encoder_decoder")
    return parts


def check_ids(ids, vocab_size: int, what: str, lengths=None) -> None:
    """``ids`` is an integer ``[B, T]`` array; when its values are known, the ids (of the real
    positions, ``t < lengths[b]``, when ``lengths`` is given) lie in ``0..vocab_size-1``."""
    if jnp.ndim(ids) != 2:
        raise ShapeError(f"{what}: expected token ids [B, T], got shape {jnp.shape(ids)}")
    if not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
        raise TypeError(f"{what}: token ids must be integers, got {jnp.result_type(ids)}")
    a = concrete(ids)
    if a is None or not a.size:
        return
    if lengths is not None and concrete(lengths) is not None:
        a = a[np.arange(a.shape[1])[None, :] < np.asarray(lengths)[:, None]]
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = int(a.min()) if a.min() < 0 else int(a.max())
        raise ValueError(f"{what}: token id {bad} is outside the vocabulary 0..{vocab_size - 1}")


def check_lengths(lengths, batch: int, width: int, what: str) -> None:
    """``lengths`` is an integer ``[batch]`` array with values (when known) in ``1..width``."""
    if jnp.shape(lengths) != (batch,):
        raise ShapeError(f"{what}: expected lengths [{batch}], got shape {jnp.shape(lengths)}")
    if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
        raise TypeError(f"{what}: lengths must be integers, got {jnp.result_type(lengths)}")
    a = concrete(lengths)
    if a is not None and a.size and (a.min() < 1 or a.max() > width):
        bad = int(a.min()) if a.min() < 1 else int(a.max())
        raise ValueError(f"{what}: length {bad} is outside 1..{width} (every sequence needs "
                         f"at least one token and at most the padded width {width})")


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """``softmax`` over the last axis of ``scores [..., S]`` restricted to ``mask [..., S]``:
    exactly 0 where the mask is False (every row needs one True)."""
    scores = jnp.where(mask, scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.where(mask, weights, jnp.zeros((), weights.dtype))


def encoder_decoder(src_vocab: int, tgt_vocab: int, *, cell: str = "lstm", hidden: int = 256,
                    embed_dim: int | None = None, layers: int = 1, bidirectional: bool = False,
                    attention: str | None = None, dropout: float = 0.0) -> Model:
    """An RNN encoder-decoder, with or without attention (module docstring for the equations).

    ``apply(params, src int [B, S], src_lengths int [B], tgt_in int [B, T], *, key=None,
    train=False) -> logits [B, T, tgt_vocab]``: ``logits[:, t]`` predict the token after
    ``tgt_in[:, t]`` (teacher forcing: ``tgt_in = [bos, y_1..y_m]``, see
    :func:`dlmodels.seq2seq.make_batch`); source b is ``src[b, :src_lengths[b]]``, whatever
    follows is padding and has no effect. ``init(key, dtype=float32) -> params``.

    - ``cell``: "lstm" (forget bias +1), "gru", or "elman" (= "rnn", tanh), from
      :mod:`dlmodels.rnn`, the same kind for encoder and decoder, ``layers`` of each, of size
      ``hidden``; the encoder runs through :func:`dlmodels.rnn.unroll` with ``lengths``
      (:func:`dlmodels.rnn.bidirectional` with ``bidirectional``), the decoder by a
      ``lax.scan`` of the shared step.
    - ``embed_dim``: size of both embeddings (default ``hidden``).
    - ``attention``: None, "bahdanau", "luong" (dot) or "luong_general".
    - ``dropout``: see the module docstring; needs ``key`` when ``train=True``.

    Params: ``{"src_embed": {"table" [Vs, E]}, "tgt_embed": {"table" [Vt, E]}, "encoder":
    {"layer_l": cell params (bidirectional: {"forward", "backward"})}, "bridge":
    {"layer_l": {"h": {"w" [2H, H], "b" [H]}, ("c": ...)}} (bidirectional only), "decoder":
    {"layer_l": cell params}, "attention": {"w_s" [H, H], "w_h" [He, H], "v" [H]} (Bahdanau)
    or {"w_c" [He + H, H], ("w_a" [He, H])} (Luong), "out": {"w" [O, Vt], "b" [Vt]}}`` with
    ``He = 2H`` for a bidirectional encoder (else H) and O the size of o_t.
    Ids outside the vocabularies and lengths outside ``1..S`` raise ValueError (when their
    values are known, i.e. not under jit); wrong shapes raise
    :class:`~dlmodels.validation.ShapeError`, non-integer ids TypeError.
    """
    check_positive("src_vocab", src_vocab)
    check_positive("tgt_vocab", tgt_vocab)
    check_positive("hidden", hidden)
    check_positive("layers", layers)
    check_choice("cell", cell, tuple(CELLS))
    check_choice("attention", attention, ATTENTIONS)
    check_in_range("dropout", dropout, 0.0, 1.0, closed_high=False)
    if embed_dim is not None:
        check_positive("embed_dim", embed_dim)
    Vs, Vt, H, L = int(src_vocab), int(tgt_vocab), int(hidden), int(layers)
    E = H if embed_dim is None else int(embed_dim)
    He = 2 * H if bidirectional else H
    enc_cells = [CELLS[cell](H) for _ in range(L)]
    dec_cells = [CELLS[cell](H) for _ in range(L)]
    carry_parts = enc_cells[0].initial_carry(1)._fields       # ("h",) or ("h", "c")
    luong = attention in ("luong", "luong_general")
    general = attention == "luong_general" or (attention == "luong" and He != H)
    dec_in = E + (He if attention == "bahdanau" else H if luong else 0)
    out_in = H + He if attention == "bahdanau" else H
    src_embed, tgt_embed = embedding(Vs, E), embedding(Vt, E)
    readout = dense(out_in, Vt)
    bridge_layer = dense(2 * H, H)
    glorot = initializers.get("glorot_uniform")

    def init(key, dtype=jnp.float32):
        k_se, k_te, k_enc, k_dec, k_bridge, k_att, k_out = jax.random.split(key, 7)
        params: dict[str, Any] = {"src_embed": src_embed.init(k_se, dtype),
                                  "tgt_embed": tgt_embed.init(k_te, dtype)}
        encoder = {}
        for l, (c, k) in enumerate(zip(enc_cells, jax.random.split(k_enc, L))):
            d_in = E if l == 0 else He
            if bidirectional:
                k_f, k_b = jax.random.split(k)
                encoder[f"layer_{l}"] = {"forward": c.init(k_f, d_in, dtype),
                                         "backward": c.init(k_b, d_in, dtype)}
            else:
                encoder[f"layer_{l}"] = c.init(k, d_in, dtype)
        params["encoder"] = encoder
        if bidirectional:
            params["bridge"] = {
                f"layer_{l}": {part: bridge_layer.init(kp, dtype) for part, kp in
                               zip(carry_parts, jax.random.split(k, len(carry_parts)))}
                for l, k in enumerate(jax.random.split(k_bridge, L))}
        params["decoder"] = {f"layer_{l}": c.init(k, dec_in if l == 0 else H, dtype)
                             for l, (c, k) in enumerate(zip(dec_cells,
                                                            jax.random.split(k_dec, L)))}
        k1, k2, k3 = jax.random.split(k_att, 3)
        if attention == "bahdanau":
            params["attention"] = {"w_s": glorot(k1, (H, H), dtype),
                                   "w_h": glorot(k2, (He, H), dtype),
                                   "v": glorot(k3, (H, 1), dtype)[:, 0]}
        elif luong:
            params["attention"] = {"w_c": glorot(k1, (He + H, H), dtype)}
            if general:
                params["attention"]["w_a"] = glorot(k2, (He, H), dtype)
        params["out"] = readout.init(k_out, dtype)
        return params

    def _keys(key, n, drop):
        return list(jax.random.split(key, n)) if drop else [None] * n

    def _needs_key(key, train):
        drop = train and dropout > 0
        if drop and key is None:
            raise ValueError("dropout in training mode needs a PRNG key: "
                             "apply(..., key=key, train=True)")
        return drop

    def encode(params, src, src_lengths, key=None, train=False):
        """``(DecoderState, Memory)`` for a batch of sources (shapes checked by the caller)."""
        drop = _needs_key(key, train)
        keys = _keys(key, L, drop)
        lengths = jnp.asarray(src_lengths)
        x = src_embed.apply(params["src_embed"], src)                    # [B, S, E]
        finals = []
        for l, c in enumerate(enc_cells):
            x = _dropout(x, dropout, key=keys[l], train=train)
            p = params["encoder"][f"layer_{l}"]
            if bidirectional:
                x, (c_f, c_b) = rnn.bidirectional(c, c, p, x, lengths=lengths)   # [B, S, 2H]
                bridge = params["bridge"][f"layer_{l}"]
                finals.append(type(c_f)(*[
                    jnp.tanh(bridge_layer.apply(bridge[part],
                                                jnp.concatenate([f, b], axis=-1)))
                    for part, f, b in zip(carry_parts, c_f, c_b)]))
            else:
                x, carry = rnn.unroll(c, p, x, lengths=lengths)          # [B, S, H]
                finals.append(carry)
        B, S = src.shape
        mask = jnp.arange(S)[None, :] < lengths[:, None]                 # [B, S]
        if attention == "bahdanau":
            keys_ = x @ params["attention"]["w_h"]                       # [B, S, H]
        elif general:
            keys_ = x @ params["attention"]["w_a"]                       # [B, S, H]
        else:
            keys_ = x
        feed = jnp.zeros((B, H), x.dtype) if luong else None
        return DecoderState(tuple(finals), feed), Memory(x, keys_, mask)

    def _attend(params, query, memory):
        """Attention weights ``[B, S]`` and context ``[B, He]`` for a query ``[B, H]``."""
        if attention == "bahdanau":
            q = query @ params["attention"]["w_s"]                       # [B, H]
            e = jnp.tanh(memory.keys + q[:, None, :]) @ params["attention"]["v"]   # [B, S]
        else:
            e = jnp.einsum("bh,bsh->bs", query, memory.keys)             # [B, S]
        a = masked_softmax(e, memory.mask)                               # [B, S]
        return a, jnp.einsum("bs,bsh->bh", a, memory.values)             # [B, He]

    def embed_project(params, tokens, key=None, train=False):
        """The part of the first decoder layer's input projection that depends on the previous
        token only: ``u = D(E_tgt[y]) W_x[:E] + b`` for ``tokens [...]`` -> ``[..., P]`` (the
        rest of ``[E_tgt[y] ; extra] W_x``, the context or fed-back part, is added in
        ``core``). Outside the scan, it runs on all target tokens in one matrix product."""
        p = params["decoder"]["layer_0"]
        x = _dropout(tgt_embed.apply(params["tgt_embed"], tokens), dropout, key=key,
                     train=train)                                        # [..., E]
        return dec_cells[0].project({**p, "w_x": p["w_x"][:E]}, x)       # [..., P]

    def core(params, state, u, memory, key=None, train=False):
        """The recurrence of one decoder step from ``u [B, P]`` (:func:`embed_project` of the
        previous tokens): ``(o_t [B, O] (dropout applied), new state, attention [B, S] or
        None)``."""
        drop = train and dropout > 0
        keys = _keys(key, L + 1, drop)
        a = context = None
        extra = None
        if attention == "bahdanau":
            s_prev = output_of(dec_cells[-1], params["decoder"][f"layer_{L - 1}"],
                               state.carries[-1])                        # [B, H]
            a, context = _attend(params, s_prev, memory)
            extra = context                                              # [B, He]
        elif luong:
            extra = state.feed                                           # [B, H]
        carries = []
        for l, c in enumerate(dec_cells):
            p = params["decoder"][f"layer_{l}"]
            if l == 0:
                if extra is not None:                # [emb ; extra] W_x = emb W_x[:E] + ...
                    extra = _dropout(extra, dropout, key=keys[0], train=train)
                    u = u + extra @ p["w_x"][E:]                         # [B, P]
                carry, x = c.step(p, state.carries[0], u)                # [B, H]
            else:
                x = _dropout(x, dropout, key=keys[l], train=train)
                carry, x = c.apply(p, state.carries[l], x)               # [B, H]
            carries.append(carry)
        feed = None
        if attention == "bahdanau":
            o = jnp.concatenate([x, context], axis=-1)                   # [B, H + He]
        elif luong:
            a, context = _attend(params, x, memory)
            o = feed = jnp.tanh(jnp.concatenate([context, x], axis=-1)
                                @ params["attention"]["w_c"])            # [B, H]
        else:
            o = x
        o = _dropout(o, dropout, key=keys[L], train=train)
        return o, DecoderState(tuple(carries), feed), a

    def step(params, state, y_prev, memory, key=None, train=False):
        """One decoder step: ``(logits [B, Vt], new state, attention [B, S] or None)`` for the
        previous tokens ``y_prev [B]``: :func:`embed_project`, :func:`core`, the output
        projection."""
        k_emb, k_core = jax.random.split(key) if key is not None else (None, None)
        u = embed_project(params, y_prev, k_emb, train)                  # [B, P]
        o, state, a = core(params, state, u, memory, k_core, train)
        return readout.apply(params["out"], o), state, a                 # [B, Vt]

    def check_inputs(src, src_lengths, tgt_in=None):
        if jnp.ndim(src) != 2:
            raise ShapeError(f"encoder_decoder: expected src ids [B, S], got shape "
                             f"{jnp.shape(src)}")
        B, S = jnp.shape(src)
        check_lengths(src_lengths, B, S, "encoder_decoder: src_lengths")
        check_ids(src, Vs, "encoder_decoder: src", src_lengths)
        if tgt_in is not None:
            check_ids(tgt_in, Vt, "encoder_decoder: tgt_in")
            if jnp.shape(tgt_in)[0] != B:
                raise ShapeError(f"encoder_decoder: tgt_in has {jnp.shape(tgt_in)[0]} rows for "
                                 f"{B} sources")

    def forward(params, src, src_lengths, tgt_in, key=None, train=False):
        check_inputs(src, src_lengths, tgt_in)
        drop = _needs_key(key, train)
        k_enc, k_emb, k_dec = jax.random.split(key, 3) if drop else (None, None, None)
        state, memory = encode(params, src, src_lengths, k_enc, train)
        T = tgt_in.shape[1]
        # the step of decoding (``step``) without its two per-token ends, which run on all
        # steps at once here: the embedding and its projection before the scan, the output
        # projection after it
        u = embed_project(params, tgt_in.T, k_emb, train)                # [T, B, P]
        xs = (u, jax.random.split(k_dec, T)) if drop else (u,)

        def body(state, x):
            o, state, a = core(params, state, x[0], memory, x[1] if drop else None, train)
            return state, (o, a)

        _, (o, attn) = jax.lax.scan(body, state, xs)                    # [T, B, O], [T, B, S]
        logits = readout.apply(params["out"], jnp.swapaxes(o, 0, 1))     # [B, T, V]
        return logits, (None if attn is None else jnp.swapaxes(attn, 0, 1))

    def apply(params, src, src_lengths, tgt_in, *, key=None, train=False):
        return forward(params, src, src_lengths, tgt_in, key, train)[0]

    def checked_encode(params, src, src_lengths, key=None, train=False):
        check_inputs(src, src_lengths)
        return encode(params, src, src_lengths, key, train)

    apply.parts = Parts(checked_encode, step, forward, check_inputs, Vs, Vt, attention)
    return Model(init, apply)


def attention_weights(model: Model, params, src, src_lengths, tgt_in) -> jax.Array:
    """The attention weights ``a_ts`` of a teacher-forced pass: ``[B, T, S]``, each row a
    distribution over the real source positions (exactly 0 on padding). ValueError for a model
    without attention."""
    parts = parts_of(model)
    if parts.attention is None:
        raise ValueError("attention_weights: this encoder-decoder has no attention")
    return parts.forward(params, src, src_lengths, tgt_in)[1]
