"""BLEU (Papineni et al. 2002), computed exactly as sacrebleu 2.x computes it (Post 2018).

For a corpus of hypotheses h_s with references r_s^(1..R) (each tokenised, see below):

- clipped n-gram matches, for n = 1..N (``max_ngram_order``, 4 by default)::

      counts[n] = sum_s sum_{g in n-grams(h_s)} min(#g in h_s, max_k #g in r_s^(k))
      totals[n] = sum_s (|h_s| - n + 1)^+

  and precisions ``p_n = 100 * counts[n] / totals[n]`` (in percent, as sacrebleu);
- lengths ``c = sys_len = sum_s |h_s|`` and ``r = ref_len = sum_s |r_s^*|``, where r_s^* is the
  reference whose length is closest to |h_s| (on a tie, the shorter one);
- brevity penalty ``BP = 1 if c >= r else exp(1 - r / c)`` (and 0 when c = 0);
- ``BLEU = BP * exp((1 / N') sum_{n <= N'} log p_n)``, in 0..100, where N' = N, or with
  ``effective_order=True`` the largest n for which totals[n] > 0 (so a 3-word sentence is scored
  on 1..3-grams); log 0 counts as -9999999999 (so a zero precision gives BLEU 0); when no
  n-gram matches at all, BLEU = 0 and the precisions are all 0.

Smoothing (Chen & Cherry 2014, sacrebleu's names and defaults), for an order n with zero matches:

- ``"none"``: p_n = 0;
- ``"floor"`` (default value 0.1): p_n = 100 * value / totals[n];
- ``"exp"`` (the default; NIST's mteval-v13a): p_n = 100 / (2^k * totals[n]) for the k-th
  order with zero matches;
- ``"add-k"`` (default k = 1): for every n >= 2, k is added to counts[n] and totals[n] *before*
  the precision is taken (so an order longer than the hypothesis gets p_n = 100 * k / k = 100,
  and a corpus never stops early); the returned ``counts`` and ``totals`` include the added k,
  as sacrebleu reports them.

The precisions are taken for n = 1, 2, ... up to the first order with totals[n] = 0 (the later
ones stay 0).

Tokenisers (a segment is lower-cased first if ``lowercase``, right-stripped, tokenised to a
string, then split on white space):

- ``"13a"`` (default): mteval-v13a.pl as used by WMT: removes ``<skipped>`` and ``-\\n``, turns
  newlines into spaces, unescapes ``&quot; &amp; &lt; &gt;``, then splits off the ASCII
  punctuation ``!"#$%&()*+/:;<=>?@[\\]^_`{|}~``, a period or comma unless between digits, and a
  dash after a digit;
- ``"intl"`` (mteval-v14.pl's international tokeniser): splits off Unicode punctuation (category
  P*) unless between digits (category N*; the rules are applied as mteval-v14 applies them, so a
  number followed by a final period keeps it), and every symbol (category S*); the category
  tables are built once from :mod:`unicodedata` (this Python's Unicode version);
- ``"char"``: every non-space character is a token;
- ``"none"``: white-space split only.

``TOKENIZERS[name](line)`` returns the tokenised string, as sacrebleu's tokenisers do.

Public: :func:`corpus_bleu`, :func:`sentence_bleu`, :class:`BLEUScore`,
:func:`score_from_statistics` (BLEU from summed counts), :func:`tokens`, ``TOKENIZERS``.
sacrebleu itself is only a test reference; this module does not import it.
"""

from __future__ import annotations

import collections
import functools
import math
import re
import unicodedata
from typing import Callable, NamedTuple, Sequence

SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}
SMOOTH_METHODS = tuple(SMOOTH_DEFAULTS)
MAX_NGRAM_ORDER = 4
LOG_ZERO = -9999999999  # what sacrebleu takes as log(0): exp(LOG_ZERO / N) == 0.0


