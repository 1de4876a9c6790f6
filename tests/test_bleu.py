"""BLEU against independent references: the sacrebleu package (scores to 1e-9, counts, totals,
brevity penalty and lengths exactly) on generated corpora for every tokeniser x smoothing method x
effective order, sacrebleu's tokenisers on tricky strings, the `regex` package's Unicode classes
for the intl tables, and closed forms worked by hand (the notes' example, the brevity penalty,
ties between reference lengths)."""

import math
import random
import sys
import unicodedata
import zlib

import pytest

from dlmodels.text import bleu

sacrebleu = pytest.importorskip("sacrebleu")
from sacrebleu.metrics import BLEU  # noqa: E402

TOKENIZERS = ("13a", "none", "char", "intl")
SMOOTHING = (("none", None), ("floor", None), ("floor", 0.3), ("add-k", None), ("add-k", 0.5),
             ("exp", None))

# words with punctuation, digits with separators, mixed case, unicode (accents, CJK, symbols,
# quotes, dashes), html entities and the 13a specials
WORDS = ("the", "The", "THE", "cat", "Cat", "mat", "a", "on", "is", "sat", ",", ".", "!", "?",
         "1,000", "3.5", "2-3", "7.", "état", "Über", "naïve", "ÉCOLE", "日本", "語", "—", "«",
         "»", "“", "”", "€", "$5", "don't", "co-op", "&amp;", "&quot;", "<skipped>", "(x)",
         "x-\ny", "a/b", "e-mail", "ß", "İ", "Σ", "ς", "٣", "½", "🙂", "\u00a0", "\t")


def _sentence(rng, n_max=12):
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, n_max))]
    return "".join(w + rng.choice((" ", " ", " ", "", "  ")) for w in words)


def _perturb(rng, text):
    """A reference near ``text``: some words replaced, dropped or added (so higher-order n-grams
    match too)."""
    words = text.split()
    out = []
    for w in words:
        u = rng.random()
        if u < 0.15:
            continue
        out.append(rng.choice(WORDS) if u < 0.3 else w)
        if rng.random() < 0.1:
            out.append(rng.choice(WORDS))
    return " ".join(out)


def _corpus(rng, n_segments, n_refs):
    hyps = [_sentence(rng) if rng.random() > 0.1 else "" for _ in range(n_segments)]
    refs = [[_perturb(rng, h) if rng.random() < 0.7 else _sentence(rng) for h in hyps]
            for _ in range(n_refs)]
    return hyps, refs


def _assert_same(ours, theirs):
    assert abs(ours.score - theirs.score) <= 1e-9, (ours, theirs)
    assert list(ours.counts) == list(theirs.counts)
    assert list(ours.totals) == list(theirs.totals)
    assert ours.bp == theirs.bp
    assert ours.sys_len == theirs.sys_len and ours.ref_len == theirs.ref_len
    assert len(ours.precisions) == len(theirs.precisions)
    for p, q in zip(ours.precisions, theirs.precisions):
        assert abs(p - q) <= 1e-9
    assert str(ours) == str(theirs)


def _reference(tokenize, method, value, effective, lowercase=False, order=4):
    return BLEU(tokenize=tokenize, smooth_method=method, smooth_value=value,
                effective_order=effective, lowercase=lowercase, max_ngram_order=order)


def _kwargs(tokenize, method, value, effective, lowercase=False, order=4):
    return dict(tokenize=tokenize, smooth_method=method, smooth_value=value,
                effective_order=effective, lowercase=lowercase, max_ngram_order=order)


def test_notes_example_modified_unigram_precision():
    hyp = "the the the the the the the"
    refs = ["the cat is on the mat", "there is a cat on the mat"]
    s = bleu.corpus_bleu([hyp], [[refs[0]], [refs[1]]])
    assert s.counts[0] == 2 and s.totals[0] == 7  # "the" clipped to its max reference count 2
    assert s.precisions[0] == pytest.approx(100 * 2 / 7)
    # by hand: no bigram matches; exp smoothing halves 1/total for each zero order;
    # closest reference length 7 = hypothesis length, BP = 1
    p = [2 / 7, 1 / (2 * 6), 1 / (4 * 5), 1 / (8 * 4)]
    assert s.counts == (2, 0, 0, 0) and s.totals == (7, 6, 5, 4)
    assert s.bp == 1.0 and (s.sys_len, s.ref_len) == (7, 7)
    assert s.score == pytest.approx(100 * math.prod(p) ** 0.25, rel=1e-12)
    _assert_same(s, sacrebleu.corpus_bleu([hyp], [[refs[0]], [refs[1]]]))
    _assert_same(bleu.sentence_bleu(hyp, refs), sacrebleu.sentence_bleu(hyp, refs))


