"""Linear-chain conditional random field over tag sequences (Lafferty, McCallum & Pereira 2001),
as the output layer of a neural tagger (Collobert et al. 2011; Huang, Xu & Yu 2015; Lample et al.
2016): the forward algorithm for the log partition function, the gold-path score, the
log-likelihood, and Viterbi decoding, all batched with ``lengths`` through ``lax.scan``.

A sequence b of length ``L = lengths[b]`` with emission scores ``e = emissions[b] [T, K]`` (from
any network) and tags ``y_0..y_{L-1}`` has the score

    s(y) = start[y_0] + sum_{t<L} e[t, y_t] + sum_{1<=t<L} transitions[y_{t-1}, y_t] + end[y_{L-1}]

and probability ``p(y | e) = exp(s(y)) / Z``, ``log Z = logsumexp_y s(y)`` over all ``K^L``
paths. ``transitions[i, j]`` scores moving from tag i to tag j (the layout of ``pytorch-crf``'s
``CRF.transitions``). Positions ``t >= L`` of ``emissions`` and ``tags`` are ignored: padding never
changes a result.

Lengths must lie in ``[1, T]``. Concrete (not traced) lengths outside it raise ``ValueError``;
under ``jit`` they cannot be checked and are clipped into ``[1, T]`` (a length 0 acts as 1).
Every function works in the dtype of ``emissions`` (float32 or float64); params are cast to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.validation import ShapeError, check_positive, check_shape, concrete

__all__ = ["init", "log_partition", "score", "gold_score", "log_likelihood", "mean_nll",
           "viterbi"]


def init(key: jax.Array, n_tags: int, dtype=jnp.float32) -> dict:
    """CRF params ``{"transitions": [K, K], "start": [K], "end": [K]}``, each entry drawn
    uniformly from ``[-0.1, 0.1]`` (the initialisation of ``pytorch-crf``): small, so the
    emissions decide at first and the transitions are learnt."""
    check_positive("crf.init: n_tags", n_tags)
    k_trans, k_start, k_end = jax.random.split(key, 3)
    K = int(n_tags)
    u = lambda k, shape: jax.random.uniform(k, shape, dtype, -0.1, 0.1)
    return {"transitions": u(k_trans, (K, K)), "start": u(k_start, (K,)), "end": u(k_end, (K,))}


def _check(params, emissions, lengths, what):
    """Shape checks; returns (transitions, start, end, lengths clipped to [1, T], B, T, K)."""
    if np.ndim(emissions) != 3:
        raise ShapeError(f"crf.{what}: emissions must be [B, T, K], got shape "
                         f"{tuple(np.shape(emissions))}")
    B, T, K = emissions.shape
    if T == 0:
        raise ShapeError(f"crf.{what}: emissions [B, T, K] needs T >= 1, got shape "
                         f"{emissions.shape}")
    if not jnp.issubdtype(emissions.dtype, jnp.floating):
        raise TypeError(f"crf.{what}: emissions must be floating point, got {emissions.dtype}")
    for name, shape in (("transitions", (K, K)), ("start", (K,)), ("end", (K,))):
        if name not in params:
            raise KeyError(f"crf.{what}: params need {name!r}; got keys {sorted(params)}")
        check_shape(params[name], shape, f"crf.{what}: params[{name!r}] for K={K} tags")
    lengths = jnp.asarray(lengths)
    check_shape(lengths, (B,), f"crf.{what}: lengths [B] for B={B}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"crf.{what}: lengths must be integers, got {lengths.dtype}")
    value = concrete(lengths)
    if value is not None and value.size and (value.min() < 1 or value.max() > T):
        raise ValueError(f"crf.{what}: lengths must be in [1, T={T}], got min {value.min()}, "
                         f"max {value.max()}")
    dt = emissions.dtype
    return (jnp.asarray(params["transitions"], dt), jnp.asarray(params["start"], dt),
            jnp.asarray(params["end"], dt),
            jnp.clip(lengths, 1, T).astype(jnp.int32), B, T, K)


def log_partition(params: dict, emissions: jax.Array, lengths: jax.Array) -> jax.Array:
    """``log Z [B]`` by the forward algorithm in log space (Rabiner 1989, eq. 19-21):

        alpha_0(j) = start[j] + e[0, j]
        alpha_t(j) = logsumexp_i (alpha_{t-1}(i) + transitions[i, j]) + e[t, j]   (t < L)
        log Z      = logsumexp_j (alpha_{L-1}(j) + end[j])

    ``emissions [B, T, K]``, ``lengths int [B]``; past its length a sequence's alpha is carried
    unchanged. One ``lax.scan`` over time. Each step is computed as a scaled matrix product
    (Rabiner's scaling): with ``m = max_i alpha_{t-1}(i)`` and ``c_j = max_i transitions[i, j]``,

        alpha_t(j) = m + c_j + log sum_i exp(alpha_{t-1}(i) - m) exp(transitions[i, j] - c_j)
                     + e[t, j],

    a ``[B, K] x [K, K]`` product instead of a ``[B, K, K]`` log-sum-exp. The sum is at least
    ``exp(-R)``, R the largest range ``max_i - min_i`` of a column of ``transitions``, so it is
    exact to rounding while ``R`` stays well inside the dtype's exponent range (``R < 60`` in
    float32, ``R < 600`` in float64); for larger ``R`` (e.g. transitions of -1e4 that forbid
    moves) a ``lax.cond`` takes the plain ``[B, K, K]`` log-sum-exp recursion instead.
    """
    emissions = jnp.asarray(emissions)
    trans, start, end, lengths, B, T, K = _check(params, emissions, lengths, "log_partition")
    e = jnp.swapaxes(emissions, 0, 1)                                    # [T, B, K]
    alpha0 = start[None, :] + e[0]                                       # [B, K]
    inputs = (e[1:], jnp.arange(1, T, dtype=jnp.int32))

    def scaled(_):
        col_max = jnp.max(trans, axis=0)                                 # [K]
        exp_trans = jnp.exp(trans - col_max[None, :])                    # [K, K], <= 1

        def step(alpha, inputs):                                         # alpha [B, K]
            e_t, t = inputs
            m = jnp.max(alpha, axis=1, keepdims=True)                    # [B, 1]
            total = jnp.matmul(jnp.exp(alpha - m), exp_trans,
                               precision=jax.lax.Precision.HIGHEST)      # [B, K]
            nxt = jnp.log(total) + m + col_max[None, :] + e_t
            return jnp.where((t < lengths)[:, None], nxt, alpha), None

        return jax.lax.scan(step, alpha0, inputs)[0]

    def exact(_):
        trans_t = trans.T                                                # [K_next, K_prev]

        @jax.checkpoint          # keeps the residuals of both cond branches at [T, B, K]
        def step(alpha, inputs):
            e_t, t = inputs
            nxt = jax.nn.logsumexp(alpha[:, None, :] + trans_t[None], axis=2) + e_t  # [B, K]
            return jnp.where((t < lengths)[:, None], nxt, alpha), None

        return jax.lax.scan(step, alpha0, inputs)[0]

    limit = 60.0 if jnp.finfo(emissions.dtype).bits <= 32 else 600.0
    col_range = jnp.max(jnp.max(trans, axis=0) - jnp.min(trans, axis=0))
    alpha = jax.lax.cond(col_range < limit, scaled, exact, None)
    return jax.nn.logsumexp(alpha + end[None, :], axis=-1)               # [B]


def _check_tags(tags, lengths, B, T, K, what):
    tags = jnp.asarray(tags)
    check_shape(tags, (B, T), f"crf.{what}: tags [B, T] for B={B}, T={T}")
    if not jnp.issubdtype(tags.dtype, jnp.integer):
        raise TypeError(f"crf.{what}: tags must be integers, got {tags.dtype}")
    t_val, l_val = concrete(tags), concrete(lengths)
    if t_val is not None and l_val is not None:
        valid = np.arange(T)[None, :] < l_val[:, None]
        bad = valid & ((t_val < 0) | (t_val >= K))
        if bad.any():
            raise ValueError(f"crf.{what}: tags within the lengths must be in [0, {K}), got "
                             f"{t_val[bad][0]}")
    return tags


def score(params: dict, emissions: jax.Array, tags: jax.Array, lengths: jax.Array) -> jax.Array:
    """The score ``s(y) [B]`` of the given tag paths (module docstring): ``start[y_0] + sum_{t<L}
    e[t, y_t] + sum_{1<=t<L} transitions[y_{t-1}, y_t] + end[y_{L-1}]``.

    ``emissions [B, T, K]``, ``tags int [B, T]`` (any value past a length), ``lengths int [B]``.
    """
    emissions = jnp.asarray(emissions)
    trans, start, end, lengths, B, T, K = _check(params, emissions, lengths, "score")
    tags = _check_tags(tags, lengths, B, T, K, "score")
    valid = jnp.arange(T, dtype=jnp.int32)[None, :] < lengths[:, None]  # [B, T]
    y = jnp.where(valid, tags, 0).astype(jnp.int32)                      # [B, T]
    e_y = jnp.take_along_axis(emissions, y[:, :, None], axis=2)[:, :, 0]  # [B, T]
    t_y = trans[y[:, :-1], y[:, 1:]]                                     # [B, T-1]
    last = jnp.take_along_axis(y, (lengths - 1)[:, None], axis=1)[:, 0]  # [B]
    zero = jnp.zeros((), emissions.dtype)
    return (start[y[:, 0]] + jnp.where(valid, e_y, zero).sum(1)
            + jnp.where(valid[:, 1:], t_y, zero).sum(1) + end[last])


gold_score = score


def log_likelihood(params: dict, emissions: jax.Array, tags: jax.Array,
                   lengths: jax.Array) -> jax.Array:
    """``log p(y | e) = s(y) - log Z [B]`` of the gold paths ``tags int [B, T]`` (Lafferty et al.
    2001, eq. 1); ``emissions [B, T, K]``, ``lengths int [B]``."""
    return score(params, emissions, tags, lengths) - log_partition(params, emissions, lengths)


def mean_nll(params: dict, emissions: jax.Array, tags: jax.Array, lengths: jax.Array) -> jax.Array:
    """The training loss ``-mean_b log p(y_b | e_b)`` (a scalar) of :func:`log_likelihood`."""
    return -jnp.mean(log_likelihood(params, emissions, tags, lengths))


def viterbi(params: dict, emissions: jax.Array, lengths: jax.Array):
    """The best paths ``argmax_y s(y)`` and their scores (Viterbi 1967; Rabiner 1989, eq. 30-35):

        delta_0(j) = start[j] + e[0, j]
        delta_t(j) = max_i (delta_{t-1}(i) + transitions[i, j]) + e[t, j],  psi_t(j) = argmax_i
        y_{L-1} = argmax_j (delta_{L-1}(j) + end[j]),   y_{t-1} = psi_t(y_t)

    a forward ``lax.scan`` keeping the backpointers ``psi`` (the identity past a length, so the
    last tag is carried back to position L-1) and a reverse ``lax.scan`` for the backtrace. The
    max over i runs as a loop over the K previous tags on ``[K, B]`` slabs (``lax.fori_loop``,
    partly unrolled), which XLA vectorises over the batch far better than an argmax over the
    middle axis of ``[B, K, K]``. Returns ``(tags int32 [B, T], scores [B])``, tags 0 past each
    length; ties go to the lower tag.
    """
    emissions = jnp.asarray(emissions)
    trans, start, end, lengths, B, T, K = _check(params, emissions, lengths, "viterbi")
    e = jnp.transpose(emissions, (1, 2, 0))                              # [T, K, B]
    identity = jnp.broadcast_to(jnp.arange(K, dtype=jnp.int32)[:, None], (K, B))

    def forward(delta, inputs):                                          # delta [K, B]
        e_t, t = inputs

        def prev_tag(i, carry):                                          # best so far [K, B]
            best, arg = carry
            cand = trans[i][:, None] + delta[i][None, :]                 # [K_next, B]
            better = cand > best
            return jnp.where(better, cand, best), jnp.where(better, i, arg)

        first = (trans[0][:, None] + delta[0][None, :], jnp.zeros((K, B), jnp.int32))
        best, arg = jax.lax.fori_loop(1, K, prev_tag, first, unroll=min(8, max(K - 1, 1)))
        active = (t < lengths)[None, :]
        return jnp.where(active, best + e_t, delta), jnp.where(active, arg, identity)

    steps = jnp.arange(1, T, dtype=jnp.int32)
    delta, psis = jax.lax.scan(forward, start[:, None] + e[0], (e[1:], steps))  # psis [T-1, K, B]
    final = delta + end[:, None]                                         # [K, B]
    best = jnp.max(final, axis=0)
    last = jnp.argmax(final, axis=0).astype(jnp.int32)                   # [B]

    def backward(y_t, psi):                                              # psi_t [K, B]
        y_prev = jnp.take_along_axis(psi, y_t[None, :], axis=0)[0]
        return y_prev, y_prev

    _, earlier = jax.lax.scan(backward, last, psis, reverse=True)        # [T-1, B]
    tags = jnp.concatenate([earlier, last[None, :]], axis=0).T           # [B, T]
    tags = jnp.where(jnp.arange(T, dtype=jnp.int32)[None, :] < lengths[:, None], tags, 0)
    return tags, best
