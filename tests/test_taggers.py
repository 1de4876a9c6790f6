"""Non-neural taggers against hand counts, plain-loop dynamic programs, brute force over all tag
paths, and a naive (non-lazy) averaged perceptron."""

import collections
import itertools
import math

import numpy as np
import pytest

from dlmodels.text import taggers

TINY = [[("the", "D"), ("dog", "N"), ("runs", "V")],
        [("the", "D"), ("cat", "N")],
        [("a", "D"), ("dog", "N"), ("barks", "V")]]


def _path_score(e, trans, start, end, path):
    s = start[path[0]] + end[path[-1]]
    for t, y in enumerate(path):
        s += e[t, y] + (trans[path[t - 1], y] if t else 0.0)
    return s


def _loop_viterbi(e, trans, start, end):
    """The Viterbi recursion with every max written as a loop over tags."""
    T, K = e.shape
    delta = [[start[j] + e[0, j] for j in range(K)]]
    back = [[0] * K]
    for t in range(1, T):
        row, ptr = [], []
        for j in range(K):
            best_i = 0
            for i in range(1, K):
                if delta[t - 1][i] + trans[i, j] > delta[t - 1][best_i] + trans[best_i, j]:
                    best_i = i
            row.append(delta[t - 1][best_i] + trans[best_i, j] + e[t, j])
            ptr.append(best_i)
        delta.append(row)
        back.append(ptr)
    last = max(range(K), key=lambda j: delta[-1][j] + end[j])
    path = [last]
    for t in range(T - 1, 0, -1):
        path.append(back[t][path[-1]])
    return path[::-1], delta[-1][last] + end[last]


@pytest.mark.parametrize("T,K", [(1, 4), (2, 3), (5, 3), (4, 5)])
def test_viterbi_equals_loops_and_brute_force(T, K):
    rng = np.random.default_rng(T * 7 + K)
    e, trans = rng.normal(size=(T, K)), rng.normal(size=(K, K))
    start, end = rng.normal(size=K), rng.normal(size=K)
    path, score = taggers.viterbi(e, trans, start, end)
    loop_path, loop_score = _loop_viterbi(e, trans, start, end)
    best = max(itertools.product(range(K), repeat=T),
               key=lambda p: _path_score(e, trans, start, end, p))
    assert list(path) == loop_path == list(best)
    assert score == pytest.approx(loop_score, rel=1e-12)
    assert score == pytest.approx(_path_score(e, trans, start, end, best), rel=1e-12)


def test_hmm_probabilities_equal_hand_counts():
    a, b = 0.5, 0.25
    hmm = taggers.HMM(alpha=a, beta=b, rare=0).fit(TINY)
    assert hmm.tags_ == ["D", "N", "V"]                      # D: 3, N: 3 (D seen first), V: 2
    D, N, V = 0, 1, 2
    n_types = 7                                              # 6 words and <unk>
    p = np.exp
    # transitions out of D: D->N three times; K + 1 = 4 outcomes (3 tags and </s>)
    assert p(hmm.log_trans_[D, N]) == pytest.approx((3 + a) / (3 + 4 * a))
    assert p(hmm.log_trans_[D, V]) == pytest.approx(a / (3 + 4 * a))
    assert p(hmm.log_trans_[N, V]) == pytest.approx((2 + a) / (3 + 4 * a))
    assert p(hmm.log_end_[N]) == pytest.approx((1 + a) / (3 + 4 * a))
    assert p(hmm.log_end_[V]) == pytest.approx((2 + a) / (2 + 4 * a))
    assert p(hmm.log_start_[D]) == pytest.approx((3 + a) / (3 + 3 * a))
    assert p(hmm.log_start_[N]) == pytest.approx(a / (3 + 3 * a))
    emit = lambda w, t: p(hmm.emissions([w])[0, t])
    assert emit("the", D) == pytest.approx((2 + b) / (3 + b * n_types))
    assert emit("dog", N) == pytest.approx((2 + b) / (3 + b * n_types))
    assert emit("barks", V) == pytest.approx((1 + b) / (2 + b * n_types))
    assert emit("zebra", N) == pytest.approx(b / (3 + b * n_types))    # unknown -> <unk>
    # every conditional distribution sums to one
    np.testing.assert_allclose(p(hmm.log_emit_).sum(0), 1.0)
    np.testing.assert_allclose(p(hmm.log_trans_).sum(1) + p(hmm.log_end_), 1.0)
    assert p(hmm.log_start_).sum() == pytest.approx(1.0)


