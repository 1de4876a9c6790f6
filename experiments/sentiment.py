"""Sentence polarity by 10-fold cross-validation: RNN from h_T, bidirectional RNN from [h_T ; h_1],
bag-of-words logistic regression (and scikit-learn's beside it).

Data: Pang & Lee's sentence polarity sample in the Pattern corpora
(``dlmodels.data.pattern.polarity("sentences")``: 4,000 movie-review sentences, 2,000 positive,
2,000 negative, lower-cased and tokenised by spaces), split by ``pattern.folds(labels, k=10,
seed)``, stratified; every sentence is in exactly one test fold. The published numbers below
are on the full 10,662-sentence set (Kim 2014, Table 2, "MR", 10-fold CV); ours is a 4,000-sentence
subset of it, so the comparison is indicative only (less training data per fold: 3,600 vs 9,596).

Protocol, per fold (nothing is chosen on the test fold):

- the fold's training part (9/10 of the data) is split again, stratified (``pattern.folds`` with
  ``1 / valid_fraction`` folds on it, the first one held out): inner-train (~3,240) and inner
  validation (~360);
- vocabularies are built on inner-train only: the RNN's keeps words seen ``min_count`` times
  (the rest become ``<unk>``), the bag of words keeps every inner-train word and the word bigrams
  seen ``bow_bigram_min_count`` times;
- the RNNs train on inner-train for ``epochs`` epochs, evaluated on inner validation and on the
  test fold after every epoch; the reported test accuracy is the one at the (dropout pair,
  epoch) with the best inner-validation accuracy (ties: lower validation loss), i.e. early
  stopping and the grid of (``dropout``, ``embed_dropout``) decided on inner validation;
- the bag of words trains one model per L2 strength ``C`` in ``bow_cs`` (``l2 = 1 / (C N)`` on
  the mean loss, scikit-learn's convention) and reports the test accuracy of the ``C`` with the
  best inner-validation accuracy; scikit-learn's ``LogisticRegression`` with that same ``C`` on
  the same features runs beside it when installed.

Models: ``dlmodels.text.classify.rnn_classifier`` (embedding ``embed_dim``, one ``cell`` layer of
``hidden`` units, embedding dropout and dropout on the head's input, softmax over 2 classes);
unidirectional = logits from the forward state at each sentence's last real token;
bidirectional = from ``[forward h_T ; backward h_1]``. Sentences are cut to ``max_len`` tokens for
the RNNs (fixed-shape batches; 40 tokens keep all of ~97 % of the sentences whole), not for the
bag of words. The 10 folds train as one vmapped program per model and dropout pair: member k
holds fold k's index in ``params["fold"]`` (a constant: the optimizer leaves it alone) and picks
its own columns of the ``[N, folds, T]`` data. Optimiser: Adam, cosine decay, clipping.

Published (Kim 2014, Table 2, MR, 10,662 sentences, accuracy %): CNN-rand 76.1, CNN-static 81.0,
NBSVM-bi (Wang & Manning 2012) 79.4, MNB-bi 79.0, RAE 77.7.

Measured here (2026-12-04, the defaults, ``python -m dlmodels run sentiment``, 2-core CPU shared
with another run, 647 s in all; 10-fold CV, mean +- std over folds):

    unidirectional LSTM-32 from h_T             71.53 +- 1.77 %
    bidirectional LSTM-32 from [h_T ; h_1]      71.78 +- 1.94 %
    bag of words (binary uni+bigrams) + L2 LR   72.45 +- 2.97 %   (scikit-learn, same C: 71.98 %)

Target (bidirectional >= bag of words): missed by 0.67 points, inside the fold-to-fold spread (the
standard error of the difference of the means is about 1 point). On 3,240 training sentences
without pretrained embeddings the RNNs overfit within 3-6 epochs (training loss 0.1-0.2), while a
linear model over binary n-grams is strong on small data, as in Wang & Manning 2012.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import losses
from dlmodels.data import pattern
from dlmodels.extras import optional_import
from dlmodels.nn import initializers
from dlmodels.plots import figure, save
from dlmodels.text import batching, tokenize
from dlmodels.text.classify import bag_of_words, bigram_vocabulary, bow_logistic, rnn_classifier
from dlmodels.text.vocab import Vocab
from dlmodels.train import (OptimizerConfig, TrainConfig, fit, make_evaluate, make_optimizer)
from dlmodels.train.objectives import classifier

MODELS = ("uni", "bi", "bow")
LABELS = {"uni": "RNN, h_T", "bi": "BiRNN, [h_T ; h_1]", "bow": "bag of words + LR",
          "sklearn": "scikit-learn LR (same C, features)"}
SPECIALS = ("<pad>", "<unk>")

# Kim 2014, Table 2, column MR (accuracy, fraction), 10-fold CV on 10,662 sentences.
PUBLISHED = {"CNN-rand (Kim 2014)": 0.761, "CNN-static (Kim 2014)": 0.810,
             "NBSVM-bi (Wang & Manning 2012, via Kim 2014)": 0.794,
             "MNB-bi (Wang & Manning 2012, via Kim 2014)": 0.790,
             "RAE (Socher et al. 2011, via Kim 2014)": 0.777}


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = MODELS  # models to run: uni (RNN from h_T), bi (from [h_T ; h_1]), bow
    seed: int = 0  # seed of the folds, the inner split, initial params and batch order
    n_folds: int = 10  # k of the stratified k-fold cross-validation
    valid_fraction: float = 0.1  # share of each fold's training part held out for choices
    max_len: int = 40  # RNNs: tokens kept per sentence (longer ones are cut)
    min_count: int = 2  # RNN vocabulary: inner-train words seen this often; the rest -> <unk>
    cell: str = "lstm"  # RNN cell: lstm, gru or elman
    embed_dim: int = 32  # RNN: embedding size
    embed_scale: float = 0.1  # RNN: embeddings start uniform in [-embed_scale, embed_scale]
    hidden: int = 32  # RNN: hidden units per direction
    dropout: tuple[float, ...] = (0.5,)  # RNN: dropout on the head's input, a grid chosen per fold
    embed_dropout: tuple[float, ...] = (0.5, 0.7)  # RNN: dropout on the embedded words, a grid too
    epochs: int = 6  # RNN: training epochs (the best epoch is chosen on inner validation)
    batch_size: int = 50  # RNN: sentences per update
    learning_rate: float = 3e-3  # RNN: peak Adam learning rate (cosine-decayed)
    clip_norm: float = 1.0  # RNN: gradient-norm clipping threshold (0: none)
    bow_binary: bool = True  # bag of words: 0/1 presence (True) or counts
    bow_bigrams: bool = True  # bag of words: add word-bigram columns (NBSVM's "bi")
    bow_bigram_min_count: int = 2  # bag of words: bigrams kept if seen this often in inner-train
    bow_cs: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)  # bag of words: inverse L2 strengths C tried
    bow_epochs: int = 20  # bag of words: training epochs
    bow_batch_size: int = 100  # bag of words: sentences per update
    bow_learning_rate: float = 0.02  # bag of words: peak Adam learning rate (cosine-decayed)
    sklearn: bool = True  # run scikit-learn's LogisticRegression beside ours (when installed)
    checkpoint_every: int = 200  # updates between checkpoints of each training phase

    def __post_init__(self):
        if not self.models or set(self.models) - set(MODELS):
            raise ValueError(f"models must be drawn from {MODELS}, got {self.models}")
        if self.cell not in ("lstm", "gru", "elman"):
            raise ValueError(f"cell must be lstm, gru or elman, got {self.cell!r}")
        if not 0 < self.valid_fraction <= 0.5:
            raise ValueError(f"valid_fraction must be in (0, 0.5], got {self.valid_fraction}")
        if not self.embed_dropout or not all(0 <= d < 1 for d in self.embed_dropout):
            raise ValueError(f"embed_dropout needs values in [0, 1), got {self.embed_dropout}")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        for name in ("max_len", "min_count", "embed_dim", "bow_bigram_min_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.dropout or not self.bow_cs or min(self.bow_cs) <= 0:
            raise ValueError("dropout and bow_cs need at least one value; every C must be > 0")


# ---------------------------------------------------------------------------------------------
# Folds and vocabularies.

def _splits(labels: np.ndarray, config: Config) -> list[dict]:
    """Per fold: ``{"train", "valid", "test"}`` index arrays (inner-train, inner validation, the
    test fold), the inner split stratified inside the fold's training part."""
    out = []
    inner_k = max(2, round(1 / config.valid_fraction))
    for k, (train, test) in enumerate(pattern.folds(labels, k=config.n_folds, seed=config.seed)):
        inner_train, inner_valid = pattern.folds(labels[train], k=inner_k,
                                                 seed=config.seed + 1 + k)[0]
        out.append({"train": train[inner_train], "valid": train[inner_valid], "test": test})
    return out


