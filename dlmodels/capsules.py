"""Capsule networks (Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules").

A capsule is a vector whose length is the probability that an entity is present and whose
orientation describes it. ``squash`` keeps the orientation and maps the length into [0, 1);
``dynamic_routing`` (the paper's Procedure 1) sends each child's prediction to the parents that
agree with it; ``margin_loss`` (eq. 4) asks for a long capsule for the present class and short
ones for the others; a decoder reconstructs the digit from the class capsule (section 4.1).

The layers are ``Model(init, apply)`` factories (``primary_caps``, ``digit_caps``, ``decoder``) and
``capsnet`` puts them together: conv1 -> PrimaryCaps -> DigitCaps (routing) -> capsule lengths,
plus the reconstruction. ``objective`` gives the trainer's ``(loss_fn, eval_fn)`` pair. Every
operation over capsules is one batched einsum; the only Python loop is the static unrolled loop
over the ``r`` routing iterations.

The paper's configuration is ``capsnet()``'s defaults (conv1 256@9x9, PrimaryCaps 32 types of 8-D
capsules from a 9x9 stride-2 convolution, 6x6x32 = 1152 capsules, DigitCaps 10x16-D, r = 3,
decoder 512-1024-784): 6,804,224 parameters without the decoder and 8,215,568 with it (the
paper's "8.2M"). ``SMALL`` is the configuration sized for a 2-core CPU.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.model import Model
from dlmodels.nn import conv2d, dense, initializers
from dlmodels.validation import ShapeError, check_nonnegative, check_positive

WHERE = "capsules"

#: conv1 and PrimaryCaps of the CPU configuration: ``capsnet(**SMALL)`` (chosen by measurement on
#: the project's 2-core CPU; see experiments/capsnet_mnist.py). Everything else as in the paper.
SMALL = {"conv_channels": 32, "primary_types": 8}


def _positive_int(value, name: str, where: str = WHERE) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def safe_norm(s: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Euclidean norm ``||s||`` along ``axis`` whose gradient is finite (zero) at ``s = 0``
    (``sqrt`` is only taken of positive sums; the plain norm's gradient there is ``0/0``)."""
    s = jnp.asarray(s)
    n2 = jnp.sum(s * s, axis=axis, keepdims=keepdims)
    positive = n2 > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, n2, 1.0)), 0.0)


def squash(s: jax.Array, axis: int = -1) -> jax.Array:
    """The squashing non-linearity, eq. 1: ``v = ||s||^2 / (1 + ||s||^2) * s / ||s||``.

    Written as ``s ||s|| / (1 + ||s||^2)`` with :func:`safe_norm`, so it is finite at ``s = 0``
    with value 0 and gradient 0 (the true derivative there). ``s``: any shape, the capsule
    dimension on ``axis``; ``v``: the same shape, ``||v|| < 1``.
    """
    s = jnp.asarray(s)
    if s.ndim == 0:
        raise ShapeError(f"{WHERE}.squash: s must have at least one axis (the capsule vector)")
    norm = safe_norm(s, axis=axis, keepdims=True)
    return s * (norm / (1.0 + norm * norm))


