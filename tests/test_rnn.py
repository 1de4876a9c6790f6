"""Recurrent cells and unroll against per-step Python loops, Flax's cells and PyTorch's modules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels import rnn
from dlmodels.validation import ShapeError

D, H, B, T = 3, 4, 3, 6
CELLS = {
    "elman": lambda: rnn.elman(H),
    "elman_output": lambda: rnn.elman(H, output_size=2),
    "jordan": lambda: rnn.jordan(H, 2),
    "leaky_fixed": lambda: rnn.leaky(H, alpha=0.3),
    "leaky_learned": lambda: rnn.leaky(H, alpha=None),
    "lstm": lambda: rnn.lstm(H),
    "lstm_no_forget": lambda: rnn.lstm_no_forget(H),
    "peephole_lstm": lambda: rnn.peephole_lstm(H),
    "peephole_lstm_diagonal": lambda: rnn.peephole_lstm(H, diagonal=True),
    "gru": lambda: rnn.gru(H),
    "time_skip_gru": lambda: rnn.time_skip(rnn.gru(H), 2),
}
LENGTHS = np.array([6, 2, 4])


def _randomise(params, key):
    """Non-zero everything (biases, peepholes) so every parameter is exercised."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape, x.dtype)
                                     for x, k in zip(leaves, keys)])


@pytest.fixture(params=sorted(CELLS))
def cell_case(request):
    cell = CELLS[request.param]()
    params = _randomise(cell.init(jax.random.PRNGKey(0), D), jax.random.PRNGKey(1))
    xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
    return cell, params, xs


def _loop(cell, params, x_b, reverse):
    """One sequence [L, D], step by step with cell.apply, in Python."""
    carry = cell.initial_carry(1)
    order = range(len(x_b) - 1, -1, -1) if reverse else range(len(x_b))
    ys = [None] * len(x_b)
    for t in order:
        carry, y = cell.apply(params, carry, x_b[t][None])
        ys[t] = y[0]
    return jnp.stack(ys), carry


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_unroll_equals_per_step_loop(cell_case, reverse, use_lengths):
    cell, params, xs = cell_case
    lengths = jnp.asarray(LENGTHS) if use_lengths else None
    ys, final = rnn.unroll(cell, params, xs, lengths=lengths, reverse=reverse)
    assert ys.shape == (B, T, cell.output_size)
    for b in range(B):
        L = int(LENGTHS[b]) if use_lengths else T
        ref_ys, ref_carry = _loop(cell, params, xs[b, :L], reverse)
        np.testing.assert_allclose(ys[b, :L], ref_ys, rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(ys[b, L:]) == 0.0)  # padded outputs exactly zero
        for got, ref in zip(jax.tree.leaves(final), jax.tree.leaves(ref_carry)):
            np.testing.assert_allclose(got[b] if got.ndim == 2 else got[:, b], ref[0] if
                                       ref.ndim == 2 else ref[:, 0], rtol=1e-5, atol=1e-6)


def test_time_major_and_jit(cell_case):
    cell, params, xs = cell_case
    ys, _ = rnn.unroll(cell, params, xs)
    ys_t, _ = jax.jit(lambda p, x: rnn.unroll(cell, p, x, time_major=True))(params,
                                                                          jnp.swapaxes(xs, 0, 1))
    np.testing.assert_allclose(jnp.swapaxes(ys_t, 0, 1), ys, rtol=1e-5, atol=1e-6)


def test_check_grads(cell_case):
    cell, params, xs = cell_case
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x64 = xs[:, :4].astype(jnp.float64)
        loss = lambda p, x: jnp.sum(jnp.sin(rnn.unroll(cell, p, x, lengths=jnp.array([4, 2, 3]))[0]))
        check_grads(loss, (p64, x64), order=1, modes=("rev",), atol=1e-8, rtol=1e-8, eps=1e-5)


def test_init_takes_a_dtype(cell_case):
    cell = cell_case[0]
    with jax.enable_x64(True):
        params = cell.init(jax.random.PRNGKey(0), D, jnp.float64)
        assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(jnp.float64)}
        assert {a.dtype for a in jax.tree.leaves(cell.init(jax.random.PRNGKey(0), D))} == {
            jnp.dtype(jnp.float32)}
        model = rnn.sequence_model(cell, D, 2, head="per_step")
        p64 = model.init(jax.random.PRNGKey(0), jnp.float64)
        assert {a.dtype for a in jax.tree.leaves(p64)} == {jnp.dtype(jnp.float64)}
        out = model.apply(p64, jnp.ones((B, T, D), jnp.float64))
        assert out.dtype == jnp.float64 and out.shape == (B, T, 2)


def test_wrong_input_shapes_raise_shape_error(cell_case):
    cell, params, xs = cell_case
    carry = cell.initial_carry(B)
    with pytest.raises(ShapeError, match="input"):
        cell.apply(params, carry, xs[:, 0, :2])                # D = 2 instead of 3
    with pytest.raises(ShapeError):
        rnn.unroll(cell, params, xs[..., :2])
    with pytest.raises(ShapeError, match="lengths"):
        rnn.unroll(cell, params, xs, lengths=jnp.array([1, 2]))
    with pytest.raises(ShapeError, match=r"\[B, T, D\]"):
        rnn.unroll(cell, params, xs[0])
    model = rnn.sequence_model(cell, D, 2)
    with pytest.raises(ShapeError, match="input_size"):
        model.apply(model.init(jax.random.PRNGKey(0)), xs[..., :2])