def _encode(tokens: list[list[str]], vocab: Vocab, max_len: int | None):
    """``(ids [N, T], lengths [N])``; an empty text becomes one ``<unk>``."""
    seqs = [vocab.encode(t) if t else [vocab.unk_id] for t in tokens]
    return batching.pad(seqs, pad_id=vocab.pad_id, max_len=max_len)


def _vocab(tokens: list[list[str]], index: np.ndarray, min_count: int) -> Vocab:
    counts = collections.Counter(w for i in index for w in tokens[i])
    return Vocab.from_counts(counts, min_count=min_count, specials=SPECIALS)


# ---------------------------------------------------------------------------------------------
# RNNs: the folds as one vmapped program.

def _stack(parts: list[dict]) -> dict:
    """Per-fold dicts of ``[n_k, ...]`` arrays -> one dict of ``[max n_k, folds, ...]`` arrays;
    rows past a fold's ``n_k`` are padding (length 1, all masks 0)."""
    n = max(len(p["labels"]) for p in parts)
    out = {}
    for name in parts[0]:
        fill = 1 if name == "lengths" else 0
        cols = []
        for p in parts:
            a = p[name]
            pad = np.full((n - len(a),) + a.shape[1:], fill, a.dtype)
            cols.append(np.concatenate([a, pad]))
        out[name] = np.stack(cols, axis=1)
    return out