def test_hmm_rare_words_become_classes():
    hmm = taggers.HMM(alpha=1.0, beta=1.0, rare=1).fit(TINY)
    # hapaxes runs, cat, a, barks -> classes <unk:a|ns>, <unk:a|at>, <unk:a|a>, <unk:a|ks>
    assert set(hmm.vocab_) == {"the", "dog", "<unk:a|ns>", "<unk:a|at>", "<unk:a|a>",
                               "<unk:a|ks>", "<unk>"}
    V = hmm.tags_.index("V")
    # "cans" shares the class of "runs": c(V, <unk:a|ns>) = 1, c(V) = 2, 7 types
    assert math.exp(hmm.emissions(["cans"])[0, V]) == pytest.approx(2 / (2 + 7))


def test_hmm_predict_is_the_most_probable_path():
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d"]
    tags = ["X", "Y", "Z"]
    corpus = [[(rng.choice(words), rng.choice(tags)) for _ in range(rng.integers(1, 6))]
              for _ in range(40)]
    hmm = taggers.HMM(alpha=0.3, beta=0.2, rare=0).fit(corpus)
    K = len(hmm.tags_)
    for sentence in (["a"], ["b", "a"], ["c", "d", "a", "zz"], ["d", "d", "b", "a", "c"]):
        rows = [hmm.vocab_.get(w, hmm.vocab_["<unk>"]) for w in sentence]

        def log_joint(path):
            s = hmm.log_start_[path[0]] + hmm.log_end_[path[-1]]
            for t, y in enumerate(path):
                s += hmm.log_emit_[rows[t], y] + (hmm.log_trans_[path[t - 1], y] if t else 0)
            return s

        best = max(itertools.product(range(K), repeat=len(sentence)), key=log_joint)
        assert hmm.predict([sentence])[0] == [hmm.tags_[i] for i in best]
        assert hmm.log_joint(sentence, [hmm.tags_[i] for i in best]) == pytest.approx(
            log_joint(best))


def test_most_frequent_tag_by_hand():
    corpus = [[("The", "D"), ("can", "M"), ("can", "V"), ("can", "M")],
              [("a", "D"), ("dog", "N"), ("walking", "V")],
              [("the", "D"), ("dog", "N")],
              [("Paris", "P"), ("talking", "V"), ("dog", "N")]]
    m = taggers.MostFrequentTag(rare=1).fit(corpus)
    out = m.predict([["can", "the", "THE", "dog", "singing", "London", "Smalling", "42"]])
    # can: M 2 vs V 1; THE: via lower case "the" (D); singing: class <unk:a|ng> of walking and
    # talking (V); London: class <unk:Aa|on>, unseen -> overall most frequent tag (D: 3, N: 3,
    # D seen first); Smalling: class <unk:Aa|ng> unseen (Paris is <unk:Aa|is>) -> D; 42 -> D
    assert out == [["M", "D", "D", "N", "V", "D", "D", "D"]]


