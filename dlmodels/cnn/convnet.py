"""A plain convolutional classifier: [conv -> ReLU -> (pool)] x L -> dense -> ReLU -> dense.

The "2 Conv + pooling" network of the Fashion-MNIST benchmark table (TensorFlow's MNIST tutorial
CNN: 32@5x5 and 64@5x5 'SAME' convolutions, 2x2 max pooling after each, a 1024-unit dense layer
with dropout) is ``convnet((32, 64), kernel=5, hidden=1024, dropout_rate=0.4)``; with
``pool=None`` the same stack has no pooling, for studying the local translation invariance that
pooling buys.
"""

from __future__ import annotations

import jax

from dlmodels.cnn import shapes
from dlmodels.model import Model, init_layers
from dlmodels.nn import avg_pool, conv2d_layer, dense, dropout, flatten, max_pool

WHERE = "convnet"


def convnet(channels=(32, 64), n_classes: int = 10, *, input_shape=(28, 28, 1), kernel: int = 5,
            pool: str | None = "max", pool_size: int = 2, hidden: int = 1024,
            dropout_rate: float = 0.0) -> Model:
    """``h_l = pool(relu(conv_SAME(h_{l-1}, W_l) + b_l))`` for each of ``channels``, then
    ``f = relu(flatten(h_L) W_f + b_f)`` [N, hidden] and logits ``f W_o + b_o`` [N, n_classes].

    ``pool``: ``"max"``, ``"avg"`` (``pool_size`` x ``pool_size``, stride ``pool_size``) or ``None``
    (no pooling: the dense layer sees every position). ``dropout_rate``: inverted dropout on ``f``
    in training. Params: ``{"conv_l": {"w": [k, k, C_{l-1}, C_l], "b"}, "fc": {"w", "b"},
    "output": {"w", "b"}}``. ``apply(params, x, *, key=None, train=False, return_features=False)``:
    ``x [N, H, W, C] -> [N, n_classes]``; features ``{"conv_0", ..., "fc"}`` (after ReLU/pooling).
    """
    channels = shapes.positive_ints(channels, "channels", WHERE)
    n_classes = shapes.positive_int(n_classes, "n_classes", WHERE)
    shape = shapes.image_shape(input_shape, WHERE)  # (H, W, C)
    height, width, c_in = shape
    kernel = shapes.positive_int(kernel, "kernel", WHERE)
    hidden = shapes.positive_int(hidden, "hidden", WHERE)
    dropout_rate = shapes.rate(dropout_rate, "dropout_rate", WHERE)
    if pool not in ("max", "avg", None):
        raise ValueError(f"{WHERE}: pool must be 'max', 'avg' or None, got {pool!r}")
    pool_fn = {"max": max_pool, "avg": avg_pool, None: None}[pool]
    shrink = pool_size ** len(channels) if pool else 1
    h_out, w_out = height // shrink, width // shrink
    shapes.check_sizes({"last map (height)": h_out, "last map (width)": w_out}, input_shape, WHERE)

    layers = {}
    for i, (a, b) in enumerate(zip((c_in, *channels[:-1]), channels)):
        layers[f"conv_{i}"] = conv2d_layer(kernel, kernel, a, b, padding="SAME")
    layers["fc"] = dense(h_out * w_out * channels[-1], hidden, w_init="he_normal")
    layers["output"] = dense(hidden, n_classes)

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_features: bool = False):
        shapes.check_input(x, shape, WHERE)
        (drop_fc,) = shapes.dropout_keys(key, train, dropout_rate, 1, WHERE)
        features, h = {}, x
        for i in range(len(channels)):
            h = jax.nn.relu(layers[f"conv_{i}"].apply(params[f"conv_{i}"], h))
            if pool_fn is not None:
                h = pool_fn(h, pool_size)
            features[f"conv_{i}"] = h
        h = jax.nn.relu(layers["fc"].apply(params["fc"], flatten(h)))        # (N, hidden)
        features["fc"] = h
        h = dropout(h, dropout_rate, key=drop_fc, train=train)
        logits = layers["output"].apply(params["output"], h)                 # (N, n_classes)
        return (logits, features) if return_features else logits

    return Model(init_layers(layers), apply)
