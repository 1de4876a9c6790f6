"""dlmodels.cnn.convnet against the same network written in PyTorch with copied weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlmodels.cnn import convnet
from dlmodels.validation import ShapeError


def _torch_forward(params, x, channels, pool):
    torch = pytest.importorskip("torch", reason='PyTorch reference: pip install "dlmodels[bench]"')
    F = torch.nn.functional
    h = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)                    # NCHW
    for i in range(len(channels)):
        w = torch.from_numpy(np.array(params[f"conv_{i}"]["w"])).permute(3, 2, 0, 1)  # OIHW
        b = torch.from_numpy(np.array(params[f"conv_{i}"]["b"]))
        h = F.relu(F.conv2d(h, w, b, padding="same"))
        if pool == "max":
            h = F.max_pool2d(h, 2)
        elif pool == "avg":
            h = F.avg_pool2d(h, 2)
    h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)                         # NHWC flatten
    h = F.relu(h @ torch.from_numpy(np.array(params["fc"]["w"])) + torch.from_numpy(np.array(params["fc"]["b"])))
    return h @ torch.from_numpy(np.array(params["output"]["w"])) + torch.from_numpy(np.array(params["output"]["b"]))


@pytest.mark.parametrize("pool", ["max", "avg", None])
def test_convnet_matches_torch(pool):
    channels = (3, 5)
    model = convnet(channels, 4, input_shape=(12, 12, 2), kernel=3, pool=pool, hidden=7)
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (3, 12, 12, 2))
    ours = model.apply(params, x)
    assert ours.shape == (3, 4)
    np.testing.assert_allclose(ours, _torch_forward(params, x, channels, pool).numpy(), atol=1e-5)
    assert jax.eval_shape(model.apply, params, x).shape == (3, 4)


def test_convnet_features_dropout_and_errors():
    model = convnet((4,), 10, input_shape=(8, 8, 1), hidden=6, dropout_rate=0.5)
    params = model.init(jax.random.PRNGKey(0))
    x = jnp.ones((2, 8, 8, 1))
    logits, features = model.apply(params, x, return_features=True)
    assert features["conv_0"].shape == (2, 4, 4, 4) and features["fc"].shape == (2, 6)
    a = model.apply(params, x, key=jax.random.PRNGKey(1), train=True)
    assert not np.allclose(a, logits)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.apply(params, x, train=True)
    with pytest.raises(ShapeError, match=r"convnet: .*\[N, 8, 8, 1\].*got \(2, 9, 8, 1\)"):
        model.apply(params, jnp.ones((2, 9, 8, 1)))
    with pytest.raises(ValueError, match="pool"):
        convnet((4,), pool="median")
    with pytest.raises(ValueError, match="too small"):
        convnet((4, 4, 4), input_shape=(4, 4, 1))
