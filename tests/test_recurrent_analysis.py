"""Gradient-flow analysis against brute force: one gradient per time step from re-running the
rest of the sequence step by step in Python (with lengths and reversal), Jacobian products from
jacrev of the multi-step map, spectra against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from dlmodels import analysis, rnn
from dlmodels.rnn.cell import output_of

D, H, T = 2, 3, 6
CELLS = {"elman": lambda: rnn.elman(H), "elman_head": lambda: rnn.elman(H, output_size=2),
         "jordan": lambda: rnn.jordan(H, 2), "lstm": lambda: rnn.lstm(H), "gru": lambda: rnn.gru(H),
         "peephole": lambda: rnn.peephole_lstm(H), "leaky": lambda: rnn.leaky(H, alpha=None),
         "skip": lambda: rnn.time_skip(rnn.elman(H), 2)}


@pytest.fixture(params=sorted(CELLS))
def case(request):
    with jax.enable_x64(True):
        cell = CELLS[request.param]()
        params = jax.tree.map(lambda a: a + 0.1, cell.init(jax.random.PRNGKey(0), D, jnp.float64))
        xs = jax.random.normal(jax.random.PRNGKey(1), (2, T, D), jnp.float64)
        yield cell, params, xs


def _loss(ys):
    return jnp.sum(jnp.sin(ys) * jnp.arange(1, T + 1)[None, :, None]) + jnp.sum(ys[:, -1] ** 2)


def test_output_is_a_function_of_the_new_carry(case):
    cell, params, xs = case
    carry = cell.initial_carry(2, jnp.float64)
    for t in range(T):
        carry, y = cell.apply(params, carry, xs[:, t])
        np.testing.assert_allclose(output_of(cell, params, carry), y, rtol=1e-12)


def test_hidden_gradients_equal_brute_force(case):
    cell, params, xs = case
    loss, grads = analysis.hidden_gradients(cell, params, xs, _loss)
    carries, ys = [], []
    carry = cell.initial_carry(2, jnp.float64)
    for t in range(T):
        carry, y = cell.apply(params, carry, xs[:, t])
        carries.append(carry)
        ys.append(y)
    np.testing.assert_allclose(loss, _loss(jnp.stack(ys, 1)), rtol=1e-12)
    for t in range(T):
        def rest(c, t=t):
            out = ys[:t] + [output_of(cell, params, c)]
            for s in range(t + 1, T):
                c, y = cell.apply(params, c, xs[:, s])
                out.append(y)
            return _loss(jnp.stack(out, 1))

        brute = jax.grad(rest)(carries[t])
        for got, ref in zip(jax.tree.leaves(jax.tree.map(lambda g: g[t], grads)),
                            jax.tree.leaves(brute)):
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    norms = analysis.hidden_gradient_norms(cell, params, xs, _loss, field=None)
    flat = [np.concatenate([np.ravel(l) for l in jax.tree.leaves(jax.tree.map(lambda g: g[t], grads))])
            for t in range(T)]
    np.testing.assert_allclose(norms, [np.linalg.norm(f) for f in flat], rtol=1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_hidden_gradients_with_lengths_and_reverse(case, reverse):
    """Per sequence (the loss is a sum over the batch), in the order unroll processes it: the
    gradient at a position past the sequence's end is zero, elsewhere that of re-running the
    rest of the sequence from a carry in a Python loop."""
    cell, params, xs = case
    lengths = np.array([T, 3])
    loss, grads = analysis.hidden_gradients(cell, params, xs, _loss,
                                            lengths=jnp.asarray(lengths), reverse=reverse)
    O, total = cell.output_size, 0.0
    for b, L in enumerate(lengths):
        order = list(range(L))[::-1] if reverse else list(range(L))

        def seq_loss(outputs):
            return _loss(jnp.stack([outputs.get(t, jnp.zeros((1, O)))[0] for t in range(T)])[None])

        carry, carries, ys = cell.initial_carry(1, jnp.float64), {}, {}
        for t in order:
            carry, ys[t] = cell.apply(params, carry, xs[b:b + 1, t])
            carries[t] = carry
        total += seq_loss(ys)
        for t in range(T):
            got = jax.tree.map(lambda g: np.asarray(g[t]), grads)
            if t >= L:
                for g, one in zip(jax.tree.leaves(got), jax.tree.leaves(cell.initial_carry(1))):
                    axis = next(i for i, (m, r) in enumerate(zip(g.shape, one.shape)) if m != r)
                    assert np.all(np.take(g, b, axis=axis) == 0)
                continue
            k = order.index(t)

            def rest(c, k=k):
                out = {s: ys[s] for s in order[:k]}
                out[order[k]] = output_of(cell, params, c)
                for s in order[k + 1:]:
                    c, out[s] = cell.apply(params, c, xs[b:b + 1, s])
                return seq_loss(out)

            for g, ref in zip(jax.tree.leaves(got), jax.tree.leaves(jax.grad(rest)(carries[t]))):
                axis = next(i for i, (m, r) in enumerate(zip(g.shape, ref.shape)) if m != r)
                np.testing.assert_allclose(np.take(g, [b], axis=axis), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(loss, total, rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_jacobian_products_equal_jacrev_of_the_multistep_map(case, reverse):
    cell, params, xs = case
    x = xs[0]
    out = analysis.jacobian_products(cell, params, x, reverse=reverse)
    order = list(range(T))[::-1] if reverse else list(range(T))
    carries = {}
    carry = cell.initial_carry(1, jnp.float64)
    for t in order:
        carry, _ = cell.apply(params, carry, x[t][None])
        carries[t] = carry
    for t in range(T):
        flat, unravel = ravel_pytree(carries[t])

        def forward(f, t=t):
            c = unravel(f)
            for s in order[order.index(t) + 1:]:
                c, _ = cell.apply(params, c, x[s][None])
            return ravel_pytree(c)[0]

        J = np.asarray(jax.jacrev(forward)(flat))
        s = np.linalg.svd(J, compute_uv=False)
        np.testing.assert_allclose(out["spectral_norm"][t], s[0], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(out["singular_values"][t], s, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(out["frobenius_norm"][t], np.linalg.norm(J), rtol=1e-8)


def test_spectrum_against_closed_forms():
    """r Q (Q orthogonal): every singular value and every |eigenvalue| is r. A diagonal matrix:
    eigenvalues d, singular values |d| sorted. A scaled rotation by theta: eigenvalues
    a e^{+-i theta}. An upper-triangular matrix: eigenvalues on the diagonal, whatever above."""
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    sp = analysis.spectrum(1.7 * Q)
    np.testing.assert_allclose(sp["singular_values"], np.full(6, 1.7), rtol=1e-12)
    np.testing.assert_allclose(np.abs(sp["eigenvalues"]), np.full(6, 1.7), rtol=1e-12)
    assert sp["spectral_radius"] == pytest.approx(1.7) and sp["largest_singular_value"] == pytest.approx(1.7)
    d = np.array([0.5, -3.0, 2.0, -0.1])
    sp = analysis.spectrum(np.diag(d))
    np.testing.assert_allclose(sp["eigenvalues"], [-3.0, 2.0, 0.5, -0.1])   # by decreasing |.|
    np.testing.assert_allclose(sp["singular_values"], [3.0, 2.0, 0.5, 0.1])
    theta, a = 0.3, 0.8
    rotation = a * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    eig = analysis.spectrum(rotation)["eigenvalues"]
    np.testing.assert_allclose(sorted(eig, key=np.imag), [a * np.exp(-1j * theta), a * np.exp(1j * theta)])
    sp = analysis.spectrum(np.array([[0.5, 10.0], [0.0, 0.2]]))
    assert sp["spectral_radius"] == pytest.approx(0.5) and sp["largest_singular_value"] > 10.0


def test_rescaling():
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))
    np.testing.assert_allclose(analysis.with_largest_singular_value(3.0 * Q, 0.5), 0.5 * Q, rtol=1e-12)
    d = np.diag([2.0, -4.0, 1.0])
    np.testing.assert_allclose(analysis.with_spectral_radius(d, 0.9), d * (0.9 / 4.0), rtol=1e-12)
    with pytest.raises(ValueError, match="square"):
        analysis.spectrum(np.zeros((2, 3)))


def test_pascanu_bound_holds_for_a_tanh_rnn():
    cell = rnn.elman(8)
    params = cell.init(jax.random.PRNGKey(0), 3)
    params["w_h"] = analysis.with_largest_singular_value(params["w_h"], 0.9)
    xs = jax.random.normal(jax.random.PRNGKey(1), (30, 3))
    norms = np.asarray(analysis.jacobian_products(cell, params, xs)["spectral_norm"])
    bound = analysis.vanishing_bound(params["w_h"], "tanh", lags=np.arange(29, -1, -1))
    assert bound["guaranteed_vanishing"] and bound["gamma"] == 1.0
    assert np.all(norms <= bound["bound"] * (1 + 1e-5))
    assert norms[0] < 0.9 ** 29 * 1.0001