def dynamic_routing(u_hat: jax.Array, iterations: int) -> jax.Array:
    """Routing by agreement, Procedure 1 of the paper, batched.

    ``u_hat [B, n_in, n_out, d_out]``: the prediction ``u_hat_{j|i} = W_ij u_i`` of child capsule
    ``i`` for parent ``j``. With logits ``b_ij = 0``, ``iterations`` (= r) times:

        c_ij = softmax_j(b_ij)            (over the PARENT capsules j, for each child i)
        s_j  = sum_i c_ij u_hat_{j|i}
        v_j  = squash(s_j)
        b_ij = b_ij + u_hat_{j|i} . v_j

    and returns ``v [B, n_out, d_out]`` of the last iteration (the update of ``b`` after it,
    which changes nothing returned, is skipped). ``iterations = 1`` gives ``c_ij = 1 / n_out``.

    Gradients flow through everything, the coupling coefficients ``c`` included: the r
    iterations are differentiated as ordinary computation (as in the paper's TensorFlow code;
    some re-implementations stop the gradient through ``c`` or through ``u_hat`` in the inner
    iterations). ``iterations`` is a static Python int; the loop over it is unrolled.
    """
    iterations = _positive_int(iterations, "iterations", f"{WHERE}.dynamic_routing")
    u_hat = jnp.asarray(u_hat)
    if u_hat.ndim != 4:
        raise ShapeError(f"{WHERE}.dynamic_routing: expected u_hat [B, n_in, n_out, d_out], got "
                         f"shape {u_hat.shape}")
    b = jnp.zeros(u_hat.shape[:3], u_hat.dtype)                            # [B, n_in, n_out]
    v = None
    for r in range(iterations):
        c = jax.nn.softmax(b, axis=2)                                      # [B, n_in, n_out]
        s = jnp.einsum("bij,bijd->bjd", c, u_hat)                          # [B, n_out, d_out]
        v = squash(s)                                                      # [B, n_out, d_out]
        if r + 1 < iterations:
            b = b + jnp.einsum("bijd,bjd->bij", u_hat, v)                  # agreement
    return v


def margin_loss(lengths: jax.Array, labels: jax.Array, m_plus: float = 0.9, m_minus: float = 0.1,
                lam: float = 0.5) -> jax.Array:
    """The margin loss, eq. 4, per example:

        L = sum_k T_k max(0, m+ - ||v_k||)^2 + lam (1 - T_k) max(0, ||v_k|| - m-)^2

    with ``T_k = 1`` iff ``k`` is the label. ``lengths [B, n_classes]``: the capsule lengths
    ``||v_k||``; ``labels [B]``: integers in ``[0, n_classes)``; returns ``[B]``.
    """
    lengths = jnp.asarray(lengths)
    labels = jnp.asarray(labels)
    if lengths.ndim != 2:
        raise ShapeError(f"{WHERE}.margin_loss: expected lengths [B, n_classes], got shape "
                         f"{lengths.shape}")
    if labels.shape != lengths.shape[:1]:
        raise ShapeError(f"{WHERE}.margin_loss: expected labels [{lengths.shape[0]}] for lengths "
                         f"{lengths.shape}, got shape {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{WHERE}.margin_loss: labels must be integers, got {labels.dtype}")
    for name, value in (("m_plus", m_plus), ("m_minus", m_minus), ("lam", lam)):
        check_nonnegative(f"{WHERE}.margin_loss: {name}", value)
    t = jax.nn.one_hot(labels, lengths.shape[1], dtype=lengths.dtype)     # [B, K]
    present = t * jnp.square(jnp.maximum(0.0, m_plus - lengths))
    absent = lam * (1.0 - t) * jnp.square(jnp.maximum(0.0, lengths - m_minus))
    return jnp.sum(present + absent, axis=1)


