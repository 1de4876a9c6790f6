"""dlmodels.text.vectors against independent references: gensim 4.4's KeyedVectors on the same
vectors (when installed), numpy brute force over a tiny vocabulary, scipy.stats, numpy's eigh."""

import itertools
import math

import numpy as np
import pytest

from dlmodels.data.cache import DataError
from dlmodels.text.vectors import WordVectors, pca_2d

V, D = 2000, 50


def _planted(seed=0, noise=1.6):
    """V random vectors with 150 planted pairs y_i = x_i + r + noise (so analogies x_i : y_i ::
    x_j : y_j are solvable, but not all), and a few case variants ("Paris", "paris", "PARIS")."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(V)]
    vectors = rng.normal(size=(V, D)).astype(np.float32)
    r = rng.normal(size=D).astype(np.float32)
    xs = np.arange(0, 300, 2)
    ys = xs + 1
    vectors[ys] = vectors[xs] + r + noise * rng.normal(size=(len(xs), D)).astype(np.float32)
    for i, w in [(5, "Paris"), (7, "paris"), (900, "PARIS"), (11, "Rome"), (1500, "rome")]:
        words[i] = w
    questions = {
        "planted-a": [(words[xs[i]], words[ys[i]], words[xs[j]], words[ys[j]])
                      for i in range(30) for j in range(30, 45)],
        "empty": [],
        "planted-b": [(words[xs[i]], words[ys[i]], words[xs[j]], words[ys[j]])
                      for i in range(45, 55) for j in range(55, 150)]
        + [("w1", "unknown", "w3", "w4"), ("paris", "w1", "w3", "Paris"),
           ("ROME", "w200", "w400", "w1200"), ("w2", "w3", "w1999", "w1801")],
    }
    return words, vectors, questions


def _write_questions(path, questions):
    with open(path, "w") as f:
        for name, items in questions.items():
            f.write(f": {name}\n")
            for q in items:
                f.write(" ".join(q) + "\n")
    return path


def _gensim_kv(words, vectors):
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(words), np.asarray(vectors, np.float32))
    return kv


@pytest.fixture(scope="module")
def planted():
    words, vectors, questions = _planted()
    return WordVectors(words, vectors), words, vectors, questions


# -- basics -----------------------------------------------------------------------------------------
def test_basics(planted):
    wv, words, vectors, _ = planted
    assert len(wv) == V and wv.vector_size == D and "Paris" in wv and "nope" not in wv
    assert wv.index("w3") == 3 and wv.words[900] == "PARIS"
    np.testing.assert_array_equal(wv["w3"], vectors[3])
    np.testing.assert_allclose(wv.unit, vectors / np.linalg.norm(vectors.astype(np.float64), axis=1,
                                                                 keepdims=True), rtol=1e-6)
    u, v = vectors[3].astype(np.float64), vectors[8].astype(np.float64)
    assert wv.similarity("w3", "w8") == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v),
                                                      abs=1e-6)


def _brute_force(vectors, words, positive, negative, method, restrict):
    """Every candidate scored by its definition, in float64, with Python loops."""
    x = np.asarray(vectors, np.float64)

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    rows = {w: i for i, w in enumerate(words)}
    scores = []
    for i in range(restrict):
        if words[i] in positive or words[i] in negative:
            continue
        if method == "add":
            mean = sum(x[rows[p]] / np.linalg.norm(x[rows[p]]) for p in positive) \
                - sum(x[rows[n]] / np.linalg.norm(x[rows[n]]) for n in negative)
            s = cos(x[i], mean)
        else:
            s = math.prod((1 + cos(x[i], x[rows[p]])) / 2 for p in positive) / (
                math.prod((1 + cos(x[i], x[rows[n]])) / 2 for n in negative) + 1e-6)
        scores.append((s, words[i]))
    scores.sort(reverse=True)
    return [(w, s) for s, w in scores]


@pytest.mark.parametrize("method", ["add", "mul"])
@pytest.mark.parametrize("restrict", [None, 9])
def test_most_similar_brute_force(method, restrict):
    rng = np.random.default_rng(3)
    words = ["king", "queen", "man", "woman", "apple", "pear", "car", "bus", "red", "blue", "sky"]
    vectors = rng.normal(size=(len(words), 4))
    wv = WordVectors(words, vectors)
    f = wv.most_similar if method == "add" else wv.most_similar_cosmul
    for positive, negative in [(["queen", "man"], ["king"]), (["apple"], []),
                               (["car", "bus", "sky"], ["red", "blue"])]:
        got = f(positive, negative, topn=20, restrict_vocab=restrict)
        want = _brute_force(vectors, words, positive, negative, method, restrict or len(words))
        assert [w for w, _ in got] == [w for w, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-6)
    # the analogy answered by the evaluation is the brute-force best, excluding the question words
    a, b, c = "king", "queen", "man"
    best = _brute_force(vectors, words, [b, c], [a], method, restrict or len(words))[0][0]
    questions = {"s": [(a, b, c, best)]}
    score, _ = wv.evaluate_word_analogies(questions, restrict_vocab=restrict, method=method,
                                          case_insensitive=False)
    assert score == 1.0


# -- gensim equality --------------------------------------------------------------------------------
@pytest.mark.parametrize("query", [
    dict(positive=["w1", "w2"], negative=["w0"]),
    dict(positive=["w10"]),
    dict(positive="w10", topn=1),
    dict(positive=["Paris", "w8"], negative=["w3", "w6"], topn=25),
    dict(negative=["w4"]),
    dict(positive=["w1", "w2"], negative=["w0"], restrict_vocab=300),
    dict(positive=["w1501"], restrict_vocab=300),  # a query word outside the restricted words
])
def test_most_similar_equals_gensim(planted, query):
    wv, words, vectors, _ = planted
    kv = _gensim_kv(words, vectors)
    got, want = wv.most_similar(**query), kv.most_similar(**query)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    all_got = wv.most_similar(**{**query, "topn": None})
    np.testing.assert_allclose(all_got, kv.most_similar(**{**query, "topn": None}), atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own init_sims
@pytest.mark.parametrize("query", [
    dict(positive=["w1", "w2"], negative=["w0"]),
    dict(positive=["w10"], topn=3),
    dict(positive=["Paris", "w8", "w9"], negative=["w3", "w6"], topn=25),
])
@pytest.mark.parametrize("restrict", [None, 300])
def test_most_similar_cosmul_equals_gensim(planted, query, restrict):
    wv, words, vectors, _ = planted
    # gensim 4.4 ignores restrict_vocab in most_similar_cosmul: its reference for the first 300
    # words is gensim on a KeyedVectors holding only them (the query words are among them)
    n = restrict or V
    kv = _gensim_kv(words[:n], vectors[:n])
    got = wv.most_similar_cosmul(**query, restrict_vocab=restrict)
    want = kv.most_similar_cosmul(**query)
    assert [w for w, _ in got] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)


@pytest.mark.parametrize("restrict", [None, 300, 30000])
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("dummy4unknown", [False, True])
def test_evaluate_word_analogies_equals_gensim(planted, tmp_path, restrict, case_insensitive,
                                               dummy4unknown):
    wv, words, vectors, questions = planted
    kv = _gensim_kv(words, vectors)
    path = _write_questions(tmp_path / "q.txt", questions)
    kwargs = dict(case_insensitive=case_insensitive, dummy4unknown=dummy4unknown)
    score, sections = wv.evaluate_word_analogies(path, restrict_vocab=restrict, **kwargs)
    want_score, want_sections = kv.evaluate_word_analogies(
        str(path), restrict_vocab=restrict or len(words), **kwargs)
    assert score == want_score
    assert sections == want_sections
    assert 0.2 < score < 0.9  # planted: neither trivial nor hopeless
    # the parsed structure (dlmodels.data.word_similarity's) gives the same as the file
    assert wv.evaluate_word_analogies(questions, restrict_vocab=restrict, **kwargs) == \
        (score, sections)


def _gensim_cosmul_evaluation(kv, questions, restrict, case_insensitive):
    """gensim's evaluate_word_analogies loop with most_similar_cosmul instead of most_similar
    (gensim 4.4 has no such option), on a KeyedVectors holding the first `restrict` words."""
    fold = str.upper if case_insensitive else (lambda w: w)
    first = {}
    for w in kv.index_to_key[:restrict]:
        first.setdefault(fold(w), w)
    out = []
    for name, items in questions.items():
        section = {"section": name, "correct": [], "incorrect": []}
        for q in items:
            a, b, c, d = (fold(w) for w in q)
            if not all(w in first for w in (a, b, c, d)):
                continue
            predicted = None
            for word, _ in kv.most_similar_cosmul([first[b], first[c]], [first[a]], topn=5):
                predicted = fold(word)
                if predicted not in (a, b, c):
                    break
            section["correct" if predicted == d else "incorrect"].append((a, b, c, d))
        out.append(section)
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own init_sims
@pytest.mark.parametrize("restrict", [None, 300])
def test_evaluate_word_analogies_cosmul_equals_gensim(planted, restrict):
    wv, words, vectors, questions = planted
    n = restrict or V
    want = _gensim_cosmul_evaluation(_gensim_kv(words[:n], vectors[:n]), questions, n, True)
    score, sections = wv.evaluate_word_analogies(questions, restrict_vocab=restrict, method="mul")
    assert sections[:-1] == want
    total = sum(len(s["correct"]) for s in want) / sum(len(s["correct"]) + len(s["incorrect"])
                                                       for s in want)
    assert score == total and 0.1 < score < 0.9


@pytest.mark.parametrize("restrict", [None, 40])
def test_case_variants_equal_gensim(tmp_path, restrict):
    """Many case variants of the question words near the answer: gensim looks at the 5 best
    candidates, skips variants of the question words, and falls back to the 5th."""
    rng = np.random.default_rng(1)
    stems = ["ab", "cd", "ef", "gh", "ij", "kl"]
    variants = [["".join(p) for p in itertools.product(*[(ch.lower(), ch.upper()) for ch in s])]
                for s in stems]  # 4 case variants each
    words = [v for group in variants for v in group] + [f"x{i}" for i in range(60)]
    base = rng.normal(size=(len(stems), 8))
    base[1] = base[0] + 0.1 * rng.normal(size=8)  # "ab" and "cd" close: 6 variants on top
    vectors = np.concatenate([base[g] + 0.05 * rng.normal(size=(4, 8)) for g in range(len(stems))]
                             + [rng.normal(size=(60, 8))]).astype(np.float32)
    rng.shuffle(order := np.arange(len(words)))
    words, vectors = [words[i] for i in order], vectors[order]
    wv, kv = WordVectors(words, vectors), _gensim_kv(words, vectors)
    pool = [w for w in words[:restrict or len(words)]]
    questions = {"s": [tuple(rng.choice(pool, 4)) for _ in range(300)]
                 + [("ab", "cd", "ef", "AB"), ("ab", "Cd", "eF", "gh"), ("x1", "ab", "cd", "AB")]
                 + [(f"x{k}", "aB", "CD", "x7") for k in range(10)]}
    path = _write_questions(tmp_path / "q.txt", questions)
    for case_insensitive in (True, False):
        got = wv.evaluate_word_analogies(path, restrict_vocab=restrict,
                                         case_insensitive=case_insensitive)
        want = kv.evaluate_word_analogies(str(path), restrict_vocab=restrict or len(words),
                                          case_insensitive=case_insensitive)
        assert got[0] == want[0] and got[1] == want[1]


@pytest.mark.parametrize("restrict", [None, 300])
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("dummy4unknown", [False, True])
def test_evaluate_word_pairs_equals_gensim(tmp_path, restrict, case_insensitive, dummy4unknown):
    pytest.importorskip("gensim")
    rng = np.random.default_rng(2)
    pair_words = [f"p{i}" for i in range(200)]
    pairs = [(str(rng.choice(pair_words)), str(rng.choice(pair_words)),
              float(rng.choice([1.0, 2.5, 5.0, 7.25, rng.uniform(0, 10)]))) for _ in range(300)]
    pairs += [("P3", "p4", 3.0), ("p5", "p5", 10.0), ("zz", "p1", 4.0)]
    words = pair_words[:150] + ["P3", "p3_"] + [f"f{i}" for i in range(400)] + pair_words[150:190]
    vectors = rng.normal(size=(len(words), 16)).astype(np.float32)
    vectors[:150] += rng.normal(size=16).astype(np.float32)  # correlated similarities
    path = tmp_path / "pairs.tsv"
    path.write_text("# a comment\n# Word 1\tWord 2\tHuman (mean)\n"
                    + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    wv, kv = WordVectors(words, vectors), _gensim_kv(words, vectors)
    kwargs = dict(case_insensitive=case_insensitive, dummy4unknown=dummy4unknown)
    pearson, spearman, oov = wv.evaluate_word_pairs(path, restrict_vocab=restrict, **kwargs)
    want = kv.evaluate_word_pairs(str(path), restrict_vocab=restrict or len(words), **kwargs)
    np.testing.assert_allclose(pearson, tuple(want[0]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(spearman, tuple(want[1]), rtol=1e-5, atol=1e-7)
    assert oov == pytest.approx(want[2], rel=1e-12)
    assert 0 < oov < 100
    triples = [(a, b, s) for a, b, s in pairs]
    assert wv.evaluate_word_pairs(triples, restrict_vocab=restrict, **kwargs) == \
        (pearson, spearman, oov)


def test_correlation_p_values_equal_scipy():
    stats = pytest.importorskip("scipy.stats")
    from dlmodels.text.vectors import _average_ranks, _correlation_test
    rng = np.random.default_rng(4)
    for n, rho in [(3, 0.5), (10, 0.0), (353, 0.3), (999, 0.05), (999, 0.9), (50, -0.7)]:
        x = rng.normal(size=n)
        y = np.round(rho * x + math.sqrt(1 - rho ** 2) * rng.normal(size=n), 1)  # ties in y
        r, p = _correlation_test(x, y)
        want = stats.pearsonr(x, y)
        assert r == pytest.approx(want.statistic, abs=1e-12)
        assert p == pytest.approx(want.pvalue, rel=1e-8, abs=1e-300)
        rs, ps = _correlation_test(_average_ranks(x), _average_ranks(y))
        want = stats.spearmanr(x, y)
        assert rs == pytest.approx(want.statistic, abs=1e-12)
        assert ps == pytest.approx(want.pvalue, rel=1e-8, abs=1e-300)
    np.testing.assert_array_equal(_average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])),
                                  [4.0, 1.0, 4.0, 2.0, 4.0])


# -- files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trips_with_gensim(tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(5)
    words = ["the", "Ünïcode", "naïve", "x", "日本"] + [f"w{i}" for i in range(95)]
    vectors = (rng.normal(size=(100, 7)) * 10.0 ** rng.integers(-6, 4, size=(100, 1)))
    wv = WordVectors(words, vectors)
    ours = tmp_path / "ours"
    wv.save_word2vec_format(ours, binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert kv.index_to_key == words
    np.testing.assert_array_equal(kv.vectors, vectors.astype(np.float32))
    theirs = tmp_path / "theirs"
    kv.save_word2vec_format(str(theirs), binary=binary)
    back = WordVectors.load_word2vec_format(theirs, binary=binary)
    assert back.words == tuple(words)
    np.testing.assert_array_equal(back.vectors, vectors.astype(np.float32))
    again = WordVectors.load_word2vec_format(ours, binary=binary)
    np.testing.assert_array_equal(again.vectors, wv.vectors)


@pytest.mark.parametrize("content, message", [
    (b"", "line 1"),
    (b"2 three\n", "line 1"),
    (b"2 3\na 1 2 3\nb 1 2\n", "line 3"),
    (b"2 3\na 1 2 3\nb 1 two 3\n", "line 3"),
    (b"2 3\na 1 2 3\nb 1 nan 3\n", "line 3"),
    (b"2 3\na 1 2 3\na 1 2 3\n", "line 3"),
    (b"3 3\na 1 2 3\nb 1 2 3\n", "line 4"),
    (b"1 3\na 1 2 3\nb 1 2 3\n", "line 3"),
])
def test_load_text_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        WordVectors.load_word2vec_format(path)


def test_load_binary_errors(tmp_path):
    good = np.arange(6, dtype="<f4").tobytes()
    path = tmp_path / "bad.bin"
    path.write_bytes(b"2 3\na " + good[:12] + b"\nb " + good[:8])
    with pytest.raises(ValueError, match="entry 2 of 2: the file ends early"):
        WordVectors.load_word2vec_format(path, binary=True)
    path.write_bytes(b"2 3\na " + good[:12] + b"\na " + good[12:])
    with pytest.raises(ValueError, match="entry 2: the word 'a' repeats"):
        WordVectors.load_word2vec_format(path, binary=True)
    path.write_bytes(b"1 3\na " + np.array([1, np.inf, 0], "<f4").tobytes())
    with pytest.raises(ValueError, match="entry 1.*non-finite"):
        WordVectors.load_word2vec_format(path, binary=True)
    with pytest.raises(FileNotFoundError):
        WordVectors.load_word2vec_format(tmp_path / "missing.bin", binary=True)


# -- errors ------------------------------------------------------------------------------------------
def test_construction_errors():
    with pytest.raises(ValueError, match="2 words but 3 vectors"):
        WordVectors(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\[V, D\]"):
        WordVectors(["a", "b"], np.zeros(2))
    with pytest.raises(TypeError, match="floating point"):
        WordVectors(["a"], np.zeros((1, 2), dtype=np.int32))
    with pytest.raises(ValueError, match=r"non-finite values in the vectors of \['b'\]"):
        WordVectors(["a", "b"], np.array([[1.0, 2.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="'a' appears twice"):
        WordVectors(["a", "a"], np.ones((2, 2)))
    with pytest.raises(TypeError, match="must be str"):
        WordVectors(["a", 3], np.ones((2, 2)))
    with pytest.raises(ValueError, match="counts must have shape"):
        WordVectors(["a", "b"], np.ones((2, 2)), counts=[1])
    with pytest.raises(ValueError, match="white space"):
        WordVectors(["a b"], np.ones((1, 2))).save_word2vec_format("/nonexistent/x")


def test_query_errors(planted, tmp_path):
    wv = planted[0]
    with pytest.raises(KeyError, match="'nope' is not in the vocabulary"):
        wv.most_similar(["w1", "nope"])
    with pytest.raises(KeyError, match="nope"):
        wv["nope"]
    with pytest.raises(KeyError, match="nope"):
        wv.similarity("w1", "nope")
    with pytest.raises(ValueError, match="at least one positive or negative"):
        wv.most_similar()
    with pytest.raises(ValueError, match="at least one positive word"):
        wv.most_similar_cosmul(negative=["w1"])
    with pytest.raises(ValueError, match="restrict_vocab"):
        wv.most_similar(["w1"], restrict_vocab=0)
    with pytest.raises(ValueError, match="topn"):
        wv.most_similar(["w1"], topn=0)
    with pytest.raises(ValueError, match="shape"):
        wv.most_similar([np.zeros(3)])
    with pytest.raises(ValueError, match="method"):
        wv.evaluate_word_analogies({"s": [("w1", "w2", "w3", "w4")]}, method="cosine")
    with pytest.raises(ValueError, match="4 words"):
        wv.evaluate_word_analogies({"s": [("w1", "w2", "w3")]})
    with pytest.raises(ValueError, match="no questions"):
        wv.evaluate_word_analogies({"s": []})
    bad = tmp_path / "q.txt"
    bad.write_text(": s\nw1 w2 w3 w4\nw1 w2 w3\n")
    with pytest.raises(DataError, match="line 3"):
        wv.evaluate_word_analogies(bad)
    with pytest.raises(ValueError, match="none of the 1 pairs"):
        wv.evaluate_word_pairs([("nope", "w1", 1.0)])
    with pytest.raises(ValueError, match="item 0"):
        wv.evaluate_word_pairs([("w1", "w2")])


# -- PCA ---------------------------------------------------------------------------------------------
def test_pca_2d_equals_covariance_eigenvectors():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1]) + 7.0
    got = pca_2d(x)
    centred = x - x.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    want = centred @ eigenvectors[:, [-1, -2]]
    for k in range(2):  # equal up to each component's sign, which pca_2d fixes
        assert min(np.abs(got[:, k] - want[:, k]).max(), np.abs(got[:, k] + want[:, k]).max()) < 1e-9
        assert got[np.argmax(np.abs(got[:, k])), k] > 0
    with pytest.raises(ValueError, match="n >= 2"):
        pca_2d(np.ones((1, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        pca_2d(np.array([[1.0, np.nan], [0.0, 1.0]]))


# -- real data ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_test_sets_equal_gensim_on_trained_vectors():
    """gensim's Word2Vec trained on Austen (1 worker, 2 epochs), then its vectors evaluated by
    gensim and by us on the real questions-words.txt, WordSim-353 and SimLex-999."""
    gensim_models = pytest.importorskip("gensim.models")
    from dlmodels.data import word_similarity
    from dlmodels.text import sentences
    try:
        corpus = sentences.embedding_corpus(("austen",))
        analogy_file = str(word_similarity.path("questions-words"))
        questions = word_similarity.analogies()
    except DataError as e:
        pytest.skip(f"data not fetched: {e}")
    kv = gensim_models.Word2Vec(corpus, vector_size=50, min_count=5, epochs=2, workers=1,
                                seed=0).wv
    wv = WordVectors(kv.index_to_key, kv.vectors)
    for restrict in (300, 30000):
        for case_insensitive in (True, False):
            got = wv.evaluate_word_analogies(questions, restrict_vocab=restrict,
                                             case_insensitive=case_insensitive)
            want = kv.evaluate_word_analogies(analogy_file, restrict_vocab=restrict,
                                              case_insensitive=case_insensitive)
            assert got[0] == want[0] and got[1] == want[1]
    assert len(got[1][-1]["correct"]) > 0
    for name in ("wordsim353", "simlex999"):
        got = wv.evaluate_word_pairs(word_similarity.pairs(name))
        want = kv.evaluate_word_pairs(str(word_similarity.path(name)))
        np.testing.assert_allclose(got[0], tuple(want[0]), rtol=1e-5)
        np.testing.assert_allclose(got[1], tuple(want[1]), rtol=1e-5)
        assert got[2] == pytest.approx(want[2])
