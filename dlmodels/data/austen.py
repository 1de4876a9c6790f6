"""Jane Austen's six completed novels, for word-level language models and word embeddings.

Source: the Debian package ``r-cran-janeaustenr`` 1.0.0-1 (the R package janeaustenr, MIT,
Julia Silge; the Project Gutenberg texts are public domain), fetched with ``apt-get download``
and ``dpkg -x`` (no root needed). The novels are character vectors (one element per line of the
Gutenberg text) in R's lazy-load database ``janeaustenr/data/Rdata.rdx`` + ``Rdata.rdb``, read by
`dlmodels.data.rdata` (standard library only). `fetch` verifies the .deb and both database files,
and stores each novel as UTF-8 text, its lines joined by ``"\\n"`` (no final newline), in
``<data_dir>/austen/<novel>.txt`` under the sha256 pinned in `SHA256`. In all: 4,025,022
characters, 717,537 whitespace-separated words, 269 chapters.

Text representation: the Gutenberg line breaks are kept, a blank line is an empty line, so a
paragraph ends with ``"\\n\\n"`` (sometimes more blank lines around headings). The only non-ASCII
character is "£"; the train split has 80 distinct characters and valid adds "£" (a character
vocabulary built on train needs an unknown symbol).

Splits by chapter, a fixed rule: a chapter starts at a line that is ``CHAPTER``/``Chapter`` and a
number (arabic or roman); chapters are numbered i = 1, 2, ... in order within each novel (Emma's
three volumes continue the count: 1..55). Chapter i goes to valid if i % 10 == 8, to test if
i % 10 == 9, else to train; the front matter before chapter 1 (title, author, Northanger
Abbey's "Advertisement") goes to train. ``load(split)`` joins with ``"\\n"`` the lines of that
split's chapters, novels in `NOVELS` order, lines in book order.

=====  ========  ==========  =======
split  chapters  characters  words
=====  ========  ==========  =======
train  218       3,225,892   574,912
valid  26        408,952     73,155
test   25        390,181     69,470
=====  ========  ==========  =======
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from dlmodels.data import packages, rdata
from dlmodels.data.cache import DataError, verify_sha256

PACKAGE = "r-cran-janeaustenr"
DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
DB_FOLDER = "usr/lib/R/site-library/janeaustenr/data"
DB_SHA256 = {"Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
             "Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f"}
SUBDIR = "austen"
FETCH_COMMAND = "dlmodels data fetch austen"
SPLITS = ("train", "valid", "test")
SHA256 = {  # novel -> sha256 of <novel>.txt
    "emma": "dd08b340a56ad4a0a00718d5682528a5a5886ae0aef91c9e0fa528074fa64b75",
    "mansfieldpark": "e0e9ef3863ea77f51f6070062ee0dd50ad9b933223880617629e4e4963ea40ff",
    "northangerabbey": "8618a5acf5be50cc6e9b7680c7469fb6012649ab08c709dfc63c6367989fd31d",
    "persuasion": "726513a6c18bb678427bcbcf7c72d0d20816a67c25b0471b26ddcabf3ebac140",
    "prideprejudice": "2e44edaa4946d64ad541c68e0224f5d672f43bf3ce2a8a0b0637ad5e02fc6eb3",
    "sensesensibility": "0996d90842bbe8093f3b8142c1e77d1b20cff52d1d0615f3ed67733653e74e26",
}
NOVELS: tuple[str, ...] = tuple(sorted(SHA256))
FILES = {n + ".txt": sha for n, sha in SHA256.items()}
CHAPTER_HEADING = re.compile(r"chapter\s+([0-9]+|[ivxlc]+)\.?", re.IGNORECASE)


def chapter_split(i: int) -> str:
    """The split of chapter ``i`` of a novel (1-based; 0 is the front matter)."""
    return {8: "valid", 9: "test"}.get(i % 10, "train") if i > 0 else "train"


def chapters(text: str) -> list[list[str]]:
    """A novel's lines cut into chapters: element 0 the front matter, element i chapter i (the
    heading line starts it)."""
    out: list[list[str]] = [[]]
    for line in text.split("\n"):
        if CHAPTER_HEADING.fullmatch(line.strip()):
            out.append([])
        out[-1].append(line)
    return out


def folder() -> Path:
    """The cache folder, once every novel is there with its pinned sha256 (else `DataError`)."""
    return packages.cached_files(SUBDIR, FILES, FETCH_COMMAND, "Jane Austen's novels")


def novel(name: str) -> str:
    """The whole text of one novel (a name in `NOVELS`)."""
    if name not in SHA256:
        raise DataError(f"unknown Austen novel {name!r}; valid names: {', '.join(NOVELS)}")
    return (folder() / f"{name}.txt").read_text(encoding="utf-8")


def load(split: str) -> str:
    """The lines of the chapters of ``split`` (train/valid/test, rule above) joined by ``"\\n"``."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} of austen; valid splits: {', '.join(SPLITS)}")
    d = folder()
    lines = []
    for name in NOVELS:
        for i, chapter in enumerate(chapters((d / f"{name}.txt").read_text(encoding="utf-8"))):
            if chapter_split(i) == split:
                lines += chapter
    return "\n".join(lines)


def convert(rdx: bytes, rdb: bytes) -> dict[str, str]:
    """``{novel: text}`` from the package's lazy-load database (lines joined by ``"\\n"``)."""
    objects = rdata.load_lazyload_db(rdx, rdb)
    if sorted(objects) != list(NOVELS):
        raise DataError(f"janeaustenr data holds {sorted(objects)}, expected {list(NOVELS)}")
    texts = {}
    for name, lines in objects.items():
        if not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
            raise DataError(f"janeaustenr object {name!r} is not a character vector without NA")
        texts[name] = "\n".join(lines)
    return texts


def fetch() -> Path:
    """Download the Debian package (no install), verify it and its database, convert the six
    novels into the cache; returns the folder. Does nothing when the cache already verifies."""
    if packages.is_cached(SUBDIR, FILES):
        return packages.cache_folder(SUBDIR)
    with tempfile.TemporaryDirectory(prefix="dlmodels-austen-") as tmp:
        db = Path(packages.apt_deb(PACKAGE, DEB_SHA256, tmp)) / DB_FOLDER
        for name, sha in DB_SHA256.items():
            verify_sha256(db / name, sha)
        texts = convert((db / "Rdata.rdx").read_bytes(), (db / "Rdata.rdb").read_bytes())
    d = packages.cache_folder(SUBDIR)
    for name, text in texts.items():
        packages.write_verified(d / f"{name}.txt", text.encode("utf-8"), SHA256[name])
    return folder()
