"""Word vectors: nearest neighbours, analogies (3CosAdd, 3CosMul), the standard evaluations and
the word2vec file format, in numpy.

`WordVectors` holds one vector per word, the words in the order given (most frequent first, as
word2vec sorts them, so ``restrict_vocab=N`` means "the N most frequent words"). Its methods give
the same numbers as gensim 4.4's ``KeyedVectors`` on the same vectors (the tests check this when
gensim is installed; gensim is never needed here):

* cosine similarity ``cos(u, v) = u.v / (|u| |v|)``;
* 3CosAdd (Mikolov et al. 2013, "Linguistic regularities in continuous space word
  representations"): ``argmax_w cos(w, mean(b^, c^, -a^))`` with ``x^ = x / |x|``, the question
  words excluded (`WordVectors.most_similar`);
* 3CosMul (Levy & Goldberg 2014, "Linguistic regularities in sparse and explicit word
  representations", eq. 4, cosines shifted to [0, 1] as in their footnote 7):
  ``argmax_w prod_p s(w, p) / (prod_n s(w, n) + 1e-6)`` with ``s = (1 + cos) / 2``
  (`WordVectors.most_similar_cosmul`);
* the Google analogy test (Mikolov et al. 2013, "Efficient estimation of word representations in
  vector space") restricted to the most frequent words, per section and in total
  (`WordVectors.evaluate_word_analogies`), and Pearson / Spearman correlation with human
  similarity scores, e.g. WordSim-353 and SimLex-999 (`WordVectors.evaluate_word_pairs`);
* the text and binary formats of the original C word2vec tool (`WordVectors.save_word2vec_format`,
  `WordVectors.load_word2vec_format`);
* `pca_2d`: the first two principal components, for plots.
"""

from __future__ import annotations

import math
import os
from numbers import Integral
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dlmodels.data import word_similarity

_COSMUL_EPSILON = 1e-6  # Levy & Goldberg's epsilon, as gensim
_ANALOGY_TOPN = 5  # gensim looks at the 5 best answers for one that is not a (case variant of a) question word
_EVAL_CHUNK = 512  # questions scored per matrix product in evaluate_word_analogies

Analogies = Mapping[str, Sequence[Sequence[str]]]
Pairs = Sequence[tuple[str, str, float]]


