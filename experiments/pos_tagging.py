"""Part-of-speech tagging: most-frequent tag, HMM, structured perceptron, BiLSTM, BiLSTM-CRF.

Data: the Pattern library's tagged corpora (``dlmodels.data.pattern``; fetch with ``dlmodels data
fetch pattern_corpora``): English OANC (20,000 sentences, Penn Treebank tags assigned by a
tagger), German TIGER (250), Spanish Wikicorpus, Italian WaCky, Dutch TwNC (1,000 each), split
80/10/10 by sentence with ``seed``; for English also the 1,001 hand-tagged Wall Street Journal
sentences as an out-of-domain test (``pattern.wsj()``). Tags are the files' own (Dutch: the full
Wotan tags with their features, 163 in the training split).

Taggers, all trained on the same train split, accuracies per token:

- ``mft``: each known word's most frequent training tag (``dlmodels.text.taggers.MostFrequentTag``),
- ``hmm``: bigram HMM with smoothed counts and Viterbi decoding (``taggers.HMM``),
- ``perceptron``: averaged structured perceptron (Collins 2002; ``taggers.StructuredPerceptron``),
- ``bilstm``: ``dlmodels.text.tagger.bilstm_tagger`` with per-token softmax (argmax decoding),
- ``bilstm_crf``: the same network with a CRF output layer (Huang, Xu & Yu 2015; Lample et al.
  2016; Ma & Hovy 2016): trained by the CRF log-likelihood, decoded by Viterbi.

Neural inputs: lower-cased words with a training count >= ``min_count`` (the others, and every word
unseen in training, are ``<unk>``), and each word's characters in their original case (so case,
digits, hyphens and suffixes stay visible) through a character CNN (Ma & Hovy 2016: width 3,
max-pooled) or BiLSTM (Lample et al. 2016), ``char_encoder``. Words longer than
``max_word_chars`` keep their first and last ``max_word_chars / 2`` characters.

Efficiency on a CPU: sentences are sorted by length into batches of ``batch_size`` and each batch is
padded to the smallest of ``bucket_lengths`` that holds it (``tagger.pack_buckets``); the trainer
sees one packed batch per example and ``lax.switch`` runs the bucket's static shape
(``tagger.bucketed``), so a few shapes compile once and a 10-token sentence costs 16 steps, not
64. Training sentences longer than ``max(bucket_lengths)`` (64: 0.9 % of the English training
sentences) are cut into pieces of at most that length (the BiLSTM then misses context across a
cut); evaluation always runs on whole sentences, in buckets doubling up to the longest one.
Batches are formed once, with ``seed``; the trainer reshuffles their order every epoch.
Adam with cosine decay, gradient norm clipped to ``clip_norm``; every neural model trains through
``dlmodels.train.fit``, one compiled call per epoch (every call the same length, so the training
program compiles once), with checkpoints every ``checkpoint_epochs`` epochs (``--resume RUN_DIR``
continues; the baselines' predictions are cached in the run directory).

Protocol: hyper-parameters were chosen on the English valid split (below); the test split and the
WSJ sentences were evaluated once, with the final parameters. Unknown words: tokens whose exact
form never occurs in the training split.

Published reference points (PUBLISHED): most-frequent tag on an 80/20 split of these OANC
sentences 89.9 %, on the WSJ sentences 79.4 % (``../shared/DATA.md``). On the Penn Treebank WSJ
(sections 22-24, hand-annotated, a different corpus and protocol): TnT HMM 96.7 % (Brants 2000);
averaged perceptron 97.11 % (Collins 2002); BiLSTM-CRF 97.55 % (Huang, Xu & Yu 2015, with
pretrained embeddings and spelling features); BLSTM-CNN-CRF 97.55 % (Ma & Hovy 2016). The OANC
tags were assigned by a tagger, so accuracies here measure how well each model reproduces that
tagger, and they can exceed the hand-annotated figures.

Target: BiLSTM-CRF >= 96.5 % token accuracy on the English test split, the best of the five.

Measured (2026-12-04, defaults, 2-core shared CPU; experiments/results/pos_tagging/): test
accuracy MFT 94.04, HMM 96.27, perceptron 97.39, BiLSTM 97.20, BiLSTM-CRF 97.52 % (target met);
WSJ 88.57 / 91.28 / 93.49 / 92.93 / 93.44 %. Chosen on valid (3,000 training sentences, 3
epochs): lr 1e-2 over 5e-3 (93.9 vs 91.2 %), dropout 0.2 over 0.5, character CNN over none.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.experiment import write_json, write_text
from dlmodels.plots import figure, save, training_curves
from dlmodels.train import OptimizerConfig, TrainConfig, fit, make_optimizer

MODELS = ("mft", "hmm", "perceptron", "bilstm", "bilstm_crf")
NEURAL = ("bilstm", "bilstm_crf")
LABELS = {"mft": "most frequent tag", "hmm": "HMM", "perceptron": "structured perceptron",
          "bilstm": "BiLSTM", "bilstm_crf": "BiLSTM-CRF"}

# Token accuracies (fractions) quoted in the module docstring, with their sources.
PUBLISHED = {
    "en": {
        "most frequent tag, OANC 80/20 split (DATA.md)": 0.899,
        "most frequent tag, WSJ sentences (DATA.md)": 0.794,
        "PTB WSJ: TnT HMM (Brants 2000)": 0.967,
        "PTB WSJ: averaged perceptron (Collins 2002)": 0.9711,
        "PTB WSJ: BiLSTM-CRF (Huang, Xu & Yu 2015)": 0.9755,
        "PTB WSJ: BLSTM-CNN-CRF (Ma & Hovy 2016)": 0.9755,
    },
}


@dataclasses.dataclass(frozen=True)
class Config:
    language: str = "en"  # corpus language: en, de, es, it or nl (dlmodels.data.pattern.LANGUAGES)
    models: tuple[str, ...] = MODELS  # taggers to run: mft, hmm, perceptron, bilstm, bilstm_crf
    seed: int = 0  # seed of the 80/10/10 split, the initial params, the batches and dropout
    target_accuracy: float = 0.965  # English BiLSTM-CRF test accuracy the run is checked against
    perceptron_epochs: int = 5  # passes of the structured perceptron over the training sentences
    min_count: int = 2  # lower-cased training count a word needs to get its own embedding
    max_word_chars: int = 16  # characters kept per word (longer: first and last half)
    embed_dim: int = 64  # word embedding size
    char_encoder: str = "cnn"  # character features: cnn (Ma & Hovy 2016), lstm (Lample et al. 2016) or none
    char_dim: int = 16  # character embedding size
    char_hidden: int = 32  # character CNN filters (or character LSTM units per direction)
    hidden: int = 64  # word LSTM units per direction
    layers: int = 1  # stacked BiLSTM layers
    dropout: float = 0.2  # dropout on each BiLSTM layer's input and on the top layer's output
    epochs: int = 3  # training epochs of each neural tagger
    batch_size: int = 32  # sentences per update
    bucket_lengths: tuple[int, ...] = (16, 32, 64)  # padded lengths of the training batches (longer sentences are cut)
    learning_rate: float = 1e-2  # peak Adam learning rate (cosine-decayed to 0)
    clip_norm: float = 5.0  # gradient-norm clipping threshold (0: none)
    checkpoint_epochs: int = 1  # epochs between checkpoints of a neural tagger
    confusion_tags: int = 20  # most frequent test tags shown in the confusion plot

    def __post_init__(self):
        from dlmodels.data.pattern import LANGUAGES

        if self.language not in LANGUAGES:
            raise ValueError(f"--language must be one of {', '.join(LANGUAGES)}, got "
                             f"{self.language!r}")
        unknown = set(self.models) - set(MODELS)
        if unknown or not self.models:
            raise ValueError(f"--models must be drawn from {', '.join(MODELS)}, got "
                             f"{','.join(self.models) or '(empty)'}")
        if self.char_encoder not in ("cnn", "lstm", "none"):
            raise ValueError(f"--char_encoder must be cnn, lstm or none, got {self.char_encoder!r}")
        for name in ("min_count", "max_word_chars", "embed_dim", "char_dim", "layers",
                     "confusion_tags", "checkpoint_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not self.bucket_lengths or min(self.bucket_lengths) < 1:
            raise ValueError(f"--bucket_lengths must be positive, got {self.bucket_lengths}")


# ---------------------------------------------------------------------------------------------
# Data and vocabularies.

def load_corpus(language: str, seed: int) -> dict:
    """``{"train", "valid", "test"[, "wsj"]}``: lists of sentences of (word, tag)."""
    from dlmodels.data import pattern

    splits = {s: pattern.tagged(language, s, seed) for s in ("train", "valid", "test")}
    if language == "en":
        splits["wsj"] = pattern.wsj()
    return splits


def cut_word(word: str, n: int) -> str:
    """``word`` if it has at most n characters, else its first ``n // 2`` and last ``n - n // 2``."""
    return word if len(word) <= n else word[:n // 2] + word[len(word) - (n - n // 2):]


class Encoder:
    """Word (lower-cased, ``min_count``), character (original case) and tag vocabularies of the
    training split; ``encode(sentences) -> (word ids, tag ids, char ids)`` per sentence (tags
    unseen in training: -1, never predicted)."""

    def __init__(self, train: list, min_count: int, max_word_chars: int):
        from dlmodels.text import Vocab

        words = collections.Counter(w.lower() for s in train for w, _ in s)
        chars = collections.Counter(c for s in train for w, _ in s for c in w)
        tags = collections.Counter(t for s in train for _, t in s)
        self.words = Vocab.from_counts(words, min_count=min_count, specials=("<pad>", "<unk>"))
        self.chars = Vocab.from_counts(chars, specials=("<pad>", "<unk>"))
        self.tags = Vocab.from_counts(tags, specials=())
        self.max_word_chars = max_word_chars

    def encode(self, sentences: list) -> tuple[list, list, list]:
        words = [self.words.encode([w.lower() for w, _ in s]) for s in sentences]
        tags = [[self.tags.index(t) if t in self.tags else -1 for _, t in s] for s in sentences]
        chars = [[self.chars.encode(list(cut_word(w, self.max_word_chars))) for w, _ in s]
                 for s in sentences]
        return words, tags, chars


def split_long(words: list, tags: list, chars: list, max_len: int) -> tuple[list, list, list]:
    """Training sentences longer than ``max_len`` cut into consecutive pieces of at most
    ``max_len`` tokens."""
    out = ([], [], [])
    for w, t, c in zip(words, tags, chars):
        for start in range(0, len(w), max_len):
            for part, seq in zip(out, (w, t, c)):
                part.append(seq[start:start + max_len])
    return out


def eval_buckets(train_buckets: tuple[int, ...], longest: int) -> tuple[int, ...]:
    """The training buckets, then doublings of the largest until ``longest`` fits."""
    buckets = sorted(train_buckets)
    while buckets[-1] < longest:
        buckets.append(2 * buckets[-1])
    return tuple(buckets)


# ---------------------------------------------------------------------------------------------
# Scores.

def accuracies(gold: list, predicted: list, known: set) -> dict:
    """Token accuracy over all tokens, over unknown ones (form not in ``known``) and known ones;
    ``gold``: sentences of (word, tag); ``predicted``: tag lists."""
    hits = {"all": [0, 0], "unknown": [0, 0], "known": [0, 0]}
    for sentence, tags in zip(gold, predicted):
        if len(tags) != len(sentence):
            raise ValueError(f"a prediction of {len(tags)} tags for a sentence of "
                             f"{len(sentence)} words")
        for (word, tag), guess in zip(sentence, tags):
            ok = int(tag == guess)
            for part in ("all", "unknown" if word not in known else "known"):
                hits[part][0] += ok
                hits[part][1] += 1
    return {"accuracy": hits["all"][0] / max(hits["all"][1], 1),
            "unknown_accuracy": (hits["unknown"][0] / hits["unknown"][1]
                                 if hits["unknown"][1] else None),
            "known_accuracy": hits["known"][0] / max(hits["known"][1], 1),
            "tokens": hits["all"][1], "unknown_tokens": hits["unknown"][1]}


# ---------------------------------------------------------------------------------------------
# The baselines (dlmodels.text.taggers), their predictions cached in the run directory.

def run_baseline(name: str, corpus: dict, config: Config, run_dir: str) -> tuple[dict, float]:
    """``({split: predicted tag lists}, train seconds)``, from ``run_dir/<name>/predictions.json``
    when a previous (killed) run got that far."""
    from dlmodels.text import taggers

    path = os.path.join(run_dir, name, "predictions.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        return saved["predictions"], saved["train_seconds"]
    cls = {"mft": taggers.MostFrequentTag, "hmm": taggers.HMM,
           "perceptron": taggers.StructuredPerceptron}[name]
    kwargs = {"epochs": config.perceptron_epochs, "seed": config.seed} \
        if name == "perceptron" else {}
    t0 = time.perf_counter()
    model = cls(**kwargs).fit(corpus["train"])
    seconds = time.perf_counter() - t0
    predictions = {split: [list(p) for p in model.predict([[w for w, _ in s] for s in sents])]
                   for split, sents in corpus.items() if split != "train"}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, {"predictions": predictions, "train_seconds": seconds})
    return predictions, seconds


# ---------------------------------------------------------------------------------------------
# The neural taggers.

def _history_with_accuracy(history: list) -> list:
    return [{**h, "eval_accuracy": h["eval_correct"] / max(h["eval_tokens"], 1e-9)}
            for h in history if "eval_correct" in h]


def run_neural(name: str, encoder: Encoder, encoded: dict, config: Config,
               run_dir: str) -> tuple[dict, dict]:
    """Train one BiLSTM tagger through ``fit``; ``({split: predicted tag lists}, info)``."""
    from dlmodels.text import tagger

    crf = name == "bilstm_crf"
    B = config.batch_size
    train_buckets = tuple(sorted(config.bucket_lengths))
    words, tags, chars = split_long(*encoded["train"], max_len=train_buckets[-1])
    use_chars = config.char_encoder != "none"
    k_batches = jax.random.PRNGKey(config.seed)
    train = tagger.pack_buckets(words, tags, chars if use_chars else None, batch_size=B,
                                bucket_lengths=train_buckets, fill="repeat", key=k_batches,
                                max_chars=config.max_word_chars)
    longest = max(len(w) for split in encoded.values() for w in split[0])
    buckets = eval_buckets(train_buckets, longest)
    packed = {split: tagger.pack_buckets(w, t, c if use_chars else None, batch_size=B,
                                         bucket_lengths=buckets, max_chars=config.max_word_chars)
              for split, (w, t, c) in encoded.items() if split != "train"}
    model = tagger.bilstm_tagger(
        len(encoder.words), len(encoder.tags), embed_dim=config.embed_dim, hidden=config.hidden,
        layers=config.layers, n_chars=len(encoder.chars) if use_chars else None,
        char_dim=config.char_dim, char_hidden=config.char_hidden,
        char_encoder=config.char_encoder if use_chars else "lstm", crf=crf,
        dropout=config.dropout)
    loss = tagger.bucketed(tagger.loss_fn(model.apply, crf=crf), train_buckets, B)
    evaluate = tagger.bucketed(tagger.summed(tagger.eval_fn(model.apply, crf=crf)), buckets, B)
    # the trainer's data hold no sentence indices; the packed batches keep them for decoding
    train_data = {k: v for k, v in train.items() if k != "index"}
    valid_data = {k: v for k, v in packed["valid"].items() if k != "index"}
    steps_per_epoch = len(train["bucket"])
    total = config.epochs * steps_per_epoch
    optimizer = make_optimizer(OptimizerConfig("adam", config.learning_rate, schedule="cosine",
                                               clip_norm=config.clip_norm), total)
    record = {"experiment": "pos_tagging", "model": name, **dataclasses.asdict(config)}
    t0 = time.perf_counter()
    fitted = fit(model.init, loss, optimizer, train_data,
                 TrainConfig(epochs=config.epochs, batch_size=1, eval_batch_size=1,
                             seed=config.seed, data_seed=config.seed,
                             steps_per_call=steps_per_epoch,
                             checkpoint_every=config.checkpoint_epochs * steps_per_epoch),
                 eval_fn=evaluate, eval_data=valid_data, run_dir=os.path.join(run_dir, name),
                 resume=True, record=record)
    train_seconds = time.perf_counter() - t0

    predict = jax.jit(tagger.predict_fn(model.apply, crf=crf))
    params = fitted.state.params
    t0 = time.perf_counter()
    predictions = {}
    for split, data in packed.items():
        n_sentences = len(encoded[split][0])
        out: list = [None] * n_sentences
        for m in range(len(data["bucket"])):
            L = buckets[data["bucket"][m]]
            batch = tagger.unpack_batch({k: data[k][m] for k in data if k != "index"}, B, L)
            got = np.asarray(predict(params, jax.tree.map(jnp.asarray, batch)))
            for slot, i in enumerate(data["index"][m]):
                if i >= 0:
                    out[i] = [encoder.tags.tokens[j] for j in got[slot, :len(encoded[split][0][i])]]
        predictions[split] = out
    info = {"train_seconds": train_seconds, "predict_seconds": time.perf_counter() - t0,
            "steps": int(fitted.state.step), "steps_per_epoch": steps_per_epoch,
            "n_params": int(sum(np.size(a) for a in jax.tree.leaves(params))),
            "train_pieces": len(words), "bucket_lengths": list(train_buckets),
            "eval_bucket_lengths": list(buckets),
            "history": _history_with_accuracy(fitted.history)}
    return predictions, info


# ---------------------------------------------------------------------------------------------
# Plots.

def plot_confusion(gold: list, predicted: list, other_predictions: dict, n_tags: int, path: str,
                   title: str) -> dict:
    """Left: the row-normalised confusion matrix (gold tag -> predicted tag) of the ``n_tags``
    most frequent gold tags (the rest pooled as "other"); right: the per-tag accuracy of every
    model on those tags. Returns ``{"tags", "matrix" (counts), "per_tag_accuracy"}``."""
    counts = collections.Counter(t for s in gold for _, t in s)
    tags = [t for t, _ in counts.most_common(n_tags)]
    index = {t: i for i, t in enumerate(tags)}
    labels = tags + ["other"]
    K = len(labels)

    def matrix(pred):
        m = np.zeros((K, K), np.int64)
        for sentence, guess in zip(gold, pred):
            for (_, t), g in zip(sentence, guess):
                m[index.get(t, K - 1), index.get(g, K - 1)] += 1
        return m

    m = matrix(predicted)
    rates = m / np.maximum(m.sum(1, keepdims=True), 1)
    per_tag = {name: (np.diag(matrix(p))[:-1] / np.maximum(matrix(p).sum(1)[:-1], 1)).tolist()
               for name, p in other_predictions.items()}
    fig, (ax, bx) = figure(1, 2, figsize=(15, 6.5))
    shown = np.where(rates > 0, rates, np.nan)
    from matplotlib.colors import LogNorm
    im = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1e-4, vmax=1))
    ax.set_xticks(range(K), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(K), [f"{t} ({counts.get(t, 0) if t != 'other' else ''})" for t in labels],
                  fontsize=8)
    ax.set_xlabel("predicted tag")
    ax.set_ylabel("gold tag (test count)")
    ax.set_title("confusion, rows normalised (log colour)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    width = 0.8 / max(len(per_tag), 1)
    for k, (name, acc) in enumerate(per_tag.items()):
        bx.bar(np.arange(len(tags)) + k * width, acc, width, label=LABELS.get(name, name))
    bx.set_xticks(np.arange(len(tags)) + 0.4 - width / 2, tags, rotation=90, fontsize=8)
    low = min([min(a) for a in per_tag.values()] + [1.0])
    bx.set_ylim(max(0.0, low - 0.05), 1.0)
    bx.set_ylabel("per-tag accuracy (test)")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3, axis="y")
    save(fig, path, title)
    return {"tags": tags, "matrix": m.tolist(), "per_tag_accuracy": per_tag}


