"""Tokenisers: text to a list of characters or of words.

Words are found by regular expressions (Unicode-aware, Python's ``re``):

- ``WORD = r"\\w+(?:['\\u2019]\\w+)*"``: a run of letters, digits or underscores, with inner
  apostrophes kept inside the word (``don't``, ``o'er``, ``king's`` stay one token);
- ``PUNCT = r"[^\\w\\s]"``: any single character that is neither a word character nor white space.

``words(text, punctuation=...)``:

- ``"split"`` (default): ``WORD|PUNCT``, every punctuation mark is its own token
  (``"Hello, world!" -> ["hello", ",", "world", "!"]``; ``"well-known" -> ["well", "-", "known"]``);
- ``"keep"``: ``\\S+``, tokens are the runs between white space, punctuation left attached
  (``["hello,", "world!"]``);
- ``"drop"``: ``WORD`` only, punctuation removed (``["hello", "world"]``); a leading or trailing
  apostrophe (``'tis``, ``lovers'``) is punctuation and goes.

``lower=True`` lower-cases the text first (``str.lower``).
"""

from __future__ import annotations

import re

from dlmodels.validation import check_choice

WORD = r"\w+(?:['\u2019]\w+)*"
PUNCT = r"[^\w\s]"
PATTERNS = {"split": re.compile(f"{WORD}|{PUNCT}"), "keep": re.compile(r"\S+"),
            "drop": re.compile(WORD)}


def _check_text(text, what: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what}: text must be a str, got {type(text).__name__}")


def chars(text: str) -> list[str]:
    """The characters of ``text``, every one a token (white space and newlines included)."""
    _check_text(text, "chars")
    return list(text)


def words(text: str, *, lower: bool = True, punctuation: str = "split") -> list[str]:
    """The word tokens of ``text``: ``punctuation`` in "split" / "keep" / "drop" (module doc for
    the regular expressions); ``lower`` lower-cases first."""
    _check_text(text, "words")
    check_choice("punctuation", punctuation, tuple(PATTERNS))
    if lower:
        text = text.lower()
    return PATTERNS[punctuation].findall(text)
