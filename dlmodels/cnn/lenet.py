"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", section II.B)."""

from __future__ import annotations

import jax

from dlmodels.cnn import shapes
from dlmodels.model import Model, init_layers
from dlmodels.nn import activations, avg_pool, conv2d_layer, dense, dropout, flatten, max_pool

WHERE = "lenet5"


def lenet5(n_classes: int = 10, *, input_shape=(28, 28, 1), activation: str = "tanh",
           pool: str = "avg", dropout_rate: float = 0.0, c1_padding: int | None = None) -> Model:
    """LeNet-5: C1 6@5x5 -> S2 2x2 pool -> C3 16@5x5 -> S4 2x2 pool -> C5 120 -> F6 84 -> output.

    ``c1 = f(conv(x, W1) + b1)`` [N, 28, 28, 6]; ``s2 = pool(c1)`` [N, 14, 14, 6];
    ``c3 = f(conv(s2, W3) + b3)`` [N, 10, 10, 16]; ``s4 = pool(c3)`` [N, 5, 5, 16];
    ``c5 = f(flatten(s4) W5 + b5)`` [N, 120]; ``f6 = f(c5 W6 + b6)`` [N, 84];
    logits ``= f6 W7 + b7`` [N, n_classes] (sizes for a 28x28 input; the paper's 32x32 input
    without padding gives the same maps). The paper's C5 is a 5x5 convolution over the 5x5 S4 maps,
    i.e. a dense layer on the flattened S4 map, which is how it is stored here; for other input
    sizes C5 stays dense over the whole S4 map.

    ``c1_padding``: zero padding of C1 on each side. ``None`` (default) pads by 2 when the input is
    smaller than the paper's 32x32, so a 28x28 MNIST digit gives a 28x28 C1 map as the 32x32
    field (the digit centred with a margin) did in the paper, and by 0 otherwise.

    Deviations from the 1998 paper: C3 connects to all six S2 maps (the paper's Table I connection
    table used 60 of the 96 map pairs to break symmetry and save parameters); the output layer is
    affine logits for a softmax / cross-entropy loss instead of Euclidean RBF units with fixed
    +-1 codes; S2 and S4 are plain average (or max) pooling without the paper's trainable coefficient,
    bias and sigmoid; ``f`` is ``tanh`` (or ReLU), not the scaled ``1.7159 tanh(2a/3)``; weights use
    Glorot uniform (He normal for ReLU) instead of U(-2.4/F_in, 2.4/F_in).
    ``dropout_rate > 0``: inverted dropout on the C5 and F6 outputs in training (not in the paper).

    Params: ``{"c1": {"w": [5, 5, C, 6], "b": [6]}, "c3": {"w": [5, 5, 6, 16], "b": [16]},
    "c5": {"w": [h4 w4 16, 120], "b"}, "f6": {"w": [120, 84], "b"}, "output": {"w": [84, K], "b"}}``
    (``h4 w4 16`` in NHWC flatten order, row-major over (h, w, c); 400 for 28x28 input).

    ``apply(params, x, *, key=None, train=False, return_features=False)``: ``x [N, H, W, C] ->
    logits [N, n_classes]``; with ``return_features=True`` it returns ``(logits, features)``,
    ``features = {"c1", "s2", "c3", "s4", "c5", "f6"}``, each layer's output (after its activation,
    before dropout).
    """
    n_classes = shapes.positive_int(n_classes, "n_classes", WHERE)
    shape = shapes.image_shape(input_shape, WHERE)  # (H, W, C)
    height, width, channels = shape
    f = activations.get(activation)
    if pool not in ("avg", "max"):
        raise ValueError(f"{WHERE}: pool must be 'avg' or 'max', got {pool!r}")
    pool_fn = avg_pool if pool == "avg" else max_pool
    dropout_rate = shapes.rate(dropout_rate, "dropout_rate", WHERE)
    if c1_padding is None:
        c1_padding = 2 if min(height, width) < 32 else 0
    elif not (isinstance(c1_padding, int) and not isinstance(c1_padding, bool) and c1_padding >= 0):
        raise ValueError(f"{WHERE}: c1_padding must be None or an int >= 0, got {c1_padding!r}")

    def plan(size):  # spatial sizes C1, S2, C3, S4 along one axis
        c1 = shapes.conv_size(size, 5, 1, c1_padding)
        s2 = c1 // 2
        c3 = shapes.conv_size(s2, 5)
        return {"c1": c1, "s2": s2, "c3": c3, "s4": c3 // 2}

    plan_h, plan_w = plan(height), plan(width)
    shapes.check_sizes({f"{k} (height)": v for k, v in plan_h.items()}, input_shape, WHERE)
    shapes.check_sizes({f"{k} (width)": v for k, v in plan_w.items()}, input_shape, WHERE)

    w_init = "he_normal" if activation == "relu" else "glorot_uniform"
    layers = {
        "c1": conv2d_layer(5, 5, channels, 6, padding=c1_padding, w_init=w_init),
        "c3": conv2d_layer(5, 5, 6, 16, w_init=w_init),
        "c5": dense(plan_h["s4"] * plan_w["s4"] * 16, 120, w_init=w_init),
        "f6": dense(120, 84, w_init=w_init),
        "output": dense(84, n_classes),
    }

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_features: bool = False):
        shapes.check_input(x, shape, WHERE)
        drop_c5, drop_f6 = shapes.dropout_keys(key, train, dropout_rate, 2, WHERE)
        c1 = f(layers["c1"].apply(params["c1"], x))                  # (N, 28, 28, 6)
        s2 = pool_fn(c1, 2)                                          # (N, 14, 14, 6)
        c3 = f(layers["c3"].apply(params["c3"], s2))                 # (N, 10, 10, 16)
        s4 = pool_fn(c3, 2)                                          # (N, 5, 5, 16)
        c5 = f(layers["c5"].apply(params["c5"], flatten(s4)))        # (N, 120)
        h = dropout(c5, dropout_rate, key=drop_c5, train=train)
        f6 = f(layers["f6"].apply(params["f6"], h))                  # (N, 84)
        h = dropout(f6, dropout_rate, key=drop_f6, train=train)
        logits = layers["output"].apply(params["output"], h)         # (N, n_classes)
        if return_features:
            return logits, {"c1": c1, "s2": s2, "c3": c3, "s4": s4, "c5": c5, "f6": f6}
        return logits

    return Model(init_layers(layers), apply)