def _rnn_data(tokens, labels, splits, config: Config):
    """Train and eval arrays of all folds (``_stack``) and the per-fold vocabulary sizes."""
    train_parts, eval_parts, vocab_sizes = [], [], []
    for s in splits:
        vocab = _vocab(tokens, s["train"], config.min_count)
        vocab_sizes.append(len(vocab))
        ids, lengths = _encode([tokens[i] for i in s["train"]], vocab, config.max_len)
        train_parts.append({"ids": ids, "lengths": lengths, "labels": labels[s["train"]],
                            "weight": np.ones(len(ids), np.float32)})
        held = np.concatenate([s["valid"], s["test"]])
        ids, lengths = _encode([tokens[i] for i in held], vocab, config.max_len)
        is_valid = np.arange(len(held)) < len(s["valid"])
        eval_parts.append({"ids": ids, "lengths": lengths, "labels": labels[held],
                           "valid": is_valid.astype(np.float32),
                           "test": (~is_valid).astype(np.float32)})
    return _stack(train_parts), _stack(eval_parts), vocab_sizes


def _fold_columns(params, batch):
    """The batch's columns of this member's fold: ``[B, folds, ...] -> [B, ...]``."""
    fold = jax.lax.stop_gradient(params["fold"]).astype(jnp.int32)
    return {k: jnp.take(v, fold, axis=1) for k, v in batch.items()}


