"""Gradient-flow analysis against brute force: one gradient per time step from re-running the
rest of the sequence, Jacobian products from jacrev of the multi-step map, numpy spectra."""

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
    jax.config.update("jax_enable_x64", True)
    cell = CELLS[request.param]()
    params = jax.tree.map(lambda a: a.astype(jnp.float64) + 0.1,
                          cell.init(jax.random.PRNGKey(0), D))
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, T, D), jnp.float64)
    yield cell, params, xs
    jax.config.update("jax_enable_x64", False)


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


def test_jacobian_products_equal_jacrev_of_the_multistep_map(case):
    cell, params, xs = case
    x = xs[0]
    out = analysis.jacobian_products(cell, params, x)
    carries = []
    carry = cell.initial_carry(1, jnp.float64)
    for t in range(T):
        carry, _ = cell.apply(params, carry, x[t][None])
        carries.append(carry)
    for t in range(T):
        flat, unravel = ravel_pytree(carries[t])

        def forward(f, t=t):
            c = unravel(f)
            for s in range(t + 1, T):
                c, _ = cell.apply(params, c, x[s][None])
            return ravel_pytree(c)[0]

        J = np.asarray(jax.jacrev(forward)(flat))
        s = np.linalg.svd(J, compute_uv=False)
        np.testing.assert_allclose(out["spectral_norm"][t], s[0], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(out["singular_values"][t], s, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(out["frobenius_norm"][t], np.linalg.norm(J), rtol=1e-8)


def test_spectrum_and_rescaling():
    w = np.random.default_rng(0).normal(size=(6, 6))
    sp = analysis.spectrum(w)
    np.testing.assert_allclose(sp["spectral_radius"], np.max(np.abs(np.linalg.eigvals(w))))
    np.testing.assert_allclose(sp["singular_values"], np.linalg.svd(w, compute_uv=False))
    np.testing.assert_allclose(analysis.spectrum(analysis.with_spectral_radius(w, 0.9))["spectral_radius"], 0.9)
    np.testing.assert_allclose(
        analysis.spectrum(analysis.with_largest_singular_value(w, 0.5))["largest_singular_value"], 0.5)
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
