"""word2vec (skip-gram / CBOW x negative sampling / hierarchical softmax) against gensim 4.4.

Both train on the same sentences; the table holds analogies, word similarity and training words
per second.

Protocol. Corpus: ``dlmodels.text.sentences.embedding_corpus`` (Austen's six novels and
Shakespeare's 42 plays, plus the State of the Union addresses when fetched: ``corpus=available``;
``all`` needs all three), cut into sentences of lower-case words, tokenised once; ``synthetic`` is
a small generated corpus with planted analogies (no download, for tests). For each model
(skip-gram, CBOW with the mean of the context vectors) x loss (negative sampling with 5 negatives
from unigram^0.75; hierarchical softmax over a Huffman tree) and each of ``n_seeds`` seeds, our
``dlmodels.text.word2vec.train`` and gensim's ``Word2Vec`` (``workers=2``; ``hs=1, negative=0``
for hierarchical softmax) train on the same sentences with the same hyper-parameters: 100
dimensions, window 5 (the shrunk dynamic window), 5 epochs, ``min_count=5``, ``sample=1e-3``,
learning rate decaying linearly to 1e-4 from 0.025 (skip-gram) or 0.05 (CBOW): the word2vec.c
defaults the issue names; gensim's own default would be 0.025 for both, so gensim is given 0.05
for CBOW too, to keep the hyper-parameters equal.

Evaluation, of both implementations' vectors by ``dlmodels.text.vectors.WordVectors`` (the same
numbers gensim's ``KeyedVectors`` gives, checked on gensim's vectors in every run and stored as
``gensim_check``): Mikolov's 19,544 analogy questions (``questions-words.txt``) restricted to the
30,000 most frequent words (questions with a word outside them skipped, as gensim's
``evaluate_word_analogies(restrict_vocab=30000)``), by 3CosAdd per section: semantic = the 5
non-``gram`` sections (the first 5), syntactic = the 9 ``gram*`` sections, total; 3CosMul (Levy &
Goldberg 2014) total beside it; the Spearman correlation with the human scores of WordSim-353 and
SimLex-999 (pairs with an unknown word skipped; their share reported as ``oov``). Speed: training
words per second, the same definition for both: the corpus words in the vocabulary x epochs /
wall-clock seconds of the training call (vocabulary building excluded for both: our vocabulary
and gensim's ``build_vocab`` are made before the clock starts; our time includes compilation).

Targets (``Config.*_target``): mean total analogy accuracy within 2 points of gensim's, mean
Spearman within 0.03 (not worse by more than that), mean words per second >= 1.0x gensim's; the
seed spread (std over seeds) is reported beside every mean.

Published for context (``PUBLISHED``): Mikolov et al. 2013 ("Efficient estimation of word
representations in vector space", Table 4): skip-gram, 300 dimensions, 783 M words of Google News:
53.3 % total on this analogy set (50.0 % semantic, 55.9 % syntactic). Our corpus is 3.45 M words
(1.6 M without SOTU), about 230 times smaller (480 without SOTU), much of it 16th-19th century
English: 7,368 of the 19,544 questions (843 semantic) fall inside its 19,694-word vocabulary, a
third of the WordSim-353 pairs and a fifth of SimLex-999's have an unknown word, and absolute
accuracies are far lower; the comparison that matters is against gensim on the same sentences.

Measured here (provisional: 2026-12-05, the defaults, ``python -m dlmodels run word2vec``,
word2vec.py of commit 6ad60ef, 13 min on the project's 2-core CPU with other jobs beside it (load
about 2), so the words/s are noisy; mean over 3 seeds, std in ``results["summary"]``):

    model / loss             analogy total %     WS-353 rho        SimLex rho        words/s (k)
                             ours     gensim     ours     gensim   ours     gensim   ours    gensim
    skip-gram / negative     11.03    10.95      0.375    0.365    0.164    0.153    839     606
    skip-gram / hier. soft.  10.21    11.05      0.412    0.381    0.188    0.158    202     519
    CBOW / negative          11.97    11.61      0.433    0.424    0.171    0.182    987     1,705
    CBOW / hier. soft.        8.91     9.02      0.398    0.423    0.184    0.181    730     1,638

Targets: analogy within 2 points and Spearman within 0.03 met in all 12 comparisons (closest:
CBOW-HS WS-353 -0.026); words/s >= 1.0x gensim (2 workers) met only by skip-gram NS (1.38x),
missed by skip-gram HS (0.39x), CBOW NS (0.58x), CBOW HS (0.45x). Our evaluation equals gensim's
own on gensim's vectors in all 12 gensim runs.

Resume: each finished (model, loss, seed, implementation) run writes ``runs/<name>.json`` in the
run directory; calling ``main`` again on it (``dlmodels run word2vec --resume RUN_DIR``) skips
finished runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from typing import Any, Sequence

import numpy as np

from dlmodels.experiment import MetricsLog, write_json, write_text

PUBLISHED = {
    "mikolov2013_skipgram_300d_783M_words_analogy_total_percent": 53.3,
    "mikolov2013_skipgram_300d_783M_words_analogy_semantic_percent": 50.0,
    "mikolov2013_skipgram_300d_783M_words_analogy_syntactic_percent": 55.9,
    "source": "Mikolov, Chen, Corrado, Dean 2013, Efficient estimation of word representations "
              "in vector space, Table 4 (skip-gram, 300 dimensions, 783 M training words)",
    "note": "Google News, 783 M words; our corpus is 1.6-3.4 M words (230-500x smaller), mostly "
            "older English",
}
MODELS = ("skipgram", "cbow")
LOSSES = ("negative", "hierarchical")
IMPLEMENTATIONS = ("dlmodels", "gensim")
CORPORA = ("available", "all", "synthetic")
# (a, b) pairs drawn in the PCA plot when both words are in the vocabulary, by group
PLOT_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "country - capital": (("france", "paris"), ("england", "london"), ("italy", "rome"),
                          ("spain", "madrid"), ("germany", "berlin"), ("russia", "moscow"),
                          ("greece", "athens"), ("egypt", "cairo"), ("austria", "vienna"),
                          ("japan", "tokyo"), ("china", "beijing"), ("ireland", "dublin"),
                          ("scotland", "edinburgh"), ("portugal", "lisbon")),
    "verb tenses": (("go", "went", "gone"), ("take", "took", "taken"), ("give", "gave", "given"),
                    ("see", "saw", "seen"), ("speak", "spoke", "spoken"),
                    ("write", "wrote", "written"), ("know", "knew", "known"),
                    ("come", "came")),
    "gender": (("man", "woman"), ("men", "women"), ("king", "queen"), ("husband", "wife"),
               ("brother", "sister"), ("father", "mother"), ("son", "daughter")),
}
PLOT_MAX_PER_GROUP = 8  # tuples per group in the PCA plot (the first that are in the vocabulary)


@dataclasses.dataclass(frozen=True)
class Config:
    corpus: str = "available"  # available (austen + shakespeare, + sotu when fetched), all (the three), or synthetic (generated, no download)
    max_words: int = 0  # > 0: only the first sentences of the corpus up to this many words
    models: tuple[str, ...] = MODELS  # architectures: skipgram, cbow
    losses: tuple[str, ...] = LOSSES  # output layers: negative (sampling), hierarchical (softmax)
    implementations: tuple[str, ...] = IMPLEMENTATIONS  # who trains: dlmodels, gensim
    n_seeds: int = 3  # seeds per (model, loss, implementation): 0, 1, ...
    vector_size: int = 100  # dimension of the word vectors
    window: int = 5  # maximum context window (shrunk at random per centre word)
    negative: int = 5  # noise words per positive pair (negative sampling)
    ns_exponent: float = 0.75  # noise distribution: unigram counts to this power
    sample: float = 1e-3  # frequent-word subsampling threshold (word2vec/gensim formula)
    min_count: int = 5  # words seen fewer times are dropped from the vocabulary
    epochs: int = 5  # passes over the corpus
    skipgram_alpha: float = 0.025  # initial learning rate of skip-gram (both implementations)
    cbow_alpha: float = 0.05  # initial learning rate of CBOW (both implementations)
    min_alpha: float = 1e-4  # learning rate at the end of training (linear decay)
    gensim_workers: int = 2  # gensim's worker threads
    checkpoint: bool = False  # checkpoint our training every epoch (a killed run resumes mid-training; saving is then timed, and a resumed run times only its own epochs)
    restrict_vocab: int = 30000  # analogy questions only over this many most frequent words
    analogy_target: float = 2.0  # target: mean total analogy accuracy within this many points of gensim's
    spearman_target: float = 0.03  # target: mean Spearman within this much of gensim's
    speed_target: float = 1.0  # target: our words per second at least this times gensim's

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"Config.corpus must be one of {CORPORA}, got {self.corpus!r}")
        for name, allowed in (("models", MODELS), ("losses", LOSSES),
                              ("implementations", IMPLEMENTATIONS)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values) \
                    or len(set(values)) < len(values):
                raise ValueError(f"Config.{name} must be distinct values drawn from {allowed}, "
                                 f"got {values!r}")
        for name in ("vector_size", "window", "negative", "min_count", "gensim_workers",
                     "restrict_vocab"):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_words < 0:
            raise ValueError(f"Config.max_words must be >= 0, got {self.max_words}")
        if self.sample < 0:
            raise ValueError(f"Config.sample must be >= 0, got {self.sample}")
        for name in ("skipgram_alpha", "cbow_alpha", "min_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Config.{name} must be > 0, got {getattr(self, name)}")
        if self.min_alpha > min(self.skipgram_alpha, self.cbow_alpha):
            raise ValueError(f"Config.min_alpha ({self.min_alpha}) must not exceed the initial "
                             f"learning rates")

    def alpha(self, model: str) -> float:
        return self.skipgram_alpha if model == "skipgram" else self.cbow_alpha


def run_name(model: str, loss: str, implementation: str, seed: int) -> str:
    return f"{model}-{loss}-{implementation}-seed{seed}"


# ---------------------------------------------------------------------------------------------
# Data: the corpus and the evaluation sets (or their synthetic stand-ins).

_SYN_COUNTRIES = tuple(f"country{i}" for i in range(8))
_SYN_CAPITALS = tuple(f"capital{i}" for i in range(8))
_SYN_VERBS = tuple(f"verb{i}" for i in range(8))
_SYN_PAST = tuple(f"verb{i}ed" for i in range(8))
_SYN_FILLER = ("the", "a", "we", "they", "and", "so", "then", "very", "much", "here")


def synthetic_corpus(n_sentences: int = 3000, seed: int = 0) -> list[list[str]]:
    """A generated corpus with planted analogies: 8 countries, each with its capital, and 8 verbs,
    each with a past tense, in template sentences ("the capital of country3 is capital3",
    "yesterday we verb5ed", "today we verb5", ...) among filler words; every word occurs often
    enough for ``min_count=5``."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n_sentences):
        i = int(rng.randint(8))
        kind = rng.randint(4)
        if kind == 0:
            s = ["the", "capital", "of", _SYN_COUNTRIES[i], "is", _SYN_CAPITALS[i]]
        elif kind == 1:
            s = [_SYN_CAPITALS[i], "lies", "in", _SYN_COUNTRIES[i]]
        elif kind == 2:
            s = ["yesterday", "we", _SYN_PAST[i], "it"]
        else:
            s = ["today", "we", _SYN_VERBS[i], "it"]
        fill = list(rng.choice(_SYN_FILLER, size=rng.randint(0, 4)))
        out.append(fill + s + list(rng.choice(_SYN_FILLER, size=rng.randint(0, 3))))
    return out


