"""word2vec: every minibatch update against the written-out objective (jax.grad) and a numpy loop,
Huffman codes against a reference heap construction, subsampling and noise against their formulas
(and gensim's, when installed), a planted-structure corpus, determinism and resume."""

import collections
import heapq
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.text import word2vec as w2v
from dlmodels.train.checkpoint import CheckpointError

KINDS = list(itertools.product(w2v.MODELS, w2v.LOSSES))


# ---------------------------------------------------------------- one minibatch, by hand


def _contexts(tok, sen, red, window):
    """For each centre t (stream position t + window): the stream positions of its context words,
    found by a loop over the window (not by the library's banded masks)."""
    out = []
    for t in range(red.shape[0]):
        p = t + window
        if sen[p] < 0:
            out.append([])
            continue
        out.append([q for q in range(p - red[t], p + red[t] + 1)
                    if q != p and 0 <= q < tok.shape[0] and sen[q] == sen[p]])
    return out


def _terms(mb, model, loss, window, block, negative, tree):
    """The objective as a list of (coefficient, sign, input rows with weights, output row):
    each term is ``-coef * log s(sign * out[o] . sum_i w_i inp[i])``."""
    tok, sen, red = mb["tok"], mb["sen"], mb["red"]
    ctx = _contexts(tok, sen, red, window)
    terms = []
    for t, c in enumerate(ctx):
        p = t + window
        centre = int(tok[p])
        if not c:
            continue
        if model == "skipgram" and loss == "negative":
            for q in c:
                terms.append((1.0, 1.0, [(centre, 1.0)], int(tok[q])))
            for n in mb["neg"][t // block]:
                terms.append((len(c) * negative / mb["neg"].shape[1], -1.0, [(centre, 1.0)], int(n)))
        elif model == "cbow":
            h = [(int(tok[q]), 1.0 / len(c)) for q in c]
            if loss == "negative":
                terms.append((1.0, 1.0, h, centre))
                for n in mb["neg"][t // block]:
                    terms.append((negative / mb["neg"].shape[1], -1.0, h, int(n)))
            else:
                points, codes, lengths = tree
                for i in range(lengths[centre]):
                    terms.append((1.0, 1.0 - 2.0 * codes[centre, i], h, int(points[centre, i])))
        else:  # skip-gram, hierarchical softmax: each context word predicts the centre's path
            points, codes, lengths = tree
            for q in c:
                for i in range(lengths[centre]):
                    terms.append((1.0, 1.0 - 2.0 * codes[centre, i], [(int(tok[q]), 1.0)],
                                  int(points[centre, i])))
    return terms


def _objective(inp, out, terms):
    total = 0.0
    for coef, sign, rows, o in terms:
        x = sum(w * inp[i] for i, w in rows)
        total = total - coef * jax.nn.log_sigmoid(sign * jnp.dot(out[o], x))
    return total


def _numpy_grads(inp, out, terms, model):
    """Gradients of the objective; for CBOW the input rows get the whole dL/dh (word2vec.c's and
    gensim's update, not the gradient through the mean)."""
    gi, go = np.zeros_like(inp), np.zeros_like(out)
    for coef, sign, rows, o in terms:
        x = sum(w * inp[i] for i, w in rows)
        s = sign * out[o] @ x
        g = -coef * sign * (1.0 - 1.0 / (1.0 + np.exp(-s)))   # d/ds' of -coef log s(sign s')
        go[o] += g * x
        for i, w in rows:
            gi[i] += g * (1.0 if model == "cbow" else w) * out[o]
    return gi, go


def _jax_grads(inp, out, terms, model):
    """jax.grad of the written-out objective; for CBOW taken with respect to each centre's h
    (one per distinct input-row list) and sent whole to each of its context rows."""
    if model != "cbow":
        return jax.grad(_objective, (0, 1))(jnp.asarray(inp), jnp.asarray(out), terms)
    keys = sorted({tuple(rows) for _, _, rows, _ in terms})
    hs = jnp.stack([sum(w * jnp.asarray(inp[i]) for i, w in k) for k in keys])
    where = {k: n for n, k in enumerate(keys)}

    def objective(hs, out):
        return -sum(coef * jax.nn.log_sigmoid(sign * jnp.dot(out[o], hs[where[tuple(rows)]]))
                    for coef, sign, rows, o in terms)

    gh, go = jax.grad(objective, (0, 1))(hs, jnp.asarray(out))
    gi = jnp.zeros(inp.shape, gh.dtype)
    for k, g in zip(keys, gh):
        for i, _ in k:
            gi = gi.at[i].add(g)
    return gi, go


def _minibatch(rng, v, window, block, length, kb):
    n = length + 2 * window
    tok = rng.integers(0, v, n).astype(np.int32)
    sen = np.sort(rng.integers(0, 3, n)).astype(np.int32)
    sen[:2] = -1                           # padding before the stream starts
    sen[-3:] = -1                          # and after it ends
    red = rng.integers(1, window + 1, length).astype(np.int32)
    neg = rng.integers(0, v, (length // block, kb)).astype(np.int32)
    return {"tok": tok, "sen": sen, "red": red, "neg": neg, "lr": np.float32(0.1)}


@pytest.mark.parametrize("model,loss", KINDS)
def test_minibatch_update_is_minus_lr_times_the_gradient_of_the_written_out_objective(model, loss):
    rng = np.random.default_rng(3)
    v, d, window, block, length, negative, kb = 9, 4, 2, 4, 12, 5, 3
    counts = rng.integers(1, 50, v)
    tree = w2v.huffman(counts)
    mb = _minibatch(rng, v, window, block, length, kb)
    rows = v if loss == "negative" else v - 1
    inp = rng.normal(0, 0.5, (v, d))
    out = rng.normal(0, 0.5, (rows, d))
    terms = _terms(mb, model, loss, window, block, negative, tree)
    assert len(terms) > 10

    gi_np, go_np = _numpy_grads(inp, out, terms, model)
    with jax.enable_x64(True):
        gi_jax, go_jax = _jax_grads(inp, out, terms, model)
    np.testing.assert_allclose(gi_jax, gi_np, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(go_jax, go_np, rtol=1e-9, atol=1e-12)

    params = {"input": jnp.asarray(inp, jnp.float32), "output": jnp.asarray(out, jnp.float32)}
    batch = {k: np.asarray(x)[None] for k, x in mb.items()}
    if loss == "hierarchical":
        del batch["neg"]
    jtree = tuple(jnp.asarray(a) for a in tree) if loss == "hierarchical" else ()
    new, (value, _) = w2v._run(params, batch, jtree, model=model, loss=loss, window=window,
                               block=block, negative=negative)
    lr = float(mb["lr"])
    np.testing.assert_allclose((inp - np.asarray(new["input"])) / lr, gi_np, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose((out - np.asarray(new["output"])) / lr, go_np, atol=2e-5, rtol=1e-4)
    with jax.enable_x64(True):
        expected = float(_objective(jnp.asarray(inp), jnp.asarray(out), terms))
    np.testing.assert_allclose(float(value[0]), expected, rtol=1e-5)


# ---------------------------------------------------------------- tables


def _reference_huffman_lengths(counts):
    """Code lengths by a heap of (count, creation order, leaves below): every merge adds one bit
    to each leaf below the two merged nodes."""
    heap = [(float(c), i, [i]) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    lengths = np.zeros(len(counts), int)
    order = len(counts)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        lengths[a + b] += 1
        heapq.heappush(heap, (c1 + c2, order, a + b))
        order += 1
    return lengths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huffman_codes_equal_a_reference_heap_and_form_a_prefix_code(seed):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.3, 300).clip(max=10**6))[::-1].astype(np.int64)
    points, codes, lengths = w2v.huffman(counts)
    v = len(counts)
    np.testing.assert_array_equal(lengths, _reference_huffman_lengths(counts))
    assert points.shape == codes.shape == (v, lengths.max())
    assert (points[:, 0] == v - 2).all()                      # every path starts at the root
    words = {tuple(codes[w, :lengths[w]]) for w in range(v)}
    assert len(words) == v                                    # distinct codes
    for w in range(v):                                        # prefix-free
        code = tuple(codes[w, :lengths[w]])
        assert not any(code[:k] in words for k in range(1, len(code)))
    # the same (node, bit) always leads to the same child node
    child = {}
    for w in range(v):
        for i in range(lengths[w] - 1):
            key = (points[w, i], codes[w, i])
            assert child.setdefault(key, points[w, i + 1]) == points[w, i + 1]
    # Kraft equality of a full binary tree, and the optimal expected length
    assert np.isclose(np.sum(2.0 ** -lengths), 1.0)


def test_huffman_two_words_and_errors():
    points, codes, lengths = w2v.huffman([5, 3])
    np.testing.assert_array_equal(lengths, [1, 1])
    np.testing.assert_array_equal(points, [[0], [0]])
    np.testing.assert_array_equal(codes, [[1], [0]])          # the smaller count takes bit 0
    with pytest.raises(ValueError, match="at least 2"):
        w2v.huffman([4])


def test_keep_probabilities_formula():
    counts = np.array([50_000, 5_000, 500, 50, 5])
    sample = 1e-3
    t = sample * counts.sum()
    expected = [min(1.0, (np.sqrt(c / t) + 1) * t / c) for c in counts]
    np.testing.assert_allclose(w2v.keep_probabilities(counts, sample), expected, rtol=1e-12)
    np.testing.assert_array_equal(w2v.keep_probabilities(counts, 0.0), np.ones(5))


def _zipf_sentences(seed=0, n=3000, v=400):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, v + 1)
    p /= p.sum()
    words = [f"w{i}" for i in range(v)]
    return [[words[i] for i in rng.choice(v, rng.integers(3, 20), p=p)] for _ in range(n)]


def test_gensim_structures_match_when_installed():
    gensim = pytest.importorskip("gensim")
    sentences = _zipf_sentences()
    vocab = w2v.build_vocab(sentences, min_count=5)
    model = gensim.models.Word2Vec(sentences, vector_size=10, min_count=5, sample=1e-3, hs=1,
                                   negative=5, epochs=1, workers=1, seed=0)
    assert set(model.wv.index_to_key) == set(vocab.tokens)
    counts = w2v._counts(vocab)
    keep = w2v.keep_probabilities(counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(w, "sample_int") for w in vocab.tokens]) / 2**32
    np.testing.assert_allclose(keep, theirs, atol=1e-9)
    # Huffman: the same optimal expected code length (ties may order the tree differently)
    _, _, lengths = w2v.huffman(counts)
    their_lengths = np.array([len(model.wv.get_vecattr(w, "code")) for w in vocab.tokens])
    assert np.dot(counts, lengths) == np.dot(counts, their_lengths)
    # noise distribution: gensim's cumulative table
    cum = model.cum_table / model.cum_table[-1]
    order = [model.wv.key_to_index[w] for w in vocab.tokens]
    theirs = np.diff(np.concatenate([[0.0], cum]))[order]
    np.testing.assert_allclose(w2v.noise_distribution(counts), theirs, atol=1e-7)


def test_pipeline_noise_and_subsampling_frequencies_within_statistical_error():
    sentences = _zipf_sentences(1, n=4000, v=60)
    vocab = w2v.build_vocab(sentences, min_count=1)
    corpus = w2v.encode(sentences, vocab)
    config = w2v.Word2VecConfig(sample=1e-2, batch_words=64, block=8, shared_negatives=16,
                                minibatches_per_call=8, min_count=1)
    tables, _ = w2v._tables(vocab, config)
    rng = np.random.default_rng(0)
    negs, kept = [], 0
    for mb, words, k in w2v._epoch_calls(corpus, 0, config, tables, rng):
        negs.append(mb["neg"].ravel())
        kept += k
    negs = np.concatenate(negs)
    counts = w2v._counts(vocab)
    p = w2v.noise_distribution(counts)
    freq = np.bincount(negs, minlength=len(vocab)) / negs.size
    sigma = np.sqrt(p * (1 - p) / negs.size)
    assert (np.abs(freq - p) < 5 * sigma + 1e-12).all()
    # subsampling: kept words match sum of keep probabilities within 5 sigma
    q = tables["keep"][corpus.ids]
    assert abs(kept - q.sum()) < 5 * np.sqrt(np.sum(q * (1 - q)))


# ---------------------------------------------------------------- training


def _planted_sentences(seed=0, groups=6, size=8, n=1500):
    """Each sentence draws its words from one planted group (plus a few shared filler words)."""
    rng = np.random.default_rng(seed)
    words = [[f"g{g}w{i}" for i in range(size)] for g in range(groups)]
    fillers = [f"f{i}" for i in range(5)]
    out = []
    for _ in range(n):
        g = rng.integers(groups)
        s = [words[g][i] for i in rng.integers(size, size=12)]
        for j in rng.integers(len(s), size=2):
            s[j] = fillers[rng.integers(len(fillers))]
        out.append(s)
    return out, words


@pytest.mark.parametrize("model,loss", KINDS)
def test_planted_groups_are_nearest_neighbours(model, loss):
    sentences, groups = _planted_sentences()
    config = w2v.Word2VecConfig(model=model, loss=loss, vector_size=20, window=3, epochs=5,
                                min_count=1, sample=0.0, batch_words=256, block=16,
                                minibatches_per_call=4, seed=1)
    result = w2v.train(sentences, config)
    vocab, vectors = result.vocab, result.params["input"]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    group_of = {w: g for g, ws in enumerate(groups) for w in ws}
    hits = total = 0
    for w, g in group_of.items():
        i = vocab.index(w)
        sims = unit @ unit[i]
        sims[i] = -np.inf
        nearest = vocab.tokens[int(np.argmax(sims))]
        hits += group_of.get(nearest) == g
        total += 1
    assert hits / total >= 0.95, (model, loss, hits, total)
    assert np.all(np.diff(result.stats["loss"][:3]) < 0)
    assert result.stats["raw_words"] == sum(map(len, sentences)) * 5


def test_same_seed_same_vectors_and_resume_is_bitwise(tmp_path, monkeypatch):
    sentences = _zipf_sentences(2, n=600, v=80)
    config = w2v.Word2VecConfig(vector_size=8, epochs=3, min_count=1, batch_words=64, block=8,
                                minibatches_per_call=4, seed=5)
    a = w2v.train(sentences, config)
    b = w2v.train(sentences, config)
    np.testing.assert_array_equal(a.params["input"], b.params["input"])
    c = w2v.train(sentences, dataclasses_replace(config, seed=6))
    assert not np.array_equal(a.params["input"], c.params["input"])

    from dlmodels.train import checkpoint
    saves = []
    original = checkpoint.Checkpointer.save

    def save_then_die(self, state, **kw):
        original(self, state, **kw)
        saves.append(int(state.step))
        if len(saves) == 1:
            raise KeyboardInterrupt("killed after the first epoch")

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        w2v.train(sentences, config, run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="resume=True"):
        w2v.train(sentences, config, run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="another config"):
        w2v.train(sentences, dataclasses_replace(config, window=2), run_dir=tmp_path, resume=True)
    r = w2v.train(sentences, config, run_dir=tmp_path, resume=True)
    assert saves == [1, 2, 3]   # the refused resumes saved nothing
    np.testing.assert_array_equal(r.params["input"], a.params["input"])
    np.testing.assert_array_equal(r.params["output"], a.params["output"])
    assert r.stats["loss"] == a.stats["loss"]


def dataclasses_replace(config, **kw):
    import dataclasses
    return dataclasses.replace(config, **kw)


@pytest.mark.parametrize("kwargs,match", [
    ({"model": "glove"}, "model"), ({"loss": "nce"}, "loss"), ({"window": 0}, "window"),
    ({"vector_size": -1}, "vector_size"), ({"negative": 0}, "negative"),
    ({"sample": -1e-3}, "sample"), ({"alpha": float("nan")}, "alpha"),
    ({"batch_words": 100, "block": 16}, "multiple"), ({"epochs": 0}, "epochs")])
def test_invalid_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        w2v.Word2VecConfig(**kwargs)


def test_bad_corpora():
    with pytest.raises(TypeError, match="sequence of sentences"):
        w2v.train("just a string")
    with pytest.raises(TypeError, match="sentence 1"):
        w2v.build_vocab([["a", "b"], "c d"])
    with pytest.raises(ValueError, match="at least 2"):
        w2v.build_vocab([["a", "b"]], min_count=5)
    vocab = w2v.build_vocab([["a", "b", "a", "b"]], min_count=1)
    with pytest.raises(ValueError, match="no word"):
        w2v.encode([["c"]], vocab)
    with pytest.raises(ValueError, match="needs a run_dir"):
        w2v.train([["a", "b", "a", "b"]], w2v.Word2VecConfig(min_count=1), resume=True)


def test_default_learning_rates():
    assert w2v.Word2VecConfig().start_alpha == 0.025
    assert w2v.Word2VecConfig(model="cbow").start_alpha == 0.05
    assert w2v.Word2VecConfig(alpha=0.1).start_alpha == 0.1


def test_build_vocab_orders_by_count():
    vocab = w2v.build_vocab([["b", "a", "a", "c", "b", "a", "d"]], min_count=1)
    assert vocab.tokens == ["a", "b", "c", "d"]
    assert vocab.counts == {"a": 3, "b": 2, "c": 1, "d": 1}
    counter = collections.Counter(vocab.counts)
    assert counter.most_common(1) == [("a", 3)]
