"""word2vec: skip-gram and CBOW word vectors (Mikolov et al. 2013a, "Efficient Estimation of Word
Representations in Vector Space"; 2013b, "Distributed Representations of Words and Phrases and their
Compositionality"), trained by sparse SGD in large jitted chunks.

Each word w has an input vector ``v_w`` (row w of ``params["input"]`` [V, D], the word vector
that is kept) and output parameters (``params["output"]``). A centre word w_t with context words
w_{t+j}, 0 < |j| <= b_t, where the reduced window b_t is drawn uniformly from 1..window for every
centre (the "dynamic window": nearer words count more), and windows stop at sentence ends:

- **skip-gram** predicts each context word from the centre: ``log p(w_{t+j} | w_t)``;
- **CBOW** predicts the centre from the mean of its context vectors
  ``h_t = (1/c_t) sum_j v_{w_{t+j}}`` (c_t context words). As in word2vec.c and gensim
  (``cbow_mean=1``), every context vector is updated with the whole gradient with respect to
  ``h_t``, c_t times its gradient through the mean.

The prediction ``log p(o | x)`` of output word o from input vector x is either

- **negative sampling** (2013b, eq. 4): ``log s(u_o . x) + sum_{k=1}^{K} log s(-u_{n_k} . x)``,
  ``s`` the logistic sigmoid, ``u`` the output vectors ``params["output"]`` [V, D], the K noise
  words n_k drawn from the unigram distribution raised to ``ns_exponent`` = 3/4; or
- **hierarchical softmax** (2013b, eq. 3; Morin & Bengio 2005): the product over the internal nodes
  n of o's path in a Huffman tree built from the counts of ``log s((1 - 2 code_n) theta_n . x)``
  (gensim's sign convention: bit 0 means "left", target 1), ``theta`` = ``params["output"]``
  [V - 1, D], one row per internal node.

Every occurrence of word w is first dropped with probability ``1 - p_keep(w)`` (subsampling of
frequent words, gensim's / word2vec.c's formula with ``t = sample * total``, the total count of the
vocabulary's words: ``p_keep = (sqrt(f / t) + 1) t / f`` capped at 1); windows are taken over the
kept words. The learning rate decays linearly from ``alpha`` (0.025 skip-gram, 0.05 CBOW) to
``min_alpha`` over all epochs, by the fraction of corpus words done.

**How it runs.** The corpus is one stream of word ids (out-of-vocabulary words removed, as gensim
does); a vectorised numpy pipeline (subsampling, reduced windows, noise words) prepares the next
jitted call while the device runs the current one (JAX dispatches asynchronously). One call runs
``minibatches_per_call`` minibatches of ``batch_words`` centres in a ``lax.scan``; each minibatch
is one sparse SGD step: the rows it touches are gathered, the gradient of the summed loss with
respect to them is taken by ``jax.value_and_grad``, and ``-lr * gradient`` is scatter-added back
(rows that occur several times get the sum). Centres are cut into blocks of ``block`` consecutive
words, and a block's scores are one small matrix product (the centres against the block's window
of ``block + 2 window`` words and its noise words), so the work is dense matmuls rather than
per-pair dot products. Two approximations of the per-pair sequential updates of word2vec.c and
gensim, both unbiased for the same objective:

- the updates of a minibatch are computed from the same parameters and summed (minibatch SGD; the
  sequential updates of the reference implementations see each other);
- negative sampling draws ``shared_negatives`` noise words per block, shared by the block's
  centres, each weighted ``negative / shared_negatives`` (and, for skip-gram, by the centre's
  number of context words c_t, as the input vector is the same for all of its pairs): the expected
  loss is that of K independent noise words per pair (shared negatives: Ji et al. 2016,
  "Parallelizing Word2Vec in Shared and Distributed Memory"). A noise word equal to the positive
  word is not skipped (word2vec.c skips it). The number of noise words each centre is contrasted
  with matters more than their independence: on the Austen + Shakespeare + SOTU corpus, skip-gram
  analogies went from 7.4 % with 8 shared noise words per block of 16 to 10.8 % with 32 (gensim,
  K = 5 per pair: 11.3 %), while 4 or 8 independent noise words per centre did worse than 8
  shared. 32 is the default; larger is closer to gensim and slower.

Skip-gram with negative sampling uses the paper's arrangement (input = centre, output = context);
with hierarchical softmax it uses word2vec.c's (input = context word, output = the centre's path,
so that one path serves all the centre's context words). Over symmetric windows both sum the same
pairs.

Shapes: ``params["input"]`` [V, D]; ``params["output"]`` [V, D] (negative sampling) or
[V - 1, D] (hierarchical softmax); vocabulary ids in decreasing order of count (`build_vocab`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import heapq
import math
import os
import time
from typing import Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.text.vocab import Vocab
from dlmodels.validation import check_choice

MODELS = ("skipgram", "cbow")
LOSSES = ("negative", "hierarchical")


# (model, loss) -> default (batch_words, block), chosen on the Austen + Shakespeare + SOTU corpus:
# hierarchical softmax sums the gradient of every (centre, context) pair of a minibatch into the
# root's row, so it needs small minibatches (diverged: CBOW with 1,024 centres at alpha 0.05,
# skip-gram with 256 at 0.025); skip-gram's hierarchical softmax scores every window slot against
# every path node of the block, so its blocks are small.
KERNEL = {("skipgram", "negative"): (1024, 16), ("cbow", "negative"): (1024, 16),
          ("skipgram", "hierarchical"): (64, 4), ("cbow", "hierarchical"): (128, 16)}


@dataclasses.dataclass(frozen=True)
class Word2VecConfig:
    """Hyper-parameters of `train` (gensim's names and defaults where they exist)."""

    model: str = "skipgram"          # "skipgram" (sg=1) or "cbow" (sg=0)
    loss: str = "negative"           # "negative" sampling or "hierarchical" softmax (hs=1)
    vector_size: int = 100           # D
    window: int = 5                  # largest distance to a context word
    negative: int = 5                # K noise words per (centre, context) pair
    ns_exponent: float = 0.75        # noise distribution: unigram counts ** ns_exponent
    sample: float = 1e-3             # subsampling threshold (0: no subsampling)
    min_count: int = 5               # words seen fewer times are dropped from the vocabulary
    alpha: float | None = None       # initial learning rate; None: 0.025 skip-gram, 0.05 CBOW
    min_alpha: float = 1e-4          # learning rate at the end of the last epoch
    epochs: int = 5                  # passes over the corpus
    seed: int = 0                    # initial vectors, subsampling, windows and noise words
    batch_words: int | None = None   # centres per minibatch (one sparse SGD step); None: KERNEL
    block: int | None = None         # centres per block of the banded matmul; None: KERNEL
    shared_negatives: int | None = None  # noise words per block, shared by its centres; None: 32
    minibatches_per_call: int | None = None  # minibatches per jitted call; None: 65,536 centres

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        check_choice("loss", self.loss, LOSSES)
        batch, block = KERNEL[(self.model, self.loss)]
        for name, default in (("batch_words", batch), ("block", block), ("shared_negatives", 32)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.minibatches_per_call is None and isinstance(self.batch_words, int):
            object.__setattr__(self, "minibatches_per_call", max(1, 65_536 // self.batch_words))
        for name in ("vector_size", "window", "min_count", "epochs", "batch_words", "block",
                     "shared_negatives", "minibatches_per_call"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Word2VecConfig.{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.negative, (int, np.integer)) or self.negative < 1:
            raise ValueError(f"Word2VecConfig.negative must be an integer >= 1, got "
                             f"{self.negative!r}")
        if self.batch_words % self.block:
            raise ValueError(f"Word2VecConfig.batch_words ({self.batch_words}) must be a multiple "
                             f"of block ({self.block})")
        if not (math.isfinite(self.sample) and self.sample >= 0):
            raise ValueError(f"Word2VecConfig.sample must be >= 0, got {self.sample!r}")
        if not math.isfinite(self.ns_exponent):
            raise ValueError(f"Word2VecConfig.ns_exponent must be finite, got {self.ns_exponent!r}")
        for name in ("alpha", "min_alpha"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"Word2VecConfig.{name} must be >= 0, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"Word2VecConfig.seed must be an integer, got {self.seed!r}")

    @property
    def start_alpha(self) -> float:
        """``alpha``, or gensim's default for the model."""
        if self.alpha is not None:
            return float(self.alpha)
        return 0.025 if self.model == "skipgram" else 0.05


# ---------------------------------------------------------------- vocabulary and corpus


def _check_sentences(sentences) -> None:
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError("sentences must be a sequence of sentences, each a list of str tokens, "
                        f"got {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if isinstance(s, str) or not isinstance(s, Sequence):
            raise TypeError(f"sentence {i} must be a list of str tokens, got {type(s).__name__}")


def build_vocab(sentences: Sequence[Sequence[str]], min_count: int = 5) -> Vocab:
    """The words seen at least ``min_count`` times, most frequent first (ties in order of first
    occurrence), with their counts (``vocab.counts``); no special tokens."""
    _check_sentences(sentences)
    counts = collections.Counter()
    for s in sentences:
        counts.update(s)
    vocab = Vocab.from_counts(counts, min_count=min_count, specials=())
    if len(vocab) < 2:
        raise ValueError(f"the corpus has {len(vocab)} word(s) seen at least min_count="
                         f"{min_count} times; word2vec needs at least 2")
    return vocab


class Corpus(NamedTuple):
    """A corpus as one stream: ``ids`` [N] int32 (vocabulary ids, out-of-vocabulary words
    removed) and ``sentence`` [N] int32 (the sentence each word belongs to, non-decreasing)."""

    ids: np.ndarray
    sentence: np.ndarray


def encode(sentences: Sequence[Sequence[str]], vocab: Vocab) -> Corpus:
    """The in-vocabulary words of ``sentences`` as a `Corpus` stream."""
    _check_sentences(sentences)
    index = {w: i for i, w in enumerate(vocab.tokens)}
    ids, sent = [], []
    for j, s in enumerate(sentences):
        row = [index[w] for w in s if w in index]
        ids.extend(row)
        sent.extend([j] * len(row))
    if not ids:
        raise ValueError("no word of the corpus is in the vocabulary")
    return Corpus(np.asarray(ids, np.int32), np.asarray(sent, np.int32))


def _counts(vocab: Vocab) -> np.ndarray:
    c = vocab.counts
    return np.asarray([c[w] for w in vocab.tokens], np.float64)


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """P(keep an occurrence of word w) [V]: ``min(1, (sqrt(f_w / t) + 1) t / f_w)`` with
    ``t = sample * sum(counts)`` (word2vec.c, gensim); all ones when ``sample == 0``."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts <= 0).any():
        raise ValueError("counts must be a 1-D array of positive counts")
    if sample == 0:
        return np.ones_like(counts)
    t = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / t) + 1.0) * t / counts)


def noise_distribution(counts, exponent: float = 0.75) -> np.ndarray:
    """The noise words' distribution [V]: ``counts ** exponent``, normalised."""
    p = np.asarray(counts, np.float64) ** exponent
    return p / p.sum()


def huffman(counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Huffman tree of ``counts`` [V] (V >= 2): ``(points [V, Lmax] int32, codes [V, Lmax]
    int8, lengths [V] int32)``. Row w lists, from the root down, the internal nodes on the path to
    leaf w (ids 0..V-2, the root is V-2) and the bit taken at each (0: the node's smaller-count
    child, 1: the other, as word2vec.c); entries past ``lengths[w]`` are 0.

    Construction (Huffman 1952): repeatedly merge the two nodes of smallest count (ties: the
    earlier-created node first) into internal node V + k."""
    counts = np.asarray(counts, np.float64)
    v = counts.shape[0]
    if counts.ndim != 1 or v < 2:
        raise ValueError(f"huffman needs a 1-D array of at least 2 counts, got shape {counts.shape}")
    heap = [(float(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * v - 1, np.int64)
    bit = np.zeros(2 * v - 1, np.int8)
    for k in range(v - 1):
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a], parent[b] = v + k, v + k
        bit[b] = 1
        heapq.heappush(heap, (c1 + c2, v + k))
    root = 2 * v - 2
    # walk every leaf up to the root at once; paths are collected leaf-first, then reversed
    node = np.arange(v)
    up_points, up_codes = [], []
    alive = node != root
    while alive.any():
        up_codes.append(np.where(alive, bit[node], 0))
        up_points.append(np.where(alive, parent[node] - v, -1))
        node = np.where(alive, parent[node], node)
        alive = node != root
    lengths = np.sum(np.stack(up_points) >= 0, axis=0).astype(np.int32)
    lmax = int(lengths.max())
    points = np.zeros((v, lmax), np.int32)
    codes = np.zeros((v, lmax), np.int8)
    up_p, up_c = np.stack(up_points, 1), np.stack(up_codes, 1)
    for w in range(v):
        n = lengths[w]
        points[w, :n] = up_p[w, :n][::-1]
        codes[w, :n] = up_c[w, :n][::-1]
    return points, codes, lengths


# ---------------------------------------------------------------- the jitted minibatch steps


def _window_mask(sen, red, *, window: int, block: int):
    """Context masks of a minibatch, block by block: ``m [nb, block, block + 2 window]``, true where
    window slot j is a context word of centre i (0 < |j - window - i| <= red_i, same sentence, not
    padding); and the window slots' stream positions ``widx [nb, block + 2 window]`` (static)."""
    length = red.shape[0]
    nb, wd = length // block, block + 2 * window
    widx = np.arange(nb)[:, None] * block + np.arange(wd)[None, :]
    off = (np.arange(wd)[None, :] - window - np.arange(block)[:, None])[None]   # [1, block, wd]
    sw = sen[widx]                                                               # [nb, wd]
    sc = sen[window:window + length].reshape(nb, block)
    rb = red.reshape(nb, block)
    m = ((off != 0) & (np.abs(off) <= rb[:, :, None])
         & (sw[:, None, :] == sc[:, :, None]) & (sc[:, :, None] >= 0))
    return m, widx


def _sgd(params, rows_in, g_in, rows_out, g_out, lr):
    d = params["input"].shape[1]
    return {"input": params["input"].at[rows_in.reshape(-1)].add(-lr * g_in.reshape(-1, d)),
            "output": params["output"].at[rows_out.reshape(-1)].add(-lr * g_out.reshape(-1, d))}


def _blocks(params, mb, window, block):
    """What every kernel needs: the context mask ``mf [nb, block, wd]`` (float), the window
    slots' word ids ``[nb, wd]`` and the centres' word ids ``[nb, block]``."""
    tok, red = mb["tok"], mb["red"]
    length = red.shape[0]
    m, widx = _window_mask(mb["sen"], red, window=window, block=block)
    centres = tok[window:window + length].reshape(length // block, block)
    return m.astype(params["input"].dtype), tok[widx], centres


def _context_mean(mf):
    """CBOW's averaging: ``(avg [nb, block, wd], valid [nb, block])``, rows of ``avg`` summing
    to 1 over the context slots, ``valid`` 0 for a centre without context words."""
    count = mf.sum(-1)
    return mf / jnp.maximum(count, 1.0)[..., None], (count > 0).astype(mf.dtype)


def _skipgram_negative(params, mb, *, window, block, negative):
    mf, window_rows, centres = _blocks(params, mb, window, block)
    neg, wd = mb["neg"], window_rows.shape[1]
    weight = mf.sum(-1) * (negative / neg.shape[1])                              # [nb, block]
    out_rows = jnp.concatenate([window_rows, neg], axis=1)                       # [nb, wd + Kb]
    x, z = params["input"][centres], params["output"][out_rows]

    def loss(x, z):
        s = jnp.einsum("bid,bjd->bij", x, z)
        return -(jnp.sum(mf * jax.nn.log_sigmoid(s[..., :wd]))
                 + jnp.sum(weight[..., None] * jax.nn.log_sigmoid(-s[..., wd:])))

    value, (gx, gz) = jax.value_and_grad(loss, (0, 1))(x, z)
    return _sgd(params, centres, gx, out_rows, gz, mb["lr"]), (value, jnp.sum(mf))


def _cbow_negative(params, mb, *, window, block, negative):
    mf, in_rows, centres = _blocks(params, mb, window, block)
    avg, valid = _context_mean(mf)
    neg = mb["neg"]
    out_rows = jnp.concatenate([centres, neg], axis=1)                           # [nb, block + Kb]
    xw, z = params["input"][in_rows], params["output"][out_rows]
    h = jnp.einsum("bij,bjd->bid", avg, xw)                                      # [nb, block, D]
    scale = negative / neg.shape[1]

    def loss(h, z):
        pos = jnp.sum(h * z[:, :block], axis=-1)                                 # [nb, block]
        s = jnp.einsum("bid,bjd->bij", h, z[:, block:])                          # [nb, block, Kb]
        return -(jnp.sum(valid * jax.nn.log_sigmoid(pos))
                 + scale * jnp.sum(valid[..., None] * jax.nn.log_sigmoid(-s)))

    value, (gh, gz) = jax.value_and_grad(loss, (0, 1))(h, z)
    gx = jnp.einsum("bij,bid->bjd", mf, gh)      # each context word gets the whole dL/dh
    return _sgd(params, in_rows, gx, out_rows, gz, mb["lr"]), (value, jnp.sum(valid))


def _path(tree, centres):
    points, codes, lengths = tree
    lmax = points.shape[1]
    mask = jnp.arange(lmax).reshape((1,) * centres.ndim + (lmax,)) < lengths[centres][..., None]
    sign = 1.0 - 2.0 * codes[centres].astype(jnp.float32)
    return points[centres], sign, mask


def _skipgram_hierarchical(params, mb, tree, *, window, block):
    mf, in_rows, centres = _blocks(params, mb, window, block)
    nb = centres.shape[0]
    nodes, sign, pmask = _path(tree, centres)                    # [nb, block, Lmax] each
    lmax = nodes.shape[-1]
    # pair (context slot j, node l of centre i): weight m[i, j] * pmask[i, l]
    w = (mf[:, :, :, None] * pmask[:, :, None, :].astype(mf.dtype))              # [nb,block,wd,L]
    out_rows = nodes.reshape(nb, block * lmax)
    xw, z = params["input"][in_rows], params["output"][out_rows]

    def loss(xw, z):
        s = jnp.einsum("bjd,bnd->bjn", xw, z).reshape(nb, -1, block, lmax)       # [nb,wd,block,L]
        s = jnp.transpose(s, (0, 2, 1, 3))
        return -jnp.sum(w * jax.nn.log_sigmoid(sign[:, :, None, :] * s))

    value, (gx, gz) = jax.value_and_grad(loss, (0, 1))(xw, z)
    return _sgd(params, in_rows, gx, out_rows, gz, mb["lr"]), (value, jnp.sum(mf))


def _cbow_hierarchical(params, mb, tree, *, window, block):
    mf, in_rows, centres = _blocks(params, mb, window, block)
    avg, valid = _context_mean(mf)
    nodes, sign, pmask = _path(tree, centres)
    w = valid[..., None] * pmask.astype(mf.dtype)                                # [nb, block, L]
    xw, z = params["input"][in_rows], params["output"][nodes]                    # z [nb,block,L,D]
    h = jnp.einsum("bij,bjd->bid", avg, xw)

    def loss(h, z):
        s = jnp.einsum("bid,bild->bil", h, z)
        return -jnp.sum(w * jax.nn.log_sigmoid(sign * s))

    value, (gh, gz) = jax.value_and_grad(loss, (0, 1))(h, z)
    gx = jnp.einsum("bij,bid->bjd", mf, gh)      # each context word gets the whole dL/dh
    return _sgd(params, in_rows, gx, nodes, gz, mb["lr"]), (value, jnp.sum(valid))


@functools.partial(jax.jit, static_argnames=("model", "loss", "window", "block", "negative"),
                   donate_argnums=(0,))
def _run(params, minibatches, tree, *, model, loss, window, block, negative):
    """``minibatches``: dict of arrays with a leading axis of minibatches; returns the params
    after one sparse SGD step per minibatch, and the summed losses and pair counts [M]."""
    if loss == "negative":
        kernel = _skipgram_negative if model == "skipgram" else _cbow_negative
        step = functools.partial(kernel, window=window, block=block, negative=negative)
    else:
        kernel = _skipgram_hierarchical if model == "skipgram" else _cbow_hierarchical
        step = lambda p, mb: kernel(p, mb, tree, window=window, block=block)  # noqa: E731
    return jax.lax.scan(step, params, minibatches)


# ---------------------------------------------------------------- the host pipeline


def _epoch_calls(corpus: Corpus, epoch: int, config: Word2VecConfig, tables: dict,
                 rng: np.random.Generator):
    """The jitted calls of one epoch: yields ``(minibatches, raw_words, kept_words)``: numpy
    arrays with a leading axis ``minibatches_per_call`` (the last call padded with sentence id
    -1), the corpus words the call covers, and how many of them subsampling kept."""
    n = corpus.ids.shape[0]
    w, length, calls = config.window, config.batch_words, config.minibatches_per_call
    keep = rng.random(n) < tables["keep"][corpus.ids]
    raw_pos = np.flatnonzero(keep)
    ids, sent = corpus.ids[keep], corpus.sentence[keep]
    kept = ids.shape[0]
    per_call = calls * length
    n_calls = max(1, -(-kept // per_call))
    total = n_calls * per_call
    tok = np.zeros(total + 2 * w, np.int32)
    sen = np.full(total + 2 * w, -1, np.int32)
    tok[w:w + kept], sen[w:w + kept] = ids, sent
    # progress (for the learning rate) at each minibatch start: raw corpus words done
    starts = np.arange(n_calls * calls) * length
    done = np.where(starts < kept, raw_pos[np.minimum(starts, max(kept - 1, 0))], n) \
        if kept else np.full(starts.shape, n)
    progress = (epoch * n + done) / (config.epochs * n)
    lr = config.start_alpha - (config.start_alpha - config.min_alpha) * progress
    lr = np.maximum(lr, config.min_alpha).astype(np.float32)
    span = np.arange(length + 2 * w)
    nb = length // config.block
    for c in range(n_calls):
        s = starts[c * calls:(c + 1) * calls]
        mb = {"tok": tok[s[:, None] + span], "sen": sen[s[:, None] + span],
              "red": rng.integers(1, w + 1, size=(calls, length), dtype=np.int32),
              "lr": lr[c * calls:(c + 1) * calls]}
        if config.loss == "negative":
            u = rng.random((calls, nb, config.shared_negatives))
            mb["neg"] = np.minimum(np.searchsorted(tables["noise_cdf"], u, side="right"),
                                   tables["V"] - 1).astype(np.int32)
        lo, hi = c * per_call, min((c + 1) * per_call, kept)
        words = (raw_pos[hi - 1] + 1 if hi > lo else 0) - (raw_pos[lo - 1] + 1 if lo > 0 else 0)
        if c == n_calls - 1:
            words = n - (raw_pos[lo - 1] + 1 if lo > 0 else 0)
        yield mb, int(words), max(0, hi - lo)


# ---------------------------------------------------------------- training


class Word2VecResult(NamedTuple):
    """What `train` returns: ``vectors`` (a `dlmodels.text.vectors.WordVectors` of the input
    vectors), ``params`` (``{"input", "output"}`` as numpy arrays), ``vocab`` and ``stats``
    (``train_seconds``, ``raw_words``, ``effective_words``, ``words_per_second``, ``loss`` per
    epoch: the mean per (centre, context) pair for skip-gram, per centre for CBOW)."""

    vectors: object
    params: dict
    vocab: Vocab
    stats: dict


def init_params(key: jax.Array, vocab_size: int, config: Word2VecConfig) -> dict:
    """Input vectors uniform in [-0.5, 0.5) / D (word2vec.c, gensim), output parameters zero
    ([V, D] for negative sampling, [V - 1, D] for hierarchical softmax)."""
    d = config.vector_size
    rows = vocab_size if config.loss == "negative" else vocab_size - 1
    return {"input": (jax.random.uniform(key, (vocab_size, d)) - 0.5) / d,
            "output": jnp.zeros((rows, d), jnp.float32)}


def _tables(vocab: Vocab, config: Word2VecConfig) -> tuple[dict, tuple]:
    counts = _counts(vocab)
    tables = {"keep": keep_probabilities(counts, config.sample), "V": len(vocab)}
    if config.loss == "negative":
        cdf = np.cumsum(noise_distribution(counts, config.ns_exponent))
        tables["noise_cdf"] = cdf / cdf[-1]
        tree = ()
    else:
        points, codes, lengths = huffman(counts)
        tree = (jnp.asarray(points), jnp.asarray(codes), jnp.asarray(lengths))
    return tables, tree


def train(sentences: Sequence[Sequence[str]] | Corpus, config: Word2VecConfig = Word2VecConfig(),
          *, vocab: Vocab | None = None, run_dir: str | os.PathLike | None = None,
          resume: bool = False, progress: bool = False) -> Word2VecResult:
    """Train word vectors on ``sentences`` (lists of str tokens; or a `Corpus` encoded with
    ``vocab``) with ``config`` (module doc for the algorithm).

    ``vocab``: the vocabulary (default `build_vocab(sentences, config.min_count)`). ``run_dir``:
    the params are checkpointed there (orbax, `dlmodels.train.checkpoint.Checkpointer`) after
    every epoch; ``resume=True`` continues from the newest one, giving bitwise the params of an
    uninterrupted run (the random stream of each epoch depends only on the seed and the epoch).
    """
    from dlmodels.text.vectors import WordVectors
    from dlmodels.train.checkpoint import Checkpointer, CheckpointError
    from dlmodels.train.state import TrainState

    if not isinstance(config, Word2VecConfig):
        raise TypeError(f"config must be a Word2VecConfig, got {type(config).__name__}")
    if isinstance(sentences, Corpus):
        if vocab is None:
            raise ValueError("a Corpus needs the vocab it was encoded with")
        corpus = sentences
    else:
        vocab = vocab if vocab is not None else build_vocab(sentences, config.min_count)
        corpus = encode(sentences, vocab)
    if corpus.ids.size and (corpus.ids.min() < 0 or corpus.ids.max() >= len(vocab)):
        raise ValueError(f"corpus ids must lie in 0..{len(vocab) - 1}")
    tables, tree = _tables(vocab, config)
    key = jax.random.PRNGKey(config.seed)
    params = init_params(jax.random.fold_in(key, 0), len(vocab), config)
    start_epoch, losses, seconds, effective = 0, [], 0.0, 0
    checkpointer = None
    if run_dir is not None:
        checkpointer = Checkpointer(os.path.join(os.fspath(run_dir), "checkpoints"), keep=2)
        if checkpointer.steps():
            if not resume:
                raise CheckpointError(f"{checkpointer.directory} already holds checkpoints "
                                      f"{checkpointer.steps()}; pass resume=True to continue, or "
                                      "use a new run directory")
            target = TrainState(params, (), jnp.asarray(0), key)
            state, saved = checkpointer.restore(target)
            if saved.get("config") != dataclasses.asdict(config):
                raise CheckpointError(f"the checkpoint in {checkpointer.directory} was written "
                                      f"with another config: {saved.get('config')}")
            params, start_epoch = state.params, int(state.step)
            losses, seconds = list(saved["loss"]), float(saved["train_seconds"])
            effective = int(saved["effective_words"])
    elif resume:
        raise ValueError("resume=True needs a run_dir")

    static = dict(model=config.model, loss=config.loss, window=config.window,
                  block=config.block, negative=config.negative)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=config.epochs * corpus.ids.shape[0], initial=start_epoch
                   * corpus.ids.shape[0], unit="word", unit_scale=True, dynamic_ncols=True)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, epoch + 1)))
        rng = np.random.default_rng(seed.astype(np.uint64).tolist())
        sums, pairs = [], []
        for mb, words, kept in _epoch_calls(corpus, epoch, config, tables, rng):
            effective += kept
            params, (value, count) = _run(params, mb, tree, **static)
            sums.append(value)
            pairs.append(count)
            if bar is not None:
                bar.update(words)
        total_pairs = float(np.sum([np.sum(np.asarray(p)) for p in pairs]))
        losses.append(float(np.sum([np.sum(np.asarray(s)) for s in sums])) / max(total_pairs, 1))
        jax.block_until_ready(params)
        seconds += time.perf_counter() - t0
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"word2vec: the loss became {losses[-1]} in epoch {epoch}; "
                                     "lower alpha")
        if checkpointer is not None:
            checkpointer.save(TrainState(params, (), jnp.asarray(epoch + 1), key), config={
                "config": dataclasses.asdict(config), "loss": losses, "train_seconds": seconds,
                "effective_words": effective})
    if bar is not None:
        bar.close()
    if checkpointer is not None:
        checkpointer.close()
    params = {k: np.asarray(v) for k, v in params.items()}
    raw = int(corpus.ids.shape[0]) * config.epochs
    stats = {"train_seconds": seconds, "raw_words": raw, "effective_words": effective,
             "words_per_second": raw / max(seconds, 1e-9), "loss": losses}
    vectors = WordVectors(vocab.tokens, params["input"], counts=_counts(vocab).astype(np.int64))
    return Word2VecResult(vectors, params, vocab, stats)