def test_closed_form_brevity_penalty_and_tie_to_shorter_reference():
    # hypothesis of 5 words, references of 4 and 6 words: the tie goes to the shorter (4),
    # so c > r and BP = 1; with a single 6-word reference BP = exp(1 - 6/5)
    hyp = "a b c d e"
    s = bleu.corpus_bleu([hyp], [["a b c d"], ["a b c d e f"]], smooth_method="none")
    assert s.ref_len == 4 and s.bp == 1.0
    assert s.score == pytest.approx(100.0)  # every hypothesis n-gram is in the 6-word reference
    s = bleu.corpus_bleu([hyp], [["a b c d e f"]], smooth_method="none")
    assert s.ref_len == 6 and s.bp == pytest.approx(math.exp(1 - 6 / 5))
    assert s.score == pytest.approx(100 * math.exp(1 - 6 / 5))
    # no hypothesis words at all: BP = 0, BLEU 0
    s = bleu.corpus_bleu([""], [["a b"]])
    assert s.bp == 0.0 and s.score == 0.0 and s.sys_len == 0 and s.ref_len == 2


def test_effective_order_on_a_short_sentence():
    # 2-word hypothesis equal to the reference: orders 3, 4 have no n-grams
    s = bleu.sentence_bleu("a b", ["a b"])  # effective order: geometric mean over n = 1, 2
    assert s.score == pytest.approx(100.0) and s.totals == (2, 1, 0, 0)
    assert bleu.sentence_bleu("a b", ["a b"], effective_order=False).score == 0.0
    # add-k: orders above the length get p = k / k = 100 %
    s = bleu.sentence_bleu("a b", ["a c"], smooth_method="add-k", effective_order=False)
    assert s.counts == (1, 1, 1, 1) and s.totals == (2, 2, 1, 1)
    assert s.score == pytest.approx(100 * (1 / 2 * 1 / 2) ** 0.25)


@pytest.mark.parametrize("tokenize", TOKENIZERS)
@pytest.mark.parametrize("method,value", SMOOTHING)
@pytest.mark.parametrize("effective", (False, True))
def test_corpus_bleu_equals_sacrebleu(tokenize, method, value, effective):
    rng = random.Random(zlib.crc32(repr((tokenize, method, value, effective)).encode()))
    for trial in range(12):
        hyps, refs = _corpus(rng, rng.randint(1, 8), rng.randint(1, 4))
        lowercase = trial % 3 == 1
        order = (4, 4, 4, 1, 2, 6)[trial % 6]
        ours = bleu.corpus_bleu(hyps, refs, **_kwargs(tokenize, method, value, effective,
                                                      lowercase, order))
        theirs = _reference(tokenize, method, value, effective, lowercase,
                            order).corpus_score(hyps, refs)
        _assert_same(ours, theirs)


@pytest.mark.parametrize("tokenize", TOKENIZERS)
@pytest.mark.parametrize("method,value", SMOOTHING)
@pytest.mark.parametrize("effective", (False, True))
def test_sentence_bleu_equals_sacrebleu(tokenize, method, value, effective):
    rng = random.Random(zlib.crc32(repr(("s", tokenize, method, value, effective)).encode()))
    metric = _reference(tokenize, method, value, effective)
    for _ in range(15):
        hyp = _sentence(rng) if rng.random() > 0.1 else ""
        refs = [_perturb(rng, hyp) if rng.random() < 0.7 else _sentence(rng)
                for _ in range(rng.randint(1, 4))]
        _assert_same(bleu.sentence_bleu(hyp, refs, **_kwargs(tokenize, method, value, effective)),
                     metric.sentence_score(hyp, refs))


def test_defaults_equal_sacrebleu_defaults():
    rng = random.Random(3)
    hyps, refs = _corpus(rng, 20, 2)
    _assert_same(bleu.corpus_bleu(hyps, refs), sacrebleu.corpus_bleu(hyps, refs))
    for h, r in zip(hyps, zip(*refs)):
        _assert_same(bleu.sentence_bleu(h, list(r)), sacrebleu.sentence_bleu(h, list(r)))


