"""Recurrent language models (dlmodels.text.lm) against independent references: a numpy forward
loop of the cells' equations (and torch's nn.LSTM with copied weights), numpy sums of -log softmax,
greedy decoding by a loop of full-prefix forward passes, jax.grad of an explicit-loop window loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.text import lm
from dlmodels.train import GradientEstimator, make_evaluate
from dlmodels.validation import ShapeError

V, E, H = 11, 5, 6


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_logits(params, tokens, *, cell, tie=False, one_hot=False, carry=None):
    """numpy, float64, a Python loop over time of the published equations: ``(logits [B, T, V],
    final states)``; ``carry``: per layer (h, c) or (h,) arrays."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    tokens = np.asarray(tokens)
    B, T = tokens.shape
    x = np.eye(V)[tokens] if one_hot else p["embed"]["table"][tokens]          # [B, T, D]
    finals = []
    for l in range(len(p["rnn"])):
        q = p["rnn"][f"layer_{l}"]
        Hl = q["w_h"].shape[0]
        h = np.zeros((B, Hl)) if carry is None else np.asarray(carry[l][0], np.float64)
        c = np.zeros((B, Hl)) if carry is None or cell != "lstm" else np.asarray(carry[l][1],
                                                                                 np.float64)
        ys = []
        for t in range(T):
            if cell == "lstm":
                z = x[:, t] @ q["w_x"] + h @ q["w_h"] + q["b"]
                i, f, g, o = np.split(z, 4, axis=-1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            elif cell == "gru":
                gx = x[:, t] @ q["w_x"] + q["b_x"]
                gh = h @ q["w_h"] + q["b_h"]
                xr, xz, xn = np.split(gx, 3, axis=-1)
                hr, hz, hn = np.split(gh, 3, axis=-1)
                r, zz = _sigmoid(xr + hr), _sigmoid(xz + hz)
                n = np.tanh(xn + r * hn)
                h = (1 - zz) * n + zz * h
            else:
                h = np.tanh(x[:, t] @ q["w_x"] + h @ q["w_h"] + q["b"])
            ys.append(h)
        finals.append((h, c) if cell == "lstm" else (h,))
        x = np.stack(ys, axis=1)
    if "proj" in p:
        x = x @ p["proj"]["w"]
    w = p["embed"]["table"].T if tie else p["out"]["w"]
    return x @ w + p["out"]["b"], finals


def _nats(logits, targets):
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]


def _tokens(key, shape):
    return jax.random.randint(key, shape, 0, V, jnp.int32)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("tie", [False, True])
def test_logits_equal_a_numpy_loop(cell, tie):
    model = lm.language_model(V, cell=cell, hidden=H, layers=2, embed_dim=E, tie=tie)
    params = model.init(jax.random.PRNGKey(0))
    tokens = _tokens(jax.random.PRNGKey(1), (3, 9))
    logits, carry = model.apply(params, tokens)
    expected, finals = _reference_logits(params, tokens, cell=cell, tie=tie)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    for got, want in zip(carry, finals):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_one_hot_inputs_equal_a_numpy_loop():
    model = lm.language_model(V, cell="lstm", hidden=H, one_hot=True)
    params = model.init(jax.random.PRNGKey(0))
    assert "embed" not in params and params["rnn"]["layer_0"]["w_x"].shape == (V, 4 * H)
    tokens = _tokens(jax.random.PRNGKey(1), (2, 7))
    expected, _ = _reference_logits(params, tokens, cell="lstm", one_hot=True)
    np.testing.assert_allclose(model.apply(params, tokens)[0], expected, rtol=1e-4, atol=1e-5)


