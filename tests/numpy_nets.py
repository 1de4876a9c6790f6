"""Forward passes written in plain numpy (float64), for experiment tests that recompute a saved
model's accuracy without the library: NHWC cross-correlation, 2x2 max pooling, LeNet-5, convnet."""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    """``y[n, i, j, o] = sum_{m, l, c} x_pad[n, i + m, j + l, c] w[m, l, c, o] + b[o]`` (stride 1);
    ``pad = (top/left, bottom/right)`` zeros on each spatial axis."""
    kh, kw = w.shape[:2]
    x = np.pad(x, ((0, 0), pad, pad, (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N,H',W',C,kh,kw
    return np.einsum("nijcml,mlco->nijo", windows, w) + b


def same_padding(k: int) -> tuple[int, int]:
    """TensorFlow's SAME split for stride 1: the extra zero at the bottom/right."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def max_pool2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def relu(z):
    return np.maximum(z, 0.0)


def _np(params):
    return {k: {n: np.asarray(v, np.float64) for n, v in layer.items()} for k, layer in params.items()}


def lenet5_relu_max(params: dict, x: np.ndarray) -> np.ndarray:
    """LeNet-5 with ReLU and max pooling, C1 padded by 2 (28x28 input): logits ``[N, 10]``."""
    p, h = _np(params), np.asarray(x, np.float64)
    h = max_pool2(relu(conv2d(h, p["c1"]["w"], p["c1"]["b"], (2, 2))))
    h = max_pool2(relu(conv2d(h, p["c3"]["w"], p["c3"]["b"], (0, 0))))
    h = h.reshape(len(h), -1)                                   # row-major over (h, w, c)
    h = relu(h @ p["c5"]["w"] + p["c5"]["b"])
    h = relu(h @ p["f6"]["w"] + p["f6"]["b"])
    return h @ p["output"]["w"] + p["output"]["b"]


def convnet_max(params: dict, x: np.ndarray) -> np.ndarray:
    """``convnet`` with SAME convolutions, ReLU and 2x2 max pooling after each, then a ReLU fc layer
    and the logits (no dropout at test time)."""
    p, h = _np(params), np.asarray(x, np.float64)
    n_conv = sum(k.startswith("conv_") for k in p)
    for i in range(n_conv):
        w = p[f"conv_{i}"]["w"]
        h = max_pool2(relu(conv2d(h, w, p[f"conv_{i}"]["b"], same_padding(w.shape[0]))))
    h = relu(h.reshape(len(h), -1) @ p["fc"]["w"] + p["fc"]["b"])
    return h @ p["output"]["w"] + p["output"]["b"]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy."""
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_last_step_classifier(params: dict, xs: np.ndarray) -> np.ndarray:
    """One LSTM layer (Hochreiter & Schmidhuber 1997 with a forget gate, Gers et al. 2000) over
    ``xs [N, T, D]`` from zero state, gates ``[i, f, g, o]`` of ``x W_x + h W_h + b``,
    ``c = f c + i g``, ``h = o tanh(c)``, then logits ``h_T W + b``: ``[N, K]``."""
    cell = {k: np.asarray(v, np.float64) for k, v in params["rnn"]["layer_0"].items()}
    n, hidden = len(xs), cell["w_h"].shape[0]
    h, c = np.zeros((n, hidden)), np.zeros((n, hidden))
    for t in range(xs.shape[1]):
        z = np.asarray(xs[:, t], np.float64) @ cell["w_x"] + h @ cell["w_h"] + cell["b"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    head = {k: np.asarray(v, np.float64) for k, v in params["head"].items()}
    return h @ head["w"] + head["b"]