@pytest.mark.parametrize("hyps,refs", [
    ([""], [[""]]),  # all empty
    (["", ""], [["a b c", "d e"]]),  # empty hypotheses
    (["a b c", "d e"], [["", ""]]),  # empty references
    (["", "a"], [["", "a"], ["x y", ""]]),
    (["a b c d"], [["a b c d"]]),  # perfect
    (["a b c d e f"], [["f e d c b a"]]),  # unigrams only
    (["x"], [["a b c d"]]),  # nothing matches
])
def test_edge_cases_equal_sacrebleu(hyps, refs):
    for tokenize in TOKENIZERS:
        for method, value in SMOOTHING:
            for effective in (False, True):
                _assert_same(bleu.corpus_bleu(hyps, refs, **_kwargs(tokenize, method, value,
                                                                      effective)),
                             _reference(tokenize, method, value, effective).corpus_score(hyps,
                                                                                         refs))


def test_missing_references_in_a_stream_equal_sacrebleu():
    hyps = ["the cat sat", "a dog", "on the mat ."]
    refs = [["the cat sat down", None, "on the mat ."], [None, "a dog barked", "on a mat ."]]
    _assert_same(bleu.corpus_bleu(hyps, refs), sacrebleu.corpus_bleu(hyps, refs))


TRICKY = [
    "Hello, world!", "It's 1,000.50 $ -- or 3-4 items.", "He said: \"no\" (really) [sic] {x}.",
    "&amp;lt; &quot;q&quot; &gt; a&b", "<skipped> done", "end-\nof-line\nnext", "year 2020.",
    "e.g. U.S.A., i.e.", "trailing spaces   \t", "  leading", "tabs\tand\u00a0nbsp",
    "«Bonjour», dit-il — “oui” …", "¿Qué? ¡Sí!", "日本語の文です。テスト、です", "价格：¥100，好吗？",
    "٣٫١٤ and ½ and ²", "price: 5€ or €5 + 3 = 8 ± 1 ≥ 0", "emoji 🙂👍🏽 done", "x.y,z 1.a a.1 1-2-3",
    "a--b ... ,, .. 5, 6. 7", "#hash @user 50% ^_^ ~tilde~ |pipe| \\back/slash `tick`",
    "Ünïcödé ÇÀ ß İstanbul ΣΑΣ", "combining e\u0301 a\u0308", "\u2028line\u2029para", "",
    " ", "'quoted' ''double'' x'", "‹›‐‑‒–—―‖‗‘’‚‛“”„‟†‡•‣․‥…‧‰′″‴", "a_b a:b a;b a?b a!b",
]


def _sacrebleu_tokenizers():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_char import TokenizerChar
    from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International
    from sacrebleu.tokenizers.tokenizer_none import NoneTokenizer
    return {"13a": Tokenizer13a(), "none": NoneTokenizer(), "char": TokenizerChar(),
            "intl": TokenizerV14International()}


@pytest.mark.parametrize("tokenize", TOKENIZERS)
def test_tokenizers_equal_sacrebleu(tokenize):
    theirs = _sacrebleu_tokenizers()[tokenize]
    rng = random.Random(7)
    ascii_pairs = [chr(a) + chr(b) + " " + chr(b) + "1" + chr(a) for a in range(32, 127)
                   for b in (48, 97, 45, 46, 44, 32)]
    alphabet = "a1.,-'&;:!?()[]«»€–—…٣½🙂 \t\nÉß"
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) for _ in range(300)]
    for line in TRICKY + ascii_pairs + fuzz:
        assert bleu.TOKENIZERS[tokenize](line) == theirs(line), repr(line)
        metric = BLEU(tokenize=tokenize, lowercase=True)
        assert bleu.tokens(line, tokenize=tokenize, lowercase=True) == \
            metric._preprocess_segment(line).split(), repr(line)


def test_intl_unicode_classes_equal_regex_package():
    """\\p{N}, \\p{P}, \\p{S} of the `regex` package (sacrebleu's intl tokeniser) on every
    code point this Python's Unicode version assigns (regex may know newer characters), white
    space aside; each character is probed in its own space-separated chunk of one long line."""
    regex = pytest.importorskip("regex")
    assigned = [chr(cp) for cp in range(sys.maxunicode + 1)
                if unicodedata.category(chr(cp)) not in ("Cn", "Cs") and not chr(cp).isspace()]
    text = "".join(assigned)
    intl = bleu.TOKENIZERS["intl"]
    # a symbol is split off everywhere, also between digits (where punctuation is not)
    symbols = set(intl("".join(f" 1{c}1 " for c in assigned)).split()) - {"1"}
    symbols = {t for t in symbols if len(t) == 1}
    assert symbols == set(regex.findall(r"\p{S}", text))
    # between two letters, punctuation and symbols are split off
    split = {t for t in intl("".join(f" a{c}a " for c in assigned)).split() if len(t) == 1}
    assert split - {"a"} - symbols == set(regex.findall(r"\p{P}", text))
    # a comma between two numbers stays
    kept = set(intl("".join(f" {c},{c} " for c in assigned)).split())
    assert {c for c in assigned if f"{c},{c}" in kept} == set(regex.findall(r"\p{N}", text))


