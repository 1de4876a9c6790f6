"""dlmodels.seq2seq against independent references: a numpy per-sentence, per-step loop of the
encoder-decoder (every attention, cell, bidirectional and stacked), a numpy masked
cross-entropy, finite differences, greedy decoding and exhaustive enumeration for beam search,
the teacher-forced log-probabilities for beam scores."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels import seq2seq as s2s
from dlmodels.train import OptimizerConfig, TrainConfig, fit, make_optimizer
from dlmodels.validation import ShapeError

PAIRS = [([4, 5, 6, 7], [5, 6]), ([6, 4], [7, 8, 9, 5]), ([5], []), ([7, 7, 4], [4])]


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_cell(kind, p, state, x):
    """One step of a cell from its equations (state: (h,) or (h, c))."""
    if kind == "lstm":
        h, c = state
        z = x @ p["w_x"] + p["b"] + h @ p["w_h"]
        i, f, g, o = np.split(z, 4)
        c = _sig(f) * c + _sig(i) * np.tanh(g)
        h = _sig(o) * np.tanh(c)
        return (h, c), h
    if kind == "gru":
        (h,) = state
        gx, gh = x @ p["w_x"] + p["b_x"], h @ p["w_h"] + p["b_h"]
        r = _sig(gx[:len(h)] + gh[:len(h)])
        z = _sig(gx[len(h):2 * len(h)] + gh[len(h):2 * len(h)])
        n = np.tanh(gx[2 * len(h):] + r * gh[2 * len(h):])
        h = (1 - z) * n + z * h
        return (h,), h
    (h,) = state
    h = np.tanh(x @ p["w_x"] + p["b"] + h @ p["w_h"])
    return (h,), h


def _np_run(kind, p, xs, H):
    """A cell over a list of inputs from zeros: (outputs, final state)."""
    state = (np.zeros(H), np.zeros(H)) if kind == "lstm" else (np.zeros(H),)
    ys = []
    for x in xs:
        state, y = _np_cell(kind, p, state, x)
        ys.append(y)
    return ys, state


def _softmax(e):
    e = np.exp(e - e.max())
    return e / e.sum()


def np_seq2seq(params, src, tgt_in, *, kind, attention, bidirectional, layers, H):
    """Logits [T, V] and attention weights [T, L] of one sentence (its L real source tokens
    only), written from the papers' equations with Python loops."""
    P = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    xs = [P["src_embed"]["table"][w] for w in src]
    finals = []
    for l in range(layers):
        p = P["encoder"][f"layer_{l}"]
        if bidirectional:
            ys_f, fin_f = _np_run(kind, p["forward"], xs, H)
            ys_b, fin_b = _np_run(kind, p["backward"], xs[::-1], H)
            ys_b = ys_b[::-1]
            xs = [np.concatenate([a, b]) for a, b in zip(ys_f, ys_b)]
            br = P["bridge"][f"layer_{l}"]
            parts = ("h", "c") if kind == "lstm" else ("h",)
            finals.append(tuple(np.tanh(np.concatenate([f, b]) @ br[n]["w"] + br[n]["b"])
                                for n, f, b in zip(parts, fin_f, fin_b)))
        else:
            xs, fin = _np_run(kind, p, xs, H)
            finals.append(fin)
    hs = np.stack(xs)                                                   # [L, He]
    states = finals
    feed = np.zeros(H)
    A = P.get("attention", {})
    logits, weights = [], []
    for y in tgt_in:
        x = P["tgt_embed"]["table"][y]
        if attention == "bahdanau":
            s_prev = states[-1][0]
            e = np.array([A["v"] @ np.tanh(s_prev @ A["w_s"] + h @ A["w_h"]) for h in hs])
            a = _softmax(e)
            c = a @ hs
            x = np.concatenate([x, c])
        elif attention is not None:
            x = np.concatenate([x, feed])
        new = []
        for l in range(layers):
            st, x = _np_cell(kind, P["decoder"][f"layer_{l}"], states[l], x)
            new.append(st)
        states = new
        if attention == "bahdanau":
            o = np.concatenate([x, c])
        elif attention is not None:
            keys = hs @ A["w_a"] if "w_a" in A else hs
            a = _softmax(np.array([x @ k for k in keys]))
            c = a @ hs
            o = feed = np.tanh(np.concatenate([c, x]) @ A["w_c"])
        else:
            o, a = x, None
        logits.append(o @ P["out"]["w"] + P["out"]["b"])
        weights.append(a)
    return np.stack(logits), (None if attention is None else np.stack(weights))


