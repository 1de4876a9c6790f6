"""A BiLSTM sequence tagger (optionally with character-level word features and a CRF output
layer), and the loss / prediction / evaluation functions that train it through
:func:`dlmodels.train.fit`.

Batches are dicts of padded arrays (:func:`dlmodels.text.batching.pad`): ``"words" int [B, T]``,
``"lengths" int [B]``, ``"tags" int [B, T]`` (any value past a length) and, for a tagger with
character features, ``"chars" int [B, T, C]`` (character ids of each word, 0 = padding).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from dlmodels import losses, rnn
from dlmodels.model import Model
from dlmodels.nn import conv1d_layer, dense, dropout as drop, initializers
from dlmodels.text import embedding as embedding_lib
from dlmodels.validation import (ShapeError, check_choice, check_in_range, check_positive,
                                 check_shape)


def bilstm_tagger(n_words: int, n_tags: int, *, embed_dim: int = 100, hidden: int = 100,
                  layers: int = 1, n_chars: int | None = None, char_dim: int = 25,
                  char_hidden: int = 25, char_encoder: str = "lstm", char_width: int = 3,
                  crf: bool = False, dropout: float = 0.0) -> Model:
    """BiLSTM tagger: per-token tag scores (emissions) from a bidirectional LSTM over word
    embeddings (Graves & Schmidhuber 2005; Huang, Xu & Yu 2015; Lample et al. 2016):

        x_t = [E w_t, c(w_t)]                          (c: optional character features)
        h_t = [LSTM_fwd(x_1..x_t), LSTM_bwd(x_t..x_L)]  (``layers`` such layers stacked)
        s_t = W h_t + b                                 emissions [K] (zero for t >= L)

    Character features of a word with characters ``a_1..a_n`` (``n_chars`` set):
    ``char_encoder="lstm"``: ``c = [h_fwd after a_n, h_bwd after a_1]`` of a character BiLSTM
    with ``char_hidden`` units per direction (Lample et al. 2016); ``"cnn"``: ``c_f = max_i
    (conv(a)_i)_f``, a width-``char_width`` convolution with ``char_hidden`` filters max-pooled
    over the word's characters (Ma & Hovy 2016; the character padding, id 0, embeds to zeros
