"""dlmodels.capsules against numpy written here from Sabour, Frosst & Hinton (2017): squash (eq. 1),
Procedure 1 (routing), the margin loss (eq. 4), DigitCaps' predictions, PrimaryCaps, the masked
decoder; gradients through routing by finite differences (check_grads, float64); the paper's
parameter count from the layer sizes; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels import capsules
from dlmodels.validation import ShapeError


def _rng(seed=0):
    return np.random.default_rng(seed)


# numpy references, written from the paper's equations -------------------------------------------

def np_squash(s, axis=-1):
    n2 = np.sum(s * s, axis=axis, keepdims=True)
    return n2 / (1.0 + n2) * s / np.sqrt(n2)


def np_routing(u_hat, r):
    """Procedure 1, one example and one (i, j) pair at a time."""
    batch, n_in, n_out, d = u_hat.shape
    v = np.zeros((batch, n_out, d))
    for n in range(batch):
        b = np.zeros((n_in, n_out))
        for _ in range(r):
            c = np.zeros((n_in, n_out))
            for i in range(n_in):                            # softmax over the parents j
                e = np.exp(b[i] - b[i].max())
                c[i] = e / e.sum()
            for j in range(n_out):
                s_j = sum(c[i, j] * u_hat[n, i, j] for i in range(n_in))
                v[n, j] = np_squash(s_j)
            for i in range(n_in):
                for j in range(n_out):
                    b[i, j] += u_hat[n, i, j] @ v[n, j]
    return v


def np_margin(lengths, labels, m_plus=0.9, m_minus=0.1, lam=0.5):
    out = np.zeros(len(labels))
    for n, (row, y) in enumerate(zip(lengths, labels)):
        for k, length in enumerate(row):
            t = 1.0 if k == y else 0.0
            out[n] += (t * max(0.0, m_plus - length) ** 2
                       + lam * (1 - t) * max(0.0, length - m_minus) ** 2)
    return out


def np_conv_valid(x, w, stride):
    """Cross-correlation, 'VALID', NHWC x HWIO, by loops over output positions."""
    k = w.shape[0]
    ho, wo = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for a in range(ho):
        for b in range(wo):
            patch = x[:, a * stride:a * stride + k, b * stride:b * stride + k, :]
            out[:, a, b] = np.einsum("nhwc,hwco->no", patch, w)
    return out


# squash -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, 1])
def test_squash_matches_numpy(axis):
    s = _rng().normal(size=(3, 5, 4)) * np.array([0.01, 0.5, 1.0, 3.0])   # short and long vectors
    got = capsules.squash(jnp.asarray(s, jnp.float32), axis=axis)
    np.testing.assert_allclose(got, np_squash(s, axis=axis), rtol=1e-5, atol=1e-7)
    lengths = np.linalg.norm(np.asarray(got), axis=axis)
    assert np.all(lengths < 1.0)


def test_squash_finite_at_zero_value_and_gradient():
    s = jnp.zeros((2, 3, 8))
    np.testing.assert_array_equal(capsules.squash(s), 0.0)
    jac = jax.jacobian(lambda a: capsules.squash(a[0, 0]))(s)
    assert np.all(np.isfinite(jac))
    np.testing.assert_array_equal(jac, 0.0)     # v = s ||s|| / (1 + ||s||^2) is O(||s||^2)
    grad = jax.grad(lambda a: jnp.sum(capsules.squash(a) ** 2) + jnp.sum(capsules.safe_norm(a)))(s)
    assert np.all(np.isfinite(grad))
    # one zero capsule beside non-zero ones: the others are unaffected and still correct
    t = np.zeros((2, 8))
    t[1] = _rng(1).normal(size=8)
    got = capsules.squash(jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(got[1], np_squash(t[1:])[0], rtol=1e-5)
    np.testing.assert_array_equal(got[0], 0.0)


# routing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_dynamic_routing_matches_procedure_1(r):
    u_hat = _rng(2).normal(size=(2, 7, 4, 5)) * 0.7
    got = capsules.dynamic_routing(jnp.asarray(u_hat, jnp.float32), r)
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(got, np_routing(u_hat, r), rtol=2e-5, atol=2e-6)


def test_one_iteration_is_the_uniform_average():
    u_hat = _rng(3).normal(size=(3, 6, 4, 2))
    got = capsules.dynamic_routing(jnp.asarray(u_hat, jnp.float32), 1)
    np.testing.assert_allclose(got, np_squash(u_hat.mean(1) * 6 / 4), rtol=1e-5, atol=1e-7)


def test_gradients_through_routing_check_grads_float64():
    """Finite differences of the whole routing (the coupling coefficients depend on u_hat):
    check_grads passes only because gradients flow through c as the docstring says."""
    u_hat = _rng(4).normal(size=(2, 5, 3, 4)) * 0.8
    with jax.enable_x64(True):
        x = jnp.asarray(u_hat, jnp.float64)
        for r in (1, 3):
            f = lambda a, r=r: capsules.dynamic_routing(a, r)  # noqa: E731
            check_grads(f, (x,), order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)
        # the same gradient as numpy central differences of the numpy Procedure 1
        w = _rng(5).normal(size=(2, 3, 4))
        grad = jax.grad(lambda a: jnp.sum(capsules.dynamic_routing(a, 3) * w))(x)
        eps, flat = 1e-6, u_hat.reshape(-1)
        for idx in _rng(6).choice(flat.size, 8, replace=False):
            up, down = flat.copy(), flat.copy()
            up[idx] += eps
            down[idx] -= eps
            fd = (np.sum(np_routing(up.reshape(u_hat.shape), 3) * w)
                  - np.sum(np_routing(down.reshape(u_hat.shape), 3) * w)) / (2 * eps)
            np.testing.assert_allclose(np.asarray(grad).reshape(-1)[idx], fd, rtol=1e-5,
                                       atol=1e-8)
        # stopping the gradient through c would give a different (wrong) gradient
        def frozen_c(a):
            b = jnp.zeros(a.shape[:3])
            for _ in range(2):
                v = capsules.squash(jnp.einsum("bij,bijd->bjd", jax.nn.softmax(b, 2), a))
                b = b + jnp.einsum("bijd,bjd->bij", a, v)
            c = jax.lax.stop_gradient(jax.nn.softmax(b, 2))
            return jnp.sum(capsules.squash(jnp.einsum("bij,bijd->bjd", c, a)) * w)
        np.testing.assert_allclose(frozen_c(x), jnp.sum(capsules.dynamic_routing(x, 3) * w),
                                   rtol=1e-12)
        assert not np.allclose(jax.grad(frozen_c)(x), grad, rtol=1e-3, atol=1e-6)


# margin loss --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"m_plus": 0.8, "m_minus": 0.2, "lam": 1.0}])
def test_margin_loss_matches_numpy(kwargs):
    rng = _rng(7)
    lengths = rng.uniform(0, 1, size=(6, 10))
    labels = rng.integers(0, 10, size=6)
    got = capsules.margin_loss(jnp.asarray(lengths, jnp.float32), jnp.asarray(labels), **kwargs)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, np_margin(lengths, labels, **kwargs), rtol=1e-5, atol=1e-7)
    perfect = np.full((2, 3), 0.05)
    perfect[[0, 1], [2, 0]] = 0.95
    np.testing.assert_array_equal(capsules.margin_loss(jnp.asarray(perfect), jnp.array([2, 0])), 0)


# layers -------------------------------------------------------------------------------------------

def test_digit_caps_predictions_match_numpy():
    layer = capsules.digit_caps(6, 3, d_in=4, d_out=5, iterations=2)
    params = layer.init(jax.random.PRNGKey(0))
    assert params["w"].shape == (6, 3, 5, 4)
    u = _rng(8).normal(size=(2, 6, 4)).astype(np.float32)
    v, u_hat = layer.apply(params, jnp.asarray(u), return_predictions=True)
    w = np.asarray(params["w"], np.float64)
    expected = np.zeros((2, 6, 3, 5))
    for n in range(2):
        for i in range(6):
            for j in range(3):
                expected[n, i, j] = w[i, j] @ u[n, i]
    np.testing.assert_allclose(u_hat, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, np_routing(expected, 2), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("stride,size", [(1, 12), (2, 20), (2, 21), (3, 17)])
def test_strided_conv_and_primary_caps_match_numpy(stride, size):
    rng = _rng(9)
    x = rng.normal(size=(2, size, size, 3))
    w = rng.normal(size=(5, 5, 3, 8)) * 0.2
    got = capsules.strided_conv(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), stride)
    expected = np_conv_valid(x, w, stride)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    layer = capsules.primary_caps(3, n_types=2, dim=4, kernel=5, stride=stride)
    params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.linspace(-0.1, 0.1, 8)}
    u = layer.apply(params, jnp.asarray(x, jnp.float32))
    h = expected + np.linspace(-0.1, 0.1, 8)                 # [B, H', W', types * dim]
    caps = h.reshape(2, h.shape[1], h.shape[2], 2, 4).reshape(2, -1, 4)   # (row, col, type)
    np.testing.assert_allclose(u, np_squash(caps), rtol=1e-4, atol=1e-5)


def test_decoder_sees_only_the_masked_capsule():
    model = capsules.capsnet(3, input_shape=(14, 14, 1), conv_channels=4, conv_kernel=5,
                             primary_types=2, primary_dim=4, primary_kernel=3, digit_dim=6,
                             iterations=2, decoder_hidden=(8, 16))
    params = model.init(jax.random.PRNGKey(1))
    x = jnp.asarray(_rng(10).uniform(size=(4, 14, 14, 1)), jnp.float32)
    labels = jnp.array([0, 2, 1, 2])
    out = model.apply(params, x, labels=labels)
    v = np.asarray(out["capsules"])
    # the decoder by hand, in numpy, on the true class's capsule alone
    m = np.zeros((4, 3, 6))
    m[np.arange(4), labels] = v[np.arange(4), labels]
    h = m.reshape(4, -1)
    dec = jax.tree.map(np.asarray, params["decoder"])
    for name in ("fc1", "fc2"):
        h = np.maximum(0, h @ dec[name]["w"] + dec[name]["b"])
    recon = 1 / (1 + np.exp(-(h @ dec["out"]["w"] + dec["out"]["b"])))
    np.testing.assert_allclose(out["reconstructions"].reshape(4, -1), recon, rtol=1e-4, atol=1e-6)
    # the gradient of the reconstruction reaches the true class's capsule only
    g = jax.grad(lambda c: jnp.sum(capsules.mask(c, labels) ** 2))(jnp.asarray(v))
    other = np.ones((4, 3), bool)
    other[np.arange(4), labels] = False
    np.testing.assert_array_equal(np.asarray(g)[other], 0.0)
    # at test (no labels) the longest capsule is decoded
    longest = np.argmax(np.linalg.norm(v, axis=-1), axis=1)
    np.testing.assert_allclose(model.apply(params, x)["reconstructions"],
                               model.apply(params, x, labels=jnp.asarray(longest))[
                                   "reconstructions"], rtol=1e-6)
    np.testing.assert_allclose(out["lengths"], np.linalg.norm(v, axis=-1), rtol=1e-5)


def test_paper_configuration_parameter_count():
    """conv1 9*9*1*256 + 256; PrimaryCaps 9*9*256*(32*8) + 256; DigitCaps 1152*10*16*8 (no
    bias); decoder (160*512 + 512) + (512*1024 + 1024) + (1024*784 + 784)."""
    def count(model):
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0))
        return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))

    conv1 = 9 * 9 * 1 * 256 + 256
    primary = 9 * 9 * 256 * 256 + 256
    digit = 6 * 6 * 32 * 10 * 16 * 8
    decoder = (160 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784)
    assert count(capsules.capsnet(decoder_hidden=None)) == conv1 + primary + digit == 6_804_224
    assert count(capsules.capsnet()) == conv1 + primary + digit + decoder == 8_215_568
    out = jax.eval_shape(lambda p, x: capsules.capsnet().apply(p, x),
                         jax.eval_shape(capsules.capsnet().init, jax.random.PRNGKey(0)),
                         jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
    assert out["lengths"].shape == (2, 10) and out["capsules"].shape == (2, 10, 16)
    assert out["reconstructions"].shape == (2, 28, 28, 1)
    u = jax.eval_shape(lambda x: capsules.primary_caps(256).apply(
        {"w": jnp.zeros((9, 9, 256, 256)), "b": jnp.zeros(256)}, x),
        jax.ShapeDtypeStruct((1, 20, 20, 256), jnp.float32))
    assert u.shape == (1, 1152, 8)


# objective and augmentation -----------------------------------------------------------------------

def test_objective_is_margin_plus_scaled_sum_of_squared_errors():
    model = capsules.capsnet(3, input_shape=(14, 14, 1), conv_channels=4, conv_kernel=5,
                             primary_types=2, primary_dim=4, primary_kernel=3, digit_dim=6,
                             decoder_hidden=(8, 16))
    params = model.init(jax.random.PRNGKey(2))
    x = jnp.asarray(_rng(11).uniform(size=(5, 14, 14, 1)), jnp.float32)
    y = jnp.array([0, 1, 2, 2, 1])
    loss_fn, eval_fn = capsules.objective(model.apply)
    train = model.apply(params, x, labels=y)
    sse = np.sum((np.asarray(train["reconstructions"]) - np.asarray(x)) ** 2, axis=(1, 2, 3))
    expected = np.mean(np_margin(np.asarray(train["lengths"]), np.asarray(y)) + 0.0005 * sse)
    loss, _ = loss_fn(params, (x, y), jax.random.PRNGKey(0))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    test = model.apply(params, x)
    metrics = eval_fn(params, (x, y))
    correct = np.argmax(np.asarray(test["lengths"]), 1) == np.asarray(y)
    np.testing.assert_array_equal(metrics["accuracy"], correct.astype(np.float32))
    np.testing.assert_allclose(metrics["margin"], np_margin(np.asarray(test["lengths"]),
                                                            np.asarray(y)), rtol=1e-5)


def test_random_shift_moves_each_image_by_at_most_two_pixels():
    x = _rng(12).uniform(size=(16, 9, 9, 1)).astype(np.float32)
    got = np.asarray(capsules.random_shift(jax.random.PRNGKey(3), jnp.asarray(x), 2))

    def np_shift(img, dy, dx):                     # moved down dy and right dx, zeros shifted in
        out = np.zeros_like(img)
        src = img[max(0, -dy):9 - max(0, dy), max(0, -dx):9 - max(0, dx)]
        out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
        return out

    moves = set()
    for n in range(16):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(got[n], np_shift(x[n], dy, dx))]
        assert found, f"image {n} is not a shift of its input by <= 2 pixels"
        moves.add(found[0])
    assert len(moves) > 4                          # different images, different shifts


# bad inputs ---------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match="u_hat"):
        capsules.dynamic_routing(jnp.zeros((2, 3, 4)), 3)
    with pytest.raises(ValueError, match="iterations"):
        capsules.dynamic_routing(jnp.zeros((1, 2, 3, 4)), 0)
    with pytest.raises(ShapeError, match="labels"):
        capsules.margin_loss(jnp.zeros((4, 10)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ShapeError, match="lengths"):
        capsules.margin_loss(jnp.zeros((4,)), jnp.zeros((4,), jnp.int32))
    with pytest.raises(TypeError, match="integers"):
        capsules.margin_loss(jnp.zeros((4, 10)), jnp.zeros((4,)))
    with pytest.raises(ValueError, match="m_plus"):
        capsules.margin_loss(jnp.zeros((1, 2)), jnp.zeros((1,), jnp.int32), m_plus=-1.0)
    with pytest.raises(ShapeError, match="squash"):
        capsules.squash(jnp.float32(1.0))
    model = capsules.capsnet()
    with pytest.raises(ShapeError, match=r"\[B, 28, 28, 1\]"):
        model.apply(jax.eval_shape(model.init, jax.random.PRNGKey(0)), jnp.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="no room"):
        capsules.capsnet(input_shape=(12, 12, 1))
    with pytest.raises(ValueError, match="primary_types"):
        capsules.capsnet(primary_types=0)
    with pytest.raises(ShapeError, match="digit_caps"):
        layer = capsules.digit_caps(6, 3)
        layer.apply(layer.init(jax.random.PRNGKey(0)), jnp.zeros((2, 5, 8)))