def test_remat_and_steps_per_iteration_change_nothing(cell_case):
    cell, params, xs = cell_case
    loss = lambda p, **kw: jnp.sum(rnn.unroll(cell, p, xs, lengths=jnp.asarray(LENGTHS), **kw)[0] ** 2)
    ref_value, ref_grad = jax.value_and_grad(loss)(params)
    for kw in ({"remat": True}, {"steps_per_iteration": 3}):
        value, grad = jax.value_and_grad(lambda p: loss(p, **kw))(params)
        np.testing.assert_allclose(value, ref_value, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(ref_grad)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_truncated_bptt_stops_gradients():
    cell = rnn.elman(H)
    params = cell.init(jax.random.PRNGKey(0), D)
    xs = jax.random.normal(jax.random.PRNGKey(1), (1, 8, D))
    last = lambda x, k: jnp.sum(rnn.unroll(cell, params, x, truncate=k)[0][:, -1])
    g = jax.grad(last)(xs, 3)  # cuts before steps 3 and 6: the last output sees steps 6, 7 only
    assert np.all(np.asarray(g[0, :6]) == 0.0) and np.all(np.abs(np.asarray(g[0, 6:])) > 0)
    np.testing.assert_allclose(jax.grad(last)(xs, 100), jax.grad(last)(xs, 0), rtol=1e-6)
    ys_cut, _ = rnn.unroll(cell, params, xs, truncate=3)
    np.testing.assert_allclose(ys_cut, rnn.unroll(cell, params, xs)[0], rtol=1e-6)  # forward same


def test_bidirectional_and_stacked():
    fw, bw = rnn.gru(H), rnn.lstm(H)
    params = {"forward": fw.init(jax.random.PRNGKey(0), D), "backward": bw.init(jax.random.PRNGKey(1), D)}
    xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
    lengths = jnp.asarray(LENGTHS)
    ys, _ = rnn.bidirectional(fw, bw, params, xs, lengths=lengths)
    for b in range(B):
        L = int(LENGTHS[b])
        np.testing.assert_allclose(ys[b, :L, :H], _loop(fw, params["forward"], xs[b, :L], False)[0],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ys[b, :L, H:], _loop(bw, params["backward"], xs[b, :L], True)[0],
                                   rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(ys[b, L:]) == 0.0)
    cells = [rnn.lstm(H), rnn.elman(5)]
    sp = {"layer_0": cells[0].init(jax.random.PRNGKey(3), D),
          "layer_1": cells[1].init(jax.random.PRNGKey(4), H)}
    top, carries = rnn.stacked(cells, sp, xs)
    h0 = rnn.unroll(cells[0], sp["layer_0"], xs)[0]
    np.testing.assert_allclose(top, rnn.unroll(cells[1], sp["layer_1"], h0)[0], rtol=1e-6)
    assert len(carries) == 2


def test_stacked_bidirectional_equals_per_step_loops():
    """Two bidirectional layers against the Python loop: layer 1 reads [fwd, bwd] of layer 0."""
    cells = [rnn.gru(H), rnn.lstm(H)]
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    params = {f"layer_{l}": {"forward": _randomise(cells[l].init(keys[2 * l], D if l == 0 else 2 * H),
                                                   keys[2 * l + 1]),
                             "backward": _randomise(cells[l].init(keys[2 * l + 1], D if l == 0 else 2 * H),
                                                    keys[2 * l])} for l in range(2)}
    xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
    top, carries = rnn.stacked(cells, params, xs, lengths=jnp.asarray(LENGTHS), bidirectional=True)
    assert top.shape == (B, T, 2 * H) and len(carries) == 2
    for b in range(B):
        L = int(LENGTHS[b])
        seq = xs[b, :L]
        for l, cell in enumerate(cells):
            p = params[f"layer_{l}"]
            seq = jnp.concatenate([_loop(cell, p["forward"], seq, False)[0],
                                   _loop(cell, p["backward"], seq, True)[0]], -1)
        np.testing.assert_allclose(top[b, :L], seq, rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(top[b, L:]) == 0.0)


def test_sequence_model_heads():
    lengths = jnp.asarray(LENGTHS)
    xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
    tagger = rnn.sequence_model([rnn.lstm(H), rnn.gru(H)], D, 5, head="per_step")
    p = tagger.init(jax.random.PRNGKey(0))
    out = tagger.apply(p, xs, lengths=lengths)
    assert out.shape == (B, T, 5)
    assert np.all(np.asarray(out[1, 2:]) == 0.0) and np.all(np.asarray(out[1, :2]) != 0.0)
    clf = rnn.sequence_model(rnn.gru(H), D, 5, head="last", bidirectional=True)
    p = clf.init(jax.random.PRNGKey(0))
    logits = clf.apply(p, xs, lengths=lengths)
    ys, _ = rnn.bidirectional(rnn.gru(H), rnn.gru(H), p["rnn"]["layer_0"], xs, lengths=lengths)
    feats = jnp.stack([jnp.concatenate([ys[b, int(LENGTHS[b]) - 1, :H], ys[b, 0, H:]]) for b in range(B)])
    np.testing.assert_allclose(logits, feats @ p["head"]["w"] + p["head"]["b"][None], rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError, match=r"expected shape \[\*, \*, 3\]"):
        clf.apply(p, xs[..., :2])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        rnn.lstm(0)
    with pytest.raises(ValueError, match="alpha"):
        rnn.leaky(4, alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        rnn.leaky(4, alpha=0.0)
    with pytest.raises(ValueError, match="head"):
        rnn.sequence_model(rnn.gru(H), D, 2, head="first")
    cell = rnn.gru(H)
    params = cell.init(jax.random.PRNGKey(0), D)
    with pytest.raises(TypeError, match="integers"):
        rnn.unroll(cell, params, jnp.zeros((B, T, D)), lengths=jnp.array([1.0, 2.0, 3.0]))