def synthetic_evaluation() -> tuple[dict[str, list[tuple[str, str, str, str]]],
                                    dict[str, list[tuple[str, str, float]]]]:
    """Analogy sections (one semantic, one ``gram``) and two word-pair sets over the words of
    :func:`synthetic_corpus`, in the formats of ``word_similarity.analogies()`` / ``pairs()``;
    one word pair has a word outside the corpus (an OOV pair)."""
    capitals = [(_SYN_COUNTRIES[i], _SYN_CAPITALS[i], _SYN_COUNTRIES[j], _SYN_CAPITALS[j])
                for i in range(8) for j in range(8) if i != j]
    tenses = [(_SYN_VERBS[i], _SYN_PAST[i], _SYN_VERBS[j], _SYN_PAST[j])
              for i in range(8) for j in range(8) if i != j]
    analogies = {"capital-common-countries": capitals, "gram7-past-tense": tenses}
    rng = np.random.RandomState(1)
    pairs = []
    for i in range(8):
        pairs.append((_SYN_COUNTRIES[i], _SYN_CAPITALS[i], 9.0 - 0.1 * i))
        pairs.append((_SYN_VERBS[i], _SYN_PAST[i], 8.5 - 0.1 * i))
        pairs.append((_SYN_COUNTRIES[i], _SYN_VERBS[(i + 3) % 8], float(rng.uniform(0, 2))))
    pairs.append(("country0", "unseenword", 5.0))
    return analogies, {"wordsim353": pairs, "simlex999": pairs[::2]}


