"""Text utilities against hand-written expectations and numpy references: tokenisers, Vocab
(ordering, min_count / max_size, round trips, files), padding, bucketing, the stream batcher
(windows tile the corpus once per epoch, in the trainer's order), one-hot and embeddings."""

import collections
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.data import DataError, batch_indices
from dlmodels.text import Vocab, batching, embedding, tokenize
from dlmodels.validation import ShapeError


# -- tokenisers ---------------------------------------------------------------------------------
TEXT = "Hello, World! Don't stop -- 'tis well-known.\nNew line"


def test_chars_are_every_character():
    assert tokenize.chars("ab c\n") == ["a", "b", " ", "c", "\n"]


def test_words_punctuation_options():
    assert tokenize.words(TEXT) == ["hello", ",", "world", "!", "don't", "stop", "-", "-", "'",
                                    "tis", "well", "-", "known", ".", "new", "line"]
    assert tokenize.words(TEXT, lower=False, punctuation="keep") == [
        "Hello,", "World!", "Don't", "stop", "--", "'tis", "well-known.", "New", "line"]
    assert tokenize.words(TEXT, punctuation="drop") == [
        "hello", "world", "don't", "stop", "tis", "well", "known", "new", "line"]
    assert tokenize.words("Café DÉJÀ-vu") == ["café", "déjà", "-", "vu"]  # Unicode letters


def test_words_rejects_bad_arguments():
    with pytest.raises(ValueError, match="punctuation"):
        tokenize.words("a b", punctuation="strip")
    with pytest.raises(TypeError, match="str"):
        tokenize.words(["a", "b"])


# -- Vocab --------------------------------------------------------------------------------------
# hand-counted: the 6, cat 3, sat 3 (seen after cat), on 2, mat 1, a 1
CORPUS = "the cat sat on the mat the cat sat on the the a cat sat the".split()


def test_vocab_order_specials_then_count_then_first_seen():
    v = Vocab.from_tokens(CORPUS)
    assert v.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "the", "cat", "sat", "on", "mat", "a"]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.index("on") == 7 and "mat" in v and "dog" not in v and len(v) == 10
    assert v.counts["the"] == 6 and v.counts["<pad>"] == 0


def test_vocab_min_count_and_max_size():
    v = Vocab.from_tokens(CORPUS, min_count=2)
    assert v.tokens[4:] == ["the", "cat", "sat", "on"]
    v = Vocab.from_tokens(CORPUS, max_size=6)  # specials count towards max_size
    assert v.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "the", "cat"]
    v = Vocab.from_counts({"b": 2, "a": 2, "c": 5, "<unk>": 9}, specials=("<unk>",))
    assert v.tokens == ["<unk>", "c", "b", "a"]  # ties in the counts' order; a special keeps its id
    with pytest.raises(ValueError, match="max_size"):
        Vocab.from_tokens(CORPUS, max_size=3)
    with pytest.raises(ValueError, match="min_count"):
        Vocab.from_tokens(CORPUS, min_count=0)


def test_vocab_encode_decode_round_trip_and_unknowns():
    v = Vocab.from_tokens(CORPUS, min_count=2)
    ids = v.encode(["the", "dog", "sat"])
    assert ids == [4, 1, 6]
    assert v.decode(ids) == ["the", "<unk>", "sat"]
    known = [t for t in CORPUS if t in v]
    assert v.decode(v.encode(known)) == known
    assert v.decode(np.array(v.encode(known), np.int32)) == known
    with pytest.raises(IndexError, match="outside"):
        v.decode([len(v)])
    with pytest.raises(IndexError, match="outside"):
        v.decode([-1])


def test_closed_character_vocab_raises_on_unknown():
    v = Vocab.from_tokens("hello world", specials=())
    assert v.tokens == ["l", "o", "h", "e", " ", "w", "r", "d"]
    assert v.pad_id is None and v.unk_id is None
    assert "".join(v.decode(v.encode("hello"))) == "hello"
    with pytest.raises(KeyError, match="'z'"):
        v.encode("helz")


