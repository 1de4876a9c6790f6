"""Autoencoders: the one-hidden-layer model, corruption processes, sparsity and contractive penalties.

Denoising autoencoders (Vincent, Larochelle, Bengio & Manzagol 2008; Vincent et al. 2010) learn to
reconstruct x from a corrupted x~ ~ C(x~ | x); contractive autoencoders (Rifai, Vincent, Muller,
Glorot & Bengio 2011) add lambda ||J_f(x)||_F^2, the squared Frobenius norm of the encoder's
Jacobian, to the reconstruction error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlmodels.model import Model
from dlmodels.nn import activations, dense, masking_noise
from dlmodels.validation import (ShapeError, check_choice, check_in_range, check_nonnegative,
                                 check_positive, check_shape, is_traced)

CORRUPTIONS = ("mask", "gaussian", "salt_pepper")


def corrupt(key: jax.Array, x: jax.Array, kind: str, level: float, *,
            low: float = 0.0, high: float = 1.0) -> jax.Array:
    """A corrupted copy x~ ~ C(x~ | x) of ``x [..., D]`` (Vincent et al. 2010, section 4.3):

    - ``"mask"`` (masking noise, ``nn.masking_noise``): each input is set to 0 independently with
      probability ``level``;
    - ``"gaussian"`` (isotropic additive noise): x~ = x + N(0, level^2 I);
    - ``"salt_pepper"``: each input is, with probability ``level``, set to ``low`` or ``high``
      (each with probability 1/2), else kept.
    """
    check_choice("corrupt: kind", kind, CORRUPTIONS)
    if kind == "gaussian":
        check_nonnegative("gaussian corruption level (the noise std)", level)
    else:
        check_in_range(f"{kind} corruption level (a probability)", level, 0.0, 1.0)
    if not is_traced(level):
        level = float(level)  # a weakly typed scalar: keeps x's dtype
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"corrupt expects floating-point inputs, got {x.dtype}")
    if kind == "gaussian":
        return x + level * jax.random.normal(key, x.shape, x.dtype)
    k_hit, k_value = jax.random.split(key)
    if kind == "mask":
        return masking_noise(k_hit, x, level)
    hit = jax.random.bernoulli(k_hit, level, x.shape)
    salt = jax.random.bernoulli(k_value, 0.5, x.shape)
    return jnp.where(hit, jnp.where(salt, jnp.asarray(high, x.dtype), jnp.asarray(low, x.dtype)), x)


def contractive_penalty(params: dict, x: jax.Array) -> jax.Array:
    """||J_f(x)||_F^2 of a sigmoid encoder layer h = sigmoid(x W + b), params ``{"w": [D, H],
    "b": [H]}``, in closed form (Rifai et al. 2011, eq. 4 and section 3):

        ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2

    ``x [D]`` -> a scalar, or ``x [B, D]`` -> ``[B]`` (one penalty per example; average it)."""
    w, b = params["w"], params["b"]
    if jnp.ndim(x) < 1 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"contractive_penalty: expected x [..., {w.shape[0]}] for w {w.shape}, "
                         f"got {jnp.shape(x)}")
    pre = x @ w
    h = jax.nn.sigmoid(pre + jnp.reshape(b, (1,) * (pre.ndim - 1) + b.shape))
    column_norms = jnp.sum(w ** 2, axis=0)                                  # sum_i W_ij^2, [H]
    return jnp.sum((h * (1.0 - h)) ** 2 * jnp.reshape(column_norms, (1,) * (h.ndim - 1) + (-1,)),
                   axis=-1)


def autoencoder(n_in: int, n_hidden: int, *, encoder: str = "sigmoid", decoder: str = "sigmoid",
                tied: bool = False, w_init: str = "glorot_uniform_sigmoid"):
    """One-hidden-layer autoencoder: h = f(x W_1 + b_1), r = g(h W_2 + b_2) (the course notes'
    undercomplete autoencoder when ``n_hidden < n_in``; the linear autoencoder with ``encoder =
    decoder = "identity"``). ``tied=True`` uses W_2 = W_1^T (no ``"decoder"`` weights, only its
    bias). Params: ``{"encoder": {"w": [n_in, n_hidden], "b"}, "decoder": {"w": [n_hidden, n_in],
    "b"}}``. ``apply(params, x, *, key=None, train=False, return_code=False)``: ``x [B, n_in] ->
    r [B, n_in]`` (and ``h [B, n_hidden]`` with ``return_code``)."""
    check_positive("autoencoder: n_in", n_in)
    check_positive("autoencoder: n_hidden", n_hidden)
    f, g = activations.get(encoder), activations.get(decoder)
    enc, dec = dense(n_in, n_hidden, w_init=w_init), dense(n_hidden, n_in, w_init=w_init)

    def init(key: jax.Array, dtype=jnp.float32) -> dict:
        k_enc, k_dec = jax.random.split(key)
        params = {"encoder": enc.init(k_enc, dtype), "decoder": dec.init(k_dec, dtype)}
        if tied:
            params["decoder"] = {"b": params["decoder"]["b"]}
        return params

    def apply(params: dict, x: jax.Array, *, key=None, train: bool = False,
              return_code: bool = False):
        check_shape(x, (None, n_in), "autoencoder: input x [B, n_in]")
        h = f(enc.apply(params["encoder"], x))                               # (B, n_hidden)
        w_dec = params["encoder"]["w"].T if tied else params["decoder"]["w"]
        r = g(dec.apply({"w": w_dec, "b": params["decoder"]["b"]}, h))      # (B, n_in)
        return (r, h) if return_code else r

    return Model(init, apply)


def l1_sparsity(h: jax.Array) -> jax.Array:
    """sum_i |h_i| per example: ``[B, H] -> [B]`` (the sparse autoencoder's L1 penalty)."""
    return jnp.sum(jnp.abs(h), axis=-1)


def kl_sparsity(h: jax.Array, rho: float) -> jax.Array:
    """sum_j KL(rho || rho^_j) with rho^_j the mean activation of sigmoid unit j over the batch
    ``h [B, H]`` (Ng's sparse autoencoder): sum_j rho log(rho / rho^_j) + (1 - rho) log((1 - rho) /
    (1 - rho^_j)); a scalar."""
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    rho_hat = jnp.clip(jnp.mean(h, axis=0), 1e-6, 1.0 - 1e-6)
    return jnp.sum(rho * jnp.log(rho / rho_hat) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat)))