def _run_rnn(name: str, dropout: float, embed_dropout: float, train, held, vocab_size: int,
             config: Config, run_dir: str | None) -> dict:
    """Train the 10 folds of one RNN (``name`` uni or bi) with one dropout pair; returns the
    per-epoch ``valid_accuracy``, ``valid_loss``, ``test_accuracy`` ``[epochs, folds]``."""
    model = rnn_classifier(vocab_size, 2, cell=config.cell, embed_dim=config.embed_dim,
                           hidden=config.hidden, bidirectional=name == "bi", dropout=dropout,
                           embed_dropout=embed_dropout,
                           embed_init=initializers.uniform(config.embed_scale))

    def init_fold(k):
        return lambda key: {"model": model.init(key), "fold": jnp.float32(k)}

    def loss_fn(params, batch, key):
        b = _fold_columns(params, batch)
        logits = model.apply(params["model"], b["ids"], b["lengths"], key=key, train=True)
        ce = losses.softmax_cross_entropy(logits, b["labels"])
        return jnp.sum(ce * b["weight"]) / jnp.maximum(jnp.sum(b["weight"]), 1.0), {}

    def eval_fn(params, batch):
        b = _fold_columns(params, batch)
        logits = model.apply(params["model"], b["ids"], b["lengths"])
        correct = (jnp.argmax(logits, -1) == b["labels"]).astype(jnp.float32)
        ce = losses.softmax_cross_entropy(logits, b["labels"])
        return {"valid_correct": correct * b["valid"], "valid_loss": ce * b["valid"],
                "valid_n": b["valid"], "test_correct": correct * b["test"], "test_n": b["test"]}

    n = train["labels"].shape[0]
    steps = config.epochs * (n // config.batch_size)
    core = make_optimizer(OptimizerConfig("adam", config.learning_rate, schedule="cosine",
                                          clip_norm=config.clip_norm), steps)
    optimizer = optax.multi_transform(
        {"train": core, "fixed": optax.set_to_zero()},
        lambda params: {"model": jax.tree.map(lambda _: "train", params["model"]),
                        "fold": "fixed"})
    k = train["labels"].shape[1]
    fitted = fit([init_fold(j) for j in range(k)], loss_fn, optimizer, train,
                 TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                             seed=config.seed, data_seed=config.seed,
                             checkpoint_every=config.checkpoint_every,
                             eval_batch_size=held["labels"].shape[0]),
                 seeds=[config.seed * 1000 + j for j in range(k)], eval_fn=eval_fn,
                 eval_data=held, run_dir=run_dir, resume=run_dir is not None,
                 record={"experiment": "sentiment", "model": name, "dropout": dropout,
                         "embed_dropout": embed_dropout,
                         **dataclasses.asdict(config)})
    h = fitted.history

    def per_epoch(num, den):
        return np.array([np.asarray(e[f"eval_{num}"]) / np.asarray(e[f"eval_{den}"]) for e in h])

    return {"valid_accuracy": per_epoch("valid_correct", "valid_n"),
            "valid_loss": per_epoch("valid_loss", "valid_n"),
            "test_accuracy": per_epoch("test_correct", "test_n"),
            "train_loss": np.array([np.asarray(e["train_loss"]) for e in h])}


def _choose(runs: dict[float, dict]) -> dict:
    """Per fold, the ((dropout, embed_dropout), epoch) with the best inner-validation accuracy (ties: lower
    validation loss), and the test accuracy there."""
    grid = list(runs)
    valid = np.stack([runs[d]["valid_accuracy"] for d in grid])      # [G, E, K]
    loss = np.stack([runs[d]["valid_loss"] for d in grid])
    test = np.stack([runs[d]["test_accuracy"] for d in grid])
    G, E, K = valid.shape
    chosen, acc, val = [], [], []
    for k in range(K):
        order = np.lexsort((loss[:, :, k].ravel(), -valid[:, :, k].ravel()))
        g, e = divmod(int(order[0]), E)
        chosen.append({"dropout": grid[g][0], "embed_dropout": grid[g][1], "epoch": e + 1})
        acc.append(float(test[g, e, k]))
        val.append(float(valid[g, e, k]))
    return {"fold_accuracies": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc)),
            "valid_accuracies": val, "chosen": chosen,
            "curves": {f"dropout {d[0]}, embed {d[1]}": {"valid_accuracy_mean": runs[d]["valid_accuracy"].mean(1),
                                "test_accuracy_mean": runs[d]["test_accuracy"].mean(1),
                                "train_loss_mean": runs[d]["train_loss"].mean(1)} for d in grid}}


# ---------------------------------------------------------------------------------------------
# Bag of words, one fold at a time (the feature sets differ in size).

