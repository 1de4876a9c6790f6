"""BiLSTM tagger: emissions against PyTorch with copied weights (word and character features),
padding invariance, the masked loss against numpy, the CRF loss and decoding against pytorch-crf,
bucketed batches, and a small synthetic tagging task learned through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlmodels.text import tagger
from dlmodels.train import TrainConfig, fit
from dlmodels.validation import ShapeError


def _batch(key, B, T, n_words, lengths, n_chars=None, C=6):
    """Random word ids (and char ids, every word 1..C characters, 0-padded) of a padded batch."""
    k_w, k_c, k_n = jax.random.split(key, 3)
    words = np.asarray(jax.random.randint(k_w, (B, T), 0, n_words))
    chars = None
    if n_chars is not None:
        chars = np.asarray(jax.random.randint(k_c, (B, T, C), 1, n_chars))
        n = np.asarray(jax.random.randint(k_n, (B, T), 1, C + 1))
        chars = np.where(np.arange(C)[None, None, :] < n[..., None], chars, 0)
    return words, np.asarray(lengths, np.int32), chars


def _torch_emissions(params, words, lengths, chars, *, layers, char_encoder=None):
    """The tagger's forward pass in PyTorch with the params copied: nn.Embedding (+ a character
    nn.LSTM(bidirectional) on packed words or an nn.Conv1d max-pooled over the characters),
    nn.LSTM(bidirectional=True, num_layers=layers) over pack_padded_sequence, nn.Linear."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def t(a):
        return torch.tensor(np.asarray(a, np.float32))

    def copy_lstm(module, layer_params, l):
        for direction, suffix in (("forward", ""), ("backward", "_reverse")):
            p = layer_params[direction]
            getattr(module, f"weight_ih_l{l}{suffix}").copy_(t(p["w_x"]).T)
            getattr(module, f"weight_hh_l{l}{suffix}").copy_(t(p["w_h"]).T)
            getattr(module, f"bias_ih_l{l}{suffix}").copy_(t(p["b"]))
            getattr(module, f"bias_hh_l{l}{suffix}").zero_()

    B, T = words.shape
    with torch.no_grad():
        x = torch.nn.Embedding.from_pretrained(t(params["embed"]["table"]))(
            torch.tensor(words))                                       # [B, T, D]
        if chars is not None:
            cp = params["chars"]
            flat = torch.tensor(chars.reshape(B * T, -1).astype(np.int64))
            n = (flat != 0).sum(-1)
            table = t(cp["embed"]["table"])
            table[0] = 0.0                                             # padding_idx=0
            ce = torch.nn.Embedding.from_pretrained(table, padding_idx=0)(flat)
            if char_encoder == "lstm":
                Hc = cp["encoder"]["forward"]["w_h"].shape[0]
                lstm = torch.nn.LSTM(ce.shape[-1], Hc, bidirectional=True, batch_first=True)
                copy_lstm(lstm, cp["encoder"], 0)
                _, (h_n, _) = lstm(pack_padded_sequence(ce, n, batch_first=True,
                                                        enforce_sorted=False))
                feats = torch.cat([h_n[0], h_n[1]], -1)                # [N, 2 Hc]
            else:
                w = t(cp["encoder"]["w"])                              # [k, c_in, c_out]
                conv = torch.nn.Conv1d(w.shape[1], w.shape[2], w.shape[0],
                                       padding=w.shape[0] // 2)
                conv.weight.copy_(w.permute(2, 1, 0))
                conv.bias.copy_(t(cp["encoder"]["b"]))
                y = conv(ce.transpose(1, 2))                           # [N, c_out, C]
                valid = torch.arange(y.shape[-1])[None, None, :] < n[:, None, None]
                feats = torch.where(valid, y, torch.tensor(-np.inf)).amax(-1)
            x = torch.cat([x, feats.reshape(B, T, -1)], -1)
        H = params["rnn"]["layer_0"]["forward"]["w_h"].shape[0]
        lstm = torch.nn.LSTM(x.shape[-1], H, num_layers=layers, bidirectional=True,
                             batch_first=True)
        for l in range(layers):
            copy_lstm(lstm, params["rnn"][f"layer_{l}"], l)
        out, _ = lstm(pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                           enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        linear = torch.nn.Linear(2 * H, params["out"]["w"].shape[1])
        linear.weight.copy_(t(params["out"]["w"]).T)
        linear.bias.copy_(t(params["out"]["b"]))
        em = linear(out).numpy()
    return np.where((np.arange(T)[None, :] < lengths[:, None])[..., None], em, 0.0)


@pytest.mark.parametrize("layers, char_encoder", [(1, None), (2, None), (1, "lstm"), (1, "cnn")])
def test_emissions_equal_torch_with_copied_weights(layers, char_encoder):
    n_chars = None if char_encoder is None else 11
    model = tagger.bilstm_tagger(20, 5, embed_dim=6, hidden=4, layers=layers, n_chars=n_chars,
                                 char_dim=3, char_hidden=4, char_encoder=char_encoder or "lstm",
                                 dropout=0.5)
    params = model.init(jax.random.PRNGKey(0))
    words, lengths, chars = _batch(jax.random.PRNGKey(1), 4, 7, 20, [7, 3, 1, 5], n_chars)
    got = model.apply(params, jnp.asarray(words), jnp.asarray(lengths),
                      None if chars is None else jnp.asarray(chars))
    want = _torch_emissions(params, words, lengths, chars, layers=layers,
                            char_encoder=char_encoder)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(got)[1, 3:] == 0) and np.all(np.asarray(got)[2, 1:] == 0)


@pytest.mark.parametrize("char_encoder", [None, "lstm", "cnn"])
def test_padding_changes_no_emission_within_lengths(char_encoder):
    n_chars = None if char_encoder is None else 9
    model = tagger.bilstm_tagger(15, 4, embed_dim=5, hidden=3, n_chars=n_chars, char_dim=3,
                                 char_hidden=3, char_encoder=char_encoder or "lstm")
    params = model.init(jax.random.PRNGKey(3))
    lengths = [5, 2, 4]
    words, lengths, chars = _batch(jax.random.PRNGKey(4), 3, 5, 15, lengths, n_chars, C=4)
    base = model.apply(params, words, lengths, chars)
    # more time steps holding random ids, and (with characters) more zero character columns plus
    # random characters in the words past each length
    junk_w, _, junk_c = _batch(jax.random.PRNGKey(5), 3, 9, 15, lengths, n_chars, C=7)
    mask = np.arange(9)[None, :] < lengths[:, None]
    longer_w = np.where(mask, np.pad(words, ((0, 0), (0, 4))), junk_w)
    longer_c = None
    if chars is not None:
        longer_c = np.where(mask[..., None], np.pad(chars, ((0, 0), (0, 4), (0, 3))), junk_c)
    padded = model.apply(params, longer_w, lengths, longer_c)
    np.testing.assert_allclose(np.asarray(padded[:, :5]), np.asarray(base), rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(padded)[~mask] == 0)


def test_masked_cross_entropy_equals_numpy():
    rng = np.random.default_rng(0)
    emissions = rng.normal(size=(3, 6, 5)).astype(np.float32)
    tags = rng.integers(0, 5, (3, 6))
    lengths = np.array([6, 2, 4])
    total, count = 0.0, 0
    for b in range(3):
        for t in range(lengths[b]):
            z = emissions[b, t].astype(np.float64)
            total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[tags[b, t]]
            count += 1
    got = tagger.masked_cross_entropy(jnp.asarray(emissions), jnp.asarray(tags),
                                      jnp.asarray(lengths))
    np.testing.assert_allclose(float(got), total / count, rtol=1e-5)
    # and through loss_fn: the same on the model's emissions
    model = tagger.bilstm_tagger(10, 5, embed_dim=4, hidden=3)
    params = model.init(jax.random.PRNGKey(0))
    batch = {"words": jnp.asarray(rng.integers(0, 10, (3, 6))), "tags": jnp.asarray(tags),
             "lengths": jnp.asarray(lengths)}
    em = np.asarray(model.apply(params, batch["words"], batch["lengths"]), np.float64)
    logz = np.log(np.exp(em).sum(-1))
    nll = logz - np.take_along_axis(em, tags[..., None], -1)[..., 0]
    want = sum(nll[b, :lengths[b]].sum() for b in range(3)) / lengths.sum()
    loss, _ = tagger.loss_fn(model.apply)(params, batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_crf_loss_and_decoding_equal_pytorch_crf():
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf")
    K = 4
    model = tagger.bilstm_tagger(12, K, embed_dim=5, hidden=3, crf=True)
    params = model.init(jax.random.PRNGKey(7))
    # a CRF far from its initialisation, so the transitions matter
    params["crf"] = jax.tree.map(
        lambda a: jax.random.normal(jax.random.PRNGKey(a.size), a.shape), params["crf"])
    words, lengths, _ = _batch(jax.random.PRNGKey(8), 4, 6, 12, [6, 1, 3, 5])
    tags = np.asarray(jax.random.randint(jax.random.PRNGKey(9), (4, 6), 0, K))
    batch = {"words": jnp.asarray(words), "lengths": jnp.asarray(lengths),
             "tags": jnp.asarray(tags)}
    em = np.asarray(model.apply(params, batch["words"], batch["lengths"]))
    crf = torchcrf.CRF(K, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(torch.tensor(np.asarray(params["crf"]["transitions"])))
        crf.start_transitions.copy_(torch.tensor(np.asarray(params["crf"]["start"])))
        crf.end_transitions.copy_(torch.tensor(np.asarray(params["crf"]["end"])))
        mask = torch.tensor(np.arange(6)[None, :] < lengths[:, None])
        want = -float(crf(torch.tensor(em), torch.tensor(tags), mask, reduction="mean"))
        paths = crf.decode(torch.tensor(em), mask)
    loss, _ = tagger.loss_fn(model.apply, crf=True)(params, batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    predicted = np.asarray(tagger.predict_fn(model.apply, crf=True)(params, batch))
    for b, path in enumerate(paths):
        assert predicted[b, :lengths[b]].tolist() == path
        assert np.all(predicted[b, lengths[b]:] == 0)
    # without the CRF, prediction is the argmax of each token's emissions
    plain = np.asarray(tagger.predict_fn(model.apply)(params, batch))
    mask = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(plain, np.where(mask, em.argmax(-1), 0))


def test_pack_buckets_places_every_sentence_once():
    rng = np.random.default_rng(1)
    words = [list(rng.integers(1, 50, rng.integers(1, 20))) for _ in range(37)]
    tags = [[w % 3 for w in s] for s in words]
    chars = [[[1 + w % 5] * (1 + w % 4) for w in s] for s in words]
    packed = tagger.pack_buckets(words, tags, chars, batch_size=4, bucket_lengths=(5, 10, 20))
    seen = []
    for m in range(len(packed["bucket"])):
        L = (5, 10, 20)[packed["bucket"][m]]
        one = tagger.unpack_batch({k: v[m] for k, v in packed.items()}, 4, L)
        for slot, i in enumerate(packed["index"][m]):
            n = int(one["lengths"][slot])
            if i < 0:
                assert n == 0
                continue
            seen.append(int(i))
            assert n == len(words[i]) <= L
            assert np.asarray(one["words"][slot, :n]).tolist() == words[i]
            assert np.all(np.asarray(one["words"][slot, n:]) == 0)
            assert np.asarray(one["tags"][slot, :n]).tolist() == tags[i]
            assert np.asarray(one["chars"][slot, 0, :len(chars[i][0])]).tolist() == chars[i][0]
    assert sorted(seen) == list(range(37))
    with pytest.raises(ValueError, match="longer than the largest bucket"):
        tagger.pack_buckets(words, batch_size=4, bucket_lengths=(5,))


def _synthetic(n, seed, n_words=10):
    """Tag of word t = (w_t + w_{t-1}) mod 3 (w_{-1} = 0): needs the left context."""
    rng = np.random.default_rng(seed)
    words, tags = [], []
    for _ in range(n):
        w = rng.integers(2, n_words, rng.integers(1, 16))
        prev = np.concatenate([[0], w[:-1]])
        words.append(w.tolist())
        tags.append(((w + prev) % 3).tolist())
    return words, tags


@pytest.mark.parametrize("crf", [False, True])
def test_learns_a_synthetic_tagging_task_through_fit(crf):
    """Without the CRF: batches padded to one length (``text.batching.pad``); with it: bucketed
    batches (``pack_buckets`` + ``bucketed``). Both reach 100 % on held-out sentences."""
    from dlmodels.text import batching

    words, tags = _synthetic(240, 0)
    test_words, test_tags = _synthetic(60, 1)
    model = tagger.bilstm_tagger(10, 3, embed_dim=8, hidden=16, crf=crf)
    loss, evaluate = tagger.loss_fn(model.apply, crf=crf), tagger.eval_fn(model.apply, crf=crf)
    if crf:
        buckets, B = (8, 16), 16
        train = tagger.pack_buckets(words, tags, batch_size=B, bucket_lengths=buckets,
                                    fill="repeat", key=jax.random.PRNGKey(0))
        test = tagger.pack_buckets(test_words, test_tags, batch_size=B, bucket_lengths=buckets)
        loss = tagger.bucketed(loss, buckets, B)
        evaluate = tagger.bucketed(tagger.summed(evaluate), buckets, B)
        config = TrainConfig(epochs=6, batch_size=1, eval_batch_size=1, progress=False)
        n_test = len(test["bucket"])
    else:
        def padded(w, t):
            ids, lengths = batching.pad(w, max_len=16)
            return {"words": ids, "tags": batching.pad(t, max_len=16)[0], "lengths": lengths}
        train, test = padded(words, tags), padded(test_words, test_tags)
        config = TrainConfig(epochs=6, batch_size=16, progress=False)
        n_test = len(test_words)
    result = fit(model.init, loss, optax.adam(3e-2), train, config, eval_fn=evaluate,
                 eval_data=test)
    assert result.final["tokens"] * n_test == pytest.approx(sum(map(len, test_words)))
    assert result.final["correct"] == result.final["tokens"]          # 100 % on held-out data
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_character_features_tag_unknown_words():
    """Every word is <unk> (id 1) to the embedding: only the characters tell the tag (the class
    of the last character), as for out-of-vocabulary words."""
    rng = np.random.default_rng(2)
    chars, tags = [], []
    for _ in range(200):
        s = [list(rng.integers(1, 9, rng.integers(1, 5))) for _ in range(rng.integers(1, 8))]
        chars.append(s)
        tags.append([int(w[-1] % 3) for w in s])
    words = [[1] * len(s) for s in chars]
    buckets, B = (8,), 20
    data = tagger.pack_buckets(words, tags, chars, batch_size=B, bucket_lengths=buckets,
                               fill="repeat", key=jax.random.PRNGKey(0))
    model = tagger.bilstm_tagger(2, 3, embed_dim=2, hidden=8, n_chars=9, char_dim=6,
                                 char_hidden=8, char_encoder="lstm")
    result = fit(model.init, tagger.bucketed(tagger.loss_fn(model.apply), buckets, B),
                 optax.adam(2e-2), data, TrainConfig(epochs=40, batch_size=1, eval_batch_size=1,
                                                     progress=False),
                 eval_fn=tagger.bucketed(tagger.summed(tagger.eval_fn(model.apply)), buckets, B),
                 eval_data=data)
    assert result.final["correct"] / result.final["tokens"] > 0.99


def test_bad_inputs_raise_clear_errors():
    model = tagger.bilstm_tagger(10, 3, embed_dim=4, hidden=3)
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        model.apply(params, jnp.zeros((4,), jnp.int32))
    with pytest.raises(ShapeError, match="lengths"):
        model.apply(params, jnp.zeros((2, 3), jnp.int32), jnp.array([1, 2, 3]))
    with pytest.raises(ShapeError, match="char_ids"):
        model.apply(params, jnp.zeros((2, 3), jnp.int32), None, jnp.ones((2, 3, 4), jnp.int32))
    with pytest.raises(TypeError, match="integers"):
        model.apply(params, jnp.zeros((2, 3)))
    with_chars = tagger.bilstm_tagger(10, 3, embed_dim=4, hidden=3, n_chars=5)
    with pytest.raises(ShapeError, match="char_ids"):
        with_chars.apply(with_chars.init(jax.random.PRNGKey(0)), jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="char_encoder"):
        tagger.bilstm_tagger(10, 3, n_chars=5, char_encoder="gru")
    with pytest.raises(ValueError):
        tagger.bilstm_tagger(0, 3)
