"""Restricted Boltzmann machines: energy, free energy, Gibbs sampling, CD-k / PCD, exact and AIS log Z.

Bernoulli-Bernoulli RBM (Smolensky 1986; Hinton 2002), visible v in {0,1}^n_v, hidden h in {0,1}^n_h:

    E(v, h) = -v^T W h - b^T v - c^T h,        p(v, h) = exp(-E(v, h)) / Z
    F(v)    = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j)
    p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j),   p(v_i = 1 | h) = sigmoid(b_i + W_i: h)

Gaussian-Bernoulli RBM (Hinton & Salakhutdinov 2006; Hinton's practical guide, 2010), real v with
fixed standard deviations sigma_i:

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c^T h - sum_ij (v_i / sigma_i) W_ij h_j
    F(v)    = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(c_j + (v / sigma)^T W_:j)
    p(v_i | h) = N(b_i + sigma_i W_i: h, sigma_i^2)

Bernoulli-Gaussian RBM (linear hidden units with unit-variance Gaussian noise; the code layer of
Hinton & Salakhutdinov's 2006 deep autoencoder), binary v, real h:

    E(v, h) = sum_j h_j^2 / 2 - v^T W h - b^T v - c^T h
    F(v)    = -b^T v - sum_j [(c_j + v^T W_:j)^2 / 2 + log(2 pi) / 2]
    p(h_j | v) = N(c_j + v^T W_:j, 1)

Params: ``{"w": [n_visible, n_hidden], "b_visible": [n_visible], "b_hidden": [n_hidden]}``, plus
``"sigma": [n_visible]`` for a Gaussian visible layer or ``"sigma_hidden": [n_hidden]`` (ones) for
Gaussian hidden units (their presence selects those formulas; they are held fixed: their gradients
are zero). Batches of visible vectors are ``[B, n_visible]``.

Learning follows the log-likelihood gradient, -d log p(v)/d theta = dF(v)/d theta - E_model[dF/d theta],
with the model expectation from k steps of block Gibbs sampling started at the data (contrastive
divergence, CD-k; Hinton 2002) or from persistent chains (PCD; Tieleman 2008). ``cd_k`` and ``pcd``
return that estimate as a gradient pytree of the *negative* log-likelihood, so it goes straight into
an optax update (which minimises).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Params = dict


def init(key: jax.Array, n_visible: int, n_hidden: int, *, std: float = 0.01,
         visible: str = "bernoulli", hidden: str = "bernoulli",
         b_visible: jax.Array | None = None, dtype=jnp.float32) -> Params:
    """Weights ~ N(0, std^2), hidden biases 0; visible biases 0 or ``b_visible`` (e.g.
    ``base_rate_bias(data)``, log p_i / (1 - p_i), as Hinton's practical guide recommends).
    ``visible="gaussian"`` adds ``sigma = 1`` (standardise the data first); ``hidden="gaussian"``
    adds ``sigma_hidden = 1`` (linear hidden units with unit-variance noise)."""
    if n_visible < 1 or n_hidden < 1:
        raise ValueError(f"n_visible and n_hidden must be >= 1, got {n_visible}, {n_hidden}")
    if visible not in ("bernoulli", "gaussian"):
        raise ValueError(f"visible must be 'bernoulli' or 'gaussian', got {visible!r}")
    if hidden not in ("bernoulli", "gaussian"):
        raise ValueError(f"hidden must be 'bernoulli' or 'gaussian', got {hidden!r}")
    if visible == hidden == "gaussian":
        raise ValueError("a Gaussian-Gaussian RBM has no normalisable joint in general; "
                         "make one of the layers binary")
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    params = {
        "w": std * jax.random.normal(key, (n_visible, n_hidden), dtype),
        "b_visible": (jnp.zeros((n_visible,), dtype) if b_visible is None
                      else jnp.asarray(b_visible, dtype).reshape(n_visible)),
        "b_hidden": jnp.zeros((n_hidden,), dtype),
    }
    if visible == "gaussian":
        params["sigma"] = jnp.ones((n_visible,), dtype)
    if hidden == "gaussian":
        params["sigma_hidden"] = jnp.ones((n_hidden,), dtype)
    return params


def is_gaussian(params: Params) -> bool:
    """Gaussian visible units."""
    return "sigma" in params


def has_gaussian_hidden(params: Params) -> bool:
    """Linear hidden units with unit-variance Gaussian noise."""
    return "sigma_hidden" in params


def base_rate_bias(v: jax.Array, *, eps: float = 1e-3) -> jax.Array:
    """Visible biases of the base-rate model, log p_i / (1 - p_i) with p_i the mean of ``v [B, n_v]``
    clipped to [eps, 1 - eps] (Salakhutdinov & Murray 2008, section 4.2)."""
    p = jnp.clip(jnp.mean(jnp.asarray(v, jnp.float32), axis=0), eps, 1.0 - eps)
    return jnp.log(p) - jnp.log1p(-p)


def _check(params: Params, v: jax.Array, name: str = "v", *, batch: bool = False) -> None:
    n_visible = params["w"].shape[0]
    if batch and (v.ndim != 2 or v.shape[-1] != n_visible):
        raise ValueError(f"{name} must have shape [B, {n_visible}] (a batch), got {v.shape}")
    if v.ndim < 1 or v.shape[-1] != n_visible:
        raise ValueError(f"{name} must have shape [..., {n_visible}] (n_visible), got {v.shape}")


def _row(b: jax.Array, x: jax.Array) -> jax.Array:
    """``b [n]`` shaped to broadcast against ``x [..., n]`` (rank promotion made explicit)."""
    return jnp.reshape(b, (1,) * (x.ndim - 1) + b.shape)


def _scaled(params: Params, v: jax.Array) -> jax.Array:
    return v / _row(params["sigma"], v) if is_gaussian(params) else v


def _quadratic(params: Params, v: jax.Array) -> jax.Array:
    """sum_i (v_i - b_i)^2 / (2 sigma_i^2): ``[..., n_v] -> [...]``."""
    return jnp.sum((v - _row(params["b_visible"], v)) ** 2 / _row(2 * params["sigma"] ** 2, v), -1)


def hidden_input(params: Params, v: jax.Array) -> jax.Array:
    """c + v^T W (Gaussian: c + (v / sigma)^T W): ``[..., n_v] -> [..., n_h]``."""
    _check(params, v)
    x = _scaled(params, v) @ params["w"]
    return x + _row(params["b_hidden"], x)


def hidden_probs(params: Params, v: jax.Array) -> jax.Array:
    """E[h | v]: p(h_j = 1 | v) = sigmoid(c_j + v^T W_:j), or c_j + v^T W_:j for Gaussian hidden
    units: ``[..., n_v] -> [..., n_h]``."""
    if has_gaussian_hidden(params):
        return hidden_input(params, v)
    return jax.nn.sigmoid(hidden_input(params, v))


def visible_mean(params: Params, h: jax.Array) -> jax.Array:
    """E[v | h]: sigmoid(b + W h) (Bernoulli) or b + sigma W h (Gaussian): ``[..., n_h] -> [..., n_v]``."""
    n_hidden = params["w"].shape[1]
    if h.ndim < 1 or h.shape[-1] != n_hidden:
        raise ValueError(f"h must have shape [..., {n_hidden}] (n_hidden), got {h.shape}")
    x = h @ params["w"].T
    if is_gaussian(params):
        return _row(params["b_visible"], x) + _row(params["sigma"], x) * x
    return jax.nn.sigmoid(x + _row(params["b_visible"], x))


def sample_hidden(key: jax.Array, params: Params, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(h, p)``: h ~ p(h | v) in {0, 1} and its probabilities p (Gaussian hidden units: h ~
    N(p, 1) and the mean p), both ``[..., n_h]``."""
    p = hidden_probs(params, v)
    if has_gaussian_hidden(params):
        return p + jax.random.normal(key, p.shape, p.dtype), p
    return _bernoulli(key, p), p


def sample_visible(key: jax.Array, params: Params, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(v, mean)``: v ~ p(v | h) and E[v | h], both ``[..., n_v]``."""
    mean = visible_mean(params, h)
    if is_gaussian(params):
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        return mean + _row(params["sigma"], mean) * noise, mean
    return _bernoulli(key, mean), mean


def _bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
    return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)


def energy(params: Params, v: jax.Array, h: jax.Array) -> jax.Array:
    """E(v, h) for ``v [..., n_v]``, ``h [..., n_h]`` -> ``[...]`` (formulas in the module docstring)."""
    _check(params, v)
    x = _scaled(params, v)
    interaction = jnp.sum((x @ params["w"]) * h, axis=-1)
    hidden = h @ params["b_hidden"]
    if has_gaussian_hidden(params):
        hidden = hidden - 0.5 * jnp.sum(h ** 2, axis=-1)
    if is_gaussian(params):
        return _quadratic(params, v) - hidden - interaction
    return -(v @ params["b_visible"]) - hidden - interaction


def free_energy(params: Params, v: jax.Array) -> jax.Array:
    """F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + v^T W_:j) (Gaussian: the
    quadratic visible term instead of -b^T v); ``[..., n_v] -> [...]``. softplus is evaluated
    stably (``jax.nn.softplus``), so large inputs do not overflow."""
    if has_gaussian_hidden(params):
        a = hidden_input(params, v)
        hidden = jnp.sum(0.5 * a ** 2, axis=-1) + 0.5 * np.log(2 * np.pi) * a.shape[-1]
    else:
        hidden = jnp.sum(jax.nn.softplus(hidden_input(params, v)), axis=-1)
    if is_gaussian(params):
        return _quadratic(params, v) - hidden
    return -(v @ params["b_visible"]) - hidden


def gibbs_step(key: jax.Array, params: Params, v: jax.Array) -> jax.Array:
    """One step of block Gibbs sampling v -> h ~ p(h|v) -> v' ~ p(v|h); ``[B, n_v] -> [B, n_v]``."""
    k_h, k_v = jax.random.split(key)
    h, _ = sample_hidden(k_h, params, v)
    v, _ = sample_visible(k_v, params, h)
    return v


def gibbs_chain(key: jax.Array, params: Params, v: jax.Array, n_steps: int) -> jax.Array:
    """``n_steps`` block Gibbs steps from ``v [B, n_v]`` (a ``lax.scan``), the final sample."""
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")

    def body(v, key):
        return gibbs_step(key, params, v), None

    v, _ = jax.lax.scan(body, v, jax.random.split(key, n_steps))
    return v


def _grads(params: Params, v_data: jax.Array, p_data: jax.Array, v_model: jax.Array,
           p_model: jax.Array) -> Params:
    """-(<v h>_data - <v h>_model) and the bias terms, averaged over each batch."""
    x_data, x_model = _scaled(params, v_data), _scaled(params, v_model)
    n_data, n_model = v_data.shape[0], v_model.shape[0]
    grads = {
        "w": ((x_model.T @ p_model - x_data.T @ p_data) / n_data if n_data == n_model
              else x_model.T @ (p_model / n_model) - x_data.T @ (p_data / n_data)),
        "b_hidden": jnp.mean(p_model, 0) - jnp.mean(p_data, 0),
    }
    if is_gaussian(params):
        s2 = params["sigma"] ** 2
        grads["b_visible"] = (jnp.mean(v_model, 0) - jnp.mean(v_data, 0)) / s2
        grads["sigma"] = jnp.zeros_like(params["sigma"])
    else:
        grads["b_visible"] = jnp.mean(v_model, 0) - jnp.mean(v_data, 0)
    if has_gaussian_hidden(params):
        grads["sigma_hidden"] = jnp.zeros_like(params["sigma_hidden"])
    return grads


class ChainStats(NamedTuple):
    """What a CD/PCD step saw: the negative-phase visible sample ``[B, n_v]`` and the data's mean
    squared reconstruction error (one Gibbs step's visible mean vs the data, summed over units)."""

    v_model: jax.Array
    reconstruction_error: jax.Array


def _negative_phase(key, params, h0, k, sample_visible_units):
    """k Gibbs half-step pairs from hidden state ``h0``: returns (v_k, p(h | v_k), E[v_1 | h0])."""
    def visible(key, h):
        v, mean = sample_visible(key, params, h)
        return (v if sample_visible_units else mean), mean

    def body(v, key):
        k_h, k_v = jax.random.split(key)
        h, _ = sample_hidden(k_h, params, v)
        return visible(k_v, h)[0], None

    k_1, k_rest = jax.random.split(key)
    v, mean_1 = visible(k_1, h0)
    if k > 1:
        v, _ = jax.lax.scan(body, v, jax.random.split(k_rest, k - 1))
    return v, hidden_probs(params, v), mean_1


def cd_k(params: Params, v: jax.Array, key: jax.Array, k: int = 1, *,
         sample_visible_units: bool = True, return_stats: bool = False):
    """Contrastive divergence CD-k (Hinton 2002): the gradient pytree of the negative
    log-likelihood estimated as

        dW = -(<v h^T>_0 - <v h^T>_k),  db = -(<v>_0 - <v>_k),  dc = -(<h>_0 - <h>_k)

    where <.>_0 uses the data ``v [B, n_v]`` with p(h | v) and <.>_k the visible sample after k
    steps of block Gibbs sampling started at the data, with its p(h | v_k) (hidden probabilities,
    not samples, in the statistics; Hinton's practical guide, section 3). ``sample_visible_units=False``
    uses visible means instead of samples during the chain (mean-field reconstructions).
    With ``return_stats=True`` returns ``(grads, ChainStats)``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check(params, v, batch=True)
    k_0, k_chain = jax.random.split(key)
    h0, p0 = sample_hidden(k_0, params, v)
    v_k, p_k, mean_1 = _negative_phase(k_chain, params, h0, k, sample_visible_units)
    grads = _grads(params, v, p0, v_k, p_k)
    if not return_stats:
        return grads
    error = jnp.mean(jnp.sum((v - mean_1) ** 2, -1))
    return grads, ChainStats(v_k, error)


def pcd(params: Params, v: jax.Array, chains: jax.Array, key: jax.Array, k: int = 1, *,
        sample_visible_units: bool = True):
    """Persistent contrastive divergence (Tieleman 2008): like ``cd_k`` but the negative phase
    continues persistent chains ``chains [n_chains, n_v]`` (visible states) by k Gibbs steps
    instead of restarting at the data. Returns ``(grads, new_chains)``; start the chains at a
    batch of data (or samples) and feed ``new_chains`` back at the next update."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _check(params, v, batch=True)
    _check(params, chains, "chains", batch=True)
    k_c, k_chain = jax.random.split(key)
    p0 = hidden_probs(params, v)
    h_c, _ = sample_hidden(k_c, params, chains)
    v_k, p_k, _ = _negative_phase(k_chain, params, h_c, k, sample_visible_units)
    return _grads(params, v, p0, v_k, p_k), v_k


def reconstruction_error(params: Params, v: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Mean over the batch of sum_i (v_i - v'_i)^2, v' = E[v | h] with h = p(h | v) (or h sampled
    from it when ``key`` is given). A monitor only: it is not the quantity CD optimises."""
    if key is None:
        h = hidden_probs(params, v)
    else:
        h, _ = sample_hidden(key, params, v)
    return jnp.mean(jnp.sum((v - visible_mean(params, h)) ** 2, -1))


def pseudo_log_likelihood(params: Params, v: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Mean over the batch of the pseudo-log-likelihood of binary ``v [B, n_v]`` (Besag 1975),

        PL(v) = sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v^(i)) - F(v)),

    v^(i) being v with bit i flipped. Exact (n_v free energies per example) without ``key``; with
    ``key``, the unbiased one-bit estimate n_v log sigmoid(F(v^(i)) - F(v)) for a random i per
    example (what scikit-learn's ``BernoulliRBM.score_samples`` returns)."""
    if is_gaussian(params) or has_gaussian_hidden(params):
        raise ValueError("pseudo_log_likelihood is for Bernoulli-Bernoulli RBMs (binary visible and hidden units)")
    _check(params, v, batch=True)
    n_visible = v.shape[-1]
    a = hidden_input(params, v)                                            # (B, H)
    f = free_energy(params, v)                                             # (B,)
    sign = 1.0 - 2.0 * v                                                   # +1 where bit 0 -> 1
    if key is not None:
        i = jax.random.randint(key, (v.shape[0],), 0, n_visible)
        s = jnp.take_along_axis(sign, i[:, None], 1)                       # (B, 1)
        a_flip = a + s * params["w"][i]                                    # (B, H)
        f_flip = (f + s[:, 0] * -params["b_visible"][i]
                  - jnp.sum(jax.nn.softplus(a_flip) - jax.nn.softplus(a), -1))
        return n_visible * jnp.mean(jax.nn.log_sigmoid(f_flip - f))
    # all flips at once: a + sign_i W_i:  (B, V, H)
    def one(a_b, sign_b, f_b):
        a_flip = a_b[None, :] + sign_b[:, None] * params["w"]              # (V, H)
        f_flip = (f_b - sign_b * params["b_visible"]
                  - jnp.sum(jax.nn.softplus(a_flip) - jax.nn.softplus(a_b)[None, :], -1))
        return jnp.sum(jax.nn.log_sigmoid(f_flip - f_b))
    return jnp.mean(jax.lax.map(lambda args: one(*args), (a, sign, f)))


def _all_binary(n: int) -> np.ndarray:
    return ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float32)


def log_partition_exact(params: Params, *, max_units: int = 25) -> jax.Array:
    """log Z by exact enumeration over the smaller layer (Bernoulli RBMs):

        log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_i: h)]   (or the same over v)

    2^min(n_v, n_h) terms; refuses layers above ``max_units`` units, where AIS is the tool."""
    if is_gaussian(params) or has_gaussian_hidden(params):
        raise ValueError("log_partition_exact is for Bernoulli-Bernoulli RBMs")
    n_visible, n_hidden = params["w"].shape
    if min(n_visible, n_hidden) > max_units:
        raise ValueError(f"enumerating 2^{min(n_visible, n_hidden)} states is too many "
                         f"(max_units={max_units}); use ais_log_partition")
    if n_hidden <= n_visible:
        h = jnp.asarray(_all_binary(n_hidden), params["w"].dtype)
        terms = h @ params["b_hidden"] + jnp.sum(
            jax.nn.softplus(h @ params["w"].T + params["b_visible"][None, :]), -1)
    else:
        v = jnp.asarray(_all_binary(n_visible), params["w"].dtype)
        terms = -free_energy(params, v)
    return jax.nn.logsumexp(terms)


def log_likelihood(params: Params, v: jax.Array, log_z: jax.Array) -> jax.Array:
    """Mean log p(v) = -F(v) - log Z over a batch ``v [B, n_v]`` (nats per example)."""
    return jnp.mean(-free_energy(params, v)) - log_z


def ais_schedule(n_betas: int) -> np.ndarray:
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 with Salakhutdinov & Murray's (2008)
    proportions: 500 uniform steps on [0, 0.5], 4,000 on [0.5, 0.9], 10,000 on [0.9, 1]
    (of 14,500), scaled to ``n_betas`` intermediate distributions."""
    if n_betas < 3:
        raise ValueError(f"n_betas must be >= 3, got {n_betas}")
    n1 = max(1, round(n_betas * 500 / 14500))
    n2 = max(1, round(n_betas * 4000 / 14500))
    n3 = max(1, n_betas - n1 - n2)
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False),
                           np.linspace(0.9, 1.0, n3 + 1)]).astype(np.float32)


class AISResult(NamedTuple):
    """``log_z``: the AIS estimate of log Z; ``spread``: its standard error in nats by the delta
    method, std(w) / (sqrt(M) mean(w)) for the M importance weights w."""

    log_z: jax.Array
    spread: jax.Array


def ais_log_weights(key: jax.Array, params: Params, n_betas: int, n_chains: int, *,
                    base_visible_bias: jax.Array | None = None,
                    betas: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Annealed importance sampling (Neal 2001) from a base-rate RBM A (W = 0, c = 0, visible biases
    ``base_visible_bias``, default 0) to the RBM B = ``params`` (Salakhutdinov & Murray 2008):

        p*_beta(v) = exp((1 - beta) b_A^T v + beta b^T v) prod_j (1 + exp(beta (c_j + v^T W_:j)))

    so p*_0 is A (up to its hidden units, which only add n_h log 2) and p*_1 is B. Each chain draws
    v_1 ~ A, then for k = 1..K multiplies w by p*_{beta_k}(v_k) / p*_{beta_{k-1}}(v_k) and moves v
    by one Gibbs transition that leaves p*_{beta_k} invariant. Returns ``(log_weights [n_chains],
    log_z_base)`` with log Z_A = sum_i softplus(b_A_i) + n_h log 2; then
    log Z_B ~ log Z_A + log mean(w)."""
    if is_gaussian(params) or has_gaussian_hidden(params):
        raise ValueError("ais_log_partition is implemented for Bernoulli-Bernoulli RBMs")
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1, got {n_chains}")
    n_visible, n_hidden = params["w"].shape
    dtype = params["w"].dtype
    b_a = jnp.zeros((n_visible,), dtype) if base_visible_bias is None else jnp.asarray(
        base_visible_bias, dtype).reshape(n_visible)
    betas = jnp.asarray(ais_schedule(n_betas) if betas is None else betas, dtype)
    w, b, c = params["w"], params["b_visible"], params["b_hidden"]

    def log_ratio(v, beta, beta_prev):                     # log p*_beta(v) - log p*_beta_prev(v)
        a = v @ w + c[None, :]                             # differences per unit, then sums:
        return ((beta - beta_prev) * (v @ (b - b_a))       # no cancellation of large totals
                + jnp.sum(jax.nn.softplus(beta * a) - jax.nn.softplus(beta_prev * a), -1))

    k_0, k_run = jax.random.split(key)
    v = _bernoulli(k_0, jnp.broadcast_to(jax.nn.sigmoid(b_a), (n_chains, n_visible)))

    def body(carry, xs):
        v, log_w = carry
        (beta_prev, beta), key = xs
        log_w = log_w + log_ratio(v, beta, beta_prev)
        k_h, k_v = jax.random.split(key)
        h = _bernoulli(k_h, jax.nn.sigmoid(beta * (v @ w + c[None, :])))
        v = _bernoulli(k_v, jax.nn.sigmoid((1 - beta) * b_a[None, :] + beta * (h @ w.T + b[None, :])))
        return (v, log_w), None

    keys = jax.random.split(k_run, betas.shape[0] - 1)
    (_, log_w), _ = jax.lax.scan(body, (v, jnp.zeros((n_chains,), dtype)),
                                 ((betas[:-1], betas[1:]), keys))
    log_z_base = jnp.sum(jax.nn.softplus(b_a)) + n_hidden * jnp.log(2.0).astype(dtype)
    return log_w, log_z_base


def ais_log_partition(key: jax.Array, params: Params, n_betas: int = 14500, n_chains: int = 100,
                      *, base_visible_bias: jax.Array | None = None) -> AISResult:
    """AIS estimate of log Z (see ``ais_log_weights``) and its spread.
    ``base_visible_bias``: fit it to the training data with ``base_rate_bias(v)``; the closer the
    base model is to the target, the smaller the variance."""
    log_w, log_z_base = ais_log_weights(key, params, n_betas, n_chains,
                                        base_visible_bias=base_visible_bias)
    log_mean = jax.nn.logsumexp(log_w) - jnp.log(log_w.shape[0])
    ratio = jnp.exp(log_w - log_mean)                                # w / mean(w)
    spread = jnp.std(ratio) / jnp.sqrt(log_w.shape[0])
    return AISResult(log_z_base + log_mean, spread)


def sample(key: jax.Array, params: Params, n_samples: int, n_steps: int, *,
           v0: jax.Array | None = None) -> jax.Array:
    """``n_samples`` visible means after ``n_steps`` block Gibbs steps from ``v0`` (default: random
    bits at the visible base rates): ``[n_samples, n_v]``, for image grids."""
    n_visible = params["w"].shape[0]
    k_0, k_chain, k_h = jax.random.split(key, 3)
    if v0 is None:
        if is_gaussian(params):
            v0 = params["b_visible"][None, :] + params["sigma"][None, :] * jax.random.normal(
                k_0, (n_samples, n_visible), params["w"].dtype)
        else:
            v0 = _bernoulli(k_0, jnp.broadcast_to(jax.nn.sigmoid(params["b_visible"]),
                                                  (n_samples, n_visible)))
    v = gibbs_chain(k_chain, params, v0, n_steps)
    h, _ = sample_hidden(k_h, params, v)
    return visible_mean(params, h)