def _run_bow(tokens, labels, splits, config: Config, run_dir: str) -> tuple[dict, dict | None]:
    sklearn_lm = sparse = None
    if config.sklearn:
        try:
            why = "the scikit-learn baseline of the sentiment experiment"
            sklearn_lm = optional_import("sklearn.linear_model", needed_for=why)
            sparse = optional_import("scipy.sparse", needed_for=why)
        except ImportError:
            sklearn_lm = None
    ours, theirs, chosen, n_features, val_acc = [], [], [], [], []
    for k, s in enumerate(splits):
        vocab = _vocab(tokens, s["train"], 1)
        enc = {part: _encode([tokens[i] for i in s[part]], vocab, None) for part in s}
        bigrams = (bigram_vocabulary(*enc["train"], len(vocab),
                                     min_count=config.bow_bigram_min_count)
                   if config.bow_bigrams else None)
        x = {part: bag_of_words(*enc[part], len(vocab), binary=config.bow_binary,
                                bigrams=bigrams) for part in s}
        y = {part: labels[s[part]] for part in s}
        F, n = x["train"].shape[1], len(y["train"])
        n_features.append(F)
        model = bow_logistic(F, 2)
        loss_fn, eval_fn = classifier(model.apply)
        steps = config.bow_epochs * (n // config.bow_batch_size)
        schedule = optax.cosine_decay_schedule(config.bow_learning_rate, steps)

        def make(weight_decay):
            decay = optax.add_decayed_weights(weight_decay, mask=lambda p: {"w": True,
                                                                            "b": False})
            return optax.chain(decay, optax.adam(schedule))

        optimizer = optax.inject_hyperparams(make)(weight_decay=0.0)
        # mean loss + (wd / 2) ||W||^2 over both class columns = sklearn's C for wd = 2 / (C n)
        decays = [2.0 / (c * n) for c in config.bow_cs]
        fitted = fit(model.init, loss_fn, optimizer, (x["train"], y["train"]),
                     TrainConfig(epochs=config.bow_epochs, batch_size=config.bow_batch_size,
                                 seed=config.seed, data_seed=config.seed,
                                 checkpoint_every=config.checkpoint_every),
                     hyperparams={"weight_decay": decays}, eval_fn=eval_fn,
                     eval_data=(x["valid"], y["valid"]),
                     run_dir=os.path.join(run_dir, f"bow_fold_{k}"), resume=True,
                     record={"experiment": "sentiment", "model": "bow", "fold": k,
                             **dataclasses.asdict(config)})
        valid = np.asarray(fitted.final["accuracy"])                  # [len(bow_cs)]
        g = int(np.argmax(valid))                                     # ties: the smaller C
        params = jax.tree.map(lambda a: a[g], fitted.state.params)
        test = jax.jit(make_evaluate(eval_fn, 1000))(params, (x["test"], y["test"]))
        ours.append(float(test["accuracy"]))
        val_acc.append(float(valid[g]))
        chosen.append({"C": config.bow_cs[g], "valid_accuracy_per_C": valid.tolist()})
        if sklearn_lm is not None:
            ref = sklearn_lm.LogisticRegression(C=config.bow_cs[g], max_iter=2000)
            ref.fit(sparse.csr_matrix(x["train"]), y["train"])
            w = np.asarray(params["w"][:, 1] - params["w"][:, 0])
            test_x = sparse.csr_matrix(x["test"])
            theirs.append({"accuracy": float(ref.score(test_x, y["test"])),
                           "coef_correlation": float(np.corrcoef(w, ref.coef_[0])[0, 1])})
        print(f"  bow fold {k}: C = {config.bow_cs[g]}, valid {valid[g]:.4f}, "
              f"test {ours[-1]:.4f}" + (f", sklearn {theirs[-1]['accuracy']:.4f}"
                                         if theirs else ""))
    result = {"fold_accuracies": ours, "mean": float(np.mean(ours)), "std": float(np.std(ours)),
              "valid_accuracies": val_acc, "chosen": chosen, "n_features": n_features}
    sk = None
    if theirs:
        acc = [t["accuracy"] for t in theirs]
        sk = {"fold_accuracies": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc)),
              "coef_correlation": [t["coef_correlation"] for t in theirs],
              "note": "LogisticRegression(C = ours chosen per fold, lbfgs) on the same features"}
    return result, sk


# ---------------------------------------------------------------------------------------------

