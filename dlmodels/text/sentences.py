"""Sentences of lower-case words: the training corpus of word2vec (Austen + Shakespeare + the
State of the Union addresses).

``split(text)``: the text is cut into sentences at every run of ``.``, ``!`` or ``?`` and at every
blank line (a line break followed, after optional white space, by another), and each piece is
tokenised by `dlmodels.text.tokenize.words` (``lower=True, punctuation="drop"``); pieces without a
word are dropped. Before that, two normalisations: the typographic apostrophe ``’`` becomes ``'``
(so ``nation’s`` and ``nation's`` are one word) and ``_`` becomes a space (Gutenberg marks
italics as ``_word_``, and runs of ``_`` are rules, not words). Abbreviations also end a
sentence (``Mr. Darcy`` gives ``[..., "mr"], ["darcy", ...]``): for word2vec a sentence only
bounds the context window, so the cost is a few lost contexts. No sentence comes near gensim's
limit of 10,000 words per sentence (longer ones gensim truncates), so both see the same input.

``embedding_corpus(sources)`` concatenates the sentences of each source, in the order given, each
source's documents in a fixed order: austen the six novels (`dlmodels.data.austen.NOVELS`, whole
texts, all splits), shakespeare the 42 works (`dlmodels.data.shakespeare.WORKS`), sotu the 233
addresses in chronological order (`dlmodels.data.sotu`); documents are split separately (no
sentence spans two). Each source is tokenised once and cached in
``<data_dir>/word2vec_corpus/<source>.txt`` (one sentence per line, words separated by single
spaces, UTF-8: gensim's ``LineSentence`` format, so a file can be its ``corpus_file``), pinned by
sha256 in `CORPUS_SHA256` (so a change of the tokeniser shows up as a checksum error, not as
silently different experiments); a missing or damaged cache file is rebuilt from the fetched
source. On a machine without the sources (a lent GPU), the cache files alone are enough.

Sizes ("count >= 5": the distinct words kept by ``min_count=5``, and the words they cover):

===========================  =========  =========  ==========  ==========  ===========
sources                      sentences  words      vocabulary  count >= 5  their words
===========================  =========  =========  ==========  ==========  ===========
austen                       39,893     725,067    14,163      5,904       710,417
shakespeare                  97,576     913,887    26,439      9,126       884,513
sotu                         66,111     1,813,085  25,583      12,124      1,788,688
austen + shakespeare         137,469    1,638,954  32,030      12,441      1,605,463
austen + shakespeare + sotu  203,580    3,452,039  44,858      19,694      3,408,215
===========================  =========  =========  ==========  ==========  ===========

With ``min_count=5``, the evaluation sets' coverage (questions / pairs whose words are all in
the vocabulary, case-insensitive; `dlmodels.data.word_similarity`): austen + shakespeare 4,129 of
the 19,544 analogy questions (259 semantic, 3,870 syntactic), 142 of 353 WordSim pairs, 630 of 999
SimLex pairs; with sotu 7,368 (843 semantic, 6,525 syntactic), 238 and 815.

Reading the three cached files takes about 2 s; tokenising them afresh about 6 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from dlmodels.data import austen, packages, shakespeare, sotu
from dlmodels.data.cache import DataError
from dlmodels.text import tokenize

BOUNDARY = re.compile(r"[.!?]+|\n\s*\n")
SUBDIR = "word2vec_corpus"
SOURCE_MODULES = {"austen": austen, "shakespeare": shakespeare, "sotu": sotu}
SOURCES: tuple[str, ...] = tuple(SOURCE_MODULES)
OPTIONAL = ("sotu",)  # skipped by sources="available" when not fetched
CORPUS_SHA256 = {  # source -> sha256 of <data_dir>/word2vec_corpus/<source>.txt
    "austen": "7112f6e98cccb99959193a073ccf8a392d8323fc341751850f9c98acbe714cce",
    "shakespeare": "263fa32180e71b6e76afa24b8d84419317fb07c85ae02f15ef17f943b0bca100",
    "sotu": "aba2a26509d818d17fbf0ead4899d558cb55257c0253457b145dd6378c99092e",
}


def split(text: str) -> list[list[str]]:
    """The sentences of ``text``, each a list of lower-case words (rules in the module doc)."""
    if not isinstance(text, str):
        raise TypeError(f"split: text must be a str, got {type(text).__name__}")
    text = text.replace("\u2019", "'").replace("_", " ")
    out = []
    for piece in BOUNDARY.split(text):
        words = tokenize.words(piece, lower=True, punctuation="drop")
        if words:
            out.append(words)
    return out


def _austen() -> list[str]:
    return [austen.novel(name) for name in austen.NOVELS]


def _shakespeare() -> list[str]:
    return [shakespeare.work(name) for name in shakespeare.WORKS]


# source -> its documents' texts in corpus order (each raises `DataError` naming the fetch command
# when the source is not fetched)
DOCUMENTS: dict[str, Callable[[], Iterable[str]]] = {"austen": _austen,
                                                      "shakespeare": _shakespeare,
                                                      "sotu": sotu.load}


def corpus_path(source: str) -> Path:
    """``<data_dir>/word2vec_corpus/<source>.txt`` (not checked)."""
    return packages.cache_folder(SUBDIR) / f"{source}.txt"


def encode(sentences: Sequence[Sequence[str]]) -> bytes:
    """The cache file format: one sentence per line, words separated by single spaces, UTF-8."""
    return "".join(" ".join(s) + "\n" for s in sentences).encode("utf-8")


def decode(data: bytes) -> list[list[str]]:
    """The inverse of `encode`; equal words share one string object (a 3-million-word corpus
    then holds each distinct word once)."""
    shared: dict[str, str] = {}
    intern = shared.setdefault
    return [[intern(w, w) for w in line.split(" ")]
            for line in data.decode("utf-8").split("\n") if line]


def is_available(source: str) -> bool:
    """Whether ``source``'s tokenised cache verifies or its raw text is fetched."""
    module = SOURCE_MODULES[source]
    files = getattr(module, "FILES", None) or module.SHA256
    return (packages.is_cached(SUBDIR, {f"{source}.txt": CORPUS_SHA256[source]})
            or packages.is_cached(module.SUBDIR, files))