# ---------------------------------------------------------------------------------------------

def main(config: Config, run_dir: str) -> dict:
    t_start = time.perf_counter()
    corpus = load_corpus(config.language, config.seed)
    known = {w for s in corpus["train"] for w, _ in s}
    encoder = Encoder(corpus["train"], config.min_count, config.max_word_chars)
    encoded = {split: encoder.encode(sents) for split, sents in corpus.items()}
    eval_splits = [s for s in corpus if s != "train"]

    models, predictions = {}, {}
    for name in config.models:
        print(f"pos_tagging [{config.language}]: {LABELS[name]} ...", flush=True)
        if name in NEURAL:
            pred, info = run_neural(name, encoder, encoded, config, run_dir)
        else:
            pred, seconds = run_baseline(name, corpus, config, run_dir)
            info = {"train_seconds": seconds}
        predictions[name] = pred
        row = {split: accuracies(corpus[split], pred[split], known) for split in eval_splits}
        models[name] = {**{f"{split}_{k}": v for split, r in row.items() for k, v in r.items()
                           if k in ("accuracy", "unknown_accuracy", "known_accuracy")},
                        **{k: v for k, v in info.items() if k != "history"}}
        if "history" in info:
            models[name]["valid_curve"] = [round(h["eval_accuracy"], 5) for h in info["history"]]
            models[name]["history"] = info["history"]
        print(f"  valid {models[name]['valid_accuracy']:.4f}  test "
              f"{models[name]['test_accuracy']:.4f}  test unknown "
              f"{models[name]['test_unknown_accuracy']}", flush=True)

    best = max(models, key=lambda n: models[n]["valid_accuracy"])
    plots = {}
    path = os.path.join(run_dir, "confusion.png")
    confusion = plot_confusion(
        corpus["test"], predictions[best], predictions, config.confusion_tags, path,
        f"POS tagging ({config.language}, test): {LABELS[best]}, the best on valid")
    plots["confusion"] = os.path.basename(path)
    curves = {LABELS[n]: models[n]["history"] for n in models if "history" in models[n]}
    if curves:
        path = os.path.join(run_dir, "curves.png")
        training_curves(curves, path, keys=("train_loss", "eval_accuracy"),
                        title=f"BiLSTM taggers ({config.language}): training loss, valid accuracy")
        plots["curves"] = os.path.basename(path)
    for n in models:
        models[n].pop("history", None)

    split_sizes = {split: {"sentences": len(s), "tokens": sum(map(len, s)),
                           "unknown_tokens": sum(w not in known for x in s for w, _ in x)}
                   for split, s in corpus.items()}
    results = {"language": config.language, "splits": split_sizes,
               "n_tags": len(encoder.tags), "word_vocab": len(encoder.words),
               "char_vocab": len(encoder.chars), "models": models,
               "best_on_valid": best,
               "best_on_test": max(models, key=lambda n: models[n]["test_accuracy"]),
               "confusion": confusion, "published": PUBLISHED.get(config.language, {}),
               "plots": plots, "total_seconds": time.perf_counter() - t_start}
    if "bilstm_crf" in models:
        crf_test = models["bilstm_crf"]["test_accuracy"]
        results["target_accuracy"] = config.target_accuracy
        results["target_met"] = bool(crf_test >= config.target_accuracy
                                     and results["best_on_test"] == "bilstm_crf")
    table = _table(results, eval_splits)
    print(table, flush=True)
    write_text(os.path.join(run_dir, "table.md"), table + "\n")
    return results


def _table(results: dict, eval_splits: list) -> str:
    """The results as a markdown table (accuracies in %)."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"

    head = ["model"] + [f"{s} acc" for s in eval_splits] + [f"{s} unknown" for s in eval_splits] \
        + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, row in results["models"].items():
        cells = [LABELS[name]] + [pct(row[f"{s}_accuracy"]) for s in eval_splits] \
            + [pct(row[f"{s}_unknown_accuracy"]) for s in eval_splits] \
            + [f"{row['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
