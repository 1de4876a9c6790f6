"""Interpolated Kneser-Ney against NLTK's KneserNeyInterpolated, hand-computed probabilities,
and normalisation over the vocabulary."""

import collections
import itertools
import math

import numpy as np
import pytest

from dlmodels.text.ngram import KneserNey

CORPUS = [s.split() for s in ["the cat sat on the mat", "the dog sat on the log",
                              "a cat saw a dog", "the mat saw the cat sat", "dog",
                              "on the log a dog sat"]]


def _nltk_model(order, discount, corpus):
    nltk_lm = pytest.importorskip("nltk.lm")
    from nltk.lm.preprocessing import padded_everygram_pipeline
    train, vocab = padded_everygram_pipeline(order, corpus)
    lm = nltk_lm.KneserNeyInterpolated(order, discount=discount)
    lm.fit(train, vocab)
    return lm


@pytest.mark.parametrize("order,discount", [(2, 0.75), (3, 0.75), (3, 0.1), (4, 0.5)])
def test_equals_nltk_on_every_context(order, discount):
    lm = _nltk_model(order, discount, CORPUS)
    kn = KneserNey(order, discount).fit(CORPUS)
    vocab = kn.vocab_
    assert set(vocab) == set(lm.vocab) - {"<UNK>"}
    compared = not_normalised = 0
    rng = np.random.default_rng(order)
    for m in range(order):
        contexts = list(itertools.product(vocab, repeat=m))
        if m == 3:                                  # keep the test fast: a sample of 300
            contexts = [contexts[i] for i in rng.choice(len(contexts), 300, replace=False)]
            contexts += [("<s>",) * 3, ("a", "<s>", "<s>"), ("<s>", "<s>", "the"),
                         ("the", "cat", "sat")]
        for context in contexts:
            ours = np.array([math.exp(kn.logprob(w, context)) for w in vocab])
            assert ours.sum() == pytest.approx(1.0, abs=1e-12)
            theirs = np.array([lm.score(w, context) for w in vocab])
            if abs(theirs.sum() - 1.0) > 1e-9:
                # NLTK's one non-normalised case (module docstring): the recursion reaches the
                # context of order - 2 "<s>" at the second-highest level
                effective = context[-(order - 1):] if m == order - 1 else context
                assert effective[-(order - 2):] == ("<s>",) * (order - 2)
                not_normalised += 1
                continue
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
            compared += 1
    assert compared > min(len(vocab) ** (order - 1), 300) / 2
    assert (not_normalised > 0) == (order >= 3)


def test_scores_of_sentences_equal_nltk_after_the_first_word():
    order = 3
    lm = _nltk_model(order, 0.75, CORPUS)
    kn = KneserNey(order).fit(CORPUS)
    test = [["the", "cat", "saw", "the", "log"], ["a", "dog", "sat", "on", "a", "mat"]]
    got = kn.logprobs(test)
    assert got.shape == (sum(len(s) + 1 for s in test),)
    i = 0
    for s in test:
        padded = ["<s>"] * (order - 1) + s + ["</s>"]
        for j in range(order - 1, len(padded)):
            context = tuple(padded[j - order + 1:j])
            assert got[i] == pytest.approx(kn.logprob(padded[j], context), abs=1e-12)
            if j > order - 1:                       # the first word's context differs (docs)
                assert got[i] == pytest.approx(math.log(lm.score(padded[j], context)), abs=1e-12)
            i += 1
    assert kn.cross_entropy(test) == pytest.approx(-got.mean())
    assert kn.perplexity(test) == pytest.approx(math.exp(-got.mean()))