class WordVectors:
    """One vector per word, ``words[i] <-> vectors[i]``.

    ``WordVectors(words, vectors, counts=None)``: ``words`` distinct non-empty strings (most
    frequent first if ``restrict_vocab`` is to mean "most frequent"), ``vectors [V, D]`` finite
    floats (kept as float32, as word2vec and gensim do), ``counts`` optional corpus counts ``[V]``.
    ``len(wv)``, ``word in wv``, ``wv.index(word)``, ``wv[word] -> [D]``, ``wv.unit [V, D]`` (rows
    divided by their norms; an all-zero row stays zero).
    """

    def __init__(self, words: Sequence[str], vectors, counts: Sequence[int] | None = None):
        words = list(words)
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise TypeError(f"WordVectors: words must be str, got {w!r} at position {i}")
            if not w:
                raise ValueError(f"WordVectors: the word at position {i} is empty")
        vectors = np.asarray(vectors)
        if not np.issubdtype(vectors.dtype, np.floating):
            raise TypeError(f"WordVectors: vectors must be floating point, got dtype {vectors.dtype}")
        if vectors.ndim != 2:
            raise ValueError(f"WordVectors: vectors must be [V, D], got shape {vectors.shape}")
        if vectors.shape[0] != len(words):
            raise ValueError(f"WordVectors: {len(words)} words but {vectors.shape[0]} vectors "
                             f"(shape {vectors.shape})")
        if vectors.shape[1] < 1:
            raise ValueError(f"WordVectors: vectors must have at least one dimension, got shape "
                             f"{vectors.shape}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(f"WordVectors: non-finite values in the vectors of "
                             f"{[words[i] for i in rows[:5]]} ({len(rows)} rows)")
        ids = {}
        for i, w in enumerate(words):
            if w in ids:
                raise ValueError(f"WordVectors: the word {w!r} appears twice (positions {ids[w]} "
                                 f"and {i})")
            ids[w] = i
        if counts is not None:
            counts = np.asarray(counts)
            if counts.shape != (len(words),):
                raise ValueError(f"WordVectors: counts must have shape ({len(words)},), got "
                                 f"{counts.shape}")
            if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
                raise ValueError("WordVectors: counts must be integers >= 0")
            counts = counts.astype(np.int64)
        self._words = tuple(words)
        self._ids = ids
        self._vectors = vectors
        self._vectors.setflags(write=False)
        self._counts = counts
        self._norms = np.linalg.norm(vectors, axis=1)  # [V]
        safe = np.where(self._norms > 0, self._norms, 1.0).astype(np.float32)
        self._unit = vectors / safe[:, None]  # [V, D]
        self._unit.setflags(write=False)

    # -- the basics -------------------------------------------------------------------------------
    @property
    def words(self) -> tuple[str, ...]:
        """The words, in order ``[V]``."""
        return self._words

    @property
    def vectors(self) -> np.ndarray:
        """The vectors ``[V, D]`` float32 (read-only)."""
        return self._vectors

    @property
    def counts(self) -> np.ndarray | None:
        """The corpus counts ``[V]`` int64, or None when not known (e.g. loaded from a file)."""
        return self._counts

    @property
    def vector_size(self) -> int:
        """D."""
        return self._vectors.shape[1]

    @property
    def unit(self) -> np.ndarray:
        """The vectors divided by their L2 norms ``[V, D]`` float32 (all-zero rows stay zero)."""
        return self._unit

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word) -> bool:
        return word in self._ids

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, {self.vector_size} dimensions)"

    def index(self, word: str) -> int:
        """The row of ``word``; KeyError naming the word when it is not in the vocabulary."""
        try:
            return self._ids[word]
        except (KeyError, TypeError):
            raise KeyError(f"word {word!r} is not in the vocabulary ({len(self)} words)") from None

    def __getitem__(self, word: str) -> np.ndarray:
        """The vector of ``word`` ``[D]`` (read-only)."""
        return self._vectors[self.index(word)]

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity ``cos(v1, v2) = v1.v2 / (|v1| |v2|)`` of two words."""
        return float(self._unit[self.index(w1)] @ self._unit[self.index(w2)])

    # -- nearest neighbours and analogies ---------------------------------------------------------
    def _terms(self, terms, what: str) -> tuple[list[np.ndarray], list[int]]:
        """(query vectors, their word rows) for words (unit vectors) or raw ``[D]`` arrays."""
        if terms is None:
            return [], []
        if isinstance(terms, (str, np.ndarray)):
            terms = [terms]
        vectors, rows = [], []
        for t in terms:
            if isinstance(t, str):
                i = self.index(t)
                vectors.append(self._unit[i])
                rows.append(i)
            else:
                v = np.asarray(t)
                if v.shape != (self.vector_size,) or not np.issubdtype(v.dtype, np.number):
                    raise ValueError(f"{what}: each term is a word or a vector of shape "
                                     f"({self.vector_size},), got {t!r:.60}")
                if not np.isfinite(v).all():
                    raise ValueError(f"{what}: a query vector has non-finite values")
                vectors.append(v.astype(np.float32))
        return vectors, rows

    def _restrict(self, restrict_vocab, what: str) -> int:
        if restrict_vocab is None:
            return len(self)
        if isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, Integral) \
                or restrict_vocab < 1:
            raise ValueError(f"{what}: restrict_vocab must be None or an integer >= 1, got "
                             f"{restrict_vocab!r}")
        return min(int(restrict_vocab), len(self))

    def _top(self, scores: np.ndarray, exclude: Sequence[int], topn) -> list[tuple[str, float]]:
        if topn is None:
            return scores
        if isinstance(topn, bool) or not isinstance(topn, Integral) or topn < 1:
            raise ValueError(f"topn must be None or an integer >= 1, got {topn!r}")
        scores = scores.copy()
        scores[[i for i in exclude if i < len(scores)]] = -np.inf
        k = min(int(topn), len(scores))
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self._words[i], float(scores[i])) for i in best if np.isfinite(scores[i])]

    def most_similar(self, positive=(), negative=(), topn: int | None = 10,
                     restrict_vocab: int | None = None):
        """The ``topn`` words nearest to ``mean(p^..., -n^...)`` by cosine (3CosAdd), best first.

        ``x^ = x / |x|`` for words (a raw ``[D]`` array is used as given); the mean is
        ``(sum_p x^_p - sum_n x^_n) / (P + N)`` and the score of a word ``w`` is ``cos(w, mean)``
        (Mikolov et al. 2013; gensim's ``most_similar``). Only the first ``restrict_vocab`` words
        are candidates; the query words are never returned. ``positive`` / ``negative``: a word
        or a sequence of words. Returns ``[(word, cosine)]``, or with ``topn=None`` every
        candidate's cosine ``[restrict_vocab]``. KeyError for an unknown word, ValueError when
        there is no query word at all.
        """
        pos, pos_rows = self._terms(positive, "most_similar")
        neg, neg_rows = self._terms(negative, "most_similar")
        if not pos and not neg:
            raise ValueError("most_similar: give at least one positive or negative word")
        r = self._restrict(restrict_vocab, "most_similar")
        mean = np.zeros(self.vector_size, np.float32)
        for v in pos:
            mean += v
        for v in neg:
            mean -= v
        mean /= len(pos) + len(neg)
        norm = np.linalg.norm(mean)
        if norm > 0:
            mean = (mean / norm).astype(np.float32)
        scores = self._cosines(mean[None, :], r)[0]  # [r]
        return self._top(scores, pos_rows + neg_rows, topn)

    def most_similar_cosmul(self, positive=(), negative=(), topn: int | None = 10,
                            restrict_vocab: int | None = None):
        """The ``topn`` words best by 3CosMul (Levy & Goldberg 2014, eq. 4), best first.

        ``score(w) = prod_p s(w, p) / (prod_n s(w, n) + 1e-6)``, ``s(w, x) = (1 + cos(w, x)) / 2``
        (their footnote 7; gensim's ``most_similar_cosmul``). Only the first ``restrict_vocab``
        words are candidates (gensim 4.4 accepts ``restrict_vocab`` here but ignores it); the
        query words are never returned. Returns ``[(word, score)]``, or with ``topn=None`` every
        candidate's score ``[restrict_vocab]``. ValueError without a positive word.
        """
        pos, pos_rows = self._terms(positive, "most_similar_cosmul")
        neg, neg_rows = self._terms(negative, "most_similar_cosmul")
        if not pos:
            raise ValueError("most_similar_cosmul: give at least one positive word")
        r = self._restrict(restrict_vocab, "most_similar_cosmul")
        shifted = (1 + self._cosines(np.stack(pos + neg), r)) / 2  # [P + N, r]
        scores = np.prod(shifted[:len(pos)], axis=0) / (np.prod(shifted[len(pos):], axis=0)
                                                        + _COSMUL_EPSILON)
        return self._top(scores, pos_rows + neg_rows, topn)

    def _cosines(self, queries: np.ndarray, r: int) -> np.ndarray:
        """``[Q, r]``: row q holds ``v_w . queries[q] / |v_w|`` for the first r words (the cosine
        when the query has unit length; computed as gensim does, vectors over their norms)."""
        norms = np.where(self._norms[:r] > 0, self._norms[:r], np.inf).astype(np.float32)
        return (queries.astype(np.float32) @ self._vectors[:r].T) / norms[None, :]

    # -- evaluation -------------------------------------------------------------------------------
    def _ok_vocab(self, restrict_vocab, case_insensitive: bool, what: str):
        """(the first r words' lookup key -> row (the first, most frequent, case variant wins),
        the canonical row of each of the first r words ``[r]``, r)."""
        r = self._restrict(restrict_vocab, what)
        fold = str.upper if case_insensitive else (lambda w: w)
        ok: dict[str, int] = {}
        for i in range(r):
            ok.setdefault(fold(self._words[i]), i)
        canon = np.array([ok[fold(self._words[i])] for i in range(r)], dtype=np.int64)
        return ok, canon, r, fold

    def evaluate_word_analogies(self, analogies, restrict_vocab: int | None = 30000,
                                case_insensitive: bool = True, dummy4unknown: bool = False,
                                method: str = "add"):
        """Accuracy on an analogy test set "a : b :: c : d", per section and in total.

        For each question the answer is the best word by 3CosAdd (``method="add"``: the cosine to
        ``mean(b^, c^, -a^)``) or 3CosMul (``method="mul"``) among the first ``restrict_vocab``
        words, skipping a, b, c and their case variants; the question counts as correct when the
        answer is d. As gensim's ``evaluate_word_analogies`` (Mikolov's ``compute-accuracy``):
        with ``case_insensitive`` every word is upper-cased and looked up as the most frequent of
        its case variants among the first ``restrict_vocab`` words; a question with a word outside
        them is skipped, or counted wrong with ``dummy4unknown``; among the 5 best candidates
        (question words excluded) the first that is not a case variant of a question word is the
        answer. Scored as batched matrix products, not a loop of `most_similar` calls.

        ``analogies``: a path to a file in the questions-words.txt format (``": section"`` lines,
        then 4 words a line) or ``{section: [(a, b, c, d), ...]}`` (as
        ``dlmodels.data.word_similarity.analogies()``); a malformed file raises
        ``DataError`` naming the line. Returns ``(score, sections)``: ``score``
        the total accuracy (0.0 when nothing was scored), ``sections`` a list of
        ``{"section": name, "correct": [(a, b, c, d), ...], "incorrect": [...]}`` in file order,
        then ``"Total accuracy"`` with every section's questions (gensim's structure; with
        ``case_insensitive`` the tuples are upper-cased, as gensim's).
        """
        if method not in ("add", "mul"):
            raise ValueError(f"evaluate_word_analogies: method must be 'add' (3CosAdd) or 'mul' "
                             f"(3CosMul), got {method!r}")
        parsed = _analogy_sections(analogies)
        ok, canon, r, fold = self._ok_vocab(restrict_vocab, case_insensitive,
                                            "evaluate_word_analogies")
        questions = []  # (section number, folded words, rows or None)
        for s, (_, items) in enumerate(parsed):
            for q in items:
                words = tuple(fold(w) for w in q)
                rows = tuple(ok.get(w) for w in words)
                questions.append((s, words, None if None in rows else rows))
        if not questions:
            raise ValueError("evaluate_word_analogies: no questions")
        scored = [i for i, q in enumerate(questions) if q[2] is not None]
        correct = np.zeros(len(questions), dtype=bool)
        if scored:
            abcd = np.array([questions[i][2] for i in scored], dtype=np.int64)  # [Q, 4]
            correct[scored] = self._answer_analogies(abcd, canon, r, method)
        sections = [{"section": name, "correct": [], "incorrect": []} for name, _ in parsed]
        for i, (s, words, rows) in enumerate(questions):
            if rows is None and not dummy4unknown:
                continue
            sections[s]["correct" if correct[i] else "incorrect"].append(words)
        total = {"section": "Total accuracy",
                 "correct": [q for s in sections for q in s["correct"]],
                 "incorrect": [q for s in sections for q in s["incorrect"]]}
        sections.append(total)
        n = len(total["correct"]) + len(total["incorrect"])
        return (len(total["correct"]) / n if n else 0.0), sections

    def _answer_analogies(self, abcd: np.ndarray, canon: np.ndarray, r: int,
                          method: str) -> np.ndarray:
        """Whether each question ``abcd [Q, 4]`` (canonical rows < r) is answered right ``[Q]``.

        gensim's rule: among the 5 best candidates (a, b, c excluded), the first that is not a
        case variant of a, b or c; when all 5 are such variants, the 5th. Here: the best candidate
        with a, b, c and their variants masked (one argmax), unless 5 or more variants score above
        it, then the 5th best variant. Scores only need gensim's order, not its values: 3CosAdd
        ranks by ``(b^ + c^ - a^) . w^``, 3CosMul by ``(1 + cos_b)(1 + cos_c) / (1 + cos_a + 2e-6)``.
        """
        unit = self._unit[:r]  # [r, D]
        variants = [[] for _ in range(r)]  # canonical row -> its other case variants
        for i in np.flatnonzero(canon != np.arange(r)):
            variants[canon[i]].append(i)
        out = np.zeros(len(abcd), dtype=bool)
        for start in range(0, len(abcd), _EVAL_CHUNK):
            a, b, c, d = abcd[start:start + _EVAL_CHUNK].T  # [q] each
            q = len(a)
            if method == "add":
                scores = (unit[b] + unit[c] - unit[a]) @ unit.T  # [q, r]
            else:
                scores = unit[b] @ unit.T  # [q, r], then in place: the buffers are large
                scores += 1
                other = unit[c] @ unit.T
                other += 1
                scores *= other
                np.matmul(unit[a], unit.T, out=other)
                other += np.float32(1 + 2 * _COSMUL_EPSILON)
                scores /= other
            rows = np.arange(q)
            for x in (a, b, c):
                scores[rows, x] = -np.inf
            var = [variants[a[i]] + variants[b[i]] + variants[c[i]] for i in range(q)]
            width = max(map(len, var), default=0)
            var_idx = np.array([v + [a[i]] * (width - len(v)) for i, v in enumerate(var)],
                               dtype=np.int64).reshape(q, width)  # padded with a (masked)
            var_scores = scores[rows[:, None], var_idx]  # [q, width]
            scores[rows[:, None], var_idx] = -np.inf
            best = np.argmax(scores, axis=1)  # [q]
            best_score = scores[rows, best]
            above = (var_scores > best_score[:, None]).sum(axis=1)
            answer = np.where(np.isfinite(best_score) & (above < _ANALOGY_TOPN), canon[best], -1)
            for i in np.flatnonzero(answer < 0):  # rare: case variants of question words on top
                ranked = np.sort(var_scores[i][np.isfinite(var_scores[i])])[::-1]
                if len(ranked):
                    kth = ranked[min(_ANALOGY_TOPN, len(ranked)) - 1]
                    answer[i] = canon[var_idx[i][var_scores[i] == kth][0]]
            out[start:start + q] = answer == d
        return out

    def evaluate_word_pairs(self, pairs, restrict_vocab: int | None = 300000,
                            case_insensitive: bool = True, dummy4unknown: bool = False):
        """Correlation of the cosine similarities with human similarity scores.

        ``pairs``: a path to a tab-separated file ``word1 word2 score`` (``#`` comment lines, as
        wordsim353.tsv and simlex999.txt) or ``[(word1, word2, score), ...]`` (as
        ``dlmodels.data.word_similarity.pairs(name)``). As gensim's ``evaluate_word_pairs``:
        words are looked up among the first ``restrict_vocab`` words (upper-cased, the most
        frequent case variant, with ``case_insensitive``); a pair with an unknown word is skipped,
        or with ``dummy4unknown`` given similarity 0. Returns ``(pearson, spearman, oov_ratio)``:
        ``pearson = (r, p)`` and ``spearman = (rho, p)`` with two-sided p-values (Student's t with
        n - 2 degrees of freedom, as scipy.stats), ``oov_ratio`` the percentage of pairs with an
        unknown word (of all pairs; with ``dummy4unknown`` of the pairs kept, as gensim).
        """
        items = _pair_list(pairs)
        ok, _, _, fold = self._ok_vocab(restrict_vocab, case_insensitive, "evaluate_word_pairs")
        gold, model, oov = [], [], 0
        for w1, w2, score in items:
            i, j = ok.get(fold(w1)), ok.get(fold(w2))
            if i is None or j is None:
                oov += 1
                if dummy4unknown:
                    gold.append(score)
                    model.append(0.0)
                continue
            gold.append(score)
            model.append(float(self._unit[i] @ self._unit[j]))
        if not gold:
            raise ValueError(f"evaluate_word_pairs: none of the {len(items)} pairs has both words "
                             f"among the first {restrict_vocab} words")
        gold, model = np.asarray(gold, np.float64), np.asarray(model, np.float64)
        pearson = _correlation_test(gold, model)
        spearman = _correlation_test(_average_ranks(gold), _average_ranks(model))
        oov_ratio = 100.0 * oov / (len(gold) if dummy4unknown else len(gold) + oov)
        return pearson, spearman, oov_ratio

    # -- files ------------------------------------------------------------------------------------
    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False) -> None:
        """Write the word2vec format of the C tool (gensim reads it with
        ``KeyedVectors.load_word2vec_format``): a header line ``"V D"``, then one entry a word in
        order: text ``"word x_1 ... x_D\\n"`` (each float32 in its shortest round-tripping
        decimal form), or binary ``"word "`` + D little-endian float32 + ``"\\n"``. UTF-8 words.
        ValueError for a word with white space (the format cannot hold it)."""
        for w in self._words:
            if len(w.split()) != 1 or w != w.strip():
                raise ValueError(f"save_word2vec_format: the word {w!r} contains white space, "
                                 "which the word2vec format cannot hold")
        path = Path(path)
        with open(path, "wb") as f:
            f.write(f"{len(self)} {self.vector_size}\n".encode("utf8"))
            if binary:
                data = self._vectors.astype("<f4")
                for w, row in zip(self._words, data):
                    f.write(w.encode("utf8") + b" " + row.tobytes() + b"\n")
            else:
                for w, row in zip(self._words, self._vectors):
                    f.write(_text_line(w, row).encode("utf8"))

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike, binary: bool = False) -> "WordVectors":
        """Read a file in the word2vec format (written by `save_word2vec_format`, gensim or the C
        tool; text or binary, the binary entries with or without the C tool's trailing newline).
        Raises ValueError naming the line (text) or entry (binary) of a malformed file: a bad
        header, a wrong number of values, a value that is not a number or not finite, a repeated
        word, too few or too many entries."""
        path = Path(path)
        with open(path, "rb") as f:
            data = f.read()
        end = data.find(b"\n")
        header = data[:end if end >= 0 else len(data)]
        try:
            n_words, size = (int(x) for x in header.decode("utf8").split())
            if n_words < 1 or size < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}: line 1: expected a header 'n_words vector_size', got "
                             f"{header[:80]!r}") from None
        body = data[end + 1:] if end >= 0 else b""
        if binary:
            words, vectors = _read_binary(body, n_words, size, path)
        else:
            words, vectors = _read_text(body, n_words, size, path)
        return cls(words, vectors)


def _text_line(word: str, row: np.ndarray) -> str:
    return word + " " + " ".join(str(x) for x in row) + "\n"  # str(np.float32): shortest round trip


def _read_text(body: bytes, n_words: int, size: int, path) -> tuple[list[str], np.ndarray]:
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < n_words:
        raise ValueError(f"{path}: the header promises {n_words} words but the file has "
                         f"{len(lines)} (line {len(lines) + 2} missing)")
    for extra, line in enumerate(lines[n_words:]):
        if line.strip():
            raise ValueError(f"{path}: line {n_words + 2 + extra}: more entries than the "
                             f"{n_words} the header promises")
    words, seen = [], {}
    vectors = np.empty((n_words, size), np.float32)
    for i, line in enumerate(lines[:n_words]):
        line_no = i + 2
        parts = line.decode("utf8").rstrip().split(" ")
        if len(parts) != size + 1 or not parts[0]:
            raise ValueError(f"{path}: line {line_no}: expected a word and {size} values, got "
                             f"{len(parts) - 1} values")
        try:
            values = np.array([float(x) for x in parts[1:]], dtype=np.float32)
        except ValueError:
            raise ValueError(f"{path}: line {line_no}: a value is not a number") from None
        if not np.isfinite(values).all():
            raise ValueError(f"{path}: line {line_no}: non-finite value")
        if parts[0] in seen:
            raise ValueError(f"{path}: line {line_no}: the word {parts[0]!r} repeats line "
                             f"{seen[parts[0]]}")
        seen[parts[0]] = line_no
        words.append(parts[0])
        vectors[i] = values
    return words, vectors


def _read_binary(body: bytes, n_words: int, size: int, path) -> tuple[list[str], np.ndarray]:
    words, seen = [], {}
    vectors = np.empty((n_words, size), np.float32)
    n_bytes = 4 * size
    pos = 0
    for i in range(n_words):
        entry = i + 1
        while pos < len(body) and body[pos:pos + 1] == b"\n":  # the C tool's newline
            pos += 1
        space = body.find(b" ", pos)
        if space < 0 or len(body) - (space + 1) < n_bytes:
            raise ValueError(f"{path}: entry {entry} of {n_words}: the file ends early")
        try:
            word = body[pos:space].decode("utf8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: entry {entry}: the word is not UTF-8") from None
        if not word or len(word.split()) != 1:
            raise ValueError(f"{path}: entry {entry}: malformed word {word!r}")
        row = np.frombuffer(body, dtype="<f4", count=size, offset=space + 1)
        if not np.isfinite(row).all():
            raise ValueError(f"{path}: entry {entry} ({word!r}): non-finite value")
        if word in seen:
            raise ValueError(f"{path}: entry {entry}: the word {word!r} repeats entry "
                             f"{seen[word]}")
        seen[word] = entry
        words.append(word)
        vectors[i] = row
        pos = space + 1 + n_bytes
    if body[pos:].strip(b"\n"):
        raise ValueError(f"{path}: {len(body) - pos} bytes after the {n_words} entries the header "
                         "promises")
    return words, vectors


# -- test-set files ---------------------------------------------------------------------------------
def _analogy_sections(analogies) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """[(section, [(a, b, c, d), ...])] from a questions-words.txt path (read by
    `dlmodels.data.word_similarity.parse_analogies`) or a mapping ``{section: questions}``."""
    if isinstance(analogies, (str, os.PathLike)):
        analogies = word_similarity.parse_analogies(Path(analogies).read_text(encoding="utf-8"),
                                                    str(analogies))
    if not isinstance(analogies, Mapping):
        raise TypeError(f"analogies must be a path or {{section: [(a, b, c, d), ...]}}, got "
                        f"{type(analogies).__name__}")
    out = []
    for name, items in analogies.items():
        questions = []
        for k, q in enumerate(items):
            q = tuple(q)
            if len(q) != 4 or not all(isinstance(w, str) and w for w in q):
                raise ValueError(f"analogies: section {name!r} question {k}: expected 4 words, "
                                 f"got {q!r}")
            questions.append(q)
        out.append((str(name), questions))
    return out


def _pair_list(pairs) -> list[tuple[str, str, float]]:
    """[(w1, w2, score)] from a tab-separated file (read by
    `dlmodels.data.word_similarity.parse_pairs`) or a sequence of triples."""
    if isinstance(pairs, (str, os.PathLike)):
        pairs = word_similarity.parse_pairs(Path(pairs).read_text(encoding="utf-8"), str(pairs))
    out = []
    for k, p in enumerate(pairs):
        p = tuple(p)
        if len(p) != 3 or not isinstance(p[0], str) or not isinstance(p[1], str):
            raise ValueError(f"pairs: item {k}: expected (word1, word2, score), got {p!r}")
        score = float(p[2])
        if not math.isfinite(score):
            raise ValueError(f"pairs: item {k}: the score {p[2]!r} is not finite")
        out.append((p[0], p[1], score))
    return out


# -- statistics ------------------------------------------------------------------------------------
def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span (as Spearman's rho needs)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _correlation_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson's r and its two-sided p-value under independence of normal samples:
    ``t = r sqrt((n - 2) / (1 - r^2))`` is Student's t with n - 2 degrees of freedom, so
    ``p = I_{1 - r^2}((n - 2) / 2, 1 / 2)`` (regularised incomplete beta). nan for n < 3 or a
    constant input."""
    n = len(x)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if n < 3 or denom == 0:
        return float("nan"), float("nan")
    r = max(-1.0, min(1.0, float(dx @ dy) / denom))
    return r, _betainc((n - 2) / 2, 0.5, 1.0 - r * r)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``, by its continued fraction
    (modified Lentz; Press et al., Numerical Recipes, 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                 + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float, tiny: float = 1e-300, eps: float = 1e-16) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                    -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


# -- plots -----------------------------------------------------------------------------------------
def pca_2d(vectors) -> np.ndarray:
    """The first two principal components of ``vectors [n, D]`` -> ``[n, 2]`` (for a plot).

    ``X - mean(X) = U S V^T`` (SVD); returns ``U[:, :2] S[:2]``, the coordinates along the two
    directions of largest variance, each column's sign fixed so that its largest-magnitude entry
    is positive (deterministic). Needs n >= 2 finite rows and D >= 2."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"pca_2d: vectors must be [n >= 2, D >= 2], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("pca_2d: vectors have non-finite values")
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out = u[:, :2] * s[:2]
    if out.shape[1] < 2:  # fewer rows than 2 directions cannot happen for n >= 2, D >= 2
        raise ValueError("pca_2d: need at least 2 components")
    signs = np.sign(out[np.argmax(np.abs(out), axis=0), [0, 1]])
    return out * np.where(signs == 0, 1, signs)
