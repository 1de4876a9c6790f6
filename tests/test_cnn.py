"""Convolutional networks against PyTorch re-implementations with copied weights, hand-computed
parameter counts and spatial sizes, the zero-initialised ResNet's shortcut path, and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlmodels.cnn import VGG16, alexnet, count_params, lenet5, resnet, vgg
from dlmodels.train.objectives import classifier
from dlmodels.validation import ShapeError

pytestmark = pytest.mark.usefixtures("strict_dtypes")

TOL = dict(rtol=1e-4, atol=1e-4)

torch = F = None  # set by the `pytorch` fixture: the references need PyTorch (the bench extra)


@pytest.fixture
def pytorch():
    """Imports PyTorch for the reference networks below, or skips the test without it."""
    global torch, F
    torch = pytest.importorskip("torch", reason='PyTorch references: pip install "dlmodels[bench]"')
    F = torch.nn.functional


def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _random_params(model, seed=0, dtype=np.float32):
    """Params of ``model.init``'s shapes drawn in numpy (He-scaled weights, small random biases):
    no PRNG kernels to compile, and non-zero biases for the references to get right."""
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if len(leaf.shape) == 1:
            return jnp.asarray(0.1 * rng.normal(size=leaf.shape), dtype)
        return jnp.asarray(rng.normal(size=leaf.shape) * np.sqrt(2.0 / np.prod(leaf.shape[:-1])), dtype)

    return jax.tree.map(draw, jax.eval_shape(model.init, jax.random.PRNGKey(0)))


def _jit(model):
    """``model.apply`` compiled once (one XLA program instead of one per primitive)."""
    return jax.jit(model.apply, static_argnames=("train", "return_features"))


# PyTorch references (NCHW), weights copied from the JAX params -----------------------------------

def _t(a):
    return torch.from_numpy(np.array(a, np.float32))


def _conv(h, p, **kw):
    """HWIO -> OIHW."""
    return F.conv2d(h, _t(np.transpose(p["w"], (3, 2, 0, 1))), _t(p["b"]), **kw)


def _linear(h, p):
    return F.linear(h, _t(np.asarray(p["w"]).T), _t(p["b"]))


def _linear_after_flatten(h, p):
    """A dense layer whose rows are in NHWC flatten order (h, w, c), applied to NCHW maps: permute
    the rows into PyTorch's (c, h, w) order."""
    _, c, hh, ww = h.shape
    w = np.asarray(p["w"]).reshape(hh, ww, c, -1).transpose(3, 2, 0, 1).reshape(-1, c * hh * ww)
    return F.linear(torch.flatten(h, 1), _t(w), _t(p["b"]))


def _nchw(x):
    return torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)


def torch_lenet5(params, x, *, activation, pool, padding):
    f = torch.tanh if activation == "tanh" else torch.relu
    pool_fn = (lambda h: F.avg_pool2d(h, 2)) if pool == "avg" else (lambda h: F.max_pool2d(h, 2))
    h = _nchw(x)
    c1 = f(_conv(h, params["c1"], padding=padding))
    h = pool_fn(f(_conv(pool_fn(c1), params["c3"])))
    h = f(_linear_after_flatten(h, params["c5"]))
    h = f(_linear(h, params["f6"]))
    return _linear(h, params["output"]).numpy(), c1.permute(0, 2, 3, 1).numpy()


def torch_alexnet(params, x, *, lrn=True, groups=1, conv1_stride=4, conv1_padding=2):
    # PyTorch's LRN divides alpha by the size: the paper's alpha = 1e-4 is 5e-4 / 5.
    norm = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0) if lrn else (lambda h: h)
    pool = torch.nn.MaxPool2d(3, 2)
    h = _nchw(x)
    h = pool(norm(torch.relu(_conv(h, params["conv1"], stride=conv1_stride, padding=conv1_padding))))
    h = pool(norm(torch.relu(_conv(h, params["conv2"], padding=2, groups=groups))))
    h = torch.relu(_conv(h, params["conv3"], padding=1))
    h = torch.relu(_conv(h, params["conv4"], padding=1, groups=groups))
    h = pool(torch.relu(_conv(h, params["conv5"], padding=1, groups=groups)))
    h = torch.relu(_linear_after_flatten(h, params["fc6"]))
    h = torch.relu(_linear(h, params["fc7"]))
    return _linear(h, params["fc8"]).numpy()