CONFIGS = [("lstm", None, False, 2), ("gru", None, True, 1), ("elman", "bahdanau", False, 1),
           ("lstm", "bahdanau", True, 2), ("gru", "luong", False, 1), ("lstm", "luong", True, 1),
           ("lstm", "luong_general", False, 2)]


@pytest.mark.parametrize("kind,attention,bidirectional,layers", CONFIGS)
def test_teacher_forced_logits_equal_numpy_loop(kind, attention, bidirectional, layers):
    H = 5
    batch = s2s.make_batch(PAIRS)
    with jax.enable_x64(True):
        model = s2s.encoder_decoder(10, 11, cell=kind, hidden=H, embed_dim=4, layers=layers,
                                    bidirectional=bidirectional, attention=attention)
        params = model.init(jax.random.PRNGKey(3), jnp.float64)
        logits = np.asarray(model.apply(params, batch["src"], batch["src_lengths"],
                                        batch["tgt_in"]))
        attn = (np.asarray(s2s.attention_weights(model, params, batch["src"],
                                                 batch["src_lengths"], batch["tgt_in"]))
                if attention else None)
    assert logits.shape == (4, 5, 11)
    for b, (src, tgt) in enumerate(PAIRS):
        want, want_a = np_seq2seq(params, src, batch["tgt_in"][b], kind=kind,
                                  attention=attention, bidirectional=bidirectional,
                                  layers=layers, H=H)
        np.testing.assert_allclose(logits[b], want, rtol=1e-9, atol=1e-9)
        if attention:
            L = len(src)
            np.testing.assert_allclose(attn[b, :, :L], want_a, rtol=1e-9, atol=1e-12)
            assert np.all(attn[b, :, L:] == 0.0)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_attention_ignores_padding(attention):
    batch = s2s.make_batch(PAIRS)
    model = s2s.encoder_decoder(10, 11, hidden=6, attention=attention, bidirectional=True)
    params = model.init(jax.random.PRNGKey(0))
    a = np.asarray(s2s.attention_weights(model, params, batch["src"], batch["src_lengths"],
                                         batch["tgt_in"]))
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-6)
    pad = np.arange(a.shape[2])[None, :] >= batch["src_lengths"][:, None]       # [B, S]
    assert np.all(a[np.broadcast_to(pad[:, None, :], a.shape)] == 0.0)
    assert np.all(a >= 0.0)
    # other tokens in the padding, and extra padding columns, change nothing
    src = np.where(pad, 9, batch["src"])
    wider = np.concatenate([src, np.full((4, 3), 8, np.int32)], axis=1)
    for s in (src, wider):
        logits = model.apply(params, s, batch["src_lengths"], batch["tgt_in"])
        np.testing.assert_allclose(
            logits, model.apply(params, batch["src"], batch["src_lengths"], batch["tgt_in"]),
            rtol=1e-6, atol=1e-6)


def test_make_batch_by_hand():
    b = s2s.make_batch([([4, 5], [6]), ([7], [])], bos_id=2, eos_id=3, pad_id=0)
    np.testing.assert_array_equal(b["src"], [[4, 5], [7, 0]])
    np.testing.assert_array_equal(b["src_lengths"], [2, 1])
    np.testing.assert_array_equal(b["tgt_in"], [[2, 6], [2, 0]])
    np.testing.assert_array_equal(b["tgt_out"], [[6, 3], [3, 0]])
    np.testing.assert_array_equal(b["tgt_lengths"], [2, 1])
    for bad in ([], [([], [1])], [([1, -2], [1])]):
        with pytest.raises(ValueError):
            s2s.make_batch(bad)