def test_lstm_equals_torch_with_copied_weights():
    torch = pytest.importorskip("torch")
    model = lm.language_model(V, cell="lstm", hidden=H, layers=2, embed_dim=E)
    params = model.init(jax.random.PRNGKey(3))
    tokens = _tokens(jax.random.PRNGKey(4), (3, 8))
    embed = torch.nn.Embedding(V, E)
    lstm = torch.nn.LSTM(E, H, num_layers=2, batch_first=True)
    out = torch.nn.Linear(H, V)
    f = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    with torch.no_grad():
        embed.weight.copy_(f(params["embed"]["table"]))
        for l in range(2):
            q = params["rnn"][f"layer_{l}"]
            getattr(lstm, f"weight_ih_l{l}").copy_(f(q["w_x"].T))
            getattr(lstm, f"weight_hh_l{l}").copy_(f(q["w_h"].T))
            getattr(lstm, f"bias_ih_l{l}").copy_(f(q["b"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()
        out.weight.copy_(f(params["out"]["w"].T))
        out.bias.copy_(f(params["out"]["b"]))
        h0 = torch.randn(2, 3, H)
        c0 = torch.randn(2, 3, H)
        ys, (h_n, c_n) = lstm(embed(torch.tensor(np.asarray(tokens), dtype=torch.long)), (h0, c0))
        expected = out(ys).numpy()
    carry = tuple(lm.rnn.LSTMState(jnp.asarray(h0[l].numpy()), jnp.asarray(c0[l].numpy()))
                  for l in range(2))
    logits, final = model.apply(params, tokens, carry)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final[1].h, h_n[1].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final[0].c, c_n[0].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_two_windows_with_the_carry_equal_one_window_of_2T(cell):
    model = lm.language_model(V, cell=cell, hidden=H, layers=2, embed_dim=E)
    params = model.init(jax.random.PRNGKey(0))
    tokens = _tokens(jax.random.PRNGKey(1), (4, 10))
    whole, carry_whole = model.apply(params, tokens)
    first, carry = model.apply(params, tokens[:, :5])
    second, carry = model.apply(params, tokens[:, 5:], carry)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 carry, carry_whole)


def _loop_loss(params, tokens, targets, carry):
    """The window's mean -log p with an explicit jnp loop over time (LSTM, untied), the incoming
    carry a constant: the reference for the TBPTT gradient."""
    x = params["embed"]["table"][tokens]
    for l in range(len(params["rnn"])):
        q = params["rnn"][f"layer_{l}"]
        h, c = carry[l]
        ys = []
        for t in range(tokens.shape[1]):
            z = x[:, t] @ q["w_x"] + h @ q["w_h"] + q["b"][None, :]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            ys.append(h)
        x = jnp.stack(ys, axis=1)
    logits = x @ params["out"]["w"] + params["out"]["b"][None, None, :]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], -1))


def test_tbptt_gradient_is_the_window_gradient_with_the_carry_held_constant():
    model = lm.language_model(V, cell="lstm", hidden=H, layers=2, embed_dim=E)
    params = model.init(jax.random.PRNGKey(0))
    estimator = lm.tbptt(model, 3)
    assert isinstance(estimator, GradientEstimator)
    carry = estimator.init(jax.random.PRNGKey(1), params, None)
    assert all(float(jnp.abs(leaf).max()) == 0 for leaf in jax.tree.leaves(carry))
    carry = jax.tree.map(lambda c: jax.random.normal(jax.random.PRNGKey(2), c.shape), carry)
    batch = {"inputs": _tokens(jax.random.PRNGKey(3), (3, 6)),
             "targets": _tokens(jax.random.PRNGKey(4), (3, 6)), "reset": jnp.zeros(3, bool)}
    grads, new_carry, loss, _ = estimator.estimate(jax.random.PRNGKey(5), params, carry, batch)
    ref_loss, ref_grads = jax.value_and_grad(_loop_loss)(
        params, batch["inputs"], batch["targets"], tuple(tuple(c) for c in carry))
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6),
                 grads, ref_grads)
    _, finals = _reference_logits(params, batch["inputs"], cell="lstm",
                                  carry=[tuple(np.asarray(x) for x in c) for c in carry])
    for got, want in zip(new_carry, finals):
        np.testing.assert_allclose(got.h, want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.c, want[1], rtol=1e-4, atol=1e-5)


def test_tbptt_resets_the_carry_where_the_batch_says_so():
    model = lm.language_model(V, cell="gru", hidden=H, embed_dim=E)
    params = model.init(jax.random.PRNGKey(0))
    estimator = lm.tbptt(model, 2)
    zero = estimator.init(jax.random.PRNGKey(1), params, None)
    carry = jax.tree.map(lambda c: jnp.ones_like(c), zero)
    batch = {"inputs": _tokens(jax.random.PRNGKey(3), (2, 5)),
             "targets": _tokens(jax.random.PRNGKey(4), (2, 5))}
    reset = estimator.estimate(jax.random.PRNGKey(5), params, carry,
                               {**batch, "reset": jnp.ones(2, bool)})
    fresh = estimator.estimate(jax.random.PRNGKey(5), params, zero,
                               {**batch, "reset": jnp.zeros(2, bool)})
    kept = estimator.estimate(jax.random.PRNGKey(5), params, carry,
                              {**batch, "reset": jnp.zeros(2, bool)})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), reset[:3], fresh[:3])
    assert abs(float(kept[2]) - float(fresh[2])) > 1e-6     # the carry matters when kept
    # one row reset: that row equals a fresh start, the other keeps its carry
    half = estimator.estimate(jax.random.PRNGKey(5), params, carry,
                              {**batch, "reset": jnp.array([True, False])})
    np.testing.assert_allclose(half[1][0].h[0], fresh[1][0].h[0], rtol=1e-6)
    np.testing.assert_allclose(half[1][0].h[1], kept[1][0].h[1], rtol=1e-6)