def source_sentences(source: str) -> list[list[str]]:
    """The sentences of one source (in `SOURCES`), from the cache, tokenised and cached first if
    the cache file is missing or fails its sha256."""
    if source not in SOURCE_MODULES:
        raise ValueError(f"unknown corpus source {source!r}; valid sources: {', '.join(SOURCES)}")
    name = f"{source}.txt"
    sha = CORPUS_SHA256[source]
    if packages.is_cached(SUBDIR, {name: sha}):
        return decode(corpus_path(source).read_bytes())
    sentences = [s for text in DOCUMENTS[source]() for s in split(text)]
    data = encode(sentences)
    try:
        packages.write_verified(corpus_path(source), data, sha)
    except DataError as e:
        raise DataError(f"the tokenised {source} corpus differs from the pinned one ({e}); the "
                        "tokeniser or the source text changed: check it, then update "
                        "dlmodels.text.sentences.CORPUS_SHA256") from None
    return decode(data)


def resolve_sources(sources: str | Sequence[str] = "available") -> tuple[str, ...]:
    """The source names ``sources`` stands for: a sequence of names in `SOURCES`, or
    ``"available"`` (austen and shakespeare, plus sotu when it is fetched)."""
    if isinstance(sources, str):
        if sources != "available":
            raise ValueError(f'sources must be "available" or a sequence of names in '
                             f'{SOURCES}, got the string {sources!r}')
        return tuple(s for s in SOURCES if s not in OPTIONAL or is_available(s))
    sources = tuple(sources)
    unknown = [s for s in sources if s not in SOURCE_MODULES]
    if unknown:
        raise ValueError(f"unknown corpus sources {unknown}; valid sources: {', '.join(SOURCES)}")
    if not sources or len(set(sources)) != len(sources):
        raise ValueError(f"sources must be distinct names in {SOURCES}, got {sources}")
    return sources


def embedding_corpus(sources: str | Sequence[str] = SOURCES) -> list[list[str]]:
    """The word2vec training corpus: the sentences of every source in ``sources`` (a sequence of
    names in `SOURCES`, concatenated in that order, or ``"available"``, see `resolve_sources`),
    each a list of lower-case words. A source named but not fetched raises `DataError` naming
    its fetch command (``dlmodels data fetch sotu``)."""
    out: list[list[str]] = []
    for source in resolve_sources(sources):
        out += source_sentences(source)
    return out