def load_corpus(config: Config) -> list[list[str]]:
    """The training sentences (lists of lower-case words), cut to ``max_words`` if set."""
    if config.corpus == "synthetic":
        sentences = synthetic_corpus()
    else:
        from dlmodels.text import sentences as text_sentences

        sources = "available" if config.corpus == "available" else \
            ("austen", "shakespeare", "sotu")
        sentences = text_sentences.embedding_corpus(sources=sources)
    if config.max_words:
        out, total = [], 0
        for s in sentences:
            if total >= config.max_words:
                break
            out.append(s)
            total += len(s)
        sentences = out
    return sentences


def write_analogies(path: str, analogies: dict[str, Sequence[tuple[str, ...]]]) -> str:
    """``analogies`` in the ``questions-words.txt`` format (``: section`` lines, then one question
    per line), for gensim's file-based evaluation."""
    with open(path, "w") as f:
        for section, questions in analogies.items():
            f.write(f": {section}\n")
            for q in questions:
                f.write(" ".join(q) + "\n")
    return path


def write_pairs(path: str, pairs: Sequence[tuple[str, str, float]]) -> str:
    """``pairs`` as tab-separated ``word1 word2 score`` lines (gensim's ``evaluate_word_pairs``)."""
    with open(path, "w") as f:
        for a, b, score in pairs:
            f.write(f"{a}\t{b}\t{score!r}\n")
    return path


@dataclasses.dataclass(frozen=True)
class EvaluationSets:
    """The analogy questions and word pairs as data (for our evaluation) and as files (gensim's)."""

    analogies: dict
    pairs: dict
    analogy_file: str
    pair_files: dict


