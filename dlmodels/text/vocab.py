"""A vocabulary: tokens <-> integer ids, with reserved special tokens, saved as JSON.

Ids are assigned in this order:

1. the specials, in the order given (default ``("<pad>", "<unk>", "<bos>", "<eos>")``: pad 0,
   unk 1, bos 2, eos 3);
2. the other tokens with ``count >= min_count``, by decreasing count; ties keep first-seen order
   (the iteration order of ``counts``; for :meth:`Vocab.from_tokens`, the token's first
   occurrence in the text);
3. cut so that ``len(vocab) <= max_size`` (``max_size`` counts the specials too, as a "10k
   vocabulary" does).

A token equal to one of the specials keeps the special's id. Unknown tokens encode to ``unk_id``;
without an ``"<unk>"`` special (a closed vocabulary, e.g. ``specials=()`` for characters) they
raise ``KeyError`` naming the token.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from dlmodels.data.cache import DataError

DEFAULT_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
FORMAT = "dlmodels.vocab"
VERSION = 1


class Vocab:
    """Tokens <-> ids (module doc for the order). Build with :meth:`from_counts` or
    :meth:`from_tokens`; ``len(v)``, ``v.tokens``, ``v.index(token)``, ``token in v``,
    ``v.encode(tokens)``, ``v.decode(ids)``, ``v.save(path)`` / ``Vocab.load(path)``."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = DEFAULT_SPECIALS,
                 counts: Mapping[str, int] | None = None):
        tokens, specials = list(tokens), tuple(specials)
        for t in tokens:
            if not isinstance(t, str):
                raise TypeError(f"Vocab: tokens must be str, got {t!r}")
        if len(set(tokens)) != len(tokens):
            dup = [t for t, c in collections.Counter(tokens).items() if c > 1]
            raise ValueError(f"Vocab: repeated tokens {dup[:5]}")
        if tuple(tokens[:len(specials)]) != specials:
            raise ValueError(f"Vocab: the tokens must start with the specials {specials}, "
                             f"got {tokens[:len(specials)]}")
        self._tokens = tokens
        self._specials = specials
        self._ids = {t: i for i, t in enumerate(tokens)}
        self._counts = {t: int((counts or {}).get(t, 0)) for t in tokens}

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, min_count: int = 1,
                    max_size: int | None = None,
                    specials: Sequence[str] = DEFAULT_SPECIALS) -> "Vocab":
        """The vocabulary of ``counts`` (``{token: count}``, e.g. a ``collections.Counter``):
        specials first, then tokens with ``count >= min_count`` by decreasing count, ties in the
        order of ``counts``, at most ``max_size`` ids in all (specials included)."""
        specials = tuple(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"Vocab: repeated specials {specials}")
        if not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (not isinstance(max_size, (int, np.integer))
                                     or max_size < len(specials)):
            raise ValueError(f"max_size must be an integer >= the {len(specials)} specials, "
                             f"got {max_size!r}")
        if not isinstance(counts, Mapping):
            raise TypeError(f"counts must be a mapping token -> count, got {type(counts).__name__}")
        for t, c in counts.items():
            if not isinstance(t, str):
                raise TypeError(f"Vocab: tokens must be str, got {t!r}")
            if not isinstance(c, (int, np.integer)) or c < 0:
                raise ValueError(f"Vocab: count of {t!r} must be an integer >= 0, got {c!r}")
        kept = [(t, c) for t, c in counts.items() if c >= min_count and t not in specials]
        kept.sort(key=lambda tc: -tc[1])  # stable: ties keep the order of counts
        tokens = list(specials) + [t for t, _ in kept]
        if max_size is not None:
            tokens = tokens[:max_size]
        return cls(tokens, specials, counts)

    @classmethod
    def from_tokens(cls, tokens: Iterable[str], **kwargs) -> "Vocab":
        """:meth:`from_counts` of the token counts of ``tokens`` (ties in order of first
        occurrence)."""
        if isinstance(tokens, str):
            tokens = list(tokens)  # a string is its characters
        return cls.from_counts(collections.Counter(tokens), **kwargs)

    # -- look-ups ------------------------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        """The tokens in id order (a copy)."""
        return list(self._tokens)

    @property
    def specials(self) -> tuple[str, ...]:
        return self._specials

    @property
    def counts(self) -> dict[str, int]:
        """The count of each token in the counts it was built from (0 for the specials)."""
        return dict(self._counts)

    def _special_id(self, name: str) -> int | None:
        return self._ids[name] if name in self._specials else None

    @property
    def pad_id(self) -> int | None:
        return self._special_id("<pad>")

    @property
    def unk_id(self) -> int | None:
        return self._special_id("<unk>")

    @property
    def bos_id(self) -> int | None:
        return self._special_id("<bos>")

    @property
    def eos_id(self) -> int | None:
        return self._special_id("<eos>")

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token) -> bool:
        return token in self._ids

    def __eq__(self, other) -> bool:
        return (isinstance(other, Vocab) and self._tokens == other._tokens
                and self._specials == other._specials)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, specials={self._specials})"

    def index(self, token: str) -> int:
        """The id of ``token``; ``KeyError`` naming it when it is not in the vocabulary."""
        try:
            return self._ids[token]
        except KeyError:
            raise KeyError(f"token {token!r} is not in the vocabulary ({len(self)} tokens)") \
                from None

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """The ids of ``tokens`` (a string is its characters); unknown tokens -> ``unk_id``, or
        ``KeyError`` naming the token when there is no ``"<unk>"``."""
        ids, unk = self._ids, self.unk_id
        if unk is not None:
            return [ids.get(t, unk) for t in tokens]
        return [ids[t] if t in ids else self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids`` (ints or a 1-D integer array); an id outside ``0..len-1``
        raises ``IndexError``."""
        a = np.asarray(list(ids) if not hasattr(ids, "__array__") else ids)
        if a.size == 0:
            return []
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"decode: ids must be a 1-D sequence of integers, got {a.dtype} "
                            f"of shape {a.shape}")
        bad = (a < 0) | (a >= len(self))
        if bad.any():
            raise IndexError(f"decode: id {int(a[bad][0])} is outside the vocabulary "
                             f"(0..{len(self) - 1})")
        return [self._tokens[i] for i in a.tolist()]

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to ``path`` as JSON (``format``, ``version``, ``specials``,
        ``tokens`` in id order, ``counts``)."""
        doc = {"format": FORMAT, "version": VERSION, "specials": list(self._specials),
               "tokens": self._tokens, "counts": [self._counts[t] for t in self._tokens]}
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """The vocabulary saved at ``path``; :class:`dlmodels.data.DataError` when the file is not
        valid JSON or not a vocabulary saved by :meth:`save` (``FileNotFoundError`` if missing)."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a vocabulary file (corrupted JSON: {e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise DataError(f"{path}: not a vocabulary file (no \"format\": \"{FORMAT}\")")
        if doc.get("version") != VERSION:
            raise DataError(f"{path}: vocabulary format version {doc.get('version')!r}, "
                            f"this code reads version {VERSION}")
        tokens, specials, counts = doc.get("tokens"), doc.get("specials"), doc.get("counts")
        if (not isinstance(tokens, list) or not isinstance(specials, list)
                or not isinstance(counts, list) or len(counts) != len(tokens)
                or not all(isinstance(t, str) for t in tokens + specials)
                or not all(isinstance(c, int) for c in counts)):
            raise DataError(f"{path}: corrupted vocabulary file (tokens, specials and counts "
                            f"must be lists of strings / integers of matching lengths)")
        try:
            return cls(tokens, specials, dict(zip(tokens, counts)))
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}: corrupted vocabulary file ({e})") from None