def test_score_str_and_ratio():
    s = bleu.corpus_bleu(["a b c d e"], [["a b c d e f g"]])
    assert str(s).startswith("BLEU = ") and "hyp_len = 5 ref_len = 7" in str(s)
    assert s.ratio == pytest.approx(5 / 7)
    assert bleu.score_from_statistics([0], [0], 0, 0).ratio == 0


def test_score_from_statistics_matches_corpus():
    rng = random.Random(11)
    hyps, refs = _corpus(rng, 10, 2)
    s = bleu.corpus_bleu(hyps, refs, smooth_method="floor")
    t = bleu.score_from_statistics(s.counts, s.totals, s.sys_len, s.ref_len,
                                   smooth_method="floor")
    assert t == s


def test_errors():
    with pytest.raises(ValueError, match="references\\[1\\] has 1 segments but there are 2"):
        bleu.corpus_bleu(["a", "b"], [["a", "b"], ["a"]])
    with pytest.raises(TypeError, match="list of reference streams"):
        bleu.corpus_bleu(["a", "b"], ["a", "b"])
    with pytest.raises(TypeError, match="hypotheses must be a list of strings"):
        bleu.corpus_bleu("a b", [["a b"]])
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a str"):
        bleu.corpus_bleu(["a", 3], [["a", "b"]])
    with pytest.raises(TypeError, match=r"references\[0\]\[0\] must be a str or None"):
        bleu.corpus_bleu(["a"], [[b"a"]])
    with pytest.raises(ValueError, match="hypotheses is empty"):
        bleu.corpus_bleu([], [[]])
    with pytest.raises(ValueError, match="no reference stream"):
        bleu.corpus_bleu(["a"], [])
    with pytest.raises(ValueError, match="segment 0 has no reference"):
        bleu.corpus_bleu(["a"], [[None], [None]])
    with pytest.raises(ValueError, match="unknown tokenize 'zh'"):
        bleu.corpus_bleu(["a"], [["a"]], tokenize="zh")
    with pytest.raises(ValueError, match="unknown smooth_method 'add-one'"):
        bleu.corpus_bleu(["a"], [["a"]], smooth_method="add-one")
    with pytest.raises(ValueError, match="max_ngram_order must be >= 1"):
        bleu.corpus_bleu(["a"], [["a"]], max_ngram_order=0)
    with pytest.raises(TypeError, match="max_ngram_order must be an int"):
        bleu.corpus_bleu(["a"], [["a"]], max_ngram_order=2.0)
    with pytest.raises(ValueError, match="smooth_value must be finite and >= 0"):
        bleu.corpus_bleu(["a"], [["a"]], smooth_method="floor", smooth_value=-0.1)
    with pytest.raises(TypeError, match="smooth_value must be a number"):
        bleu.corpus_bleu(["a"], [["a"]], smooth_method="floor", smooth_value="0.1")
    with pytest.raises(TypeError, match="lowercase must be a bool"):
        bleu.corpus_bleu(["a"], [["a"]], lowercase=1)
    with pytest.raises(TypeError, match="effective_order must be a bool"):
        bleu.corpus_bleu(["a"], [["a"]], effective_order="yes")
    with pytest.raises(TypeError, match="hypothesis must be a str"):
        bleu.sentence_bleu(["a"], ["a"])
    with pytest.raises(TypeError, match="references must be a list of strings"):
        bleu.sentence_bleu("a", "a")
    with pytest.raises(ValueError, match="references is empty"):
        bleu.sentence_bleu("a", [])
    with pytest.raises(TypeError, match="text must be a str"):
        bleu.tokens(None)
    with pytest.raises(ValueError, match="same length"):
        bleu.score_from_statistics([1, 2], [3], 1, 1)


def test_library_does_not_import_sacrebleu():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(bleu))
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module for n in ast.walk(tree)
                                  if isinstance(n, ast.ImportFrom)}
    assert not any(n and n.startswith("sacrebleu") for n in names)
