"""The autoencoder objective (vs numpy, check_grads), deep autoencoders vs a numpy forward pass,
greedy pretraining and unfolding (decoder = transposed pretrained weights), feature visualisation."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from dlmodels import autoencoders as ae
from dlmodels.energy import rbm
from dlmodels.validation import ShapeError


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_terms(p, x, rho):
    """Every term of the regularised objective written out in numpy (tied=False, clean inputs)."""
    w1, b1 = np.asarray(p["encoder"]["w"], np.float64), np.asarray(p["encoder"]["b"], np.float64)
    w2, b2 = np.asarray(p["decoder"]["w"], np.float64), np.asarray(p["decoder"]["b"], np.float64)
    h = sig(x @ w1 + b1)
    r = sig(h @ w2 + b2)
    q = h.mean(0)
    return {
        "squared": np.mean(np.sum((x - r) ** 2, 1)),
        "cross_entropy": np.mean(-np.sum(x * np.log(r) + (1 - x) * np.log(1 - r), 1)),
        "l1": np.mean(np.sum(np.abs(h), 1)),
        "kl": np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))),
        # ||J||_F^2 summed over i, j of (h_j (1 - h_j) W_ij)^2
        "contractive": np.mean([np.sum((hn * (1 - hn))[None, :] ** 2 * w1 ** 2) for hn in h]),
        "weight_decay": np.sum(w1 ** 2) + np.sum(w2 ** 2),
    }


REGULARISERS = {"l1": dict(l1=0.3), "kl": dict(kl=0.7, rho=0.1), "contractive": dict(contractive=0.2),
                "weight_decay": dict(weight_decay=0.01)}


@pytest.fixture(scope="module")
def small():
    model = ae.autoencoder(8, 5)
    params = model.init(jax.random.PRNGKey(0))
    x = np.random.default_rng(0).uniform(0.05, 0.95, (6, 8)).astype(np.float32)
    return model, params, x


@pytest.mark.parametrize("reconstruction", ["squared", "cross_entropy"])
@pytest.mark.parametrize("regulariser", [None, *REGULARISERS])
def test_objective_terms_equal_numpy_and_pass_check_grads(small, reconstruction, regulariser):
    model, params, x = small
    kwargs = REGULARISERS.get(regulariser, {})
    loss_fn, eval_fn = ae.objective(model.apply, reconstruction=reconstruction, **kwargs)
    value, parts = loss_fn(params, jnp.asarray(x), jax.random.PRNGKey(1))
    ref = np_terms(params, x.astype(np.float64), kwargs.get("rho", 0.05))
    expected = ref[reconstruction]
    if regulariser is not None:
        weight = kwargs[regulariser]
        np.testing.assert_allclose(parts[regulariser], weight * ref[regulariser], rtol=1e-4)
        expected += weight * ref[regulariser]
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    np.testing.assert_allclose(jnp.mean(eval_fn(params, jnp.asarray(x))["squared_error"]),
                               ref["squared"], rtol=1e-4)
    with jax.enable_x64(True):
        p64, x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), jnp.asarray(x, jnp.float64)
        jax.test_util.check_grads(lambda p: loss_fn(p, x64, jax.random.PRNGKey(1))[0], (p64,),
                                  order=1, modes=["rev"], atol=1e-6, rtol=1e-6, eps=1e-6)


@pytest.mark.parametrize("kind", ae.CORRUPTIONS)
def test_denoising_objective_reconstructs_the_clean_input_from_the_corrupted_one(small, kind):
    model, params, x = small
    key = jax.random.PRNGKey(3)
    loss_fn, _ = ae.objective(model.apply, corruption=kind, level=0.3)
    value, _ = loss_fn(params, jnp.asarray(x), key)
    x_tilde = np.asarray(ae.corrupt(key, jnp.asarray(x), kind, 0.3))
    assert not np.allclose(x_tilde, x)
    r = np.asarray(model.apply(params, jnp.asarray(x_tilde)))
    np.testing.assert_allclose(value, np.mean(np.sum((x - r) ** 2, 1)), rtol=1e-5)
    with jax.enable_x64(True):
        p64, x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), jnp.asarray(x, jnp.float64)
        jax.test_util.check_grads(lambda p: loss_fn(p, x64, key)[0], (p64,), order=1,
                                  modes=["rev"], atol=1e-6, rtol=1e-6, eps=1e-6)


def test_objective_rejects_bad_hyperparameters(small):
    model = small[0]
    for kwargs, message in ((dict(reconstruction="l1"), "reconstruction"),
                            (dict(corruption="blur"), "corruption"), (dict(l1=-1.0), "l1"),
                            (dict(kl=1.0, rho=1.5), "rho")):
        with pytest.raises(ValueError, match=message):
            ae.objective(model.apply, **kwargs)
    with pytest.raises(ValueError, match="shape"):
        ae.reconstruction_error(jnp.ones((2, 3)), jnp.ones((2, 4)))


def np_mlp(layers, x, hidden_act, last_act):
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        x = last_act(x) if i == len(layers) - 1 else hidden_act(x)
    return x


def test_deep_autoencoder_forward_equals_numpy():
    sizes = (12, 7, 5, 3)
    model = ae.deep_autoencoder(sizes, code="identity")
    p = model.init(jax.random.PRNGKey(0))
    x = np.random.default_rng(1).random((4, 12))
    enc = [(np.asarray(p["encoder"][f"layer_{i}"]["w"]), np.asarray(p["encoder"][f"layer_{i}"]["b"]))
           for i in range(3)]
    dec = [(np.asarray(p["decoder"][f"layer_{i}"]["w"]), np.asarray(p["decoder"][f"layer_{i}"]["b"]))
           for i in range(3)]
    assert [w.shape for w, _ in dec] == [(3, 5), (5, 7), (7, 12)]
    code = np_mlp(enc, x, sig, lambda a: a)
    r, h = model.apply(p, jnp.asarray(x, jnp.float32), return_code=True)
    np.testing.assert_allclose(h, code, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r, np_mlp(dec, code, sig, sig), rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match=r"\[batch, 12\]"):
        model.apply(p, jnp.ones((2, 11)))


@pytest.fixture(scope="module")
def digits_binaryish():
    from dlmodels import data

    x, _ = data.load("digits", "train")
    return x[:600]


@pytest.mark.parametrize("method, code", [("rbm", "identity"), ("rbm", "sigmoid"),
                                          ("ae", "identity"), ("dae", "sigmoid")])
def test_unrolled_decoder_starts_from_the_transposed_pretrained_weights(digits_binaryish, method,
                                                                         code):
    x = digits_binaryish
    sizes = (64, 16, 4)
    layers, histories = ae.pretrain(jax.random.PRNGKey(0), x, sizes, method=method, code=code,
                                    epochs=2, batch_size=50)
    assert [l["w"].shape for l in layers] == [(64, 16), (16, 4)] and len(histories) == 2
    params = ae.unfold(layers)
    for i, layer in enumerate(layers):
        np.testing.assert_array_equal(params["encoder"][f"layer_{i}"]["w"], layer["w"])
        np.testing.assert_array_equal(params["encoder"][f"layer_{i}"]["b"], layer["b_hidden"])
        np.testing.assert_array_equal(params["decoder"][f"layer_{1 - i}"]["w"],
                                      np.asarray(layer["w"]).T)
        np.testing.assert_array_equal(params["decoder"][f"layer_{1 - i}"]["b"], layer["b_visible"])
    model = ae.deep_autoencoder(sizes, code=code)
    assert jax.tree.structure(params) == jax.tree.structure(model.init(jax.random.PRNGKey(1)))
    # the unfolded net is the up-pass followed by the down-pass of the stack, in numpy
    up = [(np.asarray(l["w"]), np.asarray(l["b_hidden"])) for l in layers]
    down = [(np.asarray(l["w"]).T, np.asarray(l["b_visible"])) for l in layers[::-1]]
    code_np = np_mlp(up, x[:10], sig, sig if code == "sigmoid" else (lambda a: a))
    r, h = model.apply(params, jnp.asarray(x[:10]), return_code=True)
    np.testing.assert_allclose(h, code_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r, np_mlp(down, code_np, sig, sig), rtol=1e-4, atol=1e-5)
    if method == "rbm" and code == "identity":   # the top RBM's hidden units are linear
        top = rbm.rbm(16, 4, hidden="gaussian")
        h1 = sig(x[:10] @ np.asarray(layers[0]["w"]) + np.asarray(layers[0]["b_hidden"]))
        np.testing.assert_allclose(top.hidden_probs(layers[1], jnp.asarray(h1, jnp.float32)),
                                   code_np, rtol=1e-4, atol=1e-5)


def test_autoencoder_pretraining_lowers_each_layers_reconstruction_error(digits_binaryish):
    x = digits_binaryish
    layers, histories = ae.pretrain(jax.random.PRNGKey(0), x, (64, 32, 16), method="dae",
                                    epochs=8, batch_size=50, level=(0.2, 0.1))
    for h in histories:
        assert h[-1]["eval_reconstruction_error"] < 0.9 * h[0]["eval_reconstruction_error"]


def test_pretrain_and_unfold_reject_bad_input(digits_binaryish):
    x = digits_binaryish
    with pytest.raises(ValueError, match="method"):
        ae.pretrain(jax.random.PRNGKey(0), x, (64, 8), method="pca")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ae.pretrain(jax.random.PRNGKey(0), x * 2.0, (64, 8))
    with pytest.raises(ValueError, match="NaN"):
        ae.pretrain(jax.random.PRNGKey(0), np.full_like(x, np.nan), (64, 8))
    with pytest.raises(ValueError, match=r"\[N, n_0\].*\[\*, 63\]"):
        ae.pretrain(jax.random.PRNGKey(0), x, (63, 8))
    with pytest.raises(ValueError, match="2 values for 1 layers"):
        ae.pretrain(jax.random.PRNGKey(0), x, (64, 8), epochs=(1, 2))
    a = rbm.rbm(6, 4).init(jax.random.PRNGKey(0))
    b = rbm.rbm(5, 2).init(jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="4 outputs but layer 1 expects 5"):
        ae.unfold([a, b])


def test_max_activating_inputs_maximise_the_unit_over_the_unit_ball():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 6)).astype(np.float32)
    x_star = np.asarray(ae.max_activating_inputs(jnp.asarray(w)))
    assert x_star.shape == (6, 20)
    np.testing.assert_allclose(np.linalg.norm(x_star, axis=1), 1.0, rtol=1e-5)
    best = np.einsum("hd,dh->h", x_star, w)                       # w_i . x*_i = ||w_i||
    np.testing.assert_allclose(best, np.linalg.norm(w, axis=0), rtol=1e-5)
    probes = rng.normal(size=(5000, 20))
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert np.all((probes @ w).max(0) <= best + 1e-5)


def test_feature_and_reconstruction_grids_are_written(tmp_path):
    w = np.random.default_rng(0).normal(size=(64, 12))
    path = ae.feature_grid(w, tmp_path / "f.png", image_shape=(8, 8), n_units=12)
    assert (tmp_path / "f.png").stat().st_size > 1000 and str(path).endswith("f.png")
    x = np.random.default_rng(1).random((5, 64))
    ae.reconstruction_grid(x, {"model": x * 0.5}, tmp_path / "r.png", image_shape=(8, 8), n=5)
    assert (tmp_path / "r.png").stat().st_size > 1000
