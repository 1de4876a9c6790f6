"""ListOps (Nangia & Bowman 2018): nested prefix expressions over the digits 0..9, with their
bracket trees, for tree-structured versus sequential models.

An expression is space-separated tokens from `VOCAB`, e.g. ``"[MAX 2 9 [MIN 4 7 ] 0 ]"`` = 9: an
operator token opens a list, its 2..`max_args` arguments are digits or nested lists, ``"]"`` closes
it. Operators (`OPERATORS`): ``[MIN`` minimum, ``[MAX`` maximum, ``[MED`` median, ``[SM`` sum
modulo 10. The label is the value, 0..9.

Generator, following the published script (``nyu-mll/spinn``,
``python/spinn/data/listops/make_data.py``, as described in the paper):
- a non-root node is a nested list with probability `OPERATOR_PROBABILITY` = 0.25 (the script's
  ``VALUE_P``: ``r > VALUE_P`` gives a digit) and otherwise a uniform digit; the operator is
  uniform over the four; the argument count uniform in 2..max_args (``random.randint(2,
  MAX_ARGS)``, so never 1);
- the median of an even count is the mean of the two middle values truncated to an integer, as the
  script's ``int(np.median(values))`` (so MED of 2 5 is 3, not ``median_low``'s 2);
- deviations, chosen here: the root is always a list (the script also emits bare digits, a trivial
  10-way example); ``max_depth`` bounds `depth` (nested lists, a digit 0, ``"[MAX 1 2 ]"`` 1) so
  the issue's "depth up to 10" means at most 10 nested lists (the script's ``MAX_DEPTH`` counts the
  digit level too: 10 there allows 9 nested lists); expressions longer than ``max_length`` =
  `MAX_LENGTH` tokens are rejected and drawn again (3.8 % of draws; 0.9 % are longer than 200,
  0.1 % than 300; the script has no cap); every split holds distinct expressions (the script keeps a
  set) and the splits are disjoint: test is drawn first, valid without test's expressions, train
  without either.

Splits (`SIZES`): train 90,000, valid 1,000, test 10,000, each drawn with its own fixed seed
(`SEEDS`) from Python's `random.Random` (whose ``random()``/``getrandbits`` streams are stable
across Python versions). ``load(split)`` generates the split once and caches it as
``<data_dir>/listops/<split>.tsv`` (``label\\texpr`` lines) under the sha256 pinned in `SHA256`: a
generator that draws differently (another Python's ``random``) is an error, not a silently
different data set; a corrupted file is regenerated. ``dlmodels data fetch listops`` writes all
three.

The test split: lengths 4..128 tokens (mean 23.6, median 12); depth 1: 3,150, 2: 2,168, 3: 1,309,
4: 849, 5: 609, 6: 460, 7: 334, 8: 246, 9: 182, 10: 693 (the lists that would nest deeper are cut
to digits, so depth 10 collects them); labels 0..9 about uniform (9.3 % - 11.2 % in train, 0 and 9
the most common: MIN and MAX of many digits).

Published accuracy on ListOps (Nangia & Bowman 2018, as quoted by issue 14): a sequential LSTM
about 71.5 %, a Tree-LSTM given the gold trees (as here) about 98.7 %. Licence: generated here (no
third-party data).
"""

from __future__ import annotations

import random
from typing import Union

import numpy as np

from dlmodels.data import packages
from dlmodels.data.cache import DataError

OPERATORS = ("MIN", "MAX", "MED", "SM")
OPERATOR_TOKENS = tuple("[" + op for op in OPERATORS)  # "[MIN", "[MAX", "[MED", "[SM"
DIGITS = tuple(str(d) for d in range(10))
END = "]"
VOCAB: tuple[str, ...] = DIGITS + OPERATOR_TOKENS + (END,)
OPERATOR_PROBABILITY = 0.25  # chance that a non-root node is a nested list
MAX_DEPTH = 10
MAX_ARGS = 5
MAX_LENGTH = 128  # tokens, including operators and "]"
SPLITS = ("train", "valid", "test")
SIZES = {"train": 90_000, "valid": 1_000, "test": 10_000}
SEEDS = {"test": 14_003, "valid": 14_002, "train": 14_001}
SUBDIR = "listops"
FETCH_COMMAND = "dlmodels data fetch listops"
SHA256: dict[str, str] = {  # split -> sha256 of <split>.tsv
    "train": "a4171b58c32f303d085d92037f0f229691c1b23a5ead1b2009183b49dc93e6b4",
    "valid": "4e56980494ce3d097ae099c86b32cfbee6d547f7165eea4a5de2e904dddab662",
    "test": "194b7db925c2eb85a2128a79a59e2350d787bb74e85ea0a8344deaa69d54ec99",
}