def test_bigram_by_hand():
    """Stream "a b a c a b": bigram KN with D = 0.5, computed by hand."""
    kn = KneserNey(2, 0.5).fit("abacab")
    # bigram types: ab, ba, ac, ca -> N1+(. .) = 4; N1+(. a) = 2, N1+(. b) = 1, N1+(. c) = 1
    p1 = {"a": 2 / 4, "b": 1 / 4, "c": 1 / 4}
    for w, p in p1.items():
        assert math.exp(kn.logprob(w)) == pytest.approx(p)
    # after "a": c(a b) = 2, c(a c) = 1, c(a .) = 3, N1+(a .) = 2
    gamma = 0.5 * 2 / 3
    assert math.exp(kn.logprob("b", "a")) == pytest.approx((2 - 0.5) / 3 + gamma * p1["b"])
    assert math.exp(kn.logprob("c", "a")) == pytest.approx((1 - 0.5) / 3 + gamma * p1["c"])
    assert math.exp(kn.logprob("a", "a")) == pytest.approx(gamma * p1["a"])
    # "b" at the end of the stream is followed by "a" once; "z" is unknown and there is no <unk>
    assert math.exp(kn.logprob("a", "b")) == pytest.approx(0.5 + 0.5 * p1["a"])
    assert kn.logprob("z", "a") == -math.inf
    # a stream is scored from its own start: "a" by the unigram, then bigrams
    np.testing.assert_allclose(kn.logprobs("aba"), [math.log(p1["a"]), kn.logprob("b", "a"),
                                                    kn.logprob("a", "b")])


def test_stream_equals_nltk_on_unpadded_ngrams():
    nltk_lm = pytest.importorskip("nltk.lm")
    from nltk.util import everygrams
    rng = np.random.default_rng(0)
    stream = list(rng.choice(list("abcde"), size=60, p=[0.4, 0.25, 0.15, 0.1, 0.1]))
    order = 3
    lm = nltk_lm.KneserNeyInterpolated(order, discount=0.6)
    lm.fit([everygrams(stream, max_len=order)], stream)
    kn = KneserNey(order, 0.6).fit(stream)
    compared = 0
    for m in range(order):
        for context in itertools.product("abcde", repeat=m):
            ours = np.array([math.exp(kn.logprob(w, context)) for w in "abcde"])
            assert ours.sum() == pytest.approx(1.0, abs=1e-12)
            try:
                theirs = np.array([lm.score(w, context) for w in "abcde"])
            except ZeroDivisionError:               # NLTK: the stream's first word as a context
                continue
            if abs(theirs.sum() - 1) < 1e-9:
                np.testing.assert_allclose(ours, theirs, rtol=1e-12)
                compared += 1
    assert compared >= 25


def test_unknown_tokens_map_to_unk():
    train = [["a", "b", "<unk>"], ["b", "a", "<unk>", "b"]]
    kn = KneserNey(2).fit(train)
    assert kn.logprob("zzz", ["a"]) == kn.logprob("<unk>", ["a"])
    assert kn.logprob("b", ["zzz"]) == kn.logprob("b", ["<unk>"])
    assert np.isfinite(kn.cross_entropy([["a", "q", "b"]]))
    assert KneserNey(2).fit([["a", "b"]]).cross_entropy([["a", "q"]]) == math.inf


def test_integer_stream_and_long_context():
    ids = np.random.default_rng(1).integers(0, 7, size=500)
    kn = KneserNey(4).fit(ids)
    chars = KneserNey(4).fit([str(i) for i in ids])
    test = np.random.default_rng(2).integers(0, 7, size=50)
    np.testing.assert_allclose(kn.logprobs(test), chars.logprobs([str(i) for i in test]))
    # contexts longer than order - 1 keep their last order - 1 tokens
    assert kn.logprob(3, [1, 2, 4, 5, 6]) == kn.logprob(3, [4, 5, 6])
    probs = [math.exp(kn.logprob(w, [1, 2, 4])) for w in range(7)]
    assert sum(probs) == pytest.approx(1.0)