def test_loss_and_eval_equal_numpy_masked_cross_entropy():
    batch = s2s.make_batch(PAIRS)
    model = s2s.encoder_decoder(10, 11, hidden=6, attention="bahdanau")
    params = model.init(jax.random.PRNGKey(1))
    logits = np.asarray(model.apply(params, batch["src"], batch["src_lengths"], batch["tgt_in"]),
                        np.float64)
    nll, hits, per_loss, per_acc = [], [], [], []
    for b in range(len(PAIRS)):
        rows = []
        for t in range(batch["tgt_lengths"][b]):
            z = logits[b, t]
            lse = z.max() + np.log(np.exp(z - z.max()).sum())
            rows.append(lse - z[batch["tgt_out"][b, t]])
            hits.append(np.argmax(z) == batch["tgt_out"][b, t])
        nll += rows
        per_loss.append(np.mean(rows))
        per_acc.append(np.mean(hits[-len(rows):]))
    loss, aux = s2s.loss_fn(model)(params, batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(loss), np.mean(nll), rtol=1e-5)
    assert aux == {}
    ev = s2s.eval_fn(model)(params, batch)
    np.testing.assert_allclose(ev["loss"], per_loss, rtol=1e-5)
    np.testing.assert_allclose(ev["token_accuracy"], per_acc, rtol=1e-6)


def test_gradients_check_grads():
    batch = s2s.make_batch(PAIRS[:2])
    with jax.enable_x64(True):
        model = s2s.encoder_decoder(8, 10, cell="gru", hidden=3, embed_dim=2,
                                    attention="bahdanau", bidirectional=True)
        params = model.init(jax.random.PRNGKey(2), jnp.float64)
        loss = jax.jit(lambda p: s2s.loss_fn(model, train_mode=False)(p, batch, None)[0])
        jax.test_util.check_grads(loss, (params,), order=1, modes=["rev"])