Tree = Union[str, tuple]  # a digit "0".."9", or (operator_token, child, child, ...)

_TOKENS = frozenset(VOCAB)
_MAX_MISSES = 20_000


def tokens(expr: str) -> list[str]:
    """The tokens of an expression (split on whitespace); `ValueError` for a token not in
    `VOCAB`."""
    if not isinstance(expr, str):
        raise TypeError(f"a ListOps expression is a str, got {type(expr).__name__}")
    out = expr.split()
    for i, t in enumerate(out):
        if t not in _TOKENS:
            raise ValueError(f"unknown ListOps token {t!r} at position {i} of {expr!r}; "
                             f"valid tokens: {' '.join(VOCAB)}")
    return out


def parse(expr: str) -> Tree:
    """The bracket tree of ``expr``: a digit str, or ``(operator_token, child, ...)`` (the closing
    ``"]"`` is not in the tree), e.g. ``parse("[MAX 2 [MIN 4 7 ] ]") == ("[MAX", "2", ("[MIN",
    "4", "7"))``. `ValueError` on an unknown token, an unbalanced bracket, an empty list or
    more than one top-level item."""
    toks = tokens(expr)
    if not toks:
        raise ValueError("empty ListOps expression")
    stack: list[list] = []  # open lists: [operator_token, children...]
    top: list[Tree] = []
    for i, t in enumerate(toks):
        if t in OPERATOR_TOKENS:
            stack.append([t])
        elif t == END:
            if not stack:
                raise ValueError(f"unbalanced ListOps expression: ']' at position {i} closes "
                                 f"nothing in {expr!r}")
            node = stack.pop()
            if len(node) < 2:
                raise ValueError(f"empty list {node[0]} ] at position {i} of {expr!r}")
            (stack[-1] if stack else top).append(tuple(node))
        else:
            (stack[-1] if stack else top).append(t)
    if stack:
        raise ValueError(f"unbalanced ListOps expression: {len(stack)} list(s) not closed in "
                         f"{expr!r}")
    if len(top) != 1:
        raise ValueError(f"a ListOps expression has exactly one top-level item, {expr!r} has "
                         f"{len(top)}")
    return top[0]


def _check_tree(tree) -> None:
    if isinstance(tree, str):
        if tree not in DIGITS:
            raise ValueError(f"a ListOps leaf is a digit '0'..'9', got {tree!r}")
        return
    if not isinstance(tree, tuple) or len(tree) < 2 or tree[0] not in OPERATOR_TOKENS:
        raise ValueError(f"a ListOps node is (operator_token, child, ...) with an operator in "
                         f"{OPERATOR_TOKENS} and at least one child, got {tree!r}")


def evaluate(tree: Tree) -> int:
    """The value 0..9 of a tree: MIN, MAX, MED (``int(np.median)``: for an even count the two
    middle values' mean rounded down) and SM (sum mod 10) of the children's values."""
    _check_tree(tree)
    if isinstance(tree, str):
        return int(tree)
    values = sorted(evaluate(child) for child in tree[1:])
    op = tree[0]
    if op == "[MIN":
        return values[0]
    if op == "[MAX":
        return values[-1]
    if op == "[SM":
        return sum(values) % 10
    mid = len(values) // 2  # [MED
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) // 2


def depth(tree: Tree) -> int:
    """Nesting depth: 0 for a digit, 1 + the deepest child for a list (``"[MAX 1 2 ]"`` is 1)."""
    _check_tree(tree)
    if isinstance(tree, str):
        return 0
    return 1 + max(depth(child) for child in tree[1:])


def to_string(tree: Tree) -> str:
    """The expression of a tree (the inverse of `parse`)."""
    _check_tree(tree)
    if isinstance(tree, str):
        return tree
    return " ".join([tree[0], *(to_string(c) for c in tree[1:]), END])


