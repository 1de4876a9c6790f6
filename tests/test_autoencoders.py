"""Corruption processes (their statistics) and the contractive penalty (against jax.jacfwd)."""

import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.autoencoders import contractive_penalty, corrupt
from dlmodels.validation import ShapeError


def _params(key, d=7, h=5):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (d, h)), "b": jax.random.normal(k2, (h,))}


def test_contractive_penalty_equals_the_jacobian_frobenius_norm():
    params = _params(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, 7))

    def f(x_one):
        return jax.nn.sigmoid(x_one @ params["w"] + params["b"])

    expected = np.array([np.sum(np.asarray(jax.jacfwd(f)(xi)) ** 2) for xi in x])
    np.testing.assert_allclose(contractive_penalty(params, x), expected, rtol=1e-5)
    np.testing.assert_allclose(contractive_penalty(params, x[0]), expected[0], rtol=1e-5)
    with jax.enable_x64(True):  # float64: finite differences at check_grads' default tolerance
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)
        jax.test_util.check_grads(
            lambda w, x: jnp.sum(contractive_penalty({"w": w, "b": p64["b"]}, x)),
            (p64["w"], x64), order=2, modes=["fwd", "rev"])
    with pytest.raises(ShapeError, match=r"contractive_penalty: expected x \[\.\.\., 7\]"):
        contractive_penalty(params, jnp.ones((2, 6)))


def test_corruption_statistics():
    x = jnp.full((400, 250), 0.5)
    key = jax.random.PRNGKey(0)
    masked = np.asarray(corrupt(key, x, "mask", 0.3))
    assert abs(np.mean(masked == 0.0) - 0.3) < 0.01 and set(np.unique(masked)) == {0.0, 0.5}
    noisy = np.asarray(corrupt(key, x, "gaussian", 0.2))
    assert abs(np.std(noisy - 0.5) - 0.2) < 0.005 and abs(np.mean(noisy - 0.5)) < 0.005
    sp = np.asarray(corrupt(key, x, "salt_pepper", 0.2))
    assert abs(np.mean(sp != 0.5) - 0.2) < 0.01
    assert abs(np.mean(sp == 1.0) - 0.1) < 0.01 and abs(np.mean(sp == 0.0) - 0.1) < 0.01
    np.testing.assert_array_equal(corrupt(key, x, "mask", 0.0), x)
    np.testing.assert_array_equal(corrupt(key, x, "mask", 0.3), masked)      # same key, same x~


@pytest.mark.parametrize("kind, level, message", [
    ("blur", 0.1, "kind"), ("mask", 1.5, "probability"), ("gaussian", -1.0, "std")])
def test_corrupt_rejects_bad_arguments(kind, level, message):
    with pytest.raises(ValueError, match=message):
        corrupt(jax.random.PRNGKey(0), jnp.ones((2, 3)), kind, level)


def test_autoencoder_forward_equals_numpy_and_tied_weights():
    from dlmodels.autoencoders import autoencoder

    x = np.random.default_rng(0).random((3, 6)).astype(np.float32)
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    for tied in (False, True):
        model = autoencoder(6, 4, tied=tied)
        p = model.init(jax.random.PRNGKey(0))
        w1, b1 = np.asarray(p["encoder"]["w"]), np.asarray(p["encoder"]["b"])
        w2 = w1.T if tied else np.asarray(p["decoder"]["w"])
        h = sig(x @ w1 + b1)
        r, code = model.apply(p, jnp.asarray(x), return_code=True)
        np.testing.assert_allclose(code, h, rtol=1e-5)
        np.testing.assert_allclose(r, sig(h @ w2 + np.asarray(p["decoder"]["b"])), rtol=1e-5)
        assert ("w" in p["decoder"]) is (not tied)
    with pytest.raises(ShapeError, match=r"autoencoder: .*\[\*, 6\], got \(3, 5\)"):
        model.apply(p, jnp.ones((3, 5)))


def test_sparsity_penalties_equal_numpy():
    from dlmodels.autoencoders import kl_sparsity, l1_sparsity

    h = np.random.default_rng(1).uniform(0.01, 0.99, (8, 5)).astype(np.float32)
    np.testing.assert_allclose(l1_sparsity(jnp.asarray(h)), np.abs(h).sum(1), rtol=1e-6)
    rho, q = 0.05, h.mean(0)
    expected = np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q)))
    np.testing.assert_allclose(kl_sparsity(jnp.asarray(h), rho), expected, rtol=1e-5)
    assert float(kl_sparsity(jnp.full((4, 3), 0.05), 0.05)) == pytest.approx(0.0, abs=1e-6)


def test_linear_autoencoder_learns_the_principal_subspace():
    """Baldi & Hornik (1989): the minimum of ||X - X W1 W2||^2 spans the top-k principal
    subspace; compare the trained encoder's column space with numpy's SVD (principal angles)."""
    import optax

    from dlmodels.autoencoders import autoencoder

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) @ np.diag([3.0, 2.0, 1.0, 0.3, 0.2, 0.1])
    x = (x - x.mean(0)).astype(np.float32)
    model = autoencoder(6, 2, encoder="identity", decoder="identity", w_init="glorot_uniform")
    opt = optax.adam(1e-2)

    def loss(p):
        return jnp.mean(jnp.sum((model.apply(p, jnp.asarray(x)) - x) ** 2, -1))

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    p = model.init(jax.random.PRNGKey(0))
    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=3000)
    basis = np.linalg.qr(np.asarray(p["encoder"]["w"], np.float64))[0]          # [6, 2]
    top = np.linalg.svd(x.astype(np.float64), full_matrices=False)[2][:2].T      # [6, 2]
    cosines = np.linalg.svd(basis.T @ top, compute_uv=False)
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    assert angles.max() < 1.0, angles
