"""The fused LSTM/GRU path of ``unroll`` (``dlmodels.rnn.fused``) against the generic path
(``lax.scan`` of ``cell.step`` and autodiff): outputs, final carries and gradients w.r.t. params,
inputs and the initial carry, with and without lengths, reversal, rematerialisation, in both
layouts; numerical gradients in float64."""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels import rnn
from dlmodels.rnn.fused import sequence

D, H, B, T = 3, 5, 4, 9
LENGTHS = np.array([9, 2, 5, 1])
KINDS = {"lstm": rnn.lstm, "gru": rnn.gru}


def _randomise(tree, key, scale=0.3):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                        for x, k in zip(leaves, keys)])


def _case(kind, dtype=jnp.float32, batch=B, steps=T):
    cell = KINDS[kind](H)
    params = _randomise(cell.init(jax.random.PRNGKey(0), D), jax.random.PRNGKey(1))
    xs = jax.random.normal(jax.random.PRNGKey(2), (batch, steps, D))
    carry = _randomise(cell.initial_carry(batch), jax.random.PRNGKey(3), 0.5)
    cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
    return cell, cast(params), xs.astype(dtype), cast(carry)


def _run(cell, params, xs, carry, **kw):
    """``(ys, final carry)`` and the gradients of a loss on both w.r.t. params, xs, carry."""
    def loss(p, x, c):
        ys, final = rnn.unroll(cell, p, x, initial_carry=c, **kw)
        return jnp.sum(jnp.sin(3 * ys)) + sum(jnp.sum(jnp.cos(2 * leaf) * leaf)
                                               for leaf in jax.tree.leaves(final))

    out = rnn.unroll(cell, params, xs, initial_carry=carry, **kw)
    return out, jax.grad(loss, argnums=(0, 1, 2))(params, xs, carry)


def _assert_trees_close(a, b, tol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def _uses_fused_path(cell, params, xs, **kw) -> bool:
    jaxpr = jax.make_jaxpr(lambda p, x: rnn.unroll(cell, p, x, **kw))(params, xs)
    return "custom_vjp_call" in str(jaxpr)


# every pair of option values appears in the four rows of the default run (a pairwise covering
# array); the other four of the 2^3 combinations run with -m slow
PAIRWISE = {(False, False, False), (False, True, True), (True, False, True), (True, True, False)}


@pytest.mark.parametrize("kind, use_lengths, reverse, remat", [
    pytest.param(kind, *options, marks=() if options in PAIRWISE else pytest.mark.slow)
    for kind in sorted(KINDS) for options in itertools.product([False, True], repeat=3)])
def test_fused_equals_generic(kind, use_lengths, reverse, remat):
    cell, params, xs, carry = _case(kind)
    kw = dict(lengths=jnp.asarray(LENGTHS) if use_lengths else None, reverse=reverse, remat=remat)
    assert _uses_fused_path(cell, params, xs, **kw)
    assert not _uses_fused_path(cell._replace(fused=None), params, xs, **kw)
    fast, fast_grads = _run(cell, params, xs, carry, **kw)
    ref, ref_grads = _run(cell._replace(fused=None), params, xs, carry, **kw)
    _assert_trees_close(fast, ref)
    _assert_trees_close(fast_grads, ref_grads)
    assert type(fast[1]) is type(ref[1])
    if use_lengths:  # padded outputs exactly zero
        ys = np.asarray(fast[0])
        assert all(np.all(ys[b, L:] == 0.0) for b, L in enumerate(LENGTHS))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("options", [
    dict(time_major=True), dict(time_major=True, reverse=True), dict(steps_per_iteration=3),
    dict(time_major=True, remat=True, reverse=True), dict(time_major=True, lengths=LENGTHS,
                                                          reverse=True)])
def test_fused_layouts_and_unrolling(kind, options):
    cell, params, xs, carry = _case(kind)
    kw = dict(options)
    if kw.get("lengths") is not None:
        kw["lengths"] = jnp.asarray(kw["lengths"])
    if kw.get("time_major"):
        xs = jnp.swapaxes(xs, 0, 1)
    fast = _run(cell, params, xs, carry, **kw)
    ref = _run(cell._replace(fused=None), params, xs, carry, **kw)
    _assert_trees_close(fast, ref)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("chunk", [1, 4, 9])
def test_remat_chunks_including_padding(kind, chunk, monkeypatch):
    """Chunks of 4 leave a padded last chunk (T = 9); 1 and 9 are the extremes."""
    monkeypatch.setattr(sequence, "remat_chunk", lambda steps, batch: chunk)
    cell, params, xs, carry = _case(kind)
    for kw in (dict(lengths=jnp.asarray(LENGTHS), reverse=True), dict(reverse=False)):
        _assert_trees_close(_run(cell, params, xs, carry, remat=True, **kw),
                            _run(cell._replace(fused=None), params, xs, carry, remat=True, **kw))


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_check_grads_float64(kind, remat):
    with jax.enable_x64(True):
        cell, params, xs, carry = _case(kind, jnp.float64, steps=5)
        assert _uses_fused_path(cell, params, xs)
        lengths = jnp.array([5, 2, 3, 1])

        def loss(p, x, c):
            ys, final = rnn.unroll(cell, p, x, initial_carry=c, lengths=lengths, remat=remat)
            ys_r, _ = rnn.unroll(cell, p, x, initial_carry=c, reverse=True, remat=remat)
            return (jnp.sum(jnp.sin(ys)) + jnp.sum(ys_r ** 2)
                    + sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(final)))

        check_grads(loss, (params, xs, carry), order=1, modes=("rev",), atol=1e-8, rtol=1e-8,
                    eps=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fused_under_jit_and_vmap(kind):
    cell, params, xs, carry = _case(kind)
    loss = lambda p, x: jnp.sum(rnn.unroll(cell, p, x, lengths=jnp.asarray(LENGTHS))[0] ** 2)
    value, grads = jax.jit(jax.value_and_grad(loss))(params, xs)
    ref_value, ref_grads = jax.value_and_grad(loss)(params, xs)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    _assert_trees_close(grads, ref_grads)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, _randomise(params, jax.random.PRNGKey(9)))
    batched = jax.vmap(jax.grad(loss))(stacked, jnp.stack([xs, -xs]))
    for k in range(2):
        member = jax.tree.map(lambda a: a[k], stacked)
        _assert_trees_close(jax.tree.map(lambda a: a[k], batched),
                            jax.grad(loss)(member, xs if k == 0 else -xs))