def strided_conv(x: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    """``conv2d(x, w, stride=stride)`` ('VALID') computed as a stride-1 convolution of the
    space-to-depth input: the same numbers, but its gradient with respect to ``x`` avoids
    XLA:CPU's slow input-dilated convolution (measured 5x faster for PrimaryCaps' 9x9 stride-2
    layer on the CPU). ``x [B, H, W, C]``, ``w [k, k, C, O]`` -> ``[B, H', W', O]``,
    ``H' = (H - k) // stride + 1``.

    The kernel is zero-padded to ``K = ceil(k / s) s``; the input is cut (or zero-padded) to
    ``(H' - 1) s + K`` rows and columns; both are folded ``s x s`` into channels (order
    ``(dy, dx, c)``), and a ``K/s x K/s`` stride-1 convolution gives the same outputs.
    """
    s = stride
    k, c, o = w.shape[0], w.shape[2], w.shape[3]
    if s == 1:
        return conv2d(x, w)
    b, h, wd = x.shape[:3]
    ho, wo = (h - k) // s + 1, (wd - k) // s + 1
    kk = -(-k // s) * s
    hp, wp = (ho - 1) * s + kk, (wo - 1) * s + kk
    x = x[:, :hp, :wp]
    x = jnp.pad(x, ((0, 0), (0, hp - x.shape[1]), (0, wp - x.shape[2]), (0, 0)))
    x = x.reshape(b, hp // s, s, wp // s, s, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, hp // s, wp // s, s * s * c)                       # [B, hp/s, wp/s, s s C]
    w = jnp.pad(w, ((0, kk - k), (0, kk - k), (0, 0), (0, 0)))
    w = w.reshape(kk // s, s, kk // s, s, c, o).transpose(0, 2, 1, 3, 4, 5)
    w = w.reshape(kk // s, kk // s, s * s * c, o)                       # [K/s, K/s, s s C, O]
    return conv2d(x, w)                                                 # [B, H', W', O]


def primary_caps(c_in: int, n_types: int = 32, dim: int = 8, *, kernel: int = 9,
                 stride: int = 2) -> Model:
    """PrimaryCaps: a convolution whose output channels are cut into ``dim``-D capsules, squashed.

    ``h = conv(x, W) + b`` ``[B, H', W', n_types * dim]`` (``kernel`` x ``kernel``, ``stride``,
    'VALID'); channel ``t * dim + d`` is component ``d`` of the capsule of type ``t`` at that
    position; ``u = squash(h.reshape(B, H' W' n_types, dim))``, capsules in (row, column, type)
    order. No ReLU before the squash (the paper's layer is linear before squashing).

    Params ``{"w": [kernel, kernel, c_in, n_types * dim], "b": [n_types * dim]}``.
    ``apply(params, x [B, H, W, c_in]) -> u [B, H' W' n_types, dim]``.
    """
    where = f"{WHERE}.primary_caps"
    c_in, n_types, dim = (_positive_int(v, n, where) for v, n in
                          ((c_in, "c_in"), (n_types, "n_types"), (dim, "dim")))
    kernel, stride = _positive_int(kernel, "kernel", where), _positive_int(stride, "stride", where)
    init_w = initializers.get("glorot_uniform")

    def init(key, dtype=jnp.float32):
        shape = (kernel, kernel, c_in, n_types * dim)
        return {"w": init_w(key, shape, dtype), "b": jnp.zeros((n_types * dim,), dtype)}

    def apply(params, x, *, key=None, train=False):
        x = jnp.asarray(x)
        if x.ndim != 4 or x.shape[-1] != c_in:
            raise ShapeError(f"{where}: expected x [B, H, W, {c_in}], got shape {x.shape}")
        h = strided_conv(x, params["w"], stride) + params["b"][None, None, None, :]
        return squash(h.reshape(h.shape[0], -1, dim))              # [B, H' W' n_types, dim]

    return Model(init, apply)


def digit_caps(n_in: int, n_out: int = 10, d_in: int = 8, d_out: int = 16, *,
               iterations: int = 3) -> Model:
    """DigitCaps: predictions ``u_hat_{j|i} = W_ij u_i`` and :func:`dynamic_routing` to ``v_j``.

    ``u_hat = einsum("ijdk,bik->bijd", W, u)`` ``[B, n_in, n_out, d_out]`` (one einsum, no
    loop over capsules); ``v = dynamic_routing(u_hat, iterations)`` ``[B, n_out, d_out]``.
    Params ``{"w": [n_in, n_out, d_out, d_in]}`` (no bias, as in the paper), initialised
    ``N(0, 0.01^2)`` (the paper's TensorFlow code's scale). ``apply(params, u [B, n_in, d_in])``.
    ``apply(..., return_predictions=True)`` returns ``(v, u_hat)``.
    """
    where = f"{WHERE}.digit_caps"
    n_in, n_out, d_in, d_out = (_positive_int(v, n, where) for v, n in
                                ((n_in, "n_in"), (n_out, "n_out"), (d_in, "d_in"),
                                 (d_out, "d_out")))
    iterations = _positive_int(iterations, "iterations", where)
    init_w = initializers.normal(0.01)

    def init(key, dtype=jnp.float32):
        return {"w": init_w(key, (n_in, n_out, d_out, d_in), dtype)}

    def apply(params, u, *, key=None, train=False, return_predictions=False):
        u = jnp.asarray(u)
        if u.ndim != 3 or u.shape[1:] != (n_in, d_in):
            raise ShapeError(f"{where}: expected u [B, {n_in}, {d_in}], got shape {u.shape}")
        u_hat = jnp.einsum("ijdk,bik->bijd", params["w"], u)        # [B, n_in, n_out, d_out]
        v = dynamic_routing(u_hat, iterations)                      # [B, n_out, d_out]
        return (v, u_hat) if return_predictions else v

    return Model(init, apply)


def mask(v: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """The decoder's input: every capsule but one zeroed and flattened, ``[B, n_out d_out]``.

    ``v [B, n_out, d_out]``; the capsule kept is ``labels [B]``'s (training: the true class) or,
    with ``labels=None``, the longest one (test: the prediction)."""
    v = jnp.asarray(v)
    if v.ndim != 3:
        raise ShapeError(f"{WHERE}.mask: expected v [B, n_out, d_out], got shape {v.shape}")
    if labels is None:
        labels = jnp.argmax(safe_norm(v, axis=-1), axis=-1)
    labels = jnp.asarray(labels)
    if labels.shape != v.shape[:1]:
        raise ShapeError(f"{WHERE}.mask: expected labels [{v.shape[0]}], got shape {labels.shape}")
    keep = jax.nn.one_hot(labels, v.shape[1], dtype=v.dtype)              # [B, n_out]
    return (v * keep[:, :, None]).reshape(v.shape[0], -1)


def decoder(n_in: int = 160, hidden: Sequence[int] = (512, 1024), n_out: int = 784) -> Model:
    """The reconstruction decoder, section 4.1: ``n_in -> 512 ReLU -> 1024 ReLU -> 784 sigmoid``.

    ``apply(params, m [B, n_in]) -> [B, n_out]`` in (0, 1), ``m`` the masked DigitCaps
    (:func:`mask`). Params ``{"fc1", "fc2", ..., "out"}`` of ``{"w": [in, out], "b": [out]}``.
    """
    sizes = [_positive_int(n_in, "n_in", f"{WHERE}.decoder")]
    sizes += [_positive_int(h, "hidden", f"{WHERE}.decoder") for h in hidden]
    n_out = _positive_int(n_out, "n_out", f"{WHERE}.decoder")
    names = [f"fc{i + 1}" for i in range(len(hidden))] + ["out"]
    layers = {name: dense(a, b, w_init="he_normal" if name != "out" else "glorot_uniform")
              for name, a, b in zip(names, sizes, sizes[1:] + [n_out])}

    def init(key, dtype=jnp.float32):
        keys = jax.random.split(key, len(layers))
        return {name: layer.init(k, dtype) for (name, layer), k in zip(layers.items(), keys)}

    def apply(params, m, *, key=None, train=False):
        m = jnp.asarray(m)
        if m.ndim != 2 or m.shape[1] != sizes[0]:
            raise ShapeError(f"{WHERE}.decoder: expected m [B, {sizes[0]}], got shape {m.shape}")
        h = m
        for name in names[:-1]:
            h = jax.nn.relu(layers[name].apply(params[name], h))
        return jax.nn.sigmoid(layers["out"].apply(params["out"], h))

    return Model(init, apply)


def capsnet(n_classes: int = 10, *, input_shape: Sequence[int] = (28, 28, 1),
            conv_channels: int = 256, conv_kernel: int = 9, primary_types: int = 32,
            primary_dim: int = 8, primary_kernel: int = 9, primary_stride: int = 2,
            digit_dim: int = 16, iterations: int = 3,
            decoder_hidden: Sequence[int] | None = (512, 1024)) -> Model:
    """CapsNet, section 4 and figure 1/2 of the paper (defaults: the paper's configuration).

    ``h1 = ReLU(conv(x, W1) + b1)``       ``[B, 20, 20, 256]`` (conv1 256@9x9, stride 1)
    ``u  = PrimaryCaps(h1)``              ``[B, 1152, 8]``  (32 types x 6x6, 9x9 stride 2)
    ``v  = DigitCaps(u)``                 ``[B, 10, 16]``   (r = 3 routing iterations)
    ``lengths = ||v_k||``                 ``[B, 10]``       (the class probabilities)
    ``reconstructions = decoder(mask(v, labels))`` ``[B, 28, 28, 1]`` (sizes for 28x28 MNIST).

    ``apply(params, x [B, H, W, C], *, key=None, train=False, labels=None) -> {"lengths",
    "capsules", "reconstructions"}``: the decoder sees the capsule of ``labels`` (the true class,
    in training) or, with ``labels=None``, the longest one (at test). ``decoder_hidden=None``
    builds no decoder (no ``"reconstructions"``; train with ``reconstruction_weight=0``).
    ``SMALL`` (fewer conv1 maps and primary capsule types) is the CPU configuration:
    ``capsnet(**SMALL)``. Params ``{"conv1": {"w", "b"}, "primary": {"w", "b"}, "digit": {"w"},
    "decoder": {...}}``. Deviation: weights use Glorot/He initialisation (the paper does not give
    its initialiser).
    """
    where = f"{WHERE}.capsnet"
    n_classes = _positive_int(n_classes, "n_classes", where)
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"{where}: input_shape must be (H, W, C), got {input_shape!r}")
    height, width, channels = (_positive_int(v, "input_shape", where) for v in input_shape)
    conv_channels = _positive_int(conv_channels, "conv_channels", where)
    conv_kernel = _positive_int(conv_kernel, "conv_kernel", where)
    primary_kernel = _positive_int(primary_kernel, "primary_kernel", where)
    primary_stride = _positive_int(primary_stride, "primary_stride", where)
    h1 = (height - conv_kernel + 1, width - conv_kernel + 1)
    grid = tuple((s - primary_kernel) // primary_stride + 1 for s in h1)
    if min(h1) < primary_kernel:
        raise ValueError(f"{where}: a {height}x{width} input leaves no room for conv1 "
                         f"{conv_kernel}x{conv_kernel} and PrimaryCaps {primary_kernel}x"
                         f"{primary_kernel}")
    n_primary = grid[0] * grid[1] * _positive_int(primary_types, "primary_types", where)
    init_conv = initializers.get("he_normal")
    primary = primary_caps(conv_channels, primary_types, primary_dim, kernel=primary_kernel,
                           stride=primary_stride)
    digit = digit_caps(n_primary, n_classes, primary_dim, digit_dim, iterations=iterations)
    dec = (None if decoder_hidden is None else
           decoder(n_classes * digit_dim, decoder_hidden, height * width * channels))

    def init(key, dtype=jnp.float32):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        params = {"conv1": {"w": init_conv(k1, (conv_kernel, conv_kernel, channels,
                                                conv_channels), dtype),
                            "b": jnp.zeros((conv_channels,), dtype)},
                  "primary": primary.init(k2, dtype), "digit": digit.init(k3, dtype)}
        if dec is not None:
            params["decoder"] = dec.init(k4, dtype)
        return params

    def apply(params, x, *, key=None, train=False, labels=None):
        x = jnp.asarray(x)
        if x.ndim != 4 or x.shape[1:] != (height, width, channels):
            raise ShapeError(f"{where}: expected x [B, {height}, {width}, {channels}], got shape "
                             f"{x.shape}")
        h = conv2d(x, params["conv1"]["w"]) + params["conv1"]["b"][None, None, None, :]
        h = jax.nn.relu(h)                                                   # [B, 20, 20, C1]
        u = primary.apply(params["primary"], h)                              # [B, n_primary, 8]
        v = digit.apply(params["digit"], u)                                  # [B, K, 16]
        out = {"lengths": safe_norm(v, axis=-1), "capsules": v}              # [B, K], [B, K, 16]
        if dec is not None:
            recon = dec.apply(params["decoder"], mask(v, labels))            # [B, H W C]
            out["reconstructions"] = recon.reshape(x.shape)
        return out

    return Model(init, apply)


def random_shift(key: jax.Array, x: jax.Array, max_shift: int = 2) -> jax.Array:
    """Each image ``x [B, H, W, C]`` moved by its own random ``(dy, dx)``, each uniform in
    ``[-max_shift, max_shift]``, zeros shifted in (the paper's augmentation, section 5: "shifted
    by up to 2 pixels in each direction with zero padding")."""
    max_shift = int(max_shift)
    check_nonnegative(f"{WHERE}.random_shift: max_shift", max_shift)
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ShapeError(f"{WHERE}.random_shift: expected x [B, H, W, C], got shape {x.shape}")
    if max_shift == 0:
        return x
    m = max_shift
    padded = jnp.pad(x, ((0, 0), (m, m), (m, m), (0, 0)))
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * m + 1)      # top-left corner
    cut = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), x.shape[1:])  # noqa: E731
    return jax.vmap(cut)(padded, offsets)


def objective(apply, *, reconstruction_weight: float = 0.0005, m_plus: float = 0.9,
              m_minus: float = 0.1, lam: float = 0.5, max_shift: int = 0):
    """``(loss_fn, eval_fn)`` for the trainer on batches ``(x [B, H, W, C], y [B])``.

    Per example: ``margin_loss(lengths, y) + reconstruction_weight * sum_pixels (recon - x)^2``
    (section 4.1: the sum of squared errors, scaled by 0.0005); ``loss_fn`` averages it over the
    batch and masks the decoder by the TRUE class. ``max_shift > 0``: training images are first
    moved by up to ``max_shift`` pixels (:func:`random_shift`, drawn from the step's key) and
    the decoder reconstructs the moved image. ``eval_fn`` (decoder masked by the longest capsule,
    no shifts) gives per-example ``loss``, ``margin``, ``reconstruction`` (sum of squared
    errors), ``accuracy`` (the longest capsule is the label) and ``error``.
    ``reconstruction_weight = 0`` trains without the decoder (which ``apply`` may then lack).
    """
    check_nonnegative(f"{WHERE}.objective: reconstruction_weight", reconstruction_weight)
    check_nonnegative(f"{WHERE}.objective: max_shift", max_shift)

    def per_example(out, x, y):
        margin = margin_loss(out["lengths"], y, m_plus, m_minus, lam)
        if "reconstructions" in out:
            sse = jnp.sum(jnp.square(out["reconstructions"] - x).reshape(x.shape[0], -1), axis=1)
        else:
            sse = jnp.zeros_like(margin)
        return margin, sse

    def loss_fn(params, batch, key):
        x, y = batch
        if max_shift:
            if key is None:
                raise ValueError(f"{WHERE}.objective: max_shift > 0 needs the step's key")
            x = random_shift(key, x, max_shift)
        margin, sse = per_example(apply(params, x, labels=y, train=True), x, y)
        loss = jnp.mean(margin + reconstruction_weight * sse) if reconstruction_weight else (
            jnp.mean(margin))
        return loss, {}

    def eval_fn(params, batch):
        x, y = batch
        out = apply(params, x)
        margin, sse = per_example(out, x, y)
        correct = (jnp.argmax(out["lengths"], -1) == y).astype(margin.dtype)
        return {"loss": margin + reconstruction_weight * sse, "margin": margin,
                "reconstruction": sse, "accuracy": correct, "error": 1.0 - correct}

    return loss_fn, eval_fn


__all__ = ["SMALL", "safe_norm", "strided_conv", "squash", "dynamic_routing", "margin_loss",
           "primary_caps", "digit_caps", "mask", "decoder", "capsnet", "random_shift", "objective"]