def evaluation_sets(config: Config, run_dir: str) -> EvaluationSets:
    """The Google analogies, WordSim-353 and SimLex-999 (``dlmodels.data.word_similarity``), or
    the synthetic sets for ``corpus=synthetic`` (written to files in ``run_dir``)."""
    if config.corpus == "synthetic":
        analogies, pairs = synthetic_evaluation()
        folder = os.path.join(run_dir, "synthetic_evaluation")
        os.makedirs(folder, exist_ok=True)
        return EvaluationSets(
            analogies, pairs, write_analogies(os.path.join(folder, "analogies.txt"), analogies),
            {name: write_pairs(os.path.join(folder, f"{name}.tsv"), p)
             for name, p in pairs.items()})
    from dlmodels.data import word_similarity

    names = ("wordsim353", "simlex999")
    return EvaluationSets(word_similarity.analogies(), {n: word_similarity.pairs(n) for n in names},
                          str(word_similarity.path("questions-words")),
                          {n: str(word_similarity.path(n)) for n in names})


# ---------------------------------------------------------------------------------------------
# Evaluation.

def analogy_summary(sections: list[dict]) -> dict:
    """Accuracies in percent from gensim-style ``sections`` (each ``{"section", "correct",
    "incorrect"}``; a final "Total accuracy" entry is ignored): semantic (sections not named
    ``gram*``), syntactic (``gram*``), total, with the number of questions answered in each."""
    from dlmodels.data.word_similarity import is_semantic

    groups = {"semantic": [0, 0], "syntactic": [0, 0], "total": [0, 0]}
    per_section = {}
    for s in sections:
        name = s["section"]
        if name.lower().startswith("total"):
            continue
        c, n = len(s["correct"]), len(s["correct"]) + len(s["incorrect"])
        per_section[name] = {"correct": c, "questions": n}
        for g in ("semantic" if is_semantic(name) else "syntactic", "total"):
            groups[g][0] += c
            groups[g][1] += n
    out = {g: (100.0 * c / n if n else None) for g, (c, n) in groups.items()}
    out["questions"] = {g: n for g, (_, n) in groups.items()}
    out["sections"] = per_section
    return out


def evaluate(vectors, sets: EvaluationSets, restrict_vocab: int) -> dict:
    """Our evaluation (``WordVectors``) of ``vectors``: analogies by 3CosAdd (semantic,
    syntactic, total) and 3CosMul (total), Spearman / Pearson / OOV % on each word-pair set."""
    out: dict[str, Any] = {}
    _, sections = vectors.evaluate_word_analogies(sets.analogies, restrict_vocab=restrict_vocab,
                                                  method="add")
    out["analogy"] = analogy_summary(sections)
    _, sections = vectors.evaluate_word_analogies(sets.analogies, restrict_vocab=restrict_vocab,
                                                  method="mul")
    out["analogy_cosmul"] = analogy_summary(sections)
    for name, pairs in sets.pairs.items():
        pearson, spearman, oov = vectors.evaluate_word_pairs(pairs)
        out[name] = {"spearman": float(spearman[0]), "pearson": float(pearson[0]),
                     "oov_percent": float(oov)}
    return out


def gensim_evaluate(keyed_vectors, sets: EvaluationSets, restrict_vocab: int) -> dict:
    """gensim's own evaluation of its ``KeyedVectors``, in the layout of :func:`evaluate`, without
    3CosMul: gensim 4.4's ``evaluate_word_analogies`` accepts ``similarity_function`` but always
    answers with ``most_similar`` (3CosAdd), so it has no 3CosMul evaluation to check against
    (``WordVectors.most_similar_cosmul`` is checked against gensim's ``most_similar_cosmul`` in
    tests/test_vectors.py)."""
    out: dict[str, Any] = {}
    _, sections = keyed_vectors.evaluate_word_analogies(sets.analogy_file,
                                                        restrict_vocab=restrict_vocab)
    out["analogy"] = analogy_summary(sections)
    for name, path in sets.pair_files.items():
        pearson, spearman, oov = keyed_vectors.evaluate_word_pairs(path)
        out[name] = {"spearman": float(spearman[0]), "pearson": float(pearson[0]),
                     "oov_percent": float(oov)}
    return out


def compare_evaluations(ours: dict, theirs: dict, tol: float = 1e-5) -> dict:
    """Every number of ``theirs`` (an :func:`evaluate`-layout dict, maybe with fewer entries)
    against the same entry of ``ours``: the largest absolute difference, the entries that differ
    by more than ``tol`` (Pearson differs by ~1e-6: float32 cosines), ``equal`` if none."""
    diffs, mismatched = {}, []

    def walk(a, b, path):
        if isinstance(a, dict):
            for k in a:
                walk(a[k], b.get(k) if isinstance(b, dict) else None, f"{path}.{k}" if path else k)
        elif a is None or b is None:
            if a is not b:
                mismatched.append(path)
        else:
            d = abs(float(a) - float(b))
            diffs[path] = d
            if not d <= tol:
                mismatched.append(path)

    walk(theirs, ours, "")
    return {"equal": not mismatched, "mismatched": mismatched,
            "max_abs_diff": max(diffs.values()) if diffs else 0.0, "tolerance": tol}