@pytest.mark.parametrize("streams,window", [(1, 7), (3, 4)])
def test_evaluate_equals_a_numpy_sum_over_the_stream(streams, window):
    model = lm.language_model(V, cell="lstm", hidden=H, layers=2, embed_dim=E)
    params = model.init(jax.random.PRNGKey(0))
    ids = np.asarray(_tokens(jax.random.PRNGKey(1), (1, 50)))[0]
    n = ids.size - 1
    per = -(-n // streams)
    total = 0.0
    for s in range(streams):                 # each stream read from a zero carry, in one pass
        lo, hi = s * per, min((s + 1) * per, n)
        logits, _ = _reference_logits(params, ids[None, lo:hi], cell="lstm")
        total += _nats(logits[0], ids[lo + 1:hi + 1]).sum()
    nats = lm.evaluate(params, model, ids, streams=streams, window=window)
    np.testing.assert_allclose(nats, total / n, rtol=1e-5)
    assert lm.bits(nats) == pytest.approx(float(nats) / math.log(2))
    assert lm.perplexity(nats) == pytest.approx(math.exp(float(nats)))
    # the same number through fit's evaluation (any eval batch size, padding masked out)
    data = lm.eval_data(ids, streams=streams, window=window)
    out = make_evaluate(lm.eval_fn(model, window), 2)(params, data)
    np.testing.assert_allclose(out["nats"], total / n, rtol=1e-5)
    np.testing.assert_allclose(out["bits"], total / n / math.log(2), rtol=1e-5)


def _greedy(params, model, prompt, n):
    """Greedy decoding by a numpy loop of full-prefix forward passes (no carry)."""
    ids = np.asarray(prompt)
    for _ in range(n):
        logits, _ = model.apply(params, jnp.asarray(ids))
        ids = np.concatenate([ids, np.argmax(np.asarray(logits[:, -1]), -1)[:, None]], 1)
    return ids


def test_sampling_greedy_and_top_k():
    model = lm.language_model(V, cell="lstm", hidden=H, layers=2, embed_dim=E)
    params = model.init(jax.random.PRNGKey(0))
    params = jax.tree.map(lambda a: a * 3.0, params)   # peakier distributions
    prompt = _tokens(jax.random.PRNGKey(1), (4, 3))
    greedy = _greedy(params, model, prompt, 6)
    key = jax.random.PRNGKey(7)
    np.testing.assert_array_equal(lm.sample(key, params, model, prompt, 6, temperature=0.0),
                                  greedy)
    np.testing.assert_array_equal(lm.sample(key, params, model, prompt, 6, top_k=1), greedy)
    a = lm.sample(key, params, model, prompt, 12, temperature=1.0)
    np.testing.assert_array_equal(a, lm.sample(key, params, model, prompt, 12, temperature=1.0))
    assert a.shape == (4, 15) and a.dtype == jnp.int32
    np.testing.assert_array_equal(a[:, :3], prompt)
    b = lm.sample(jax.random.PRNGKey(8), params, model, prompt, 12, temperature=1.0)
    assert not np.array_equal(a, b)
    k = 3
    for seed in range(3):
        s = np.asarray(lm.sample(jax.random.PRNGKey(seed), params, model, prompt, 10,
                                 temperature=2.0, top_k=k))
        logits, _ = model.apply(params, jnp.asarray(s[:, :-1]))
        top = np.argsort(-np.asarray(logits), axis=-1)[..., :k]            # [B, T, k]
        for t in range(2, s.shape[1] - 1):
            assert all(s[b, t + 1] in top[b, t] for b in range(s.shape[0]))


def test_tied_embeddings_share_one_table():
    tied = lm.language_model(V, cell="lstm", hidden=H, tie=True)        # embed_dim = hidden
    params = tied.init(jax.random.PRNGKey(0))
    assert set(params["out"]) == {"b"} and "proj" not in params
    untied = lm.language_model(V, cell="lstm", hidden=H)
    copy = {**params, "out": {"b": params["out"]["b"], "w": params["embed"]["table"].T}}
    tokens, targets = _tokens(jax.random.PRNGKey(1), (3, 5)), _tokens(jax.random.PRNGKey(2), (3, 5))

    def loss(model, p):
        return jnp.mean(lm.token_nats(model.apply(p, tokens)[0], targets))

    np.testing.assert_allclose(loss(tied, params), loss(untied, copy), rtol=1e-6)
    g_tied = jax.grad(lambda p: loss(tied, p))(params)
    g_untied = jax.grad(lambda p: loss(untied, p))(copy)
    # the one table receives both the input and the output gradient
    np.testing.assert_allclose(g_tied["embed"]["table"],
                               g_untied["embed"]["table"] + g_untied["out"]["w"].T,
                               rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(g_untied["out"]["w"]).max()) > 0
    with_proj = lm.language_model(V, hidden=H, embed_dim=E, tie=True).init(jax.random.PRNGKey(0))
    assert with_proj["proj"]["w"].shape == (H, E) and "w" not in with_proj["out"]


def test_dropout_only_in_training_and_on_whole_embedding_rows():
    model = lm.language_model(V, hidden=H, layers=2, embed_dim=E, dropout=0.3, embed_dropout=0.5)
    params = model.init(jax.random.PRNGKey(0))
    tokens = _tokens(jax.random.PRNGKey(1), (3, 8))
    plain = lm.language_model(V, hidden=H, layers=2, embed_dim=E)
    np.testing.assert_allclose(model.apply(params, tokens)[0], plain.apply(params, tokens)[0])
    a = model.apply(params, tokens, key=jax.random.PRNGKey(2), train=True)[0]
    b = model.apply(params, tokens, key=jax.random.PRNGKey(3), train=True)[0]
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="key"):
        model.apply(params, tokens, train=True)
    only_embed = lm.language_model(V, hidden=H, embed_dim=E, embed_dropout=0.5)
    grads = jax.grad(lambda t: jnp.sum(only_embed.apply({**params, "embed": {"table": t}}, tokens,
                                                        key=jax.random.PRNGKey(4),
                                                        train=True)[0]))(params["embed"]["table"])
    used = np.unique(np.asarray(tokens))
    zero_rows = [int(v) for v in used if not np.any(np.asarray(grads[v]))]
    assert 0 < len(zero_rows) < len(used)   # some used types dropped as whole rows, some kept