def test_vocab_save_load_round_trip(tmp_path):
    v = Vocab.from_tokens(tokenize.words("Ünïcode words, “quotes” and\ttabs " * 2), min_count=1)
    path = tmp_path / "vocab.json"
    v.save(path)
    w = Vocab.load(path)
    assert w == v and w.tokens == v.tokens and w.counts == v.counts
    assert (w.pad_id, w.unk_id, w.bos_id, w.eos_id) == (v.pad_id, v.unk_id, v.bos_id, v.eos_id)
    c = Vocab.from_tokens("abc", specials=())
    c.save(path)
    assert Vocab.load(path).specials == () and Vocab.load(path).tokens == ["a", "b", "c"]


def test_vocab_load_refuses_corrupted_and_wrong_files(tmp_path):
    path = tmp_path / "vocab.json"
    Vocab.from_tokens(CORPUS).save(path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="corrupted JSON"):
        Vocab.load(path)
    path.write_text(json.dumps({"tokens": ["a"]}))
    with pytest.raises(DataError, match="not a vocabulary"):
        Vocab.load(path)
    doc = json.loads(text)
    doc["tokens"][5] = doc["tokens"][4]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="repeated"):
        Vocab.load(path)
    doc = json.loads(text)
    doc["counts"] = doc["counts"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="corrupted"):
        Vocab.load(path)
    with pytest.raises(FileNotFoundError):
        Vocab.load(tmp_path / "missing.json")


# -- padding and buckets ------------------------------------------------------------------------
def test_pad_matches_a_python_loop():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, size=n)) for n in (3, 0, 7, 1, 5)]
    for max_len in (None, 4):
        ids, lengths = batching.pad(seqs, pad_id=99, max_len=max_len)
        T = max_len or 7
        assert ids.dtype == np.int32 and lengths.dtype == np.int32 and ids.shape == (5, T)
        for n, s in enumerate(seqs):
            L = min(len(s), T)
            assert lengths[n] == L
            assert list(ids[n]) == s[:L] + [99] * (T - L)


def test_pad_rejects_bad_sequences():
    with pytest.raises(ShapeError):
        batching.pad([[[1, 2]]])
    with pytest.raises(ValueError, match=">= 0"):
        batching.pad([[1, -2]])
    with pytest.raises(TypeError, match="integers"):
        batching.pad([[1.5, 2.0]])


def test_buckets_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 100, size=203)
    out = batching.buckets(lengths, 16, key=jax.random.PRNGKey(0), n_buckets=5)
    assert sorted(np.concatenate(out).tolist()) == list(range(203))
    assert all(1 <= len(b) <= 16 for b in out)
    # each batch lies within one of the five length quantile groups (an independent split)
    groups = [(g.min(), g.max()) for g in np.array_split(np.sort(lengths), 5)]
    for b in out:
        assert any(lo <= lengths[b].min() and lengths[b].max() <= hi for lo, hi in groups)
    again = batching.buckets(lengths, 16, key=jax.random.PRNGKey(0), n_buckets=5)
    other = batching.buckets(lengths, 16, key=jax.random.PRNGKey(1), n_buckets=5)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    assert not all(np.array_equal(a, b) for a, b in zip(out, other))


