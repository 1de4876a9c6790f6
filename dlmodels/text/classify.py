"""Text classification: an RNN that reads the whole text and classifies from its final state
(unidirectional, or the lab's bidirectional version from ``[forward h_T ; backward h_1]``), and
the bag-of-words logistic regression every paper reports beside it.

RNN classifier, for a text ``w_1..w_L`` (``L`` its own length, padding after it ignored):

    x_t = D(E[w_t])                                  (embedding [V, E], embedding dropout D)
    h_t = cell(x_t, h_{t-1}),  t = 1..L                (forward, from h_0 = 0)
    g_t = cell'(x_t, g_{t+1}), t = L..1                (backward, from g_{L+1} = 0)
    logits = D(h_L) W + b              (unidirectional)
    logits = D([h_L ; g_1]) W + b      (bidirectional; Schuster & Paliwal 1997)

Both directions run through :func:`dlmodels.rnn.unroll` with ``lengths``: the forward carry is
frozen after step ``L - 1`` and the backward pass starts at each text's last real token
(``reverse=True``), so no padding reaches either state.

Bag of words (Wang & Manning 2012 report it as the baseline of NBSVM): a text is the vector of
its word counts (or 0/1 presence, ``binary``), optionally with word-bigram columns, and
``p(y | x) = softmax(x W + b)``; trained with an L2 penalty on ``W`` through
:func:`dlmodels.train.fit`. With two classes and penalty ``l2 * ||W||^2`` on the mean loss it is
scikit-learn's binary ``LogisticRegression(C)`` for ``l2 = 1 / (C N)``, its coefficients
``W[:, 1] - W[:, 0]``.
"""

from __future__ import annotations

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import rnn
from dlmodels.model import Model
from dlmodels.nn import dense
from dlmodels.nn.dropout import dropout as _dropout
from dlmodels.rnn.cell import output_of
from dlmodels.text.embedding import embedding
from dlmodels.validation import ShapeError, check_choice, check_in_range, check_positive, concrete

CELLS = {"lstm": rnn.lstm, "gru": rnn.gru, "elman": rnn.elman}


def _check_batch(ids, lengths, what: str) -> None:
    """``ids`` integer ``[B, T]``, ``lengths`` integer ``[B]`` in ``1..T`` (values checked when
    known, i.e. outside jit/vmap)."""
    if jnp.ndim(ids) != 2:
        raise ShapeError(f"{what}: expected token ids [B, T], got shape {jnp.shape(ids)}")
    if not jnp.issubdtype(jnp.result_type(ids), jnp.integer):
        raise TypeError(f"{what}: token ids must be integers, got {jnp.result_type(ids)}")
    B, T = jnp.shape(ids)
    if jnp.shape(lengths) != (B,):
        raise ShapeError(f"{what}: expected lengths [{B}] for ids [{B}, {T}], got shape "
                         f"{jnp.shape(lengths)}")
    if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
        raise TypeError(f"{what}: lengths must be integers, got {jnp.result_type(lengths)}")
    a = concrete(lengths)
    if a is not None and a.size and (a.min() < 1 or a.max() > T):
        bad = int(a.min()) if a.min() < 1 else int(a.max())
        raise ValueError(f"{what}: length {bad} is outside 1..{T} (every text needs at least "
                         f"one token and at most T = {T})")