def test_accuracy():
    gold = [[("a", "X"), ("b", "Y")], [("c", "Z")]]
    assert taggers.accuracy(gold, [["X", "X"], ["Z"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="sentence 1"):
        taggers.accuracy(gold, [["X", "X"], ["Z", "Z"]])
    with pytest.raises(ValueError, match="predicted"):
        taggers.accuracy(gold, [["X", "X"]])


def _synthetic(rng, n):
    """Words 'det', 'noun_k', 'verb_k' and the ambiguous 'fly': a noun after 'det', else a verb."""
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.integers(1, 4)):
            s.append(("det", "D"))
            s.append(("fly", "N") if rng.random() < 0.5 else (f"noun{rng.integers(5)}", "N"))
            s.append(("fly", "V") if rng.random() < 0.5 else (f"verb{rng.integers(5)}", "V"))
        out.append(s)
    return out


def test_perceptron_learns_a_synthetic_task():
    rng = np.random.default_rng(0)
    train, test = _synthetic(rng, 200), _synthetic(rng, 100)
    for average in (True, False):
        p = taggers.StructuredPerceptron(epochs=5, seed=1, average=average).fit(train)
        assert p.n_updates_[-1] == 0
        for data in (train, test):
            assert taggers.accuracy(data, p.predict([[w for w, _ in s] for s in data])) == 1.0


def test_perceptron_update_is_the_feature_difference():
    rng = np.random.default_rng(3)
    n, F, K, n_feat = 5, 4, 3, 10
    feats = rng.integers(1, n_feat, size=(n, F))
    feats[1] = feats[3]                                       # repeated features add up
    gold, pred = np.array([0, 1, 2, 1, 0]), np.array([0, 2, 2, 2, 1])
    w = {"W": np.zeros((n_feat, K)), "transitions": np.zeros((K, K)), "start": np.zeros(K),
         "end": np.zeros(K)}
    u = {k: np.zeros_like(v) for k, v in w.items()}
    taggers.StructuredPerceptron._update(w, u, feats, gold, pred, step=7)
    expected = {k: np.zeros_like(v) for k, v in w.items()}
    for y, sign in ((gold, 1), (pred, -1)):                  # phi(gold) - phi(pred), by loops
        for t in range(n):
            for f in feats[t]:
                expected["W"][f, y[t]] += sign
            if t:
                expected["transitions"][y[t - 1], y[t]] += sign
        expected["start"][y[0]] += sign
        expected["end"][y[-1]] += sign
    for k in w:
        np.testing.assert_array_equal(w[k], expected[k])
        np.testing.assert_array_equal(u[k], 7 * expected[k])


def test_averaged_weights_equal_naive_averaging():
    """A dict-based perceptron that adds up a full copy of the weights after every sentence."""
    corpus = [[("a", "X"), ("b", "Y"), ("a", "Y")], [("b", "X"), ("c", "Z")], [("c", "Y")],
              [("a", "Z"), ("a", "X"), ("b", "Z"), ("c", "X")]]
    epochs, seed = 3, 5
    p = taggers.StructuredPerceptron(epochs=epochs, seed=seed).fit(corpus)
    tags = p.tags_
    K = len(tags)
    w = collections.Counter()                 # (kind, ...) -> weight
    total = collections.Counter()
    rng = np.random.default_rng(seed)
    n_steps = 0
    for _ in range(epochs):
        for j in rng.permutation(len(corpus)):
            words = [x for x, _ in corpus[j]]
            gold = [tags.index(t) for _, t in corpus[j]]
            phis = [taggers.perceptron_features(words, i) for i in range(len(words))]
            e = np.array([[sum(w["W", f, k] for f in phi) for k in range(K)] for phi in phis])
            trans = np.array([[w["A", i, k] for k in range(K)] for i in range(K)])
            start = np.array([w["s", k] for k in range(K)])
            end = np.array([w["e", k] for k in range(K)])
            pred = _loop_viterbi(e, trans, start, end)[0]
            if pred != gold:
                for y, sign in ((gold, 1), (pred, -1)):
                    for t, phi in enumerate(phis):
                        for f in phi:
                            w["W", f, y[t]] += sign
                        if t:
                            w["A", y[t - 1], y[t]] += sign
                    w["s", y[0]] += sign
                    w["e", y[-1]] += sign
            total.update(w)
            n_steps += 1
    avg = p.weights_
    for f, row in p.features_.items():
        for k in range(K):
            assert avg["W"][row, k] == pytest.approx(total["W", f, k] / n_steps, abs=1e-12)
    assert (avg["W"][0] == 0).all()
    for i in range(K):
        assert avg["start"][i] == pytest.approx(total["s", i] / n_steps, abs=1e-12)
        assert avg["end"][i] == pytest.approx(total["e", i] / n_steps, abs=1e-12)
        for k in range(K):
            assert avg["transitions"][i, k] == pytest.approx(total["A", i, k] / n_steps,
                                                             abs=1e-12)
    assert sum(p.n_updates_) > 0 and n_steps == epochs * len(corpus)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no training sentences"):
        taggers.HMM().fit([])
    with pytest.raises(ValueError, match="alpha"):
        taggers.HMM(alpha=0)
    with pytest.raises(ValueError, match="epochs"):
        taggers.StructuredPerceptron(epochs=0)
    with pytest.raises(ValueError, match="empty"):
        taggers.MostFrequentTag().fit([[("a", "X")], []])