def _draw(rng: random.Random, level: int, max_depth: int, max_args: int, out: list[str]) -> None:
    """Append one random node's tokens at nesting ``level`` (the root is level 1) to ``out``."""
    if level == 1 or (level <= max_depth and rng.random() < OPERATOR_PROBABILITY):
        out.append(OPERATOR_TOKENS[rng.randrange(len(OPERATOR_TOKENS))])
        for _ in range(rng.randint(2, max_args)):
            _draw(rng, level + 1, max_depth, max_args, out)
        out.append(END)
    else:
        out.append(DIGITS[rng.randrange(10)])


def _generate(rng: random.Random, n: int, max_depth: int, max_args: int, max_length: int,
              exclude: frozenset | set = frozenset()) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    misses = 0  # consecutive rejected draws: too many means the settings admit too few expressions
    while len(out) < n:
        toks: list[str] = []
        _draw(rng, 1, max_depth, max_args, toks)
        expr = " ".join(toks)
        if len(toks) > max_length or expr in seen or expr in exclude:
            misses += 1
            if misses > _MAX_MISSES:
                raise ValueError(f"drew only {len(out)} distinct expressions of the {n} asked for "
                                 f"with max_depth={max_depth}, max_args={max_args}, "
                                 f"max_length={max_length}: {_MAX_MISSES} draws in a row were too "
                                 "long or repeated")
            continue
        misses = 0
        seen.add(expr)
        out.append(expr)
    return out


def generate(n: int, *, seed: int, max_depth: int = MAX_DEPTH, max_args: int = MAX_ARGS,
             max_length: int = MAX_LENGTH) -> list[str]:
    """``n`` distinct random expressions from the generator described in the module docstring,
    deterministic in ``seed``: every expression has `depth` 1..max_depth, 2..max_args arguments
    per list and at most ``max_length`` tokens. `ValueError` if the settings admit too few
    distinct expressions (20,000 draws in a row rejected)."""
    for name, v, lo in (("n", n, 0), ("max_depth", max_depth, 1), ("max_args", max_args, 2),
                        ("max_length", max_length, 4)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return _generate(random.Random(seed), int(n), int(max_depth), int(max_args), int(max_length))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} of listops; valid splits: {', '.join(SPLITS)}")


def _generate_splits() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    taken: set[str] = set()
    for split in ("test", "valid", "train"):
        out[split] = _generate(random.Random(SEEDS[split]), SIZES[split], MAX_DEPTH, MAX_ARGS,
                               MAX_LENGTH, exclude=taken)
        taken.update(out[split])
    return out


def _tsv(expressions: list[str]) -> bytes:
    return "".join(f"{evaluate(parse(e))}\t{e}\n" for e in expressions).encode("ascii")


def fetch():
    """Generate the three splits into ``<data_dir>/listops/`` (each checked against its pinned
    sha256); returns the folder. Does nothing when the cache already verifies."""
    files = {f"{s}.tsv": SHA256[s] for s in SPLITS}
    if packages.is_cached(SUBDIR, files):
        return packages.cache_folder(SUBDIR)
    d = packages.cache_folder(SUBDIR)
    for split, expressions in _generate_splits().items():
        packages.write_verified(d / f"{split}.tsv", _tsv(expressions), SHA256[split])
    return d


def load(split: str) -> tuple[list[str], np.ndarray]:
    """``(expressions, labels)`` of a split: ``SIZES[split]`` expressions and their values as int32
    ``[N]`` in 0..9. Generates and caches the data on first use (a few seconds)."""
    _check_split(split)
    name = f"{split}.tsv"
    if not packages.is_cached(SUBDIR, {name: SHA256[split]}):
        fetch()
    d = packages.cached_files(SUBDIR, {name: SHA256[split]}, FETCH_COMMAND, "ListOps")
    expressions, labels = [], []
    for line in (d / name).read_text(encoding="ascii").splitlines():
        label, expr = line.split("\t")
        labels.append(int(label))
        expressions.append(expr)
    if len(expressions) != SIZES[split]:
        raise DataError(f"{d / name} holds {len(expressions)} expressions, expected {SIZES[split]}")
    return expressions, np.asarray(labels, dtype=np.int32)


__all__ = ["END", "MAX_ARGS", "MAX_DEPTH", "MAX_LENGTH", "OPERATORS", "OPERATOR_TOKENS", "SIZES",
           "SPLITS", "Tree", "VOCAB", "depth", "evaluate", "fetch", "generate", "load", "parse",
           "to_string", "tokens"]