def rnn_classifier(vocab_size: int, n_classes: int, *, cell: str = "lstm", embed_dim: int = 100,
                   hidden: int = 100, bidirectional: bool = False, dropout: float = 0.0,
                   embed_dropout: float = 0.0, embed_init=None) -> Model:
    """An RNN text classifier (module docstring for the equations).

    ``apply(params, ids int [B, T], lengths int [B], *, key=None, train=False) -> logits [B,
    n_classes]``: text b is ``ids[b, :lengths[b]]``, whatever follows is padding and has no
    effect. ``init(key, dtype=float32) -> params``.

    - ``cell``: "lstm" (forget bias +1), "gru" or "elman" (tanh), from :mod:`dlmodels.rnn`;
    - ``bidirectional``: a second cell reads each text backwards from its last real token; the
      head sees ``[h_L ; g_1]`` (``2 * hidden``);
    - ``dropout``: on the head's input; ``embed_dropout``: on the embedded inputs (both inverted
      dropout, training only, drawn from ``key``); ``embed_init``: the embedding table's
      initialiser (``None``: N(0, 1), as :func:`dlmodels.text.embedding.embedding`).

    Params: ``{"embedding": {"table" [V, E]}, "forward": cell params, "backward": (bidirectional
    only), "head": {"w" [H or 2H, K], "b" [K]}}``. Ids outside ``0..V-1``, lengths outside
    ``1..T`` (when their values are known) raise ValueError; wrong shapes raise
    :class:`~dlmodels.validation.ShapeError`.
    """
    check_choice("cell", cell, tuple(CELLS))
    for name, value in (("vocab_size", vocab_size), ("n_classes", n_classes),
                        ("embed_dim", embed_dim), ("hidden", hidden)):
        check_positive(name, value)
    check_in_range("dropout", dropout, 0.0, 1.0, closed_high=False)
    check_in_range("embed_dropout", embed_dropout, 0.0, 1.0, closed_high=False)
    rnn_cell = CELLS[cell](hidden)
    embed = embedding(vocab_size, embed_dim, w_init=embed_init)
    head = dense(hidden * (2 if bidirectional else 1), n_classes)

    def init(key, dtype=jnp.float32):
        k_e, k_f, k_b, k_h = jax.random.split(key, 4)
        params = {"embedding": embed.init(k_e, dtype),
                  "forward": rnn_cell.init(k_f, embed_dim, dtype)}
        if bidirectional:
            params["backward"] = rnn_cell.init(k_b, embed_dim, dtype)
        params["head"] = head.init(k_h, dtype)
        return params

    def apply(params, ids, lengths, *, key=None, train=False):
        _check_batch(ids, lengths, "rnn_classifier")
        lengths = jnp.asarray(lengths)
        k_e, k_h = jax.random.split(key) if key is not None else (None, None)
        x = _dropout(embed.apply(params["embedding"], ids), embed_dropout, key=k_e,
                     train=train)                                       # [B, T, E]
        _, carry = rnn.unroll(rnn_cell, params["forward"], x, lengths=lengths)
        feats = output_of(rnn_cell, params["forward"], carry)           # h_L [B, H]
        if bidirectional:
            _, carry = rnn.unroll(rnn_cell, params["backward"], x, lengths=lengths, reverse=True)
            feats = jnp.concatenate(
                [feats, output_of(rnn_cell, params["backward"], carry)], -1)  # [h_L ; g_1]
        feats = _dropout(feats, dropout, key=k_h, train=train)
        return head.apply(params["head"], feats)

    return Model(init, apply)


# ---------------------------------------------------------------------------------------------
# Bag of words.

def bigram_vocabulary(ids, lengths, vocab_size: int, *, min_count: int = 1) -> np.ndarray:
    """The word bigrams seen at least ``min_count`` times in ``ids [N, T]`` (within each text's
    length), as sorted codes ``a * V + b`` (int64) for the pair ``(a, b)``: the bigram columns of
    :func:`bag_of_words`. Build it on training texts only."""
    ids, lengths = _as_numpy_batch(ids, lengths, vocab_size, "bigram_vocabulary")
    check_positive("min_count", min_count)
    counts = Counter(_bigram_codes(ids, lengths, vocab_size).tolist())
    return np.asarray(sorted(c for c, n in counts.items() if n >= min_count), dtype=np.int64)