def torch_vgg(params, x, config, n_fc):
    h = _nchw(x)
    for i, block in enumerate(config, 1):
        for j in range(1, len(block) + 1):
            h = torch.relu(_conv(h, params[f"block{i}"][f"conv{j}"], padding=1))
        h = F.max_pool2d(h, 2)
    for j in range(1, n_fc + 1):
        h = torch.relu(_linear_after_flatten(h, params[f"fc{j}"]) if j == 1 else _linear(h, params[f"fc{j}"]))
    h = _linear_after_flatten(h, params["output"]) if n_fc == 0 else _linear(h, params["output"])
    return h.numpy()


def torch_resnet(params, x):
    h = torch.relu(_conv(_nchw(x), params["stem"], padding=1))
    for s in sorted(k for k in params if k.startswith("stage")):
        for b in sorted(params[s]):
            p = params[s][b]
            stride = 2 if s != "stage1" and b == "block1" else 1
            r = torch.relu(_conv(h, p["conv1"], stride=stride, padding=1))
            r = _conv(r, p["conv2"], padding=1)
            h = torch.relu(r + (_conv(h, p["shortcut"], stride=stride) if "shortcut" in p else h))
    return _linear(h.mean((2, 3)), params["head"]).numpy()


# LeNet-5 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation,pool,shape,padding", [
    ("tanh", "avg", (28, 28, 1), 2), ("relu", "max", (28, 28, 1), 2), ("tanh", "max", (32, 32, 1), 0),
    ("relu", "avg", (20, 24, 3), 2)])
@pytest.mark.usefixtures("pytorch")
def test_lenet5_matches_torch(activation, pool, shape, padding):
    model = lenet5(7, input_shape=shape, activation=activation, pool=pool)
    params = _random_params(model)
    x = _images((3, *shape))
    logits, features = _jit(model)(params, x, return_features=True)
    want, c1 = torch_lenet5(params, x, activation=activation, pool=pool, padding=padding)
    assert logits.shape == (3, 7)
    np.testing.assert_allclose(logits, want, **TOL)
    np.testing.assert_allclose(features["c1"], c1, **TOL)


def test_lenet5_shapes_and_params():
    model = lenet5()
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    _, features = jax.eval_shape(lambda p, x: model.apply(p, x, return_features=True), params,
                                 jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
    sizes = {k: v.shape[1:] for k, v in features.items()}
    assert sizes == {"c1": (28, 28, 6), "s2": (14, 14, 6), "c3": (10, 10, 16), "s4": (5, 5, 16),
                     "c5": (120,), "f6": (84,)}
    # C1 156, C3 2416, C5 (a 5x5x16 -> 120 "convolution") 48120, F6 10164, output 850.
    assert count_params(params) == (25 * 6 + 6) + (25 * 6 * 16 + 16) + (400 * 120 + 120) \
        + (120 * 84 + 84) + (84 * 10 + 10) == 61706
    assert params["c5"]["w"].shape == (400, 120)


# AlexNet -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,shape", [
    (dict(width=0.125), (224, 224, 3)),
    (dict(width=0.125, groups=2), (64, 64, 3)),
    (dict(width=0.25, lrn=False), (64, 64, 3)),
    (dict(width=0.125, conv1_kernel=5, conv1_stride=1, conv1_padding=2), (32, 32, 3))])