def test_unigram_model_is_maximum_likelihood():
    kn = KneserNey(1).fit("aab")
    assert math.exp(kn.logprob("a")) == pytest.approx(2 / 3)
    assert math.exp(kn.logprob("b", "a")) == pytest.approx(1 / 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        KneserNey(0)
    with pytest.raises(ValueError, match="discount"):
        KneserNey(3, discount=1.0)
    with pytest.raises(ValueError, match="discount"):
        KneserNey(3, discount=0.0)
    with pytest.raises(RuntimeError, match="fit"):
        KneserNey(2).logprob("a")
    with pytest.raises(ValueError, match="no tokens"):
        KneserNey(2).fit([])


def _naive_kneser_ney(stream, order, discount, modified):
    """Interpolated (modified) Kneser-Ney on a stream, written from Chen & Goodman's equations
    with dictionaries: p(word, context)."""
    counts = {k: collections.Counter(tuple(stream[i:i + k]) for i in range(len(stream) - k + 1))
              for k in range(1, order + 1)}

    def num(gram):
        k = len(gram)
        if k == order:
            return counts[k][gram]
        return sum(1 for g in counts[k + 1] if g[1:] == gram)

    def discounts(k):
        values = [num(g) for g in counts[k]]
        n = [values.count(r) for r in (1, 2, 3, 4)]
        if not modified or min(n) == 0:
            return {1: discount, 2: discount, 3: discount}
        Y = n[0] / (n[0] + 2 * n[1])
        return {1: 1 - 2 * Y * n[1] / n[0], 2: 2 - 3 * Y * n[2] / n[1],
                3: 3 - 4 * Y * n[3] / n[2]}

    vocab = sorted(set(stream))
    D = {k: discounts(k) for k in range(2, order + 1)}

    def p(word, context):
        context = tuple(context)[-(order - 1):] if order > 1 else ()
        if not context:
            bigrams = list(counts[2])
            return sum(1 for g in bigrams if g[1] == word) / len(bigrams)
        k = len(context) + 1
        nums = {w: num(context + (w,)) for w in vocab}
        total = sum(nums.values())
        if total == 0:
            return p(word, context[1:])
        d = lambda c: D[k][min(c, 3)] if c else 0.0
        gamma = sum(d(c) for c in nums.values()) / total
        return max(nums[word] - d(nums[word]), 0) / total + gamma * p(word, context[1:])

    return p, vocab


@pytest.mark.parametrize("modified", [False, True])
def test_stream_equals_naive_implementation(modified):
    rng = np.random.default_rng(4)
    stream = list(rng.choice(list("abcd"), size=400, p=[0.4, 0.3, 0.2, 0.1]))
    order = 3
    p, vocab = _naive_kneser_ney(stream, order, 0.7, modified)
    kn = KneserNey(order, 0.7, modified=modified).fit(stream)
    if modified:
        assert kn.discounts_[3] != (0.7, 0.7, 0.7)
    for m in range(order + 1):
        for context in itertools.product(vocab, repeat=m):
            ours = np.array([math.exp(kn.logprob(w, context)) for w in vocab])
            np.testing.assert_allclose(ours, [p(w, context) for w in vocab], rtol=1e-12)
            assert ours.sum() == pytest.approx(1.0, abs=1e-12)


def test_modified_kneser_ney_on_text_is_normalised_and_better():
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(30)]
    zipf = 1.0 / np.arange(1, 31)
    text = [[words[j] for j in rng.choice(30, size=rng.integers(3, 12), p=zipf / zipf.sum())]
            for _ in range(400)]
    plain = KneserNey(3).fit(text[:300])
    modified = KneserNey(3, modified=True).fit(text[:300])
    for context in [(), ("w0",), ("w1", "w0"), ("<s>", "<s>"), ("w29", "w28")]:
        total = sum(math.exp(modified.logprob(w, context)) for w in modified.vocab_)
        assert total == pytest.approx(1.0, abs=1e-12)
    assert all(0 < d for ds in modified.discounts_.values() for d in ds)
    assert modified.cross_entropy(text[300:]) < plain.cross_entropy(text[300:]) + 0.05