# ---------------------------------------------------------------------------------------------
# Training one run.

def _ours_config(config: Config, model: str, loss: str, seed: int):
    from dlmodels.text import word2vec

    return word2vec.Word2VecConfig(
        model=model, loss=loss, vector_size=config.vector_size, window=config.window,
        negative=config.negative, ns_exponent=config.ns_exponent, sample=config.sample,
        min_count=config.min_count, alpha=config.alpha(model), min_alpha=config.min_alpha,
        epochs=config.epochs, seed=seed)


def train_ours(config: Config, model: str, loss: str, seed: int, sentences, vocab,
               train_dir: str | None):
    """``(WordVectors, seconds, stats)``: our training, timed around the call (vocab given)."""
    from dlmodels.text import word2vec

    kwargs = {} if train_dir is None else {"run_dir": train_dir, "resume": True}
    w2v_config = _ours_config(config, model, loss, seed)
    t0 = time.perf_counter()
    result = word2vec.train(sentences, w2v_config, vocab=vocab, **kwargs)
    seconds = time.perf_counter() - t0
    stats = {k: v for k, v in dict(getattr(result, "stats", {}) or {}).items()
             if isinstance(v, (int, float, list, tuple))}
    return result.vectors, seconds, stats


def gensim_params(config: Config, model: str, loss: str, seed: int) -> dict:
    """gensim ``Word2Vec`` keyword arguments for the same hyper-parameters."""
    hierarchical = loss == "hierarchical"
    return dict(vector_size=config.vector_size, window=config.window,
                min_count=config.min_count, sample=config.sample, seed=seed,
                workers=config.gensim_workers, sg=int(model == "skipgram"),
                hs=int(hierarchical), negative=0 if hierarchical else config.negative,
                ns_exponent=config.ns_exponent, cbow_mean=1, alpha=config.alpha(model),
                min_alpha=config.min_alpha, epochs=config.epochs)


def gensim_models(needed_for: str):
    """``gensim.models`` through ``dlmodels.extras.optional_import`` (an ``ImportError`` naming
    the extra when gensim is not installed)."""
    from dlmodels import extras

    if "gensim" in extras.OPTIONAL:
        return extras.optional_import("gensim.models", needed_for=needed_for)
    try:  # until gensim is registered in extras.OPTIONAL
        import gensim.models
    except ImportError as e:
        raise ImportError(f"{needed_for} needs the optional package gensim, which is not "
                          f"installed: pip install \"dlmodels[dev]\"") from e
    return gensim.models


def train_gensim(config: Config, model: str, loss: str, seed: int, sentences):
    """``(gensim Word2Vec, seconds)``: vocabulary built first, only ``train`` timed."""
    models = gensim_models("the gensim side of the word2vec experiment")
    w2v = models.Word2Vec(**gensim_params(config, model, loss, seed))
    w2v.build_vocab(sentences)
    t0 = time.perf_counter()
    w2v.train(sentences, total_examples=w2v.corpus_count, epochs=w2v.epochs)
    return w2v, time.perf_counter() - t0


def gensim_word_vectors(w2v):
    """gensim's trained vectors as our ``WordVectors`` (its order: most frequent first)."""
    from dlmodels.text.vectors import WordVectors

    wv = w2v.wv
    return WordVectors(list(wv.index_to_key), np.asarray(wv.vectors),
                       [int(wv.get_vecattr(w, "count")) for w in wv.index_to_key])


SYNTHETIC_PLOT_GROUPS = {
    "country - capital": tuple(zip(_SYN_COUNTRIES, _SYN_CAPITALS)),
    "verb tenses": tuple(zip(_SYN_VERBS, _SYN_PAST)),
}


def plot_tuples(words, groups: dict = PLOT_GROUPS) -> dict[str, list[tuple[str, ...]]]:
    """The ``groups`` (default :data:`PLOT_GROUPS`) restricted to tuples whose words are all in
    ``words`` (at most :data:`PLOT_MAX_PER_GROUP` per group)."""
    return {g: [t for t in tuples if all(w in words for w in t)][:PLOT_MAX_PER_GROUP]
            for g, tuples in groups.items()}


def pca_words(vectors, groups: dict = PLOT_GROUPS) -> dict:
    """``{"groups": {group: [tuple, ...]}, "coords": {word: [x, y]}}``: the chosen words that are
    in the vocabulary, projected on the first two principal components of their vectors."""
    from dlmodels.text.vectors import pca_2d

    groups = plot_tuples(vectors, groups)
    words = list(dict.fromkeys(w for tuples in groups.values() for t in tuples for w in t))
    if len(words) < 2:
        return {"groups": groups, "coords": {}}
    xy = np.asarray(pca_2d(np.stack([np.asarray(vectors[w]) for w in words])))
    return {"groups": groups, "coords": {w: [float(a), float(b)] for w, (a, b) in zip(words, xy)}}