def test_dropout_uses_the_key():
    batch = s2s.make_batch(PAIRS)
    model = s2s.encoder_decoder(10, 11, hidden=6, layers=2, attention="luong", dropout=0.3)
    params = model.init(jax.random.PRNGKey(0))
    args = (params, batch["src"], batch["src_lengths"], batch["tgt_in"])
    a = model.apply(*args, key=jax.random.PRNGKey(1), train=True)
    b = model.apply(*args, key=jax.random.PRNGKey(1), train=True)
    c = model.apply(*args, key=jax.random.PRNGKey(2), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(model.apply(*args), model.apply(*args, key=jax.random.PRNGKey(3)))
    with pytest.raises(ValueError, match="key"):
        model.apply(*args, train=True)


# ------------------------------------------------------------------------------------------
# Decoding

V, EOS, BOS, MAXLEN = 4, 3, 2, 4


def prefix_step_fn(table):
    """A hand-made model whose next-token distribution is a random function of the whole
    prefix: state = (sentence index, prefix code); log p = log_softmax(table[b, code])."""

    def step_fn(state, tokens):
        b, code = state
        code = code * (V + 1) + tokens + 1
        return jax.nn.log_softmax(table[b, code]), (b, code)

    return step_fn


def exhaustive(table_b, alpha):
    """Every sequence of at most MAXLEN tokens (ending at its first eos, or MAXLEN tokens without
    one) with its score sum log p / len^alpha, best first."""
    lp = np.asarray(jax.nn.log_softmax(table_b), np.float64)
    out = []
    for m in range(MAXLEN + 1):
        for body in itertools.product([t for t in range(V) if t != EOS], repeat=m):
            seq = list(body) + ([EOS] if m < MAXLEN else [])
            code, score = 0, 0.0
            for prev, tok in zip([BOS] + seq[:-1], seq):
                code = code * (V + 1) + prev + 1
                score += lp[code, tok]
            out.append((score / len(seq) ** alpha, seq + [EOS] * (MAXLEN - len(seq))))
    return sorted(out, key=lambda s: -s[0])


def _run_beam(table, beam, alpha):
    B = table.shape[0]
    state = (jnp.repeat(jnp.arange(B), beam), jnp.zeros((B * beam,), jnp.int32))
    return s2s.beam_search(prefix_step_fn(table), state, batch_size=B, beam_size=beam,
                           max_len=MAXLEN, bos_id=BOS, eos_id=EOS, length_penalty=alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_beam_as_large_as_the_search_space_is_exhaustive(alpha):
    table = jax.random.normal(jax.random.PRNGKey(5), (2, (V + 1) ** MAXLEN, V)) * 2.0
    n_seq = sum((V - 1) ** m for m in range(MAXLEN + 1))                       # 121
    tokens, scores = _run_beam(table, n_seq, alpha)
    assert tokens.shape == (2, n_seq, MAXLEN) and scores.shape == (2, n_seq)
    for b in range(2):
        want = exhaustive(table[b], alpha)
        np.testing.assert_allclose(scores[b], [s for s, _ in want], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(tokens[b, :10], [t for _, t in want[:10]])
        assert len({tuple(r) for r in np.asarray(tokens[b])}) == n_seq       # all distinct
    # a small beam keeps the exhaustive best when it is found; its scores are sorted
    tokens4, scores4 = _run_beam(table, 4, alpha)
    assert np.all(np.diff(np.asarray(scores4), axis=1) <= 0)


def test_beam_one_equals_greedy_on_hand_made_step_fn():
    table = jax.random.normal(jax.random.PRNGKey(6), (3, (V + 1) ** MAXLEN, V)) * 2.0
    tokens, scores = _run_beam(table, 1, 0.0)
    lp = np.asarray(jax.nn.log_softmax(table), np.float64)
    for b in range(3):                                  # greedy by hand
        code, prev, total, seq = 0, BOS, 0.0, []
        while len(seq) < MAXLEN and (not seq or seq[-1] != EOS):
            code = code * (V + 1) + prev + 1
            prev = int(np.argmax(lp[b, code]))
            total += lp[b, code, prev]
            seq.append(prev)
        np.testing.assert_array_equal(tokens[b, 0], seq + [EOS] * (MAXLEN - len(seq)))
        np.testing.assert_allclose(scores[b, 0], total, rtol=1e-5)


def _trained_ish(attention="bahdanau"):
    """A model trained for a few steps to copy its source (peaked, non-uniform outputs)."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(64):
        src = rng.integers(4, 9, size=rng.integers(1, 5)).tolist()
        pairs.append((src, src))
    data = s2s.make_batch(pairs)
    model = s2s.encoder_decoder(9, 9, hidden=16, embed_dim=8, attention=attention)
    result = fit(model.init, s2s.loss_fn(model),
                 make_optimizer(OptimizerConfig(name="adam", learning_rate=1e-2), 30), data,
                 TrainConfig(batch_size=32, epochs=15, seed=0))
    return model, result.state.params, data


def test_decoding_on_a_model():
    model, params, data = _trained_ish()
    src, lengths = data["src"][:12], data["src_lengths"][:12]
    g = np.asarray(s2s.greedy(model, params, src, lengths, max_len=7))
    np.testing.assert_array_equal(s2s.translate(model, params, src, lengths, max_len=7), g)
    # eos padding: after the first eos, only eos
    for row in g:
        if EOS in row.tolist():
            assert np.all(row[row.tolist().index(EOS):] == EOS)
    # beam scores are the teacher-forced log-probabilities up to the first eos
    step_fn, state = s2s.decoder(model, params, src, lengths, beam_size=4)
    tokens, scores = s2s.beam_search(step_fn, state, batch_size=12, beam_size=4, max_len=7,
                                     bos_id=BOS, eos_id=EOS)
    tokens = np.asarray(tokens)
    assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)
    for k in range(4):
        tgt_in = np.concatenate([np.full((12, 1), BOS), tokens[:, k, :-1]], axis=1)
        lp = np.asarray(jax.nn.log_softmax(model.apply(params, src, lengths, tgt_in)), np.float64)
        for b in range(12):
            seq = s2s.strip(tokens[b, k]) + [EOS]
            seq = seq[:7]
            want = sum(lp[b, t, y] for t, y in enumerate(seq))
            np.testing.assert_allclose(scores[b, k], want, rtol=1e-4, atol=1e-4)
    # translate returns the best beam (beam search need not beat greedy: no check of that)
    best = np.asarray(s2s.translate(model, params, src, lengths, max_len=7, beam_size=4))
    np.testing.assert_array_equal(best, tokens[:, 0])
    # one compilation for new values of the same shapes
    from dlmodels.seq2seq import decode
    before = decode._translate._cache_size()
    params2 = jax.tree.map(lambda a: a * 1.01, params)
    s2s.translate(model, params2, src[::-1], lengths[::-1], max_len=7, beam_size=4)
    assert decode._translate._cache_size() == before


def test_beam_search_compiles_once_and_loops_inside():
    table = jax.random.normal(jax.random.PRNGKey(7), (2, (V + 1) ** MAXLEN, V))
    calls = []

    def step_fn(state, tokens):
        calls.append(1)
        return prefix_step_fn(table)(state, tokens)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(state):
        return s2s.beam_search(step_fn, state, batch_size=2, beam_size=3, max_len=MAXLEN,
                               bos_id=BOS, eos_id=EOS)

    state = (jnp.repeat(jnp.arange(2), 3), jnp.zeros((6,), jnp.int32))
    run(state)
    run((state[0], state[1] + 0))
    assert len(calls) <= 2                     # traced (shape probe + loop body), not per step


def test_errors():
    batch = s2s.make_batch(PAIRS)
    model = s2s.encoder_decoder(10, 11, hidden=4, attention="luong")
    params = model.init(jax.random.PRNGKey(0))
    src, lengths, tgt = batch["src"], batch["src_lengths"], batch["tgt_in"]
    with pytest.raises(ValueError, match="cell"):
        s2s.encoder_decoder(10, 11, cell="transformer")
    with pytest.raises(ValueError, match="attention"):
        s2s.encoder_decoder(10, 11, attention="dot")
    with pytest.raises(ValueError, match="hidden"):
        s2s.encoder_decoder(10, 11, hidden=0)
    with pytest.raises(ShapeError):
        model.apply(params, src[0], lengths, tgt)
    with pytest.raises(ShapeError):
        model.apply(params, src, lengths[:2], tgt)
    with pytest.raises(ShapeError):
        model.apply(params, src, lengths, tgt[:2])
    with pytest.raises(TypeError):
        model.apply(params, src.astype(np.float32), lengths, tgt)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply(params, np.where(src == 4, 10, src), lengths, tgt)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.apply(params, src, lengths, np.where(tgt == 2, 11, tgt))
    with pytest.raises(ValueError, match="outside 1"):
        model.apply(params, src, lengths + 1, tgt)
    with pytest.raises(ValueError, match="outside 1"):
        model.apply(params, src, lengths * 0, tgt)
    with pytest.raises(ValueError, match="beam_size"):
        s2s.translate(model, params, src, lengths, max_len=5, beam_size=0)
    with pytest.raises(ValueError, match="max_len"):
        s2s.greedy(model, params, src, lengths, max_len=0)
    with pytest.raises(ValueError, match="outside 1"):
        s2s.translate(model, params, src, lengths + 1, max_len=5)
    with pytest.raises(ValueError, match="no attention"):
        m0 = s2s.encoder_decoder(10, 11, hidden=4)
        s2s.attention_weights(m0, m0.init(jax.random.PRNGKey(0)), src, lengths, tgt)
    with pytest.raises(ShapeError, match="batch \\* beam"):
        s2s.beam_search(lambda s, t: (jnp.zeros((6, V)), s), jnp.zeros((5,)), batch_size=2,
                        beam_size=3, max_len=3, bos_id=BOS, eos_id=EOS)
    with pytest.raises(ValueError, match="length_penalty"):
        s2s.beam_search(lambda s, t: (jnp.zeros((6, V)), s), jnp.zeros((6,)), batch_size=2,
                        beam_size=3, max_len=3, bos_id=BOS, eos_id=EOS, length_penalty=-1.0)
    with pytest.raises(TypeError):
        s2s.greedy(object(), params, src, lengths, max_len=3)
    assert s2s.strip([5, 6, 3, 3]) == [5, 6] and s2s.strip([5, 6]) == [5, 6]


def test_beam_search_stops_when_every_hypothesis_has_ended():
    steps = []

    def step_fn(state, tokens):
        jax.debug.callback(lambda: steps.append(1))
        logits = jnp.broadcast_to(jnp.array([0.0, 1.0, 0.5, 8.0]), (tokens.shape[0], V))
        return jax.nn.log_softmax(logits), state

    tokens, scores = s2s.beam_search(step_fn, jnp.zeros((4,)), batch_size=2, beam_size=2,
                                     max_len=10, bos_id=BOS, eos_id=EOS)
    jax.effects_barrier()
    # step 1: [eos] ends, [1] lives; step 2: [1, eos] ends (eos beats every other extension)
    assert len(steps) == 2
    lp = np.asarray(jax.nn.log_softmax(jnp.array([0.0, 1.0, 0.5, 8.0])), np.float64)
    np.testing.assert_array_equal(tokens[0, 0], [EOS] * 10)
    np.testing.assert_array_equal(tokens[0, 1], [1] + [EOS] * 9)
    np.testing.assert_allclose(scores[0], [lp[3], lp[1] + lp[3]], rtol=1e-6)
