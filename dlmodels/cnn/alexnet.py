"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks"), as one tower."""

from __future__ import annotations

import jax

from dlmodels.cnn import shapes
from dlmodels.model import Model, init_layers
from dlmodels.nn import conv2d_layer, dense, dropout, flatten, local_response_norm, max_pool, relu

WHERE = "alexnet"

# The paper's layer sizes (both GPUs' halves together).
CONV_CHANNELS = (96, 256, 384, 384, 256)
FC_SIZES = (4096, 4096)


def _lrn(x):
    # Section 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75; alpha not divided by n.
    return local_response_norm(x, size=5, k=2.0, alpha=1e-4, beta=0.75)


def _pool(x):
    return max_pool(x, 3, 2)  # overlapping pooling, section 3.4: z = 3, s = 2


def alexnet(n_classes: int = 1000, *, input_shape=(224, 224, 3), width: float = 1.0,
            lrn: bool = True, dropout_rate: float = 0.5, groups: int = 1, conv1_kernel: int = 11,
            conv1_stride: int = 4, conv1_padding: int = 2) -> Model:
    """AlexNet: five convolutional and three fully connected layers, ReLU everywhere.

    ``conv1`` 96@11x11 stride 4 pad 2, ReLU, LRN, max pool 3x3 stride 2  (N, 55, 55, 96) -> 27
    ``conv2`` 256@5x5 pad 2, ReLU, LRN, pool                              (N, 27, 27, 256) -> 13
    ``conv3`` 384@3x3 pad 1, ReLU; ``conv4`` 384@3x3 pad 1, ReLU          (N, 13, 13, 384)
    ``conv5`` 256@3x3 pad 1, ReLU, pool                                   (N, 13, 13, 256) -> 6
    ``fc6`` 4096, ReLU, dropout; ``fc7`` 4096, ReLU, dropout; ``fc8`` n_classes logits.
    LRN: ``b^i = a^i / (k + alpha sum_{j = i-2}^{i+2} (a^j)^2)^beta``, ``k = 2, alpha = 1e-4,
    beta = 0.75`` (section 3.3). Dropout on the outputs of fc6 and fc7 (section 4.2).

    Padding of conv1: 11x11 stride-4 windows over a 224x224 input give ``floor((224 + 2 p - 11) /
    4) + 1`` positions, 54 for ``p = 0``; the paper's 55x55 maps need ``p = 2`` (55, the last
    input row and column unused; as torchvision does), or a 227x227 input with ``p = 0`` (Caffe).
    The spatial sizes are then 55 -> 27 -> 13 -> 13 -> 6 and fc6 sees 6 * 6 * 256 = 9216 inputs.

    Single tower: the paper split every layer between two GPUs; ``groups=2`` splits conv2, conv4
    and conv5 into two halves that see only their own half of the previous layer's maps (the
    paper's cross-GPU connections: conv3 and the fc layers see everything). With ``groups=1`` and
    1000 classes there are 62,378,344 parameters (the paper's two-tower layout, ``groups=2``,
    60,965,224; torchvision's variant, 64-192-384-256-256 channels, 61,100,840).

    ``width``: multiplies every channel and fc size (rounded, channels to a multiple of
    ``groups``); ``width=0.125`` gives 12-32-48-48-32 channels and 512-unit fc layers. Other input
    sizes work as long as every map keeps at least 3 pixels for the 3x3 pools: 64x64 (a reduced
    ImageNet) gives 15 -> 7 -> 3 -> 1 with the default conv1; for smaller inputs pass a smaller
    ``conv1_kernel``/``conv1_stride``/``conv1_padding`` (e.g. 32x32 with 5, 1, 2 gives
    32 -> 15 -> 7 -> 3). ``lrn=False`` drops both normalisation layers.

    Init: He normal weights and zero biases (not the paper's N(0, 0.01^2) with unit biases in
    conv2, conv4, conv5 and the fc layers; fc8 is Glorot uniform).

    Params: ``{"conv1": {"w": [11, 11, C, 96], "b": [96]}, ..., "conv5": {...}, "fc6": {"w":
    [h5 w5 c5, 4096], "b"}, "fc7": {...}, "fc8": {"w": [4096, K], "b": [K]}}`` (fc6 rows in NHWC
    flatten order over (h, w, c)).

    ``apply(params, x, *, key=None, train=False, return_features=False)``: ``x [N, H, W, C] ->
    logits [N, n_classes]``; with ``return_features=True`` it returns ``(logits, features)``,
    ``features = {"conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5",
    "pool5", "fc6", "fc7"}`` (conv/fc outputs after their ReLU, before LRN or dropout; no norm
    entries when ``lrn=False``).
    """
    n_classes = shapes.positive_int(n_classes, "n_classes", WHERE)
    shape = shapes.image_shape(input_shape, WHERE)  # (H, W, C)
    height, width_px, channels = shape
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0.0 < width < float("inf"):
        raise ValueError(f"{WHERE}: width must be a positive finite number, got {width!r}")
    dropout_rate = shapes.rate(dropout_rate, "dropout_rate", WHERE)
    if groups not in (1, 2):
        raise ValueError(f"{WHERE}: groups must be 1 (one tower) or 2 (the paper's two-GPU split), "
                         f"got {groups!r}")
    k1 = shapes.positive_int(conv1_kernel, "conv1_kernel", WHERE)
    s1 = shapes.positive_int(conv1_stride, "conv1_stride", WHERE)
    if not (isinstance(conv1_padding, int) and not isinstance(conv1_padding, bool)
            and conv1_padding >= 0):
        raise ValueError(f"{WHERE}: conv1_padding must be an int >= 0, got {conv1_padding!r}")
    p1 = conv1_padding

    def plan(size):  # spatial sizes along one axis; the 3x3 stride-2 pools need >= 3 pixels
        conv1 = shapes.conv_size(size, k1, s1, p1)
        pool1 = shapes.conv_size(conv1, 3, 2)
        pool2 = shapes.conv_size(pool1, 3, 2)  # conv2..conv5 keep the size (SAME padding)
        return {"conv1": conv1, "pool1": pool1, "pool2": pool2, "pool5": shapes.conv_size(pool2, 3, 2)}

    plan_h, plan_w = plan(height), plan(width_px)
    shapes.check_sizes({f"{k} (height)": v for k, v in plan_h.items()}, input_shape, WHERE)
    shapes.check_sizes({f"{k} (width)": v for k, v in plan_w.items()}, input_shape, WHERE)

    c1, c2, c3, c4, c5 = (shapes.scaled(c, width, groups) for c in CONV_CHANNELS)
    f6, f7 = (shapes.scaled(n, width) for n in FC_SIZES)
    layers = {
        "conv1": conv2d_layer(k1, k1, channels, c1, stride=s1, padding=p1),
        "conv2": conv2d_layer(5, 5, c1, c2, padding=2, groups=groups),
        "conv3": conv2d_layer(3, 3, c2, c3, padding=1),
        "conv4": conv2d_layer(3, 3, c3, c4, padding=1, groups=groups),
        "conv5": conv2d_layer(3, 3, c4, c5, padding=1, groups=groups),
        "fc6": dense(plan_h["pool5"] * plan_w["pool5"] * c5, f6, w_init="he_normal"),
        "fc7": dense(f6, f7, w_init="he_normal"),
        "fc8": dense(f7, n_classes),
    }

    def apply(params: dict, x: jax.Array, *, key: jax.Array | None = None, train: bool = False,
              return_features: bool = False):
        shapes.check_input(x, shape, WHERE)
        drop6, drop7 = shapes.dropout_keys(key, train, dropout_rate, 2, WHERE)
        features = {}

        def conv(name, h):
            h = relu(layers[name].apply(params[name], h))
            features[name] = h
            return h

        def norm(name, h):
            if lrn:
                h = _lrn(h)
                features[name] = h
            return h

        h = conv("conv1", x)                                # (N, 55, 55, 96)
        h = features["pool1"] = _pool(norm("norm1", h))     # (N, 27, 27, 96)
        h = conv("conv2", h)                                # (N, 27, 27, 256)
        h = features["pool2"] = _pool(norm("norm2", h))     # (N, 13, 13, 256)
        h = conv("conv3", h)                                # (N, 13, 13, 384)
        h = conv("conv4", h)                                # (N, 13, 13, 384)
        h = conv("conv5", h)                                # (N, 13, 13, 256)
        h = features["pool5"] = _pool(h)                    # (N, 6, 6, 256)
        h = features["fc6"] = relu(layers["fc6"].apply(params["fc6"], flatten(h)))  # (N, 4096)
        h = dropout(h, dropout_rate, key=drop6, train=train)
        h = features["fc7"] = relu(layers["fc7"].apply(params["fc7"], h))           # (N, 4096)
        h = dropout(h, dropout_rate, key=drop7, train=train)
        logits = layers["fc8"].apply(params["fc8"], h)      # (N, n_classes)
        return (logits, features) if return_features else logits

    return Model(init_layers(layers), apply)
