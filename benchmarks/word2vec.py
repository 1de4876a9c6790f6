"""Suite "word2vec": training words per second of our word2vec (``dlmodels.text.word2vec``)
against gensim 4.4's ``Word2Vec`` with 1 and 2 worker threads, for skip-gram and CBOW, each with
negative sampling and hierarchical softmax (issue 15, item 5).

**Corpus.** The first ``--words`` words (default 500,000; whole sentences) of the word2vec
training corpus (``dlmodels.text.sentences.embedding_corpus(sources="available")``: Austen +
Shakespeare, + the State of the Union addresses when fetched), or with ``--corpus synthetic`` a
generated Zipf-distributed text of the same size (no download; words ``w<rank>`` with probability
proportional to 1 / rank over ``--synthetic-vocab`` ranks, sentences of 5-30 words), for smoke
tests. One vocabulary (``min_count=5``) is built once, outside every timing, for ours
(``word2vec.build_vocab``) and gensim (``build_vocab`` on a model kept for all of its timed calls).

**What is timed.** One epoch over the slice per call, with the experiment's hyper-parameters
(100 dimensions, window 5, ``sample=1e-3``, 5 negatives from unigram^0.75 or hierarchical softmax,
learning rate from 0.025 (skip-gram) or 0.05 (CBOW) down to 1e-4):

* ours: ``word2vec.train(sentences, Word2VecConfig(..., epochs=1), vocab=vocab)``: everything the
  training call does (tables, subsampling, pair generation, the jitted chunks, fetching the
  vectors). Compilation is excluded: the first call (timed apart and recorded as
  ``first_call_seconds``) and ``--warmup`` more are untimed.
* gensim: ``model.train(sentences, total_examples=..., epochs=1)`` on a model whose vocabulary and
  weights were made once (so its timing excludes building the vocabulary, the Huffman tree and the
  noise table, which ours includes); ``workers=1`` and ``workers=2``.

The sides are timed in interleaved rounds (``harness.time_interleaved``); the rate of a side is
in-vocabulary words of the slice / seconds (the same definition as the experiment's, for one
epoch), and the headline per model / loss is the median of the per-round ratios gensim time /
our time with their quartiles (``Result.summary()``), against each worker count. Checks recorded:
the two vocabularies hold the same words.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from dlmodels.benchmarks.harness import (Case, Measurement, Result, environment, finish,
                                         make_parser, print_table, time_interleaved)

SUITE = "word2vec"
OURS = "dlmodels"
MODELS = ("skipgram", "cbow")
LOSSES = ("negative", "hierarchical")
HYPER = {"vector_size": 100, "window": 5, "negative": 5, "ns_exponent": 0.75, "sample": 1e-3,
         "min_count": 5, "min_alpha": 1e-4}
ALPHA = {"skipgram": 0.025, "cbow": 0.05}
DEFAULT_WORDS = 500_000
QUICK_WORDS = 20_000


def synthetic_sentences(n_words: int, vocab: int = 20_000, seed: int = 0) -> list[list[str]]:
    """About ``n_words`` words (whole sentences of 5-30 words) drawn i.i.d. from a Zipf law over
    ``vocab`` ranks (p(r) proportional to 1 / r), written ``w<r>``."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    ids = rng.choice(vocab, size=n_words, p=p / p.sum())
    lengths = rng.integers(5, 31, size=n_words // 5 + 1)
    cuts = np.cumsum(lengths)
    cuts = cuts[cuts < n_words]
    return [[f"w{i}" for i in part] for part in np.split(ids, cuts) if len(part)]


def corpus_slice(n_words: int, corpus: str, synthetic_vocab: int) -> tuple[list[list[str]], str]:
    """The first sentences of the corpus up to ``n_words`` words, and where they come from."""
    if corpus == "synthetic":
        return synthetic_sentences(n_words, synthetic_vocab), \
            f"synthetic Zipf text over {synthetic_vocab} ranks"
    from dlmodels.text import sentences as text_sentences

    out, total = [], 0
    for s in text_sentences.embedding_corpus(sources="available"):
        if total >= n_words:
            break
        out.append(s)
        total += len(s)
    return out, "embedding_corpus(sources='available'), first sentences"


def gensim_module():
    """``gensim.models`` or ``None`` when gensim is not installed."""
    try:
        import gensim.models
    except ImportError:
        return None
    return gensim.models


def ours_trainer(sentences, vocab, model: str, loss: str, seed: int = 0):
    """A zero-argument call training one epoch with our word2vec."""
    from dlmodels.text import word2vec

    config = word2vec.Word2VecConfig(model=model, loss=loss, alpha=ALPHA[model], epochs=1,
                                     seed=seed, **HYPER)
    return lambda: word2vec.train(sentences, config, vocab=vocab)


def gensim_trainer(models, sentences, model: str, loss: str, workers: int, seed: int = 0):
    """``(zero-argument call training one epoch, the gensim model)``; vocabulary built here."""
    hs = loss == "hierarchical"
    w2v = models.Word2Vec(vector_size=HYPER["vector_size"], window=HYPER["window"],
                          min_count=HYPER["min_count"], sample=HYPER["sample"], seed=seed,
                          workers=workers, sg=int(model == "skipgram"), hs=int(hs),
                          negative=0 if hs else HYPER["negative"],
                          ns_exponent=HYPER["ns_exponent"], cbow_mean=1, alpha=ALPHA[model],
                          min_alpha=HYPER["min_alpha"], epochs=1)
    w2v.build_vocab(sentences)

    def go():
        w2v.min_alpha_yet_reached = ALPHA[model]  # each call is a fresh epoch (no alpha warning)
        return w2v.train(sentences, total_examples=w2v.corpus_count, epochs=1)

    return go, w2v


def headline(results: list[Result]) -> dict:
    """Per peer label: ``Result.summary()`` and whether the median round ratio is >= 1."""
    return {r.peer.label: {**r.summary(), "met": r.median_round_ratio >= 1.0} for r in results}


def markdown(rows: list[dict], results: list[Result], meta: dict) -> str:
    """The table for RESULTS.md: words/s of every side, and gensim / ours per round."""
    peers = [k for k in rows[0]["words_per_second"] if k != OURS] if rows else []
    head = ["model", "loss", "ours words/s"] + [f"{p} words/s" for p in peers] + \
        [f"ours / {p} (q25-q75)" for p in peers]
    lines = [f"{meta}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for row in rows:
        cells = [row["model"], row["loss"], f"{row['words_per_second'][OURS]:,.0f}"]
        cells += [f"{row['words_per_second'][p]:,.0f}" for p in peers]
        for p in peers:
            r = next(x for x in results if x.case.name == row["case"] and x.peer.label == p)
            q = r.ratio_quartiles()
            cells.append(f"**{r.median_round_ratio:.2f}x** ({q[0]:.2f}-{q[1]:.2f})" if q
                         else f"{r.median_round_ratio:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(SUITE, "word2vec training words/s: ours vs gensim (1 and 2 workers), "
                                "skip-gram / CBOW x negative sampling / hierarchical softmax.")
    parser.add_argument("--rounds", type=int, dest="repeats", default=argparse.SUPPRESS,
                        help="interleaved timed rounds (the same as --repeats)")
    parser.add_argument("--words", type=int, default=None,
                        help=f"words of the corpus slice (default {DEFAULT_WORDS:,}; "
                             f"--quick {QUICK_WORDS:,})")
    parser.add_argument("--corpus", choices=("available", "synthetic"), default="available",
                        help="the word2vec corpus (what is fetched) or a generated Zipf text")
    parser.add_argument("--synthetic-vocab", type=int, default=20_000,
                        help="Zipf ranks of the synthetic corpus")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2],
                        help="gensim worker threads to compare with")
    parser.add_argument("--no-gensim", action="store_true", help="time ours only")
    args = parser.parse_args(argv)
    if args.quick:
        repeats, warmup = min(args.repeats, 2), min(args.warmup, 1)
        n_words = QUICK_WORDS if args.words is None else args.words
    else:
        repeats, warmup = args.repeats, args.warmup
        n_words = DEFAULT_WORDS if args.words is None else args.words
    if repeats < 1 or warmup < 0 or n_words < 1 or min(args.workers) < 1 \
            or args.synthetic_vocab < 1:
        parser.error("--rounds, --words, --workers, --synthetic-vocab must be >= 1, --warmup >= 0")

    from dlmodels.text import word2vec

    env = environment()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    models = None if args.no_gensim else gensim_module()
    skipped = {}
    if models is None and not args.no_gensim:
        skipped["gensim"] = "not installed (pip install gensim==4.4.0, in the dev extra)"
        print("  skipped gensim: not installed", flush=True)
    gensim_version = getattr(sys.modules.get("gensim"), "__version__", None)
    sentences, source = corpus_slice(n_words, args.corpus, args.synthetic_vocab)
    t0 = time.perf_counter()
    vocab = word2vec.build_vocab(sentences, min_count=HYPER["min_count"])
    vocab_seconds = time.perf_counter() - t0
    words = sum(len(s) for s in sentences)
    in_vocab = int(sum(vocab.counts.values()))
    print(f"suite {SUITE}: {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, "
          f"jax {env['versions']['jax']}, gensim {gensim_version}, {env['date']}; {source}: "
          f"{len(sentences):,} sentences, {words:,} words, {in_vocab:,} in a vocabulary of "
          f"{len(vocab):,}; {repeats} interleaved rounds after {warmup} warm-up calls; load "
          f"average {load}", flush=True)

    results: list[Result] = []
    rows, checks_all, diverged = [], {}, {}
    for model in args.models:
        for loss in args.losses:
            name = f"{model} {loss}"
            shapes = {"words": words, "in_vocab_words": in_vocab, "V": len(vocab),
                      "D": HYPER["vector_size"], "window": HYPER["window"], "epochs": 1}
            sides = {OURS: ours_trainer(sentences, vocab, model, loss)}
            t0 = time.perf_counter()
            try:
                sides[OURS]()                        # compilation: untimed
            except FloatingPointError as e:          # ours diverged: no timing of this case
                diverged[name] = f"{type(e).__name__}: {e}"
                print(f"\n{name}: ours FAILED ({diverged[name]}); case skipped", flush=True)
                continue
            first_call = time.perf_counter() - t0
            checks: dict = {"first_call_seconds": first_call}
            if models is not None:
                for w in args.workers:
                    fn, w2v = gensim_trainer(models, sentences, model, loss, w)
                    sides[f"gensim workers={w}"] = fn
                    checks["same_vocabulary_words"] = set(w2v.wv.index_to_key) == set(vocab.tokens)
            timings = time_interleaved(sides, warmup=warmup, repeats=repeats)
            case = Case(name, shapes, {"hyper_parameters": {**HYPER, "alpha": ALPHA[model]},
                                       "source": source})
            ours_m = Measurement(OURS, timings[OURS])
            case_results = [Result(case, ours_m, Measurement(label, t), checks)
                            for label, t in timings.items() if label != OURS]
            results += case_results
            rate = {label: in_vocab / t.median for label, t in timings.items()}
            rows.append({"case": name, "model": model, "loss": loss, "words_per_second": rate,
                         "words_per_second_rounds": {label: [in_vocab / x for x in t.times]
                                                     for label, t in timings.items()},
                         "headline": headline(case_results), "checks": checks})
            checks_all[name] = checks
            print(f"\n{name}: first call (compiles) {first_call:.2f} s", flush=True)
            for label, r in rate.items():
                print(f"  {label:<20} {timings[label].median:8.3f} s / epoch  {r:12,.0f} words/s",
                      flush=True)

    print()
    for label in dict.fromkeys(r.peer.label for r in results):
        print_table(f"word2vec, 1 epoch: {label} vs {OURS}",
                    [r for r in results if r.peer.label == label])
        print()
    meta = (f"{env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs, jax "
            f"{env['versions']['jax']}, gensim {gensim_version}; {source}: {words:,} words "
            f"({in_vocab:,} in vocabulary, V = {len(vocab):,}); 1 epoch per call; {repeats} "
            f"interleaved rounds; words/s = in-vocabulary words / median seconds")
    table = markdown(rows, results, meta)
    if diverged:
        table += "\n\nNot timed (ours diverged in the first call): " + "; ".join(
            f"{name}: {why}" for name, why in diverged.items())
    print(table, flush=True)
    bad = [name for name, c in checks_all.items() if c.get("same_vocabulary_words") is False]
    config = {"repeats": repeats, "warmup": warmup, "quick": args.quick, "words": n_words,
              "corpus": args.corpus, "models": args.models, "losses": args.losses,
              "workers": args.workers, "hyper_parameters": HYPER, "alpha": ALPHA,
              "gensim": gensim_version, "load_average_at_start": list(load) if load else None}
    extra = {"rows": rows, "markdown": table, "skipped": skipped, "vocab_seconds": vocab_seconds,
             "corpus": {"source": source, "sentences": len(sentences), "words": words,
                        "in_vocab_words": in_vocab, "vocabulary": len(vocab)},
             "diverged": diverged,
             "failed_checks": [f"{n}: gensim's vocabulary differs from ours" for n in bad]
             + [f"{n}: ours diverged" for n in diverged]}
    return finish(SUITE, results, out=args.out, config=config, extra=extra, markdown=table)


if __name__ == "__main__":
    sys.exit(main())
