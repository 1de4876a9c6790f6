"""Word-embedding test sets: Mikolov's analogy questions, WordSim-353 and SimLex-999, as gensim
ships them.

Source: the gensim 4.4.0 wheel (``gensim-4.4.0-cp311-cp311-manylinux_2_28_x86_64``, LGPL-2.1),
downloaded with pip in hash-checking mode for that platform whatever the running interpreter, and
never installed or imported. `fetch` copies three files of its ``gensim/test/test_data/`` folder
into ``<data_dir>/word_similarity/``, each under the sha256 pinned in `FILES`:

- ``questions-words.txt`` (Mikolov et al. 2013, "Efficient estimation of word representations in
  vector space"): 19,544 questions "a b c d" (a is to b as c is to d, e.g. ``Athens Greece
  Baghdad Iraq``) in 14 sections, each started by a line ``: section-name``. The five sections
  not named ``gram*`` are the 8,869 semantic questions, the nine ``gram*`` sections the 10,675
  syntactic ones (`SEMANTIC`, `SYNTACTIC`). Words keep the file's case (``Athens``, ``boy``).
- ``wordsim353.tsv`` (Finkelstein et al. 2002): 353 pairs, ``word1<TAB>word2<TAB>score``, scores
  the mean human relatedness on 0..10; two ``#`` comment lines (source, column names).
- ``simlex999.txt`` (Hill, Reichart & Korhonen 2015): 999 pairs in the same format, scores the
  mean human similarity (not relatedness) on 0..10; two ``#`` comment lines.

The parsers read these formats the way gensim's ``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs`` do, so an evaluation fed with `analogies()` / `pairs(name)` sees the same
questions in the same order as gensim reading the file:

- analogies: a line starting with ``": "`` starts a section named ``line.lstrip(": ").strip()``;
  any other line is split on white space into exactly four words; a question before the first
  section header is an error.
- pairs: lines starting with ``#`` are comments; the others are split on the delimiter (a tab)
  into exactly ``word1, word2, score`` (words not stripped, score parsed by ``float``).

gensim logs and skips a line that does not split into 4 words / 3 fields; `parse_analogies` and
`parse_pairs` raise `DataError` naming it instead, unless ``strict=False`` (then they skip it as
gensim does; blank lines are always skipped). The pinned files have no such line.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from pathlib import Path

from dlmodels.data import packages
from dlmodels.data.cache import DataError

WHEEL_SPEC = "gensim==4.4.0"
WHEEL_SHA256 = "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8"
WHEEL_TARGET = {"platform": "manylinux_2_28_x86_64", "python_version": "3.11", "abi": "cp311"}
WHEEL_FOLDER = "gensim/test/test_data"
SUBDIR = "word_similarity"
FETCH_COMMAND = "dlmodels data fetch word_similarity"
FILES = {  # file name -> sha256
    "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
    "wordsim353.tsv": "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
    "simlex999.txt": "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
}
NAMES = {"questions-words": "questions-words.txt", "wordsim353": "wordsim353.tsv",
         "simlex999": "simlex999.txt"}
PAIR_SETS = ("wordsim353", "simlex999")
SIZES = {"questions-words": 19_544, "wordsim353": 353, "simlex999": 999}
SEMANTIC = ("capital-common-countries", "capital-world", "currency", "city-in-state", "family")
SYNTACTIC = ("gram1-adjective-to-adverb", "gram2-opposite", "gram3-comparative",
             "gram4-superlative", "gram5-present-participle", "gram6-nationality-adjective",
             "gram7-past-tense", "gram8-plural", "gram9-plural-verbs")

Question = tuple[str, str, str, str]
Pair = tuple[str, str, float]


def folder() -> Path:
    """The cache folder, once every file is there with its pinned sha256 (else `DataError`)."""
    return packages.cached_files(SUBDIR, FILES, FETCH_COMMAND, "The word-similarity test sets")


def path(name: str) -> Path:
    """The verified cached file of ``name`` in ("questions-words", "wordsim353", "simlex999"),
    e.g. to hand to gensim's own evaluation."""
    if name not in NAMES:
        raise KeyError(f"unknown word-similarity file {name!r}; valid names: {', '.join(NAMES)}")
    return folder() / NAMES[name]


def is_semantic(section: str) -> bool:
    """Whether an analogy section is semantic (Mikolov et al. 2013): every section not named
    ``gram*``."""
    return not section.startswith("gram")