def bag_of_words(ids, lengths, vocab_size: int, *, binary: bool = False,
                 bigrams: np.ndarray | None = None, dtype=np.float32) -> np.ndarray:
    """Bag-of-words vectors ``[N, V + n_bigrams]`` of the texts ``ids [N, T]`` (text n is
    ``ids[n, :lengths[n]]``): column ``v`` counts word id ``v``, and with ``bigrams`` (codes from
    :func:`bigram_vocabulary`) column ``V + j`` counts the pair ``bigrams[j]`` (pairs not in
    it are dropped; NBSVM's "bi" features, Wang & Manning 2012). ``binary``: 1 where the count
    is > 0. Numpy, for data preparation (a dense matrix: keep ``V`` modest)."""
    ids, lengths = _as_numpy_batch(ids, lengths, vocab_size, "bag_of_words")
    N, T = ids.shape
    n_bi = 0 if bigrams is None else len(bigrams)
    F = vocab_size + n_bi
    valid = np.arange(T)[None, :] < lengths[:, None]
    rows = np.broadcast_to(np.arange(N, dtype=np.int64)[:, None], (N, T))
    cells = [rows[valid] * F + ids[valid]]                     # flat (row, column) of each token
    if n_bi:
        bigrams = np.asarray(bigrams, dtype=np.int64)
        if bigrams.ndim != 1 or np.any(np.diff(bigrams) <= 0):
            raise ValueError("bag_of_words: bigrams must be sorted unique codes a * V + b "
                             "(from bigram_vocabulary)")
        pair_valid = np.arange(T - 1)[None, :] < (lengths - 1)[:, None]
        codes = ids[:, :-1].astype(np.int64) * vocab_size + ids[:, 1:]
        pos = np.minimum(np.searchsorted(bigrams, codes), n_bi - 1)
        known = pair_valid & (bigrams[pos] == codes)
        cells.append(rows[:, :-1][known] * F + vocab_size + pos[known])
    flat, counts = np.unique(np.concatenate(cells), return_counts=True)
    out = np.zeros((N, F), dtype=dtype)
    out.reshape(-1)[flat] = 1 if binary else counts
    return out


def _bigram_codes(ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
    pair_valid = np.arange(ids.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
    codes = ids[:, :-1].astype(np.int64) * vocab_size + ids[:, 1:]
    return codes[pair_valid]


def _as_numpy_batch(ids, lengths, vocab_size: int, what: str):
    check_positive("vocab_size", vocab_size)
    _check_batch(np.asarray(ids), np.asarray(lengths), what)
    ids, lengths = np.asarray(ids), np.asarray(lengths)
    valid = np.arange(ids.shape[1])[None, :] < lengths[:, None]
    if valid.any() and (ids[valid].min() < 0 or ids[valid].max() >= vocab_size):
        raise ValueError(f"{what}: token ids must lie in 0..{vocab_size - 1}, got "
                         f"{ids[valid].min()}..{ids[valid].max()}")
    return ids, lengths


def bow_logistic(n_features: int, n_classes: int) -> Model:
    """Multinomial logistic regression on bag-of-words vectors: ``apply(params, x [B, F], *,
    key=None, train=False) -> logits x W + b [B, n_classes]``. ``n_features``: the vocabulary
    size (plus the bigram columns of :func:`bag_of_words`). Params ``{"w" [F, K], "b" [K]}``,
    initialised to zero (the objective is convex). Train it with
    ``dlmodels.train.objectives.classifier(model.apply, l2=...)``: the penalty covers ``w``,
    not ``b``."""
    check_positive("n_features", n_features)
    check_positive("n_classes", n_classes)
    layer = dense(n_features, n_classes, w_init="zeros")

    def init(key, dtype=jnp.float32):
        return layer.init(key, dtype)

    def apply(params, x, *, key=None, train=False):
        del key, train
        if jnp.ndim(x) != 2 or jnp.shape(x)[1] != n_features:
            raise ShapeError(f"bow_logistic: expected bag-of-words vectors [B, {n_features}], "
                             f"got shape {jnp.shape(x)}")
        return layer.apply(params, x)

    return Model(init, apply)
