"""Non-neural part-of-speech taggers, the baselines of the tagging lab: the most-frequent tag, a
bigram hidden Markov model, and the averaged structured perceptron (Collins 2002); plus token
accuracy and a numpy Viterbi decoder.

Every tagger has ``fit(sentences) -> self``, where a sentence is a list of ``(word, tag)`` pairs,
and ``predict(sentences_of_words) -> list[list[tag]]``. They run in numpy on the CPU: no JAX, so
per-sentence decoding inside the perceptron's training loop has no dispatch overhead.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

import numpy as np

from dlmodels.validation import check_nonnegative, check_positive

__all__ = ["MostFrequentTag", "HMM", "StructuredPerceptron", "accuracy", "viterbi",
           "word_class"]

Sentence = Sequence[tuple[str, str]]


def accuracy(gold_sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]]) -> float:
    """Token accuracy: the fraction of tokens whose predicted tag equals the gold tag, over all
    tokens of all sentences. ``gold_sentences``: lists of ``(word, tag)``; ``predicted``: lists
    of tags, one per word of the same sentences."""
    if len(gold_sentences) != len(predicted):
        raise ValueError(f"accuracy: {len(gold_sentences)} gold sentences but {len(predicted)} "
                         f"predicted")
    right = total = 0
    for i, (gold, pred) in enumerate(zip(gold_sentences, predicted)):
        if len(gold) != len(pred):
            raise ValueError(f"accuracy: sentence {i} has {len(gold)} words but {len(pred)} "
                             f"predicted tags")
        right += sum(g == p for (_, g), p in zip(gold, pred))
        total += len(gold)
    if total == 0:
        raise ValueError("accuracy: no tokens")
    return right / total


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray) -> tuple[np.ndarray, float]:
    """The best tag path of one sentence and its score, by dynamic programming over time
    (vectorised over tags): the path maximising ``start[y_0] + sum_t emissions[t, y_t] +
    sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_{T-1}]`` (the score of :mod:`dlmodels.text.crf`,
    whose ``viterbi`` is the batched JAX version). ``emissions [T, K]`` (T >= 1),
    ``transitions [K, K]`` (from i to j), ``start, end [K]``. Returns ``(path int [T], score)``;
    ties go to the lower tag."""
    T, K = emissions.shape
    psi = np.empty((T, K), dtype=np.intp)
    cols = np.arange(K)
    delta = start + emissions[0]
    for t in range(1, T):
        s = delta[:, None] + transitions                       # [K_prev, K_next]
        psi[t] = s.argmax(axis=0)
        delta = s[psi[t], cols] + emissions[t]
    final = delta + end
    path = np.empty(T, dtype=np.intp)
    path[-1] = final.argmax()
    for t in range(T - 1, 0, -1):
        path[t - 1] = psi[t, path[t]]
    return path, float(final[path[-1]])


def word_class(word: str) -> str:
    """The class of an unknown word, from its spelling: capitalisation, digits, hyphen, and its
    last two letters (lower-cased), e.g. ``"Unfolding" -> "<unk:Aa|ng>"``, ``"3.5" -> "<unk:9>"``.
    Classes are language-independent (no suffix list), so the HMM and the most-frequent-tag
    baseline treat every language the same way."""
    if any(c.isdigit() for c in word):
        return "<unk:9>" if not any(c.isalpha() for c in word) else "<unk:9a>"
    if not any(c.isalpha() for c in word):
        return "<unk:.>"
    if word.isupper():
        case = "AA"
    elif word[0].isupper():
        case = "Aa"
    else:
        case = "a"
    hyphen = "-" if "-" in word else ""
    return f"<unk:{case}{hyphen}|{word[-2:].lower()}>"


def _check_sentences(sentences, what):
    sentences = list(sentences)
    if not sentences:
        raise ValueError(f"{what}: no training sentences")
    for i, s in enumerate(sentences):
        if not len(s):
            raise ValueError(f"{what}: training sentence {i} is empty")
    return sentences


class MostFrequentTag:
    """Each word gets the tag it had most often in training (ties: the tag seen first).

    An unknown word (not in the training data, also not lower-cased) gets the most frequent tag of
    the training words of its spelling class (:func:`word_class`), counted over the words seen
    at most ``rare`` times (rare words are the best model of unseen ones); a class never seen
    gets the most frequent tag overall. A word known only in another case (``"The"`` vs ``"the"``)
    uses the lower-cased word's tag.
    """

    def __init__(self, *, rare: int = 1):
        check_nonnegative("MostFrequentTag: rare", rare)
        self.rare = int(rare)

    def fit(self, sentences: Iterable[Sentence]) -> "MostFrequentTag":
        sentences = _check_sentences(sentences, "MostFrequentTag.fit")
        by_word = collections.defaultdict(collections.Counter)
        by_lower = collections.defaultdict(collections.Counter)
        overall = collections.Counter()
        for s in sentences:
            for w, t in s:
                by_word[w][t] += 1
                by_lower[w.lower()][t] += 1
                overall[t] += 1
        by_class = collections.defaultdict(collections.Counter)
        for w, counts in by_word.items():
            if sum(counts.values()) <= self.rare:
                by_class[word_class(w)].update(counts)
        best = lambda c: c.most_common(1)[0][0]
        self.word_tag_ = {w: best(c) for w, c in by_word.items()}
        self.lower_tag_ = {w: best(c) for w, c in by_lower.items()}
        self.class_tag_ = {k: best(c) for k, c in by_class.items()}
        self.default_tag_ = best(overall)
        return self

    def tag_word(self, word: str) -> str:
        """The tag of one word (see the class docstring)."""
        if word in self.word_tag_:
            return self.word_tag_[word]
        if word.lower() in self.lower_tag_:
            return self.lower_tag_[word.lower()]
        return self.class_tag_.get(word_class(word), self.default_tag_)

    def predict(self, sentences: Iterable[Sequence[str]]) -> list[list[str]]:
        return [[self.tag_word(w) for w in s] for s in sentences]


class HMM:
    """First-order (bigram) hidden Markov model tagger, decoded by Viterbi (Rabiner 1989;
    Jurafsky & Martin, ch. 8):

        p(w_1..w_n, t_1..t_n) = p(t_1 | <s>) prod_i p(w_i | t_i) prod_{i>1} p(t_i | t_{i-1})
                                p(</s> | t_n)

    with add-alpha estimates from the training counts c(.):

        p(t' | t)  = (c(t, t') + alpha) / (c(t) + alpha (K + 1))        t' in the K tags or </s>
        p(t | <s>) = (c(<s>, t) + alpha) / (n_sentences + alpha K)
        p(w | t)   = (c(t, w) + beta) / (c(t) + beta V)

    Unknown words: training words seen at most ``rare`` times are replaced by their spelling class
    (:func:`word_class`) before counting, so the V emission types are the frequent words and the
    classes; a test word not among the frequent words is looked up as its class, and a class
    never seen in training as the pseudo-word ``"<unk>"`` (its probability is ``beta / (c(t) +
    beta V)``, V counting ``"<unk>"``). Words are case-sensitive. Decoding maximises the log of
    the joint probability with :func:`viterbi` (emissions ``log p(w|t)``, transitions ``log
    p(t'|t)``, start ``log p(t|<s>)``, end ``log p(</s>|t)``).

    Fitted attributes: ``tags_`` (K tags, most frequent first), ``vocab_`` (word -> row),
    ``log_start_ [K]``, ``log_trans_ [K, K]``, ``log_end_ [K]``, ``log_emit_ [V, K]``.
    """

    def __init__(self, *, alpha: float = 0.1, beta: float = 0.01, rare: int = 1):
        check_positive("HMM: alpha", alpha)
        check_positive("HMM: beta", beta)
        check_nonnegative("HMM: rare", rare)
        self.alpha, self.beta, self.rare = float(alpha), float(beta), int(rare)

    def _type(self, word: str) -> str:
        if word in self.vocab_:
            return word
        c = word_class(word)
        return c if c in self.vocab_ else "<unk>"

    def fit(self, sentences: Iterable[Sentence]) -> "HMM":
        sentences = _check_sentences(sentences, "HMM.fit")
        word_counts = collections.Counter(w for s in sentences for w, _ in s)
        tag_counts = collections.Counter(t for s in sentences for _, t in s)
        self.tags_ = [t for t, _ in tag_counts.most_common()]
        tag_id = {t: i for i, t in enumerate(self.tags_)}
        frequent = sorted(w for w, c in word_counts.items() if c > self.rare)
        classes = sorted({word_class(w) for w, c in word_counts.items() if c <= self.rare})
        types = frequent + classes + ["<unk>"]
        self.vocab_ = {w: i for i, w in enumerate(types)}
        K, V = len(self.tags_), len(types)
        emit = np.zeros((V, K))
        trans = np.zeros((K, K + 1))                            # last column: </s>
        start = np.zeros(K)
        for s in sentences:
            ys = [tag_id[t] for _, t in s]
            ws = [self.vocab_[w if word_counts[w] > self.rare else word_class(w)] for w, _ in s]
            np.add.at(emit, (ws, ys), 1)
            np.add.at(trans, (ys, ys[1:] + [K]), 1)
            start[ys[0]] += 1
        a, b = self.alpha, self.beta
        tag_total = emit.sum(0)                                  # c(t) [K]
        self.log_emit_ = np.log(emit + b) - np.log(tag_total + b * V)[None, :]
        log_trans = np.log(trans + a) - np.log(trans.sum(1, keepdims=True) + a * (K + 1))
        self.log_trans_, self.log_end_ = log_trans[:, :K], log_trans[:, K]
        self.log_start_ = np.log(start + a) - np.log(len(sentences) + a * K)
        return self

    def emissions(self, words: Sequence[str]) -> np.ndarray:
        """``log p(w_i | t) [n, K]`` of a sentence's words."""
        return self.log_emit_[[self.vocab_[self._type(w)] for w in words]]

    def log_joint(self, words: Sequence[str], tags: Sequence[str]) -> float:
        """``log p(words, tags)`` under the model (the quantity Viterbi maximises)."""
        tag_id = {t: i for i, t in enumerate(self.tags_)}
        ys = [tag_id[t] for t in tags]
        e = self.emissions(words)
        return float(self.log_start_[ys[0]] + e[np.arange(len(ys)), ys].sum()
                     + self.log_trans_[ys[:-1], ys[1:]].sum() + self.log_end_[ys[-1]])

    def predict(self, sentences: Iterable[Sequence[str]]) -> list[list[str]]:
        out = []
        for words in sentences:
            if not len(words):
                out.append([])
                continue
            path, _ = viterbi(self.emissions(words), self.log_trans_, self.log_start_,
                              self.log_end_)
            out.append([self.tags_[i] for i in path])
        return out


def _shape(word: str) -> str:
    """Word shape with runs collapsed: ``"McDonald's" -> "XxXx'x"``, ``"1,200" -> "d,d"``."""
    out = []
    for c in word:
        k = "X" if c.isupper() else "x" if c.isalpha() else "d" if c.isdigit() else c
        if not out or out[-1] != k:
            out.append(k)
    return "".join(out)


def perceptron_features(words: Sequence[str], i: int) -> list[str]:
    """The observation features of position ``i`` (Collins 2002, Ratnaparkhi 1996): bias, the
    word, its lower case, prefixes and suffixes of 1-4 letters, its shape, and the words at
    ``i-2 .. i+2`` (lower-cased, ``<s>`` / ``</s>`` beyond the sentence). Each is conjoined with
    the current tag by the weight matrix; the tag bigram features are separate."""
    w = words[i]
    lw = w.lower()
    at = lambda j: words[j].lower() if 0 <= j < len(words) else ("<s>" if j < 0 else "</s>")
    feats = ["b", "w=" + w, "l=" + lw, "sh=" + _shape(w)]
    feats += [f"p{k}={lw[:k]}" for k in range(1, 5)] + [f"s{k}={lw[-k:]}" for k in range(1, 5)]
    feats += ["w-1=" + at(i - 1), "w+1=" + at(i + 1), "w-2=" + at(i - 2), "w+2=" + at(i + 2),
              "s3w-1=" + lw[-3:] + "|" + at(i - 1)]
    return feats


N_TEMPLATES = len(perceptron_features(["x"], 0))


class StructuredPerceptron:
    """Averaged structured perceptron tagger (Collins 2002) with first-order Viterbi decoding.

    Score of tags y for words x: ``sum_i W[phi(x, i), y_i] + sum_{i>=1} A[y_{i-1}, y_i] +
    s[y_0] + e[y_{n-1}]``, with ``phi(x, i)`` the observation features of
    :func:`perceptron_features` (sparse ids; a feature not seen in training has weight 0).
    Training: ``epochs`` passes over the sentences in an order shuffled by
    ``np.random.default_rng(seed)`` each epoch; for each sentence decode ``z = argmax_y
    score(x, y)`` and, if ``z != y_gold``, add the feature counts of ``y_gold`` and subtract those
    of ``z`` (W, A, s, e). Prediction uses the averaged weights ``(1/N) sum_n w_n``, the weights
    after each of the N = epochs x n_sentences steps, computed with the lazy trick (Daumé 2006):
    keep ``u += (n - 1) delta`` for an update ``delta`` at step n (1-based); then the average is
    ``w_N - u / N``, without touching every weight at every step.

    Fitted attributes: ``tags_`` (K tags), ``features_`` (feature string -> row, row 0 unused for
    unseen features), ``weights_`` (the averaged ``{"W": [F, K], "transitions": [K, K], "start":
    [K], "end": [K]}``), ``n_updates_`` (sentences with a mistake, per epoch).
    """

    def __init__(self, *, epochs: int = 5, seed: int = 0, average: bool = True):
        check_positive("StructuredPerceptron: epochs", epochs)
        self.epochs, self.seed, self.average = int(epochs), int(seed), bool(average)

    def _feature_ids(self, words: Sequence[str]) -> np.ndarray:
        get = self.features_.get
        return np.array([[get(f, 0) for f in perceptron_features(words, i)]
                         for i in range(len(words))], dtype=np.intp)        # [n, F]

    def fit(self, sentences: Iterable[Sentence]) -> "StructuredPerceptron":
        sentences = _check_sentences(sentences, "StructuredPerceptron.fit")
        tag_counts = collections.Counter(t for s in sentences for _, t in s)
        self.tags_ = [t for t, _ in tag_counts.most_common()]
        tag_id = {t: i for i, t in enumerate(self.tags_)}
        self.features_ = {}
        data = []
        for s in sentences:
            words = [w for w, _ in s]
            ids = [[self.features_.setdefault(f, len(self.features_) + 1)
                    for f in perceptron_features(words, i)] for i in range(len(words))]
            data.append((np.array(ids, dtype=np.intp), np.array([tag_id[t] for _, t in s])))
        K, F = len(self.tags_), len(self.features_) + 1
        w = {"W": np.zeros((F, K)), "transitions": np.zeros((K, K)), "start": np.zeros(K),
             "end": np.zeros(K)}
        u = {k: np.zeros_like(v) for k, v in w.items()}
        rng = np.random.default_rng(self.seed)
        step = 0                                  # steps done before the current one (n - 1)
        self.n_updates_ = []
        for _ in range(self.epochs):
            mistakes = 0
            for j in rng.permutation(len(data)):
                feats, gold = data[j]
                emissions = w["W"][feats].sum(axis=1)                       # [n, K]
                pred, _ = viterbi(emissions, w["transitions"], w["start"], w["end"])
                if not np.array_equal(pred, gold):
                    mistakes += 1
                    self._update(w, u, feats, gold, pred, step)
                step += 1
            self.n_updates_.append(mistakes)
        if self.average:
            self.weights_ = {k: w[k] - u[k] / step for k in w}
        else:
            self.weights_ = w
        return self

    @staticmethod
    def _update(w, u, feats, gold, pred, step):
        """``w += phi(x, gold) - phi(x, pred)``, and ``u += step * (the same difference)``."""
        wrong = np.flatnonzero(gold != pred)
        rows = feats[wrong].ravel()                                         # [m * F]
        F = feats.shape[1]
        for sign, y in ((1.0, gold), (-1.0, pred)):
            cols = np.repeat(y[wrong], F)
            np.add.at(w["W"], (rows, cols), sign)
            np.add.at(u["W"], (rows, cols), sign * step)
            np.add.at(w["transitions"], (y[:-1], y[1:]), sign)
            np.add.at(u["transitions"], (y[:-1], y[1:]), sign * step)
            for name, i in (("start", y[0]), ("end", y[-1])):
                w[name][i] += sign
                u[name][i] += sign * step

    def scores(self, words: Sequence[str]) -> np.ndarray:
        """The emission scores ``sum_f W[f, :]`` of each word of a sentence ``[n, K]`` (averaged
        weights)."""
        return self.weights_["W"][self._feature_ids(words)].sum(axis=1)

    def predict(self, sentences: Iterable[Sequence[str]]) -> list[list[str]]:
        w = self.weights_
        out = []
        for words in sentences:
            if not len(words):
                out.append([])
                continue
            path, _ = viterbi(self.scores(words), w["transitions"], w["start"], w["end"])
            out.append([self.tags_[i] for i in path])
        return out