class BLEUScore(NamedTuple):
    """A BLEU result: ``score`` in 0..100; per order n = 1..N the clipped matches ``counts``, the
    hypothesis n-grams ``totals`` and the (smoothed) ``precisions`` in percent; the brevity
    penalty ``bp``; the hypothesis and (closest-)reference lengths ``sys_len``, ``ref_len``.
    ``str(score)`` reads as sacrebleu's: ``BLEU = 36.48 70.0/45.0/... (BP = 1.000 ...)``."""

    score: float
    counts: tuple
    totals: tuple
    precisions: tuple
    bp: float
    sys_len: int
    ref_len: int

    @property
    def ratio(self) -> float:
        """sys_len / ref_len (0 when ref_len = 0)."""
        return self.sys_len / self.ref_len if self.ref_len else 0

    def __str__(self) -> str:
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.2f} {precisions} (BP = {self.bp:.3f} ratio = "
                f"{self.ratio:.3f} hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})")


# ---------------------------------------------------------------- tokenisers

# mteval-v13a's ASCII punctuation: 0x20-0x26, 0x28-0x2B, '/', 0x3A-0x40, 0x5B-0x60, 0x7B-0x7E
# (everything printable but letters, digits and ' , - .).
_13A_RULES = (
    (re.compile(r"([ -&(-+/:-@\[-`{-~])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),  # period / comma not after a digit
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),  # period / comma not before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)
_13A_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def _tokenize_13a(line: str) -> str:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in _13A_ENTITIES:  # in this order: "&amp;lt;" becomes "<"
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _class(ranges: list[tuple[int, int]]) -> str:
    """A regular-expression character class body for the inclusive code point ranges."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


@functools.cache
def _intl_rules() -> tuple:
    """mteval-v14's three substitutions with \\p{N}, \\p{P}, \\p{S} as explicit code point
    classes from this Python's unicodedata (built on first use, about half a second)."""
    ranges: dict[str, list[tuple[int, int]]] = {"N": [], "P": [], "S": []}
    start, major = 0, None
    for cp in range(0x110001):
        m = unicodedata.category(chr(cp))[0] if cp <= 0x10FFFF else None
        if m != major:
            if major in ranges:
                ranges[major].append((start, cp - 1))
            start, major = cp, m
    number, punct, symbol = (_class(ranges[k]) for k in "NPS")
    return (
        (re.compile(f"([^{number}])([{punct}])"), r"\1 \2 "),  # punctuation after a non-number
        (re.compile(f"([{punct}])([^{number}])"), r" \1 \2"),  # punctuation before a non-number
        (re.compile(f"([{symbol}])"), r" \1 "),  # every symbol
    )


def _tokenize_intl(line: str) -> str:
    for pattern, replacement in _intl_rules():
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _tokenize_char(line: str) -> str:
    return " ".join(line)


def _tokenize_none(line: str) -> str:
    return line


TOKENIZERS: dict[str, Callable[[str], str]] = {
    "13a": _tokenize_13a, "none": _tokenize_none, "char": _tokenize_char, "intl": _tokenize_intl}


def tokens(text: str, *, tokenize: str = "13a", lowercase: bool = False) -> list[str]:
    """The tokens BLEU counts for ``text``: lower-cased if ``lowercase``, right-stripped,
    tokenised by ``TOKENIZERS[tokenize]`` and split on white space."""
    _check_options(tokenize, lowercase)
    if not isinstance(text, str):
        raise TypeError(f"tokens: text must be a str, got {type(text).__name__}")
    return _preprocess(text, TOKENIZERS[tokenize], lowercase)


def _preprocess(text: str, tokenizer: Callable[[str], str], lowercase: bool) -> list[str]:
    if lowercase:
        text = text.lower()
    return tokenizer(text.rstrip()).split()


# ---------------------------------------------------------------- statistics

def _ngram_counts(words: list[str], max_order: int) -> collections.Counter:
    return collections.Counter(tuple(words[i:i + n]) for n in range(1, max_order + 1)
                               for i in range(len(words) - n + 1))


def _closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to ``hyp_len``; on a tie, the shorter."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def _segment_statistics(hyp: list[str], refs: list[list[str]], max_order: int):
    """(hyp_len, ref_len, counts, totals) of one segment."""
    ref_max: dict = {}
    for ref in refs:
        for gram, k in _ngram_counts(ref, max_order).items():
            if k > ref_max.get(gram, 0):
                ref_max[gram] = k
    counts, totals = [0] * max_order, [0] * max_order
    for gram, k in _ngram_counts(hyp, max_order).items():
        totals[len(gram) - 1] += k
        counts[len(gram) - 1] += min(k, ref_max.get(gram, 0))
    return len(hyp), _closest_length(len(hyp), [len(r) for r in refs]), counts, totals


def score_from_statistics(counts: Sequence[int], totals: Sequence[int], sys_len: int,
                          ref_len: int, *, smooth_method: str = "exp",
                          smooth_value: float | None = None, effective_order: bool = False
                          ) -> BLEUScore:
    """BLEU from corpus statistics (module doc for the equations): clipped matches ``counts``
    and hypothesis n-grams ``totals`` per order 1..N (N = len(counts)), summed over segments,
    and the summed hypothesis / closest-reference lengths."""
    _check_smoothing(smooth_method, smooth_value)
    if len(counts) != len(totals) or len(counts) < 1:
        raise ValueError(f"counts and totals must have the same length >= 1, got {len(counts)} "
                         f"and {len(totals)}")
    if not isinstance(effective_order, bool):
        raise TypeError(f"effective_order must be a bool, got {effective_order!r}")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth_method]
    counts, totals = list(counts), list(totals)
    order = len(counts)

    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * order
    if not any(counts):  # nothing matched: BLEU 0 (no smoothing is applied)
        return BLEUScore(0.0, tuple(counts), tuple(totals), tuple(precisions), bp, sys_len,
                         ref_len)

    halvings, used = 1.0, order
    for n in range(order):
        if smooth_method == "add-k" and n > 0:
            counts[n] += smooth_value
            totals[n] += smooth_value
        if totals[n] == 0:
            break
        if effective_order:
            used = n + 1
        if counts[n] != 0:
            precisions[n] = 100.0 * counts[n] / totals[n]
        elif smooth_method == "exp":
            halvings *= 2
            precisions[n] = 100.0 / (halvings * totals[n])
        elif smooth_method == "floor":
            precisions[n] = 100.0 * smooth_value / totals[n]
    logs = [math.log(p) if p != 0.0 else LOG_ZERO for p in precisions[:used]]
    score = bp * math.exp(sum(logs) / used)
    return BLEUScore(score, tuple(counts), tuple(totals), tuple(precisions), bp, sys_len, ref_len)


# ---------------------------------------------------------------- checks

def _check_options(tokenize, lowercase) -> None:
    if tokenize not in TOKENIZERS:
        raise ValueError(f"unknown tokenize {tokenize!r}; valid: {sorted(TOKENIZERS)}")
    if not isinstance(lowercase, bool):
        raise TypeError(f"lowercase must be a bool, got {lowercase!r}")


def _check_smoothing(smooth_method, smooth_value) -> None:
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smooth_method {smooth_method!r}; valid: {list(SMOOTH_METHODS)}")
    if smooth_value is not None:
        if isinstance(smooth_value, bool) or not isinstance(smooth_value, (int, float)):
            raise TypeError(f"smooth_value must be a number or None, got {smooth_value!r}")
        if not (math.isfinite(smooth_value) and smooth_value >= 0):
            raise ValueError(f"smooth_value must be finite and >= 0, got {smooth_value!r}")


def _check_order(max_ngram_order) -> None:
    if isinstance(max_ngram_order, bool) or not isinstance(max_ngram_order, int):
        raise TypeError(f"max_ngram_order must be an int, got {max_ngram_order!r}")
    if max_ngram_order < 1:
        raise ValueError(f"max_ngram_order must be >= 1, got {max_ngram_order}")


def _check_strings(name: str, values, allow_none: bool = False) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not (isinstance(v, str) or (allow_none and v is None)):
            raise TypeError(f"{name}[{i}] must be a str{' or None' if allow_none else ''}, got "
                            f"{type(v).__name__}")
    return list(values)


# ---------------------------------------------------------------- public

def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str | None]], *,
                tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp",
                smooth_value: float | None = None, max_ngram_order: int = MAX_NGRAM_ORDER,
                effective_order: bool = False) -> BLEUScore:
    """Corpus BLEU of ``hypotheses`` (list of S strings) against ``references``, a list of R
    reference streams, each a list of S strings aligned with the hypotheses (sacrebleu's layout:
    ``corpus_bleu(hyps, [refs_a, refs_b])``). A ``None`` in a stream means that segment has no
    reference in that stream (every segment needs at least one). Statistics are summed over the
    corpus, then scored once (module doc for the equations, smoothing and tokenisers)."""
    _check_options(tokenize, lowercase)
    _check_smoothing(smooth_method, smooth_value)
    _check_order(max_ngram_order)
    if not isinstance(effective_order, bool):
        raise TypeError(f"effective_order must be a bool, got {effective_order!r}")
    hypotheses = _check_strings("hypotheses", hypotheses)
    if not hypotheses:
        raise ValueError("corpus_bleu: hypotheses is empty")
    if isinstance(references, (str, bytes)) or not isinstance(references, Sequence):
        raise TypeError("references must be a list of reference streams (lists of strings)")
    if not references:
        raise ValueError("corpus_bleu: references holds no reference stream")
    if isinstance(references[0], str):
        raise TypeError("references must be a list of reference streams, each a list of strings "
                        "aligned with the hypotheses; for one reference per segment pass [refs]")
    streams = [_check_strings(f"references[{k}]", s, allow_none=True)
               for k, s in enumerate(references)]
    for k, stream in enumerate(streams):
        if len(stream) != len(hypotheses):
            raise ValueError(f"references[{k}] has {len(stream)} segments but there are "
                             f"{len(hypotheses)} hypotheses")

    tokenizer = TOKENIZERS[tokenize]
    sys_len = ref_len = 0
    counts, totals = [0] * max_ngram_order, [0] * max_ngram_order
    for i, hyp in enumerate(hypotheses):
        refs = [_preprocess(s[i], tokenizer, lowercase) for s in streams if s[i] is not None]
        if not refs:
            raise ValueError(f"segment {i} has no reference (None in every stream)")
        h, r, c, t = _segment_statistics(_preprocess(hyp, tokenizer, lowercase), refs,
                                         max_ngram_order)
        sys_len, ref_len = sys_len + h, ref_len + r
        counts = [a + b for a, b in zip(counts, c)]
        totals = [a + b for a, b in zip(totals, t)]
    return score_from_statistics(counts, totals, sys_len, ref_len, smooth_method=smooth_method,
                                 smooth_value=smooth_value, effective_order=effective_order)


def sentence_bleu(hypothesis: str, references: Sequence[str], *, tokenize: str = "13a",
                  lowercase: bool = False, smooth_method: str = "exp",
                  smooth_value: float | None = None, max_ngram_order: int = MAX_NGRAM_ORDER,
                  effective_order: bool = True) -> BLEUScore:
    """BLEU of one ``hypothesis`` string against its ``references`` (a non-empty list of
    strings), with sacrebleu's sentence defaults (``exp`` smoothing, ``effective_order=True``);
    the same as ``corpus_bleu([hypothesis], [[r] for r in references], ...)``."""
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    references = _check_strings("references", references)
    if not references:
        raise ValueError("sentence_bleu: references is empty")
    return corpus_bleu([hypothesis], [[r] for r in references], tokenize=tokenize,
                       lowercase=lowercase, smooth_method=smooth_method,
                       smooth_value=smooth_value, max_ngram_order=max_ngram_order,
                       effective_order=effective_order)