def test_generic_path_when_not_fusable():
    cell, params, xs, carry = _case("lstm")
    mixed = dict(initial_carry=carry)  # bfloat16 inputs, float32 params and carry
    assert not _uses_fused_path(cell, params, xs.astype(jnp.bfloat16), **mixed)
    assert _uses_fused_path(cell, params, xs, **mixed)
    assert not _uses_fused_path(cell, params, xs, truncate=3)
    assert not _uses_fused_path(rnn.peephole_lstm(H), rnn.peephole_lstm(H).init(
        jax.random.PRNGKey(0), D), xs)


@pytest.mark.parametrize("options", [dict(), dict(remat=True), dict(steps_per_iteration=2)])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_whole_sequence_copies_inside_loops(kind, options):
    """Speed guard: the fused loops update their [B, T, .] buffers in place. A copy of one inside
    a loop body (what XLA inserts when a read of the buffer is not ordered before the write)
    would copy the whole buffer every step."""
    batch, steps = 8, 32
    cell, params, xs, _ = _case(kind, batch=batch, steps=steps)
    loss = lambda p, x: jnp.sum(rnn.unroll(cell, p, x, **options)[0] ** 2)
    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, xs).compile().as_text()
    bodies = set(re.findall(r"body=(%[\w.\-]+)", hlo))
    assert bodies, "no loops found"
    computation, copies = None, []
    for line in hlo.splitlines():
        if line.startswith(("%", "ENTRY")):
            computation = line.split()[0]
        shape = re.search(r"= f32\[([\d,]*)\]\S* copy\(", line)
        if shape and computation in bodies:
            dims = [int(d) for d in shape.group(1).split(",") if d]
            if steps in dims and batch in dims:
                copies.append(line.strip()[:120])
    assert not copies, copies


def test_gate_algebra_pullbacks_equal_autodiff_float64():
    """The hand-written pullbacks of ``dlmodels.rnn.gates`` (used by the fused backward loops)
    against ``jax.vjp`` of the forward algebra, and the tanh-form sigmoid against 1 / (1 + e^-x)."""
    from dlmodels.rnn import gates

    with jax.enable_x64(True):
        x = np.linspace(-30.0, 30.0, 121)
        # absolute accuracy: the tanh form rounds sigma(x) << 1 to multiples of ~1e-16 (half an ulp of 0.5)
        np.testing.assert_allclose(gates.sigmoid(jnp.asarray(x)), 1.0 / (1.0 + np.exp(-x)),
                                   rtol=1e-14, atol=3e-16)
        k = jax.random.split(jax.random.PRNGKey(7), 6)
        z, c = jax.random.normal(k[0], (B, 4 * H), jnp.float64), jax.random.normal(k[1], (B, H), jnp.float64)
        dh, dc = jax.random.normal(k[2], (B, H), jnp.float64), jax.random.normal(k[3], (B, H), jnp.float64)
        (_, pullback) = jax.vjp(lambda z, c: gates.lstm_update(gates.lstm_activations(z), c), z, c)
        dz, dc_prev = gates.lstm_update_backward(gates.lstm_activations(z), c, dh, dc)
        ref_dz, ref_dc = pullback((dh, dc))
        np.testing.assert_allclose(dz, ref_dz, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dc_prev, ref_dc, rtol=1e-12, atol=1e-14)
        u, v = jax.random.normal(k[4], (B, 3 * H), jnp.float64), jax.random.normal(k[5], (B, 3 * H), jnp.float64)
        h = c
        (_, pullback) = jax.vjp(lambda u, v, h: gates.gru_update(u, v, h)[1], u, v, h)
        act, _ = gates.gru_update(u, v, h)
        du, dv, dh_prev = gates.gru_update_backward(act, v[:, 2 * H:], h, dh)
        ref_du, ref_dv, ref_dh = pullback(dh)
        for got, ref in ((du, ref_du), (dv, ref_dv), (dh_prev, ref_dh)):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