@pytest.mark.usefixtures("pytorch")
def test_alexnet_matches_torch(kwargs, shape):
    model = alexnet(10, input_shape=shape, **kwargs)
    params = _random_params(model, seed=1)
    x = _images((2, *shape), seed=1)
    torch_kwargs = {k: v for k, v in kwargs.items() if k in ("lrn", "groups")}
    if "conv1_stride" in kwargs:
        torch_kwargs.update(conv1_stride=kwargs["conv1_stride"], conv1_padding=kwargs["conv1_padding"])
    want = torch_alexnet(params, x, **torch_kwargs)
    got = _jit(model)(params, x)
    assert got.shape == (2, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_alexnet_224_shapes_sizes_and_parameter_count():
    model = alexnet()
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    logits, features = jax.eval_shape(lambda p, x: model.apply(p, x, return_features=True), params,
                                      jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
    assert logits.shape == (2, 1000)
    sizes = {k: v.shape[1:] for k, v in features.items()}
    assert sizes["conv1"] == (55, 55, 96) and sizes["pool1"] == (27, 27, 96)
    assert sizes["conv2"] == (27, 27, 256) and sizes["pool2"] == (13, 13, 256)
    assert sizes["conv3"] == (13, 13, 384) and sizes["conv5"] == (13, 13, 256)
    assert sizes["pool5"] == (6, 6, 256) and sizes["fc6"] == (4096,) and sizes["fc7"] == (4096,)

    def conv(k, c_in, c_out, groups=1):
        return k * k * (c_in // groups) * c_out + c_out

    layers = [conv(11, 3, 96), conv(5, 96, 256), conv(3, 256, 384), conv(3, 384, 384),
              conv(3, 384, 256), 6 * 6 * 256 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 1000 + 1000]
    assert layers == [34944, 614656, 885120, 1327488, 884992, 37752832, 16781312, 4097000]
    assert count_params(params) == sum(layers) == 62_378_344
    two_towers = jax.eval_shape(alexnet(groups=2).init, jax.random.PRNGKey(0))
    assert count_params(two_towers) == sum(layers) - sum(
        conv(k, c, o) - conv(k, c, o, 2) for k, c, o in [(5, 96, 256), (3, 384, 384), (3, 384, 256)])
    assert count_params(two_towers) == 60_965_224


def test_alexnet_input_too_small_and_bad_arguments():
    with pytest.raises(ValueError, match="too small.*pool5"):
        alexnet(input_shape=(32, 32, 3))
    for kwargs in (dict(width=0), dict(groups=3), dict(dropout_rate=1.0), dict(conv1_padding=-1),
                   dict(input_shape=(224, 224)), dict(n_classes=0)):
        with pytest.raises(ValueError):
            alexnet(**kwargs)


# VGG and ResNet ------------------------------------------------------------------------------------

def test_vgg_shapes_and_counts():
    model = vgg()
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    out = jax.eval_shape(model.apply, params, jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
    assert out.shape == (2, 1000)
    assert count_params(params) == 132_863_336                  # VGG-11 ("A")
    assert count_params(jax.eval_shape(vgg(VGG16).init, jax.random.PRNGKey(0))) == 138_357_544
    small = vgg(((8,), (16, 16)), 10, input_shape=(28, 28, 1), fc=(32,))
    params = jax.eval_shape(small.init, jax.random.PRNGKey(0))
    logits, features = jax.eval_shape(lambda p, x: small.apply(p, x, return_features=True), params,
                                      jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32))
    assert logits.shape == (3, 10) and features["block1_conv1"].shape == (3, 28, 28, 8)
    assert features["block2_pool"].shape == (3, 7, 7, 16) and params["fc1"]["w"].shape == (7 * 7 * 16, 32)
    with pytest.raises(ValueError, match="at least 8"):
        vgg(((8,), (8,), (8,)), 10, input_shape=(7, 9, 1))
    with pytest.raises(NotImplementedError, match="batch_norm"):
        vgg(batch_norm=True)
    with pytest.raises(ValueError, match="config"):
        vgg(((8,), ()), 10, input_shape=(8, 8, 1))


@pytest.mark.parametrize("fc", [(16, 12), ()])
@pytest.mark.usefixtures("pytorch")
def test_vgg_matches_torch(fc):
    config = ((4,), (6, 8))
    model = vgg(config, 5, input_shape=(13, 12, 2), fc=fc)
    params = _random_params(model, seed=2)
    x = _images((2, 13, 12, 2), seed=2)
    np.testing.assert_allclose(_jit(model)(params, x), torch_vgg(params, x, config, len(fc)), **TOL)


@pytest.mark.usefixtures("pytorch")
def test_resnet_shapes_and_torch():
    model = resnet()
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    logits, features = jax.eval_shape(lambda p, x: model.apply(p, x, return_features=True), params,
                                      jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    assert logits.shape == (2, 10) and features["stem"].shape == (2, 32, 32, 16)
    assert features["stage2_block1"].shape == (2, 16, 16, 32)
    assert features["stage3_block2"].shape == (2, 8, 8, 64) and features["pool"].shape == (2, 64)
    assert "shortcut" in params["stage2"]["block1"] and "shortcut" not in params["stage2"]["block2"]
    assert "shortcut" not in params["stage1"]["block1"]
    # Odd sizes: stride-2 maps have ceil(H / 2) pixels; a width change alone gets a 1x1 projection.
    small = resnet((1, 2, 1), (3, 4, 4), 5, input_shape=(9, 7, 2), zero_init_residual=False)
    params = _random_params(small, seed=3)
    x = _images((2, 9, 7, 2), seed=3)
    np.testing.assert_allclose(_jit(small)(params, x), torch_resnet(params, x), **TOL)
    first = resnet((1, 1), (2, 3), 2, input_shape=(4, 4, 1))
    assert "shortcut" not in jax.eval_shape(first.init, jax.random.PRNGKey(0))["stage1"]["block1"]
    widen = jax.eval_shape(resnet((1,), (3,), 2, input_shape=(4, 4, 1)).init, jax.random.PRNGKey(0))
    assert "shortcut" not in widen["stage1"]["block1"]  # the stem already has widths[0] channels
    with pytest.raises(ValueError, match="one entry per stage"):
        resnet((2, 2), (16, 32, 64))


@pytest.mark.usefixtures("pytorch")
def test_resnet_zero_init_is_its_shortcut_path():
    # One width: few distinct kernel shapes, so the eager init compiles few PRNG kernels.
    model = resnet((2, 1, 1), (4, 4, 4), 3, input_shape=(10, 10, 2))
    params = model.init(jax.random.PRNGKey(4))
    for stage in ("stage1", "stage2", "stage3"):
        for block in params[stage].values():
            assert not np.any(block["conv2"]["w"]) and not np.any(block["conv2"]["b"])
    x = _images((3, 10, 10, 2), seed=4)
    # By hand: stem, then every identity block is relu(h) = h (h >= 0), every projection block is
    # relu(1x1 stride-2 conv) = relu(h[:, ::2, ::2] W + b); then the mean and the head.
    h = torch.relu(_conv(_nchw(x), params["stem"], padding=1)).permute(0, 2, 3, 1).numpy()
    for stage in ("stage2", "stage3"):
        p = params[stage]["block1"]["shortcut"]
        h = np.maximum(h[:, ::2, ::2] @ np.asarray(p["w"][0, 0]) + np.asarray(p["b"]), 0.0)
    want = h.mean((1, 2)) @ np.asarray(params["head"]["w"]) + np.asarray(params["head"]["b"])
    assert h.shape == (3, 3, 3, 4)
    np.testing.assert_allclose(_jit(model)(params, x), want, rtol=1e-5, atol=1e-5)


# Gradients (float64) ----------------------------------------------------------------------------

def test_gradients_float64():
    y = jnp.array([0, 2])
    with jax.enable_x64(True):
        for model, shape in [(lenet5(3, input_shape=(12, 12, 1)), (2, 12, 12, 1)),
                             (resnet((1, 1), (2, 3), 3, input_shape=(6, 6, 2),
                                     zero_init_residual=False), (2, 6, 6, 2))]:
            params = _random_params(model, dtype=np.float64)
            x = jnp.asarray(np.random.default_rng(1).uniform(size=shape))

            @jax.jit
            def loss(p, x):
                logits = model.apply(p, x)
                return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[jnp.arange(2), y])

            check_grads(loss, (params, x), order=1, modes=("rev",))


# Dropout, input checks, the trainer's objective --------------------------------------------------

@pytest.mark.parametrize("name", ["alexnet", "lenet5"])
def test_dropout(name):
    if name == "alexnet":
        model = alexnet(10, input_shape=(64, 64, 3), width=0.125, dropout_rate=0.5)
        x = _images((2, 64, 64, 3))
    else:
        model = lenet5(dropout_rate=0.3)
        x = _images((2, 28, 28, 1))
    params = _random_params(model)
    apply = _jit(model)
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    eval_out = apply(params, x)
    np.testing.assert_array_equal(eval_out, apply(params, x))
    np.testing.assert_array_equal(eval_out, apply(params, x, key=k1))  # key unused in eval
    train1 = apply(params, x, key=k1, train=True)
    assert not np.allclose(train1, eval_out)
    np.testing.assert_array_equal(train1, apply(params, x, key=k1, train=True))
    assert not np.allclose(train1, apply(params, x, key=k2, train=True))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.apply(params, x, train=True)
    # The features are taken before dropout: the same in training and evaluation mode.
    _, f_train = apply(params, x, key=k1, train=True, return_features=True)
    _, f_eval = apply(params, x, return_features=True)
    first = "conv1" if name == "alexnet" else "c1"
    np.testing.assert_array_equal(f_train[first], f_eval[first])


def test_no_dropout_needs_no_key():
    model = lenet5()
    params = _random_params(model)
    x = _images((2, 28, 28, 1))
    apply = _jit(model)
    np.testing.assert_array_equal(apply(params, x, train=True), apply(params, x))


@pytest.mark.parametrize("factory,shape", [
    (lambda: lenet5(), (28, 28, 1)),
    (lambda: alexnet(10, input_shape=(64, 64, 3), width=0.125), (64, 64, 3)),
    (lambda: vgg(((4,), (8,)), 10, input_shape=(16, 16, 3), fc=(8,)), (16, 16, 3)),
    (lambda: resnet((1, 1), (4, 8), 10, input_shape=(16, 16, 3)), (16, 16, 3))])
def test_wrong_input_shape_and_trainer_objective(factory, shape):
    model = factory()
    params = _random_params(model)
    h, w, c = shape
    for bad in [(2, h, w, c + 1), (2, h + 1, w, c), (h, w, c), (2, c, h, w)]:
        with pytest.raises(ShapeError, match=rf"expected input x of shape \[N, H, W, C\] = "
                                             rf"\[N, {h}, {w}, {c}\], got \({bad[0]}, {bad[1]}"):
            model.apply(params, jnp.zeros(bad))
    loss_fn, eval_fn = classifier(model.apply)
    x, y = _images((4, *shape)), jnp.array([0, 1, 2, 3])
    loss, grads = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, (x, y), jax.random.PRNGKey(1))[0]))(params)
    assert np.isfinite(loss) and jax.tree.structure(grads) == jax.tree.structure(params)
    assert jax.jit(eval_fn)(params, (x, y))["accuracy"].shape == (4,)


def test_lenet5_bad_arguments():
    for kwargs in (dict(pool="sum"), dict(activation="swish"), dict(dropout_rate=-0.1),
                   dict(c1_padding=-1), dict(n_classes=2.5)):
        with pytest.raises(ValueError):
            lenet5(**kwargs)
    with pytest.raises(ValueError, match="too small"):
        lenet5(input_shape=(11, 28, 1))