# -- the stream batcher -------------------------------------------------------------------------
@pytest.mark.parametrize("n, B, T", [(101, 4, 5), (21, 4, 5), (1000, 3, 7), (9, 1, 8)])
def test_streams_tile_the_corpus_once_per_epoch(n, B, T):
    corpus = np.random.default_rng(n).integers(0, 30, size=n)
    s = batching.streams(corpus, B, T)
    W = s.inputs.shape[0]
    assert s.inputs.shape == s.targets.shape == (W, B, T) and s.inputs.dtype == np.int32
    S = W * T
    assert W == ((n - 1) // B) // T  # the documented number of windows
    for b in range(B):
        # stream b = its windows concatenated = a contiguous slice of the corpus
        np.testing.assert_array_equal(np.concatenate(list(s.inputs[:, b])), corpus[b * S:(b + 1) * S])
        np.testing.assert_array_equal(np.concatenate(list(s.targets[:, b])),
                                      corpus[b * S + 1:(b + 1) * S + 1])
    # positions: each of 0..B*S-1 is an input exactly once, the tail never; targets = next token
    pos = batching.streams(np.arange(n), B, T)
    counts = np.bincount(pos.inputs.ravel(), minlength=n)
    assert (counts[:B * S] == 1).all() and (counts[B * S:] == 0).all()
    assert n - B * S <= B * T
    np.testing.assert_array_equal(pos.targets, pos.inputs + 1)
    np.testing.assert_array_equal(s.inputs, corpus[pos.inputs])
    np.testing.assert_array_equal(s.targets, corpus[pos.inputs + 1])


def test_trainer_data_in_the_trainer_order():
    s = batching.streams(np.arange(200), 4, 6)
    W = s.inputs.shape[0]
    data = batching.trainer_data(s)
    assert data["inputs"].shape == data["targets"].shape == (W * 4, 6) and data["reset"].dtype == bool
    idx = batch_indices(jax.random.PRNGKey(0), W * 4, 4, epoch=3, shuffle=False)  # what fit takes
    assert len(idx) == W
    for w, rows in enumerate(idx):
        np.testing.assert_array_equal(data["inputs"][rows], s.inputs[w])
        np.testing.assert_array_equal(data["targets"][rows], s.targets[w])
        assert (data["reset"][rows] == (w == 0)).all()
        if w > 0:  # the carry flows: this window starts where the previous one stopped
            np.testing.assert_array_equal(data["inputs"][rows][:, 0],
                                          data["inputs"][idx[w - 1]][:, -1] + 1)


def test_streams_reject_bad_input():
    with pytest.raises(ValueError, match="too short"):
        batching.streams(np.arange(20), 4, 5)  # needs 21 tokens
    with pytest.raises(ShapeError, match="1-D"):
        batching.streams(np.zeros((10, 10), np.int32), 2, 3)
    with pytest.raises(ValueError, match=">= 0"):
        batching.streams(np.array([1, 2, -3, 4, 5]), 1, 2)
    with pytest.raises(TypeError, match="integers"):
        batching.streams(np.linspace(0, 1, 50), 1, 2)
    with pytest.raises(ValueError, match="window"):
        batching.streams(np.arange(50), 2, 0)
    with pytest.raises(ShapeError):
        batching.trainer_data(batching.Streams(np.zeros((3, 4), np.int32), np.zeros((3, 4), np.int32)))


# -- one-hot and embeddings ---------------------------------------------------------------------
def test_embedding_equals_one_hot_times_table():
    model = embedding.embedding(11, 4)
    params = model.init(jax.random.PRNGKey(0))
    assert params["table"].shape == (11, 4) and params["table"].dtype == jnp.float32
    ids = np.random.default_rng(0).integers(0, 11, size=(3, 5))
    table = np.asarray(params["table"])
    expected = np.eye(11, dtype=np.float32)[ids] @ table                 # [3, 5, 4]
    np.testing.assert_allclose(model.apply(params, jnp.asarray(ids)), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(model.apply)(params, jnp.asarray(ids)), expected, rtol=1e-6)
    np.testing.assert_array_equal(embedding.one_hot(jnp.asarray(ids), 11), np.eye(11)[ids])
    np.testing.assert_allclose(embedding.one_hot(jnp.asarray(ids), 11) @ params["table"], expected,
                               rtol=1e-6)
    assert embedding.embedding(5, 2, dtype=jnp.bfloat16).init(jax.random.PRNGKey(0))["table"].dtype \
        == jnp.bfloat16


def test_embedding_and_one_hot_reject_bad_ids():
    model = embedding.embedding(5, 3)
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="token id 5"):
        model.apply(params, jnp.array([1, 5]))
    with pytest.raises(ValueError, match="token id -1"):
        model.apply(params, jnp.array([-1, 2]))
    with pytest.raises(TypeError, match="integers"):
        model.apply(params, jnp.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match="table"):
        model.apply({"table": jnp.zeros((4, 3))}, jnp.array([1]))
    with pytest.raises(ValueError, match="token id 7"):
        embedding.one_hot(jnp.array([7]), 5)
    with pytest.raises(ValueError, match="vocab_size"):
        embedding.embedding(0, 3)


def test_one_hot_and_embedding_both_drive_an_rnn():
    from dlmodels import rnn
    ids = jnp.asarray(np.random.default_rng(2).integers(0, 7, size=(2, 6)))
    emb = embedding.embedding(7, 3)
    p_emb = emb.init(jax.random.PRNGKey(1))
    cell = rnn.elman(4)
    for x in (embedding.one_hot(ids, 7), emb.apply(p_emb, ids)):
        params = cell.init(jax.random.PRNGKey(2), x.shape[-1])
        ys, _ = rnn.unroll(cell, params, x)
        assert ys.shape == (2, 6, 4) and np.isfinite(np.asarray(ys)).all()