def _plot(results: dict, path: str, n_folds: int) -> str:
    fig, (ax, bx) = figure(1, 2, figsize=(12, 4.2))
    folds = np.arange(1, n_folds + 1)
    for i, (name, marker) in enumerate((("uni", "o"), ("bi", "s"), ("bow", "^"),
                                        ("sklearn", "x"))):
        row = results["models"].get(name) or (results.get("sklearn") if name == "sklearn"
                                              else None)
        if not row:
            continue
        acc = 100 * np.asarray(row["fold_accuracies"])
        line, = ax.plot(folds, acc, marker=marker, linestyle="-" if name != "sklearn" else ":",
                        label=f"{LABELS[name]}: {acc.mean():.1f} ± {acc.std():.1f} %")
        ax.axhline(acc.mean(), color=line.get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("test fold")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(folds)
    ax.legend(fontsize=8)
    ax.set_title("per-fold test accuracy")
    for name in ("uni", "bi"):
        row = results["models"].get(name)
        if not row:
            continue
        for d, c in row["curves"].items():
            e = np.arange(1, len(c["valid_accuracy_mean"]) + 1)
            bx.plot(e, 100 * np.asarray(c["valid_accuracy_mean"]), marker="o",
                    label=f"{name}, {d}: inner valid")
            bx.plot(e, 100 * np.asarray(c["test_accuracy_mean"]), linestyle=":",
                    label=f"{name}, {d}: test fold")
    bx.set_xlabel("epoch")
    bx.set_ylabel("accuracy (%), mean over folds")
    bx.set_title("RNN accuracy by epoch")
    if bx.lines:
        bx.legend(fontsize=7)
    return save(fig, path, "Sentence polarity, 10-fold CV (4,000-sentence subset of MR)")


def main(config: Config, run_dir: str) -> dict:
    t_start = time.perf_counter()
    texts, labels = pattern.polarity("sentences")
    tokens = [tokenize.words(t, lower=True, punctuation="keep") for t in texts]
    lengths = np.array([len(t) for t in tokens])
    splits = _splits(labels, config)
    results: dict = {
        "data": {"sentences": len(texts), "positive": int(labels.sum()),
                 "mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()),
                 "cut_by_max_len": float(np.mean(lengths > config.max_len)),
                 "fold_sizes": [{p: len(s[p]) for p in s} for s in splits]},
        "published": PUBLISHED, "published_note": "Kim 2014, Table 2, MR: full 10,662-sentence "
        "set, 10-fold CV; ours is a 4,000-sentence subset",
        "models": {}, "seconds": {}}
    if {"uni", "bi"} & set(config.models):
        t0 = time.perf_counter()
        train, held, vocab_sizes = _rnn_data(tokens, labels, splits, config)
        results["data"]["rnn_vocab_sizes"] = vocab_sizes
        for name in ("uni", "bi"):
            if name not in config.models:
                continue
            t0 = time.perf_counter()
            runs = {(d, ed): _run_rnn(name, d, ed, train, held, max(vocab_sizes), config,
                                      os.path.join(run_dir, f"{name}_dropout_{d}_{ed}"))
                    for d in config.dropout for ed in config.embed_dropout}
            results["models"][name] = _choose(runs)
            results["seconds"][name] = time.perf_counter() - t0
            row = results["models"][name]
            print(f"{name:>4}: {100 * row['mean']:.2f} ± {100 * row['std']:.2f} % "
                  f"({results['seconds'][name]:.0f} s)")
    if "bow" in config.models:
        t0 = time.perf_counter()
        results["models"]["bow"], sk = _run_bow(tokens, labels, splits, config, run_dir)
        if sk is not None:
            results["sklearn"] = sk
        results["seconds"]["bow"] = time.perf_counter() - t0
        row = results["models"]["bow"]
        print(f" bow: {100 * row['mean']:.2f} ± {100 * row['std']:.2f} % "
              f"({results['seconds']['bow']:.0f} s)")
    m = results["models"]
    results["target"] = "bidirectional RNN mean accuracy >= bag-of-words mean accuracy"
    results["target_met"] = (bool(m["bi"]["mean"] >= m["bow"]["mean"])
                             if "bi" in m and "bow" in m else None)
    if "bi" in m and "bow" in m:
        results["bi_minus_bow"] = m["bi"]["mean"] - m["bow"]["mean"]
    results["plots"] = {"folds": "folds.png"}
    _plot(results, os.path.join(run_dir, "folds.png"), config.n_folds)
    results["total_seconds"] = time.perf_counter() - t_start
    return results
