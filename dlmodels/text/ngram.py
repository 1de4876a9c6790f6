"""Interpolated Kneser-Ney n-gram language model (Kneser & Ney 1995; Chen & Goodman 1999), the
count-based baseline reported beside neural language models; numpy, vectorised over tokens.

For a word w after the context h = (w_{i-n+1} .. w_{i-1}) of an order-n model, with discount D:

    p_n(w | h) = max(c(h w) - D, 0) / c(h .)  +  D N1+(h .) / c(h .) * p_{n-1}(w | h')
    p_k(w | h) = max(N1+(. h w) - D, 0) / N1+(. h .)  +  D N+(h) / N1+(. h .) * p_{k-1}(w | h')
    p_1(w)     = N1+(. w) / N1+(. .)

(h' drops the oldest word of h). The highest order uses raw counts c; every lower order uses
continuation counts N1+(. g) = the number of distinct words seen before the n-gram g, and
N+(h) = the number of distinct words w with N1+(. h w) > 0. A context never seen (c(h .) = 0 or
N1+(. h .) = 0) gives all its weight to the lower order. A context longer than n - 1 keeps its last
n - 1 words; a shorter one starts the recursion at its own length (with continuation counts), as
NLTK's ``KneserNeyInterpolated`` does.

Two kinds of training data:

- **Sentences** (a list of lists of tokens): each sentence padded with n - 1 ``"<s>"`` on the
  left and n - 1 ``"</s>"`` on the right (one ``"</s>"`` for n = 1), and all its k-grams
  (k = 1..n) counted, exactly as ``nltk.lm.preprocessing.padded_everygram_pipeline``; no n-gram crosses a sentence boundary.
  Scoring sentences predicts each word and one ``"</s>"``, from the contexts of the sentence
  left-padded with n - 1 ``"<s>"``.
- **A token stream** (a list of tokens, a ``str`` of characters, a 1-D integer array): one long
  sequence, no padding and no boundaries; the context just runs on. Scoring a stream predicts
  every token from up to n - 1 tokens before it in the same stream (fewer for the first n - 2).

Unknown tokens: a token not seen in training is replaced by ``unk`` (``"<unk>"``; pass tokens
already mapped by the vocabulary of the neural model being compared, so both see the same
``<unk>``); if ``unk`` was not seen in training either, its probability is 0 (``logprob`` is
``-inf``, ``cross_entropy`` is ``inf``).

Difference from NLTK (3.x): NLTK's lower-order weight uses the number of distinct words after h in
the raw counts instead of N+(h). The two differ only for the context of n - 2 ``"<s>"`` (its
raw follower ``"<s>"`` is never preceded by anything), where NLTK's distribution sums to more than
1; ours sums to 1 for every context. Everywhere else the probabilities are NLTK's (tested).
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, Sequence

import numpy as np

from dlmodels.validation import check_in_range, check_positive

__all__ = ["KneserNey"]


def _is_stream(data) -> bool:
    if isinstance(data, (str, np.ndarray)):
        return True
    return len(data) > 0 and not isinstance(data[0], (list, tuple, np.ndarray))


class KneserNey:
    """Interpolated Kneser-Ney model of order ``order`` >= 1 with absolute discount ``discount``
    in (0, 1) (the module docstring has the equations); ``order = 1`` is the maximum-likelihood
    unigram model.

    ``modified=True``: modified Kneser-Ney (Chen & Goodman 1999, sec. 3.5), the "KN-5" of SRILM
    that language-model papers report: at each level k >= 2 the discount depends on the count,
    ``D(1) = D1, D(2) = D2, D(c >= 3) = D3+``, estimated from that level's count-of-counts n_r,
    ``Y = n1 / (n1 + 2 n2)``, ``D_r = r - (r + 1) Y n_{r+1} / n_r``, and the lower-order weight
    of a context is ``(D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h .)`` (N_r: the number of
    words with count exactly r after h). ``discount`` is then used only at a level where some
    n_r (r <= 4) is 0. Not what NLTK computes (it has no modified variant).

    ``fit(sentences or stream) -> self``; ``logprob(word, context=()) -> float`` (natural log);
    ``logprobs(data) -> [N]`` the log-probability of every predicted token;
    ``cross_entropy(data) -> float`` nats per predicted token; ``perplexity(data)``.
    Fitted attributes: ``vocab_`` (the tokens seen, in order of first appearance; ``"<s>"`` and
    ``"</s>"`` among them after fitting on sentences), ``n_tokens_``, ``discounts_`` (level k ->
    ``(D1, D2, D3+)``, all equal to ``discount`` unless ``modified``).
    """

    def __init__(self, order: int, discount: float = 0.75, *, modified: bool = False,
                 unk: Hashable = "<unk>"):
        check_positive("KneserNey: order", order)
        if int(order) != order:
            raise ValueError(f"KneserNey: order must be an integer, got {order!r}")
        check_in_range("KneserNey: discount", discount, 0.0, 1.0, closed_high=False)
        if discount == 0:
            raise ValueError("KneserNey: discount must be > 0")
        self.order, self.discount, self.unk = int(order), float(discount), unk
        self.modified = bool(modified)

    # --- data layout -------------------------------------------------------------------------
    def _layout(self, data, *, training: bool, for_scoring: bool):
        """Token ids [N] (-1: unknown), each position's sequence start [N], and the positions
        to predict (scoring only)."""
        n = self.order
        if not isinstance(data, (str, np.ndarray, Sequence)):
            data = list(data)
        if _is_stream(data):
            seqs = [list(data)]
            pads = ([], [])
        else:
            seqs = [list(s) for s in data]
            pads = (["<s>"] * (n - 1), ["</s>"] * (1 if for_scoring else max(n - 1, 1)))
        if training:
            index: dict = {}
            for s in seqs:
                for t in pads[0] + s + pads[1]:
                    index.setdefault(t, len(index))
            self.vocab_ = list(index)
            self._index = index
        index = self._index
        unk = index.get(self.unk, -1)
        ids, starts, predict = [], [], []
        for s in seqs:
            full = pads[0] + s + pads[1]
            first = len(ids)
            starts.extend([first] * len(full))
            predict.extend([False] * len(pads[0]) + [True] * (len(full) - len(pads[0])))
            ids.extend(index.get(t, unk) for t in full)
        if not ids:
            raise ValueError("KneserNey: no tokens")
        return (np.asarray(ids, dtype=np.int64), np.asarray(starts, dtype=np.int64),
                np.asarray(predict, dtype=bool))

    @staticmethod
    def _extend(prev_ids, ids, starts, k):
        """Keys of the k-grams starting at each position: prev (k-1)-gram id * V + next token,
        -1 where the k-gram leaves its sequence or holds an unknown token."""
        N = len(ids)
        key = np.full(N, -1, dtype=np.int64)
        s = np.arange(N - k + 1)
        last = s + k - 1
        ok = (prev_ids[s] >= 0) & (ids[last] >= 0) & (starts[last] == starts[s])
        return key, s[ok], last[ok]

    # --- training ----------------------------------------------------------------------------
    def fit(self, data) -> "KneserNey":
        """Count the k-grams (k = 1..n) of ``data`` (sentences or a token stream, see the module
        docstring) and precompute every level's numerators and context totals."""
        ids, starts, _ = self._layout(data, training=True, for_scoring=False)
        n, V = self.order, len(self.vocab_)
        self.n_tokens_ = len(ids)
        self._keys = [None, np.arange(V, dtype=np.int64)]      # level k: sorted k-gram keys
        raw = [None, np.bincount(ids, minlength=V).astype(np.float64)]
        first = [None, None]                                    # first position of each k-gram
        grams = ids                                             # ids of the k-grams by position
        positions = [None, grams]
        for k in range(2, n + 1):
            key, s, last = self._extend(grams, ids, starts, k)
            key[s] = grams[s] * V + ids[last]
            valid = key >= 0
            uniq, where, inverse, counts = np.unique(key[valid], return_index=True,
                                                     return_inverse=True, return_counts=True)
            grams = np.full(len(ids), -1, dtype=np.int64)
            grams[np.flatnonzero(valid)] = inverse.reshape(-1)
            self._keys.append(uniq)
            raw.append(counts.astype(np.float64))
            first.append(np.flatnonzero(valid)[where])
            positions.append(grams)
        # numerators: raw counts at the top level, continuation counts N1+(. g) below it
        self._num = [None] * (n + 1)
        self._num[n] = raw[n]
        for k in range(1, n):
            suffix = positions[k][first[k + 1] + 1]              # the k-gram after the 1st word
            self._num[k] = np.bincount(suffix, minlength=len(self._keys[k])).astype(np.float64)
        if n == 1:
            self._p1 = raw[1] / raw[1].sum()
        else:
            self._p1 = self._num[1] / self._num[1].sum()
        self._total, self._gamma = [None, None], [None, None]
        self._discount = [None, None]                   # level k: D(c) for c = 0, 1, 2, >= 3
        self.discounts_ = {}
        for k in range(2, n + 1):
            prefix = self._keys[k] // V
            size = len(self._keys[k - 1])
            num = self._num[k]
            d = self._discounts(num)
            self.discounts_[k] = d
            self._discount.append(np.array((0.0,) + d))
            self._total.append(np.bincount(prefix, weights=num, minlength=size))
            self._gamma.append(sum(
                d_r * np.bincount(prefix, weights=which, minlength=size)
                for d_r, which in zip(d, ((num == 1), (num == 2), (num >= 3)))))
        return self

    def _discounts(self, num: np.ndarray) -> tuple[float, float, float]:
        """(D1, D2, D3+) of one level (Chen & Goodman 1999, eq. 26), or ``discount`` three times."""
        D = self.discount
        if not self.modified:
            return (D, D, D)
        n_r = [np.count_nonzero(num == r) for r in range(1, 5)]
        if min(n_r) == 0:
            return (D, D, D)
        Y = n_r[0] / (n_r[0] + 2 * n_r[1])
        return tuple(float(np.clip(r - (r + 1) * Y * n_r[r] / n_r[r - 1], 0.0, r))
                     for r in (1, 2, 3))

    # --- scoring -----------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "_p1"):
            raise RuntimeError("KneserNey: call fit first")

    def _score(self, ids, starts, predict) -> np.ndarray:
        """log p of the tokens at the positions flagged in ``predict``, [n_predicted]."""
        n, V = self.order, len(self.vocab_)
        target = np.flatnonzero(predict)
        w = ids[target]
        with np.errstate(divide="ignore"):
            p = np.where(w >= 0, self._p1[np.maximum(w, 0)], 0.0)
        grams = ids
        for k in range(2, n + 1):
            key, s, last = self._extend(grams, ids, starts, k)
            key[s] = grams[s] * V + ids[last]
            table = self._keys[k]
            pos = np.searchsorted(table, key)
            found = (key >= 0) & (pos < len(table))
            found[found] = table[pos[found]] == key[found]
            context = grams                                    # (k-1)-gram ids by start
            grams = np.where(found, pos, -1)
            start = target - k + 1
            usable = start >= starts[target]
            start = np.maximum(start, 0)
            h = np.where(usable, context[start], -1)
            total = np.where(h >= 0, self._total[k][np.maximum(h, 0)], 0.0)
            seen = total > 0
            g = grams[start]
            num = np.where(usable & (g >= 0), self._num[k][np.maximum(g, 0)], 0.0)
            safe = np.where(seen, total, 1.0)
            D = self._discount[k][np.minimum(num, 3).astype(np.int64)]
            alpha = np.maximum(num - D, 0.0) / safe
            gamma = self._gamma[k][np.maximum(h, 0)] / safe
            p = np.where(seen, alpha + gamma * p, p)
        with np.errstate(divide="ignore"):
            return np.log(p)

    def logprobs(self, data) -> np.ndarray:
        """Natural-log probability of every predicted token of ``data`` (sentences: each word and
        one ``"</s>"`` per sentence; a stream: every token), in order, [n_predicted]."""
        self._check_fitted()
        return self._score(*self._layout(data, training=False, for_scoring=True))

    def logprob(self, word: Hashable, context: Iterable[Hashable] = ()) -> float:
        """``log p(word | context)`` (natural log); the context's last n - 1 tokens are used."""
        self._check_fitted()
        context = list(context)[-(self.order - 1):] if self.order > 1 else []
        unk = self._index.get(self.unk, -1)
        ids = np.asarray([self._index.get(t, unk) for t in context + [word]], dtype=np.int64)
        predict = np.zeros(len(ids), dtype=bool)
        predict[-1] = True
        return float(self._score(ids, np.zeros(len(ids), dtype=np.int64), predict)[0])

    def cross_entropy(self, data) -> float:
        """Mean negative log-probability of the predicted tokens of ``data``, in nats per token
        (divide by ln 2 for bits); ``inf`` if a token has probability 0."""
        return float(-np.mean(self.logprobs(data)))

    def perplexity(self, data) -> float:
        """``exp(cross_entropy(data))``."""
        return math.exp(self.cross_entropy(data))