def test_bad_inputs_raise():
    model = lm.language_model(V, hidden=H)
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        model.apply(params, jnp.zeros((5,), jnp.int32))
    with pytest.raises(TypeError, match="integers"):
        model.apply(params, jnp.zeros((2, 5), jnp.float32))
    with pytest.raises(ValueError, match="cell"):
        lm.language_model(V, cell="rnn")
    with pytest.raises(ValueError, match="one_hot"):
        lm.language_model(V, one_hot=True, tie=True)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample(jax.random.PRNGKey(0), params, model, jnp.zeros((1, 2), jnp.int32), 3,
                  temperature=-1.0)
    with pytest.raises(ShapeError):
        lm.evaluate(params, model, np.zeros((1,), np.int32))


def test_fit_carries_the_state_across_windows_and_resets_each_epoch():
    """Through ``fit`` with a zero learning rate (params fixed): the carried state after two
    epochs is that of each stream read whole from a zero carry (kept across windows, reset at
    window 0 of the second epoch), and each epoch's train loss is the numpy mean over all
    windows."""
    import optax

    from dlmodels.text import batching
    from dlmodels.train import TrainConfig, fit

    model = lm.language_model(V, cell="lstm", hidden=H, layers=2, embed_dim=E)
    ids = np.asarray(_tokens(jax.random.PRNGKey(1), (1, 3 * 4 * 5 + 1)))[0]
    B, T = 3, 4
    data = batching.trainer_data(batching.streams(ids, B, T))
    out = fit(model.init, lm.tbptt(model, B), optax.sgd(0.0), data,
              TrainConfig(epochs=2, batch_size=B, shuffle=False, steps_per_call=2,
                          progress=False))
    params = out.state.params
    per = 5 * T                                         # W = 5 windows per stream
    streams = ids[:B * per].reshape(B, per)
    logits, finals = _reference_logits(params, streams, cell="lstm")
    for got, want in zip(out.state.model_state, finals):
        np.testing.assert_allclose(got.h, want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.c, want[1], rtol=1e-4, atol=1e-5)
    targets = ids[1:B * per + 1].reshape(B, per)
    expected = _nats(logits, targets).mean()
    for entry in out.history:
        np.testing.assert_allclose(entry["train_loss"], expected, rtol=1e-5)
