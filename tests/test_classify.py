"""dlmodels.text.classify against independent references: the RNN classifiers' logits against
PyTorch's nn.LSTM / nn.GRU / nn.RNN (copied weights) and a numpy LSTM loop run on each text's real
tokens only; padding invariance; the bag-of-words features against a brute-force count; the
bag-of-words logistic regression trained by ``fit`` against scikit-learn's LogisticRegression."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels.text.classify import bag_of_words, bigram_vocabulary, bow_logistic, rnn_classifier
from dlmodels.train import TrainConfig, fit
from dlmodels.train.objectives import classifier
from dlmodels.validation import ShapeError

V, E, H, K = 23, 5, 4, 3


def batch(seed=0, B=6, T=9):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B).astype(np.int32)
    lengths[0] = T                                  # one full-length text, one of length 1
    lengths[1] = 1
    ids = rng.integers(2, V, (B, T)).astype(np.int32)
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_bidirectional_logits_ignore_padding(cell):
    model = rnn_classifier(V, K, cell=cell, embed_dim=E, hidden=H, bidirectional=True)
    params = model.init(jax.random.PRNGKey(1))
    ids, lengths = batch()
    out = model.apply(params, ids, lengths)
    longer = np.concatenate([ids, np.full((len(ids), 7), 0, np.int32)], axis=1)
    other_pad = np.where(np.arange(ids.shape[1])[None] < lengths[:, None], ids, 17)
    other_pad_longer = np.concatenate([other_pad, np.full((len(ids), 3), 5, np.int32)], axis=1)
    for padded in (longer, other_pad, other_pad_longer):
        np.testing.assert_allclose(model.apply(params, padded, lengths), out, atol=1e-6)
    # and each text alone, without any padding
    for b in range(len(ids)):
        alone = model.apply(params, ids[b:b + 1, :lengths[b]], lengths[b:b + 1])
        np.testing.assert_allclose(alone[0], out[b], atol=1e-5)


def _torch_logits(params, ids, lengths, cell, bidirectional):
    """Logits from torch's recurrent layer (float64, copied weights) run on each text's real
    tokens only: forward h_n, and for the bidirectional layer the reverse direction's h_n."""
    torch = pytest.importorskip("torch")
    p = _np(params)
    layer_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[cell]
    layer = layer_cls(E, H, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():
        for direction, suffix in (("forward", ""), ("backward", "_reverse")):
            if direction not in p:
                continue
            q = p[direction]
            getattr(layer, "weight_ih_l0" + suffix).copy_(torch.tensor(q["w_x"].T))
            getattr(layer, "weight_hh_l0" + suffix).copy_(torch.tensor(q["w_h"].T))
            b_ih, b_hh = (q["b_x"], q["b_h"]) if cell == "gru" else (q["b"], 0 * q["b"])
            getattr(layer, "bias_ih_l0" + suffix).copy_(torch.tensor(b_ih))
            getattr(layer, "bias_hh_l0" + suffix).copy_(torch.tensor(b_hh))
        rows = []
        for b in range(len(ids)):
            x = torch.tensor(p["embedding"]["table"][ids[b, :lengths[b]]][None])
            _, h_n = layer(x)
            h_n = h_n[0] if cell == "lstm" else h_n      # [directions, 1, H]
            rows.append(torch.cat(list(h_n[:, 0]), dim=-1).numpy())
    feats = np.stack(rows)
    return feats @ p["head"]["w"] + p["head"]["b"]


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_final_states_match_torch(cell, bidirectional):
    model = rnn_classifier(V, K, cell=cell, embed_dim=E, hidden=H, bidirectional=bidirectional)
    params = model.init(jax.random.PRNGKey(2))
    ids, lengths = batch(seed=3)
    expected = _torch_logits(params, ids, lengths, cell, bidirectional)
    np.testing.assert_allclose(model.apply(params, ids, lengths), expected, atol=2e-5)


def _lstm_final(q, xs):
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = c = np.zeros(q["w_h"].shape[0])
    for x in xs:
        i, f, g, o = np.split(x @ q["w_x"] + h @ q["w_h"] + q["b"], 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return h


def test_lstm_states_match_numpy_loop():
    """[h_T ; h_1] by a plain loop over each text's real tokens, forwards then backwards."""
    model = rnn_classifier(V, K, embed_dim=E, hidden=H, bidirectional=True)
    params = model.init(jax.random.PRNGKey(4))
    ids, lengths = batch(seed=5)
    p = _np(params)
    feats = []
    for b in range(len(ids)):
        xs = p["embedding"]["table"][ids[b, :lengths[b]]]
        feats.append(np.concatenate([_lstm_final(p["forward"], xs),
                                     _lstm_final(p["backward"], xs[::-1])]))
    expected = np.stack(feats) @ p["head"]["w"] + p["head"]["b"]
    np.testing.assert_allclose(model.apply(params, ids, lengths), expected, atol=2e-5)
    uni = rnn_classifier(V, K, embed_dim=E, hidden=H)
    p_uni = {k: params[k] for k in ("embedding", "forward")}
    p_uni["head"] = {"w": params["head"]["w"][:H], "b": params["head"]["b"]}
    expected_uni = np.stack(feats)[:, :H] @ p["head"]["w"][:H] + p["head"]["b"]
    np.testing.assert_allclose(uni.apply(p_uni, ids, lengths), expected_uni, atol=2e-5)


def test_jit_dropout_and_gradients():
    model = rnn_classifier(V, 2, embed_dim=E, hidden=H, bidirectional=True, dropout=0.5,
                           embed_dropout=0.2)
    params = model.init(jax.random.PRNGKey(0))
    ids, lengths = batch()
    np.testing.assert_allclose(jax.jit(model.apply)(params, ids, lengths),
                               model.apply(params, ids, lengths), atol=1e-6)
    a = model.apply(params, ids, lengths, key=jax.random.PRNGKey(1), train=True)
    b = model.apply(params, ids, lengths, key=jax.random.PRNGKey(2), train=True)
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="key"):
        model.apply(params, ids, lengths, train=True)
    grads = jax.grad(lambda p: model.apply(p, ids, lengths, key=jax.random.PRNGKey(1),
                                           train=True).sum())(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    # padding ids never get a gradient through the embedding
    pad_rows = np.asarray(grads["embedding"]["table"])[0]
    assert np.all(pad_rows == 0)


def test_bad_inputs_raise():
    model = rnn_classifier(V, K, embed_dim=E, hidden=H)
    params = model.init(jax.random.PRNGKey(0))
    ids, lengths = batch()
    with pytest.raises(ShapeError, match=r"token ids \[B, T\]"):
        model.apply(params, ids[0], lengths)
    with pytest.raises(ShapeError, match="lengths"):
        model.apply(params, ids, lengths[:-1])
    with pytest.raises(ValueError, match="length 0"):
        model.apply(params, ids, np.where(np.arange(len(lengths)) == 2, 0, lengths))
    with pytest.raises(ValueError, match="outside 1..9"):
        model.apply(params, ids, lengths + 5)
    with pytest.raises(TypeError, match="integers"):
        model.apply(params, ids.astype(np.float32), lengths)
    with pytest.raises(TypeError, match="lengths must be integers"):
        model.apply(params, ids, lengths.astype(np.float32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply(params, ids + V, lengths)
    with pytest.raises(ValueError, match="cell"):
        rnn_classifier(V, K, cell="tanh")
    with pytest.raises(ValueError, match="dropout"):
        rnn_classifier(V, K, dropout=1.0)
    bow = bow_logistic(10, 2)
    with pytest.raises(ShapeError, match=r"\[B, 10\]"):
        bow.apply(bow.init(jax.random.PRNGKey(0)), np.zeros((3, 11), np.float32))
    with pytest.raises(ValueError, match="0..22"):
        bag_of_words(ids + V, lengths, V)
    with pytest.raises(ShapeError, match="lengths"):
        bag_of_words(ids, lengths[:2], V)


def test_bag_of_words_against_brute_force_counts():
    ids, lengths = batch(seed=7, B=12, T=8)
    bigrams = bigram_vocabulary(ids, lengths, V)
    seen = {(a, b) for n in range(len(ids)) for a, b in
            zip(ids[n, :lengths[n]], ids[n, 1:lengths[n]])}
    assert sorted(bigrams.tolist()) == sorted(a * V + b for a, b in seen)
    keep = bigrams[::2]                                # a subset: the other pairs are dropped
    x = bag_of_words(ids, lengths, V, bigrams=keep)
    xb = bag_of_words(ids, lengths, V, bigrams=keep, binary=True)
    expected = np.zeros((len(ids), V + len(keep)))
    for n in range(len(ids)):
        words = ids[n, :lengths[n]].tolist()
        for w in words:
            expected[n, w] += 1
        for a, b in zip(words, words[1:]):
            if a * V + b in keep.tolist():
                expected[n, V + keep.tolist().index(a * V + b)] += 1
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(xb, expected > 0)
    np.testing.assert_array_equal(bag_of_words(ids, lengths, V), expected[:, :V])


def test_bow_logistic_matches_sklearn():
    """Full-batch training through fit with l2 = 1 / (C N) reaches scikit-learn's binary L2
    logistic regression (lbfgs): coefficients W[:, 1] - W[:, 0] vs coef_, same predictions."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    n, vocab = 240, 30
    lengths = rng.integers(3, 12, n).astype(np.int32)
    ids = rng.integers(0, vocab, (n, 12)).astype(np.int32)
    score = rng.normal(size=vocab)
    x = bag_of_words(ids, lengths, vocab)
    y = ((x @ score + rng.normal(scale=1.0, size=n)) > 0).astype(np.int32)
    C = 0.5
    model = bow_logistic(vocab, 2)
    loss_fn, eval_fn = classifier(model.apply, l2=1.0 / (C * n))
    steps = 1500
    optimizer = optax.adam(optax.cosine_decay_schedule(0.05, steps, alpha=1e-3))
    result = fit(model.init, loss_fn, optimizer, (x, y),
                 TrainConfig(epochs=steps, batch_size=n, steps_per_call=500, progress=False),
                 eval_fn=eval_fn, eval_data=(x, y))
    w = np.asarray(result.state.params["w"])
    b = np.asarray(result.state.params["b"])
    ref = linear_model.LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10_000)
    ref.fit(x, y)
    np.testing.assert_allclose(w[:, 1] - w[:, 0], ref.coef_[0], atol=2e-3)
    np.testing.assert_allclose(b[1] - b[0], ref.intercept_[0], atol=2e-3)
    ours = np.argmax(np.asarray(model.apply(result.state.params, x)), -1)
    np.testing.assert_array_equal(ours, ref.predict(x))
    assert result.final["accuracy"] == pytest.approx(ref.score(x, y))