so that it reaches neither encoder). Dropout (rate ``dropout``, training only) on the
    input of every BiLSTM layer and on the top layer's output. With ``crf`` the params also hold
    a linear-chain CRF (:mod:`dlmodels.text.crf`) that scores tag transitions: train with its
    negative log-likelihood and decode with Viterbi (:func:`loss_fn`, :func:`predict_fn`).

    ``apply(params, word_ids int [B, T], lengths int [B] | None = None, char_ids int [B, T, C] |
    None = None, *, key=None, train=False) -> emissions [B, T, n_tags]``; ``lengths=None`` means
    every sequence fills T; padding never reaches the recurrent states, and emissions past a
    length are exactly 0. ``char_ids`` (0 = padding) is required iff ``n_chars`` is set.
    ``init(key, dtype=float32)``: embeddings uniform in ``+-sqrt(3 / dim)`` (unit-norm rows on
    average, as Lample et al. and Ma & Hovy 2016; an N(0, 1) table learns far more slowly),
    LSTMs as :func:`dlmodels.rnn.lstm`, the CRF as :func:`dlmodels.text.crf.init`. Params: ``{"embed": {"table"}, ["chars": {"embed", "encoder"}],
    "rnn": {"layer_l": {"forward", "backward"}}, "out": {"w", "b"}, ["crf": {"transitions",
    "start", "end"}]}``.
    """
    for name, value in (("n_words", n_words), ("n_tags", n_tags), ("embed_dim", embed_dim),
                        ("hidden", hidden), ("layers", layers)):
        check_positive(f"bilstm_tagger: {name}", value)
    check_in_range("bilstm_tagger: dropout", dropout, 0.0, 1.0, closed_high=False)
    if n_chars is not None:
        check_positive("bilstm_tagger: n_chars", n_chars)
        check_positive("bilstm_tagger: char_dim", char_dim)
        check_positive("bilstm_tagger: char_hidden", char_hidden)
        check_choice("bilstm_tagger: char_encoder", char_encoder, ("lstm", "cnn"))
    word_embed = embedding_lib.embedding(n_words, embed_dim,
                                         w_init=initializers.uniform(math.sqrt(3.0 / embed_dim)))
    char_embed = (embedding_lib.embedding(n_chars, char_dim,
                                          w_init=initializers.uniform(math.sqrt(3.0 / char_dim)))
                  if n_chars is not None else None)
    char_cell = rnn.lstm(char_hidden) if n_chars is not None and char_encoder == "lstm" else None
    char_conv = (conv1d_layer(char_width, char_dim, char_hidden, padding="SAME")
                 if n_chars is not None and char_encoder == "cnn" else None)
    char_features = 0 if n_chars is None else (2 * char_hidden if char_cell else char_hidden)
    cell = rnn.lstm(hidden)
    sizes = [embed_dim + char_features] + [2 * hidden] * layers
    out = dense(2 * hidden, n_tags)

    def init(key, dtype=jnp.float32):
        k_embed, k_chars, k_rnn, k_out, k_crf = jax.random.split(key, 5)
        params = {"embed": word_embed.init(k_embed, dtype)}
        if n_chars is not None:
            k_ce, k_enc = jax.random.split(k_chars)
            if char_cell is not None:
                k_f, k_b = jax.random.split(k_enc)
                encoder = {"forward": char_cell.init(k_f, char_dim, dtype),
                           "backward": char_cell.init(k_b, char_dim, dtype)}
            else:
                encoder = char_conv.init(k_enc, dtype)
            params["chars"] = {"embed": char_embed.init(k_ce, dtype), "encoder": encoder}
        layer_params = {}
        for l, k in enumerate(jax.random.split(k_rnn, layers)):
            k_f, k_b = jax.random.split(k)
            layer_params[f"layer_{l}"] = {"forward": cell.init(k_f, sizes[l], dtype),
                                          "backward": cell.init(k_b, sizes[l], dtype)}
        params["rnn"] = layer_params
        params["out"] = out.init(k_out, dtype)
        if crf:
            from dlmodels.text import crf as crf_lib
            params["crf"] = jax.tree.map(lambda a: a.astype(dtype), crf_lib.init(k_crf, n_tags))
        return params

    def encode_chars(params, char_ids):
        """``char_ids [B, T, C] -> [B, T, char_features]``."""
        B, T, C = char_ids.shape
        flat = char_ids.reshape(B * T, C)                              # [N, C]
        char_lengths = jnp.sum(flat != 0, axis=-1).astype(jnp.int32)  # [N]
        xs = char_embed.apply(params["embed"], flat)                   # [N, C, char_dim]
        xs = jnp.where((flat != 0)[..., None], xs, jnp.zeros((), xs.dtype))  # padding is 0
        if char_cell is not None:
            _, (c_f, c_b) = rnn.bidirectional(char_cell, char_cell, params["encoder"], xs,
                                              lengths=char_lengths)
            feats = jnp.concatenate([c_f.h, c_b.h], axis=-1)           # [N, 2 char_hidden]
        else:
            conv = char_conv.apply(params["encoder"], xs)              # [N, C, char_hidden]
            valid = (jnp.arange(C)[None, :] < char_lengths[:, None])[..., None]
            feats = jnp.max(jnp.where(valid, conv, -jnp.inf), axis=1)  # [N, char_hidden]
            feats = jnp.where(char_lengths[:, None] > 0, feats, jnp.zeros((), feats.dtype))
        return feats.reshape(B, T, -1)

    def apply(params, word_ids, lengths=None, char_ids=None, *, key=None, train=False):
        check_shape(word_ids, (None, None), "bilstm_tagger: word_ids [B, T]")
        if not jnp.issubdtype(jnp.asarray(word_ids).dtype, jnp.integer):
            raise TypeError(f"bilstm_tagger: word_ids must be integers, got "
                            f"{jnp.asarray(word_ids).dtype}")
        B, T = word_ids.shape
        if lengths is not None:
            check_shape(lengths, (B,), "bilstm_tagger: lengths [B]")
        if n_chars is not None:
            if char_ids is None:
                raise ShapeError("bilstm_tagger: this tagger has character features "
                                 "(n_chars set); pass char_ids [B, T, C]")
            check_shape(char_ids, (B, T, None), "bilstm_tagger: char_ids [B, T, C]")
        elif char_ids is not None:
            raise ShapeError("bilstm_tagger: char_ids given to a tagger built without "
                             "character features (n_chars=None)")
        keys = (jax.random.split(key, layers + 1) if key is not None and train
                else [None] * (layers + 1))
        xs = word_embed.apply(params["embed"], word_ids)               # [B, T, embed_dim]
        if n_chars is not None:
            xs = jnp.concatenate([xs, encode_chars(params["chars"], char_ids).astype(xs.dtype)],
                                 axis=-1)                              # [B, T, embed + char]
        for l in range(layers):
            xs = drop(xs, dropout, key=keys[l], train=train)
            xs, _ = rnn.bidirectional(cell, cell, params["rnn"][f"layer_{l}"], xs,
                                      lengths=lengths)                 # [B, T, 2H]
        xs = drop(xs, dropout, key=keys[layers], train=train)
        emissions = out.apply(params["out"], xs)                       # [B, T, K]
        if lengths is not None:
            valid = jnp.arange(T)[None, :] < jnp.asarray(lengths)[:, None]
            emissions = jnp.where(valid[..., None], emissions, jnp.zeros((), emissions.dtype))
        return emissions

    return Model(init, apply)


def _emissions(apply: Callable, params, batch, key=None, train=False):
    return apply(params, batch["words"], batch["lengths"], batch.get("chars"), key=key,
                 train=train)


def token_mask(lengths, T: int) -> jax.Array:
    """``mask [B, T]``: True at ``t < lengths[b]``."""
    return jnp.arange(T)[None, :] < jnp.asarray(lengths)[:, None]


def masked_cross_entropy(emissions, tags, lengths) -> jax.Array:
    """Mean per-token softmax cross-entropy over the valid tokens of a batch:
    ``sum_b sum_{t < L_b} -log softmax(s_bt)[y_bt] / sum_b L_b``. ``emissions [B, T, K]``,
    ``tags int [B, T]`` (ignored past the lengths), ``lengths [B]`` -> scalar."""
    mask = token_mask(lengths, emissions.shape[1])
    safe = jnp.where(mask, tags, 0)
    nll = losses.softmax_cross_entropy(emissions, safe)                # [B, T]
    return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def loss_fn(apply: Callable, *, crf: bool = False, train: bool = True) -> Callable:
    """The trainer's ``loss_fn(params, batch, key) -> (loss, {})`` for a tagger's ``apply``:
    without ``crf``, the per-token cross-entropy averaged over the batch's valid tokens
    (:func:`masked_cross_entropy`); with ``crf``, the CRF's negative log-likelihood
    ``-mean_b log p(y_b | x_b)`` (Lafferty, McCallum & Pereira 2001; per sentence, so its scale
    is about the mean sentence length times a per-token loss). ``train``: dropout on (keys from
    the step's key)."""
    def loss(params, batch, key):
        emissions = _emissions(apply, params, batch, key=key, train=train)
        if crf:
            from dlmodels.text import crf as crf_lib
            ll = crf_lib.log_likelihood(params["crf"], emissions, batch["tags"], batch["lengths"])
            return -jnp.mean(ll), {}
        return masked_cross_entropy(emissions, batch["tags"], batch["lengths"]), {}

    return loss


def predict_fn(apply: Callable, *, crf: bool = False) -> Callable:
    """``predict(params, batch) -> tags int32 [B, T]`` (0 past each length): the argmax of each
    token's emissions, or with ``crf`` the Viterbi path (:func:`dlmodels.text.crf.viterbi`)."""
    def predict(params, batch):
        emissions = _emissions(apply, params, batch)
        if crf:
            from dlmodels.text import crf as crf_lib
            # the CRF needs lengths >= 1; an empty (filler) sentence gets no tags anyway
            tags, _ = crf_lib.viterbi(params["crf"], emissions,
                                      jnp.maximum(batch["lengths"], 1))
            tags = tags.astype(jnp.int32)
        else:
            tags = jnp.argmax(emissions, axis=-1).astype(jnp.int32)
        return jnp.where(token_mask(batch["lengths"], tags.shape[1]), tags, 0)

    return predict


def eval_fn(apply: Callable, *, crf: bool = False) -> Callable:
    """The trainer's ``eval_fn(params, batch) -> {"correct", "tokens"}``, per sentence ``[B]``:
    the number of correctly tagged tokens and the length. The ratio of their means over a data
    set is the token accuracy."""
    predict = predict_fn(apply, crf=crf)

    def evaluate(params, batch):
        tags = predict(params, batch)
        mask = token_mask(batch["lengths"], tags.shape[1])
        correct = jnp.sum(mask & (tags == batch["tags"]), axis=-1).astype(jnp.float32)
        tokens = batch["lengths"].astype(jnp.float32)
        return {"correct": correct, "tokens": tokens}

    return evaluate


def pack_buckets(words: list, tags: list | None = None, chars: list | None = None, *,
                 batch_size: int, bucket_lengths: tuple[int, ...], fill: str = "empty",
                 key: jax.Array | None = None, max_chars: int | None = None) -> dict:
    """Sentences grouped into batches of similar length, each batch padded to the smallest
    bucket length that holds it, stored as one example of a trainer dataset (so that
    :func:`dlmodels.train.fit` with ``batch_size=1`` trains on a few fixed shapes, see
    :func:`bucketed`).

    ``words``: N sentences of word ids; ``tags``: N sentences of tag ids (or None);
    ``chars``: N sentences of per-word character-id lists (or None). Sentences are sorted by
    length (stable; ``key`` shuffles first, so equal lengths mix), cut into batches of
    ``batch_size``; a batch whose longest sentence has length ``<= bucket_lengths[i]`` goes to
    the first such bucket. The last, partial batch of each bucket is filled with
    empty sentences (``fill="empty"``: length 0, for evaluation) or with repeats of that
    bucket's sentences (``fill="repeat"``: for training, where an empty sentence would count in
    a per-sentence loss). A sentence longer than ``max(bucket_lengths)`` raises ValueError.

    Returns ``{"words": int32 [M, B * T_max], "tags": int32 [M, B * T_max], "lengths": int32
    [M, B], "bucket": int32 [M], "index": int32 [M, B], ["chars": [M, B * T_max, C]]}``: batch
    m's first ``B * L`` entries of ``words`` are its ``[B, L]`` padded ids (``L =
    bucket_lengths[bucket[m]]``), row-major; ``index``: the sentence in each slot (-1: filler).
    Characters are uint8 when fewer than 256 ids, else int32; ``C`` = the longest word (or
    ``max_chars``; longer words must already be cut).
    """
    import numpy as np

    check_choice("pack_buckets: fill", fill, ("empty", "repeat"))
    check_positive("pack_buckets: batch_size", batch_size)
    bucket_lengths = tuple(sorted(int(L) for L in bucket_lengths))
    if not bucket_lengths or bucket_lengths[0] < 1:
        raise ValueError(f"pack_buckets: bucket_lengths must be positive, got {bucket_lengths}")
    n = len(words)
    if n == 0:
        raise ValueError("pack_buckets: no sentences")
    lengths = np.array([len(s) for s in words], np.int64)
    if lengths.max() > bucket_lengths[-1]:
        raise ValueError(f"pack_buckets: a sentence of {lengths.max()} tokens is longer than the "
                         f"largest bucket {bucket_lengths[-1]}; split or drop it first")
    order = np.arange(n)
    if key is not None:
        order = np.asarray(jax.random.permutation(key, n))
    order = order[np.argsort(lengths[order], kind="stable")]
    B, T_max = batch_size, bucket_lengths[-1]
    batches = []                                              # (bucket, [indices])
    for which, (lo, hi) in enumerate(zip((0,) + bucket_lengths[:-1], bucket_lengths)):
        members = order[(lengths[order] > lo) & (lengths[order] <= hi)] if which else \
            order[lengths[order] <= hi]
        for start in range(0, len(members), B):
            part = list(members[start:start + B])
            if len(part) < B:
                part += ([-1] * (B - len(part)) if fill == "empty"
                         else [members[i % len(members)] for i in range(B - len(part))])
            batches.append((which, part))
    M = len(batches)
    out = {"words": np.zeros((M, B * T_max), np.int32), "lengths": np.zeros((M, B), np.int32),
           "bucket": np.array([b for b, _ in batches], np.int32),
           "index": np.array([p for _, p in batches], np.int32)}
    if tags is not None:
        out["tags"] = np.zeros((M, B * T_max), np.int32)
    if chars is not None:
        C = max_chars or max((len(w) for s in chars for w in s), default=1)
        high = max((max(w, default=0) for s in chars for w in s), default=0)
        out["chars"] = np.zeros((M, B * T_max, C), np.uint8 if high < 256 else np.int32)
    for m, (which, part) in enumerate(batches):
        L = bucket_lengths[which]
        for slot, i in enumerate(part):
            if i < 0:
                continue
            k = len(words[i])
            out["lengths"][m, slot] = k
            at = slot * L
            out["words"][m, at:at + k] = words[i]
            if tags is not None:
                out["tags"][m, at:at + k] = tags[i]
            if chars is not None:
                for t, w in enumerate(chars[i]):
                    if len(w) > out["chars"].shape[-1]:
                        raise ValueError(f"pack_buckets: a word of {len(w)} characters is longer "
                                         f"than max_chars={out['chars'].shape[-1]}")
                    out["chars"][m, at + t, :len(w)] = w
    return out


def unpack_batch(packed_one: dict, batch_size: int, length: int) -> dict:
    """One packed example (no leading axis) as a padded batch of static shape ``[B, length]``:
    ``{"words", "lengths", ["tags"], ["chars"]}``."""
    n = batch_size * length
    batch = {"words": packed_one["words"][:n].reshape(batch_size, length),
             "lengths": packed_one["lengths"]}
    if "tags" in packed_one:
        batch["tags"] = packed_one["tags"][:n].reshape(batch_size, length)
    if "chars" in packed_one:
        chars = packed_one["chars"][:n]
        batch["chars"] = chars.reshape(batch_size, length, chars.shape[-1]).astype(jnp.int32)
    return batch


def bucketed(fn: Callable, bucket_lengths: tuple[int, ...], batch_size: int) -> Callable:
    """``fn(params, batch, *rest)`` on padded batches -> the same function on a trainer batch of
    ONE packed example (:func:`pack_buckets`, leading axis 1), through ``lax.switch`` over the
    buckets: each bucket's shape is compiled once, inside one program, and only the batch's own
    bucket runs. Use with ``TrainConfig(batch_size=1, eval_batch_size=1)``: for a loss,
    ``bucketed(loss_fn(apply), ...)`` returns its ``(loss, aux)``; for an ``eval_fn`` returning
    per-sentence values ``[B]``, their sums over the batch come back with shape ``[1]``.
    """
    bucket_lengths = tuple(sorted(int(L) for L in bucket_lengths))

    def wrapped(params, packed, *rest):
        lead = jax.tree.leaves(packed)[0].shape[0]
        if lead != 1:
            raise ShapeError(f"bucketed: expected one packed batch per trainer batch "
                             f"(batch_size=1), got a leading axis of {lead}")
        one = jax.tree.map(lambda a: a[0], packed)
        branches = [lambda ops, L=L: fn(ops[0], unpack_batch(ops[1], batch_size, L), *ops[2])
                    for L in bucket_lengths]
        return jax.lax.switch(one["bucket"], branches, (params, one, rest))

    return wrapped


def summed(eval_per_sentence: Callable) -> Callable:
    """An ``eval_fn`` returning per-sentence values ``[B]`` -> one returning their sums ``[1]``
    (for :func:`bucketed` evaluation, where one trainer example is a whole batch)."""
    def evaluate(params, batch):
        return jax.tree.map(lambda v: jnp.sum(v)[None], eval_per_sentence(params, batch))

    return evaluate