def run_one(config: Config, model: str, loss: str, implementation: str, seed: int, sentences,
            vocab, sets: EvaluationSets, run_dir: str) -> dict:
    """Train and evaluate one (model, loss, implementation, seed), or read its stored record."""
    name = run_name(model, loss, implementation, seed)
    path = os.path.join(run_dir, "runs", f"{name}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    in_vocab_words = int(sum(vocab.counts.values()))
    record: dict[str, Any] = {"model": model, "loss": loss, "implementation": implementation,
                              "seed": seed}
    if implementation == "dlmodels":
        try:
            vectors, seconds, stats = train_ours(
                config, model, loss, seed, sentences, vocab,
                os.path.join(run_dir, "train", name) if config.checkpoint else None)
        except FloatingPointError as e:  # diverged: recorded, not stored (a resume retries it)
            return {**record, "failed": f"{type(e).__name__}: {e}"}
        record["stats"] = stats
    else:
        w2v, seconds = train_gensim(config, model, loss, seed, sentences)
        vectors = gensim_word_vectors(w2v)
        record["gensim_params"] = {k: v for k, v in gensim_params(config, model, loss,
                                                                    seed).items()}
    record["vocab_size"] = len(vectors)
    record["train_seconds"] = seconds
    record["in_vocab_corpus_words"] = in_vocab_words
    record["words_per_second"] = in_vocab_words * config.epochs / seconds
    t0 = time.perf_counter()
    record["evaluation"] = evaluate(vectors, sets, config.restrict_vocab)
    record["eval_seconds"] = time.perf_counter() - t0
    if implementation == "gensim":
        theirs = gensim_evaluate(w2v.wv, sets, config.restrict_vocab)
        record["gensim_check"] = {"gensim_evaluation": theirs,
                                  **compare_evaluations(record["evaluation"], theirs)}
        words = list(w2v.wv.index_to_key)
        record["same_vocabulary_as_ours"] = {"same_words": set(words) == set(vocab.tokens),
                                             "same_order": words == vocab.tokens}
    if implementation == "dlmodels" and seed == 0 and (model, loss) == ("skipgram", "negative"):
        record["pca"] = pca_words(vectors, SYNTHETIC_PLOT_GROUPS if config.corpus == "synthetic"
                                  else PLOT_GROUPS)
        vectors.save_word2vec_format(os.path.join(run_dir, f"vectors-{name}.txt"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, record)
    return record


# ---------------------------------------------------------------------------------------------
# Summary table and plots.

METRICS = (  # (key in the summary, path in a record's evaluation / record, label, kind)
    ("analogy_semantic", ("evaluation", "analogy", "semantic"), "semantic %", "analogy"),
    ("analogy_syntactic", ("evaluation", "analogy", "syntactic"), "syntactic %", "analogy"),
    ("analogy_total", ("evaluation", "analogy", "total"), "total %", "analogy"),
    ("analogy_cosmul_total", ("evaluation", "analogy_cosmul", "total"), "3CosMul total %",
     "analogy"),
    ("wordsim353_spearman", ("evaluation", "wordsim353", "spearman"), "WS-353 rho", "spearman"),
    ("simlex999_spearman", ("evaluation", "simlex999", "spearman"), "SimLex rho", "spearman"),
    ("words_per_second", ("words_per_second",), "words/s", "speed"),
)


def _get(record: dict, path: Sequence[str]):
    """``record[path[0]][path[1]]...``, or None for a failed run."""
    if "failed" in record:
        return None
    for k in path:
        record = record[k]
    return record


def mean_std(values: Sequence[float | None]) -> dict:
    """``{"mean", "std", "n", "values"}``: std over seeds with ddof=1 (0 for a single seed);
    ``None`` values (nothing to score) are left out."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0, "values": list(values)}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "n": len(xs), "values": xs}


def summarise(records: list[dict], config: Config) -> dict:
    """``{"<model>-<loss>": {"dlmodels": {metric: mean_std}, "gensim": ..., "comparison":
    {metric: {difference, target, met, margin}}}}``."""
    out = {}
    for model in config.models:
        for loss in config.losses:
            row: dict[str, Any] = {}
            for impl in config.implementations:
                rs = [r for r in records if (r["model"], r["loss"], r["implementation"]) ==
                      (model, loss, impl)]
                row[impl] = {key: mean_std([_get(r, path) for r in rs])
                             for key, path, _, _ in METRICS}
                done = [r for r in rs if "failed" not in r]
                row[impl]["oov_percent"] = {
                    n: done[0]["evaluation"][n]["oov_percent"] if done else None
                    for n in ("wordsim353", "simlex999")}
                row[impl]["analogy_questions"] = (done[0]["evaluation"]["analogy"]["questions"]
                                                  if done else None)
                row[impl]["failed_runs"] = {run_name(model, loss, impl, r["seed"]): r["failed"]
                                            for r in rs if "failed" in r}
            if {"dlmodels", "gensim"} <= set(config.implementations):
                row["comparison"] = compare(row["dlmodels"], row["gensim"], config)
            out[f"{model}-{loss}"] = row
    return out


def compare(ours: dict, theirs: dict, config: Config) -> dict:
    """Ours - gensim on every metric (ratio for words/s), and the targets met or missed:
    analogy total and 3CosMul total within ``analogy_target`` points (not lower by more), Spearman
    within ``spearman_target``, words/s ratio >= ``speed_target``; ``margin`` > 0 = by how much met,
    < 0 = by how much missed."""
    out = {}
    for key, _, _, kind in METRICS:
        a, b = ours[key]["mean"], theirs[key]["mean"]
        if a is None or b is None:
            out[key] = {"difference": None}
            continue
        if kind == "speed":
            ratio = a / b
            out[key] = {"ratio": ratio, "target": config.speed_target,
                        "margin": ratio - config.speed_target,
                        "met": bool(ratio >= config.speed_target)}
            continue
        diff = a - b
        entry: dict[str, Any] = {"difference": diff}
        if key in ("analogy_total", "wordsim353_spearman", "simlex999_spearman"):
            tol = config.analogy_target if kind == "analogy" else config.spearman_target
            entry.update(target=-tol, margin=diff + tol, met=bool(diff >= -tol))
        out[key] = entry
    return out


def _fmt(ms: dict, kind: str) -> str:
    if ms["mean"] is None:
        return "-"
    if kind == "speed":
        return f"{ms['mean'] / 1e3:,.0f}k +- {ms['std'] / 1e3:,.0f}k"
    if kind == "analogy":
        return f"{ms['mean']:.2f} +- {ms['std']:.2f}"
    return f"{ms['mean']:.3f} +- {ms['std']:.3f}"


def markdown_table(summary: dict, config: Config) -> str:
    """The results table (mean +- std over seeds) and the comparison table, in markdown."""
    head = ["model", "loss", "implementation"] + [label for _, _, label, _ in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in summary.items():
        model, loss = key.split("-")
        for impl in config.implementations:
            cells = [model, loss, impl] + [_fmt(row[impl][k], kind) for k, _, _, kind in METRICS]
            lines.append("| " + " | ".join(cells) + " |")
    failed = [f"- {name}: {why}" for row in summary.values() for impl in config.implementations
              for name, why in row[impl]["failed_runs"].items()]
    if failed:
        lines += ["", "Failed runs (left out of the means):", *failed]
    if not all("comparison" in row for row in summary.values()):
        return "\n".join(lines)
    lines += ["", "| model | loss | analogy total (ours - gensim, target >= -%g) | WS-353 rho "
              "(target >= -%g) | SimLex rho (target >= -%g) | words/s ours / gensim (target >= "
              "%gx) |" % (config.analogy_target, config.spearman_target, config.spearman_target,
                          config.speed_target), "|---|---|---|---|---|---|"]

    def cell(c, unit):
        if c.get("met") is None:
            return "- (no finished run)"
        value = f"{c['ratio']:.2f}x" if "ratio" in c else f"{c['difference']:+.{unit}f}"
        how = "met" if c["met"] else "MISSED"
        return f"{value} ({how} by {abs(c['margin']):.{unit if 'ratio' not in c else 2}f})"

    for key, row in summary.items():
        model, loss = key.split("-")
        c = row["comparison"]
        lines.append(f"| {model} | {loss} | {cell(c['analogy_total'], 2)} | "
                     f"{cell(c['wordsim353_spearman'], 3)} | {cell(c['simlex999_spearman'], 3)} "
                     f"| {cell(c['words_per_second'], 2)} |")
    return "\n".join(lines)


def plot_bars(summary: dict, config: Config, path: str) -> str:
    """Four panels (analogy total %, WS-353 and SimLex Spearman, words/s), a bar per
    implementation for each model-loss, the seed std as error bars."""
    from dlmodels import plots

    panels = (("analogy_total", "analogy total (%, 3CosAdd)"),
              ("wordsim353_spearman", "WordSim-353 Spearman"),
              ("simlex999_spearman", "SimLex-999 Spearman"),
              ("words_per_second", "training words / s"))
    fig, axes = plots.figure(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    keys = list(summary)
    width = 0.8 / len(config.implementations)
    for ax, (metric, title) in zip(axes[0], panels):
        for j, impl in enumerate(config.implementations):
            means = [summary[k][impl][metric]["mean"] for k in keys]
            stds = [summary[k][impl][metric]["std"] or 0.0 for k in keys]
            x = np.arange(len(keys)) + (j - (len(config.implementations) - 1) / 2) * width
            ax.bar(x, [m or 0.0 for m in means], width, yerr=stds, capsize=3, label=impl,
                   color=f"C{j}")
            for xi, m in zip(x, means):
                if m is None:  # every run failed (diverged)
                    ax.text(xi, 0, " failed", rotation=90, ha="center", va="bottom",
                            fontsize=8, color=f"C{j}")
        ax.set_xticks(np.arange(len(keys)))
        ax.set_xticklabels([k.replace("-", "\n") for k in keys], fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0][0].legend(fontsize=8)
    return plots.save(fig, path, f"word2vec vs gensim {_gensim_version()} (mean +- std over "
                                 f"{config.n_seeds} seed{'s' * (config.n_seeds > 1)})")


def plot_pca(pca: dict, path: str, title: str) -> str:
    """The chosen words on their first two principal components, each tuple joined by a line
    (country -> capital, present -> past -> participle, male -> female), a colour per group."""
    from dlmodels import plots

    fig, axes = plots.figure(1, 1, figsize=(7.5, 6.5), squeeze=False)
    ax = axes[0][0]
    coords = pca["coords"]
    for (group, tuples), colour in zip(pca["groups"].items(), ("C0", "C1", "C2", "C3")):
        for k, t in enumerate(tuples):
            xy = np.array([coords[w] for w in t])
            ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, alpha=0.5,
                    label=group if k == 0 else None)
            ax.plot(xy[:, 0], xy[:, 1], "o", color=colour, ms=3)
            for w, (x, y) in zip(t, xy):
                ax.annotate(w, (x, y), fontsize=8, color=colour, xytext=(2, 2),
                            textcoords="offset points")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if coords:
        ax.legend(fontsize=8)
    return plots.save(fig, path, title)


def _gensim_version() -> str:
    try:
        import gensim

        return gensim.__version__
    except ImportError:
        return "(not installed)"


# ---------------------------------------------------------------------------------------------

def main(config: Config, run_dir: str) -> dict:
    from dlmodels.text import word2vec

    t_start = time.perf_counter()
    sentences = load_corpus(config)
    sets = evaluation_sets(config, run_dir)
    t0 = time.perf_counter()
    vocab = word2vec.build_vocab(sentences, min_count=config.min_count)
    vocab_seconds = time.perf_counter() - t0
    corpus_words = sum(len(s) for s in sentences)
    print(f"word2vec: {len(sentences):,} sentences, {corpus_words:,} words, vocabulary "
          f"{len(vocab):,} (min_count {config.min_count})", flush=True)
    records = []
    with MetricsLog(run_dir) as log:
        for model in config.models:
            for loss in config.losses:
                for seed in range(config.n_seeds):
                    for impl in config.implementations:
                        r = run_one(config, model, loss, impl, seed, sentences, vocab, sets,
                                    run_dir)
                        records.append(r)
                        if "failed" in r:
                            log(run=run_name(model, loss, impl, seed), failed=r["failed"])
                            print(f"  {run_name(model, loss, impl, seed)} FAILED: {r['failed']}",
                                  flush=True)
                            continue
                        ev = r["evaluation"]
                        line = {"run": run_name(model, loss, impl, seed),
                                "analogy_total": ev["analogy"]["total"],
                                "analogy_cosmul_total": ev["analogy_cosmul"]["total"],
                                "wordsim353_spearman": ev["wordsim353"]["spearman"],
                                "simlex999_spearman": ev["simlex999"]["spearman"],
                                "words_per_second": r["words_per_second"]}
                        if impl == "gensim":
                            line["gensim_check_equal"] = r["gensim_check"]["equal"]
                        log(**line)
                        print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else
                                               f"{k}={v}" for k, v in line.items()), flush=True)
    summary = summarise(records, config)
    table = markdown_table(summary, config)
    print(table, flush=True)
    write_text(os.path.join(run_dir, "table.md"), table + "\n")
    plots = [os.path.basename(plot_bars(summary, config, os.path.join(run_dir, "table.png")))]
    pca_source = next((r for r in records if "pca" in r), None)
    if pca_source is not None:
        plots.append(os.path.basename(plot_pca(
            pca_source["pca"], os.path.join(run_dir, "pca.png"),
            "our skip-gram (negative sampling) vectors, seed 0: PCA of chosen words")))
    checks = [r["gensim_check"] for r in records if "gensim_check" in r]
    return {
        "corpus": {"name": config.corpus, "sentences": len(sentences), "words": corpus_words,
                   "vocabulary": len(vocab),
                   "in_vocab_words": int(sum(vocab.counts.values())),
                   "vocab_seconds": vocab_seconds},
        "summary": summary,
        "table_markdown": table,
        "gensim_evaluation_check": {
            "runs": len(checks), "all_equal": all(c["equal"] for c in checks),
            "max_abs_diff": max((c["max_abs_diff"] for c in checks), default=None)},
        "speed_definition": "in-vocabulary corpus words x epochs / wall seconds of the training "
                            "call; vocabulary building excluded for both; ours includes "
                            "compilation",
        "published": PUBLISHED,
        "versions": {"gensim": _gensim_version(), "jax": __import__("jax").__version__},
        "device": __import__("jax").devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "plots": plots,
        "runs": [{k: v for k, v in r.items() if k not in ("pca",)} for r in records],
        "total_seconds": time.perf_counter() - t_start,
    }