def parse_analogies(text: str, where: str = "analogy text", *,
                    strict: bool = True) -> dict[str, list[Question]]:
    """``{section: [(a, b, c, d), ...]}`` from questions-words text (format in the module doc):
    sections and questions in file order, words as written.

    Raises `DataError` (with the line number) for a question before any section header, a
    repeated section name, or, when ``strict``, a line that is not four words (skipped when
    not ``strict``, as gensim does).
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_analogies: text must be a str, got {type(text).__name__}")
    sections: dict[str, list[Question]] = {}
    current: list[Question] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(": "):
            name = line.lstrip(": ").strip()
            if name in sections:
                raise DataError(f"{where}, line {number}: section {name!r} appears twice")
            current = sections[name] = []
            continue
        if not line.strip():
            continue
        if current is None:
            raise DataError(f"{where}, line {number}: question {line!r:.80} before any "
                            "': section' header")
        words = line.split()
        if len(words) != 4:
            if strict:
                raise DataError(f"{where}, line {number}: expected 4 words, got {line!r:.80}")
            continue
        current.append((words[0], words[1], words[2], words[3]))
    return sections


def parse_pairs(text: str, where: str = "word-pair text", *, delimiter: str = "\t",
                strict: bool = True) -> list[Pair]:
    """``[(word1, word2, score), ...]`` from word-pair text (format in the module doc), in file
    order; ``#`` lines are comments.

    Raises `DataError` (with the line number), when ``strict``, for a line that is not
    ``word1 DELIM word2 DELIM number`` (skipped when not ``strict``, as gensim does).
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_pairs: text must be a str, got {type(text).__name__}")
    out: list[Pair] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split(delimiter)
        try:
            if len(fields) != 3:
                raise ValueError(f"{len(fields)} fields")
            out.append((fields[0], fields[1], float(fields[2])))
        except ValueError:
            if strict:
                raise DataError(f"{where}, line {number}: expected word1{delimiter!r}word2"
                                f"{delimiter!r}score, got {line!r:.80}") from None
    return out


def analogies() -> dict[str, list[Question]]:
    """Mikolov's analogy questions: ``{section: [(a, b, c, d), ...]}``, 14 sections in file order
    (`SEMANTIC` then `SYNTACTIC`), 19,544 questions in all, words in the file's case."""
    p = path("questions-words")
    return parse_analogies(p.read_text(encoding="utf-8"), str(p))


def pairs(name: str) -> list[Pair]:
    """Human similarity judgements ``[(word1, word2, score), ...]`` in file order: "wordsim353"
    (353 pairs, relatedness 0..10) or "simlex999" (999 pairs, similarity 0..10)."""
    if name not in PAIR_SETS:
        raise KeyError(f"unknown word-pair set {name!r}; valid names: {', '.join(PAIR_SETS)}")
    p = path(name)
    return parse_pairs(p.read_text(encoding="utf-8"), str(p))


def zip_members(archive: str, folder: str, names: dict[str, str]) -> dict[str, bytes]:
    """The bytes of members ``folder/NAME`` of a zip file (a wheel) for every NAME in ``names``
    (name -> sha256), each verified; raises `DataError` if one is missing or differs."""
    out = {}
    with zipfile.ZipFile(archive) as zf:
        for name, sha in names.items():
            member = f"{folder.rstrip('/')}/{name}"
            try:
                data = zf.read(member)
            except KeyError:
                raise DataError(f"{archive} has no file {member}") from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha:
                raise DataError(f"checksum mismatch for {member} in {archive}: expected sha256 "
                                f"{sha}, got {actual}")
            out[name] = data
    return out


def fetch() -> Path:
    """Download the gensim 4.4.0 wheel with pip (no install), verify it and copy the three test
    files into the cache; returns the folder. Does nothing when the cache already verifies."""
    if packages.is_cached(SUBDIR, FILES):
        return packages.cache_folder(SUBDIR)
    with tempfile.TemporaryDirectory(prefix="dlmodels-word-similarity-") as tmp:
        wheel = packages.pip_wheel(WHEEL_SPEC, WHEEL_SHA256, tmp, **WHEEL_TARGET)
        files = zip_members(wheel, WHEEL_FOLDER, FILES)
    d = packages.cache_folder(SUBDIR)
    for name, data in files.items():
        packages.write_verified(d / name, data, FILES[name])
    return folder()
