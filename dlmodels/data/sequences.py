"""Synthetic sequence tasks for recurrent networks, generated from a PRNG key, and (permuted)
sequential MNIST.

Every generator is a pure function of a ``jax.random`` key and static sizes (jit it with
``static_argnums`` for the sizes), and returns batch-major jnp arrays ``[n, T, ...]``. The same key
gives the same data.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# temporal_order's input alphabet (one-hot index of each symbol)
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")


def adding_problem(key: jax.Array, n: int, length: int) -> tuple[jax.Array, jax.Array]:
    """The adding problem (Hochreiter & Schmidhuber 1997, experiment 4; the layout of Le, Jaitly &
    Hinton 2015): sum the two marked numbers of a long sequence.

    ``x [n, T, 2]`` float32: channel 0 holds values drawn i.i.d. from U[0, 1]; channel 1 is a
    marker, 1 at exactly two positions and 0 elsewhere: ``p_1`` uniform in the first half
    ``[0, T // 2)`` and ``p_2`` uniform in the second half ``[T // 2, T)``. ``y [n]`` float32:
    ``y = x[p_1, 0] + x[p_2, 0]``.

    Baseline: always predicting 1.0 gives MSE ``E[(y - 1)^2] = Var(u_1 + u_2) = 2 / 12 = 1/6 ~
    0.167`` (Le et al. 2015 quote 0.1767 for this predictor; 1/6 is the exact value). A model
    beats it only by remembering the marked values across up to T steps.
    """
    if length < 2:
        raise ValueError(f"adding_problem needs length >= 2 (one marker per half), got {length}")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (n, length), jnp.float32)  # (n, T)
    first = jax.random.randint(k_first, (n,), 0, half)
    second = jax.random.randint(k_second, (n,), half, length)
    marker = (jax.nn.one_hot(first, length, dtype=jnp.float32)
              + jax.nn.one_hot(second, length, dtype=jnp.float32))  # (n, T)
    x = jnp.stack([values, marker], axis=-1)  # (n, T, 2)
    y = jnp.sum(values * marker, axis=-1)  # (n,)
    return x, y


def copy_memory(key: jax.Array, n: int, delay: int, n_symbols: int = 8,
                n_copy: int = 10) -> tuple[jax.Array, jax.Array]:
    """The copy-memory task (Arjovsky, Shah & Bengio 2016, section 4.1): read ``n_copy`` symbols,
    wait ``delay`` steps, then write them out again.

    Sequence length ``T_total = delay + 2 n_copy``. Tokens: 0 = blank, 1..n_symbols = data,
    ``n_symbols + 1`` (9 by default) = delimiter; so there are ``n_symbols + 2`` classes. Layout of
    ``x [n, T_total]`` int32, position by position (0-based):

    - ``[0, n_copy)``: the symbols to remember, i.i.d. uniform in 1..n_symbols;
    - ``[n_copy, n_copy + delay - 1)``: blanks (``delay - 1`` of them);
    - ``n_copy + delay - 1``: the delimiter ("now reproduce");
    - ``[n_copy + delay, T_total)``: blanks (``n_copy`` of them).

    ``y [n, T_total]`` int32: blanks for the first ``delay + n_copy`` steps, then the ``n_copy``
    symbols in the same order. This is the paper's layout (its T is our ``delay``; it calls the
    data symbols a_0..a_7, the blank a_8 and the delimiter a_9).
    The memoryless baseline cross-entropy is :func:`copy_memory_baseline`.
    """
    if delay < 1 or n_copy < 1 or n_symbols < 1:
        raise ValueError(f"copy_memory needs delay, n_copy, n_symbols >= 1; got {delay}, {n_copy}, "
                         f"{n_symbols}")
    symbols = jax.random.randint(key, (n, n_copy), 1, n_symbols + 1, jnp.int32)  # (n, n_copy)
    delimiter = jnp.full((n, 1), n_symbols + 1, jnp.int32)
    x = jnp.concatenate([symbols, jnp.zeros((n, delay - 1), jnp.int32), delimiter,
                         jnp.zeros((n, n_copy), jnp.int32)], axis=1)  # (n, T_total)
    y = jnp.concatenate([jnp.zeros((n, delay + n_copy), jnp.int32), symbols], axis=1)
    return x, y


def copy_memory_baseline(delay: int, n_symbols: int = 8, n_copy: int = 10) -> float:
    """Mean cross-entropy per time step (nats) of the memoryless strategy on :func:`copy_memory`:
    predict the blank with certainty for the first ``delay + n_copy`` steps, then a uniform guess
    over the ``n_symbols`` data symbols for the last ``n_copy``:
    ``n_copy log(n_symbols) / (delay + 2 n_copy)``, i.e. ``10 log 8 / (T + 20)`` in the paper."""
    return n_copy * math.log(n_symbols) / (delay + 2 * n_copy)


def parity(key: jax.Array, n: int, length: int) -> tuple[jax.Array, jax.Array]:
    """Parity of a bit string: ``x [n, T, 1]`` float32 bits, i.i.d. Bernoulli(1/2);
    ``y [n]`` int32, ``sum_t x_t mod 2``. Every bit matters, so no shortcut shorter than the
    sequence exists (Hochreiter & Schmidhuber 1997, experiment 3c-like)."""
    bits = jax.random.bernoulli(key, 0.5, (n, length)).astype(jnp.int32)  # (n, T)
    y = jnp.sum(bits, axis=1) % 2
    return bits.astype(jnp.float32)[..., None], y.astype(jnp.int32)


def temporal_order_windows(length: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The inclusive windows ``((lo_1, hi_1), (lo_2, hi_2))`` of the two relevant positions of
    :func:`temporal_order` for sequences of ``length`` steps: the paper's [10, 20] and [50, 60] for
    T = 100, scaled as ``[T // 10, T // 5]`` and ``[T // 2, T // 2 + T // 10]``."""
    if length < 10:
        raise ValueError(f"temporal_order needs length >= 10, got {length}")
    return (length // 10, length // 5), (length // 2, length // 2 + length // 10)


def temporal_order(key: jax.Array, n: int, length: int) -> tuple[jax.Array, jax.Array]:
    """The two-symbol temporal order problem (Hochreiter & Schmidhuber 1997, experiment 6a):
    classify a sequence by the order of the two relevant symbols hidden among distractors.

    Layout (fixed length T instead of the paper's random 100..110, so batches need no padding):
    position 0 is the start symbol E, position T - 1 the trigger B; two positions ``t_1`` and
    ``t_2``, uniform in the windows of :func:`temporal_order_windows` (``[10, 20]`` and
    ``[50, 60]`` for T = 100, as in the paper), each hold X or Y (fair coin); every other position
    holds a distractor drawn uniformly from {a, b, c, d}.

    ``x [n, T, 8]`` float32: one-hot over the alphabet ``TEMPORAL_ORDER_SYMBOLS`` =
    (a, b, c, d, X, Y, E, B), i.e. indices 0-3 distractors, 4 = X, 5 = Y, 6 = E, 7 = B.
    ``y [n]`` int32: the class of (symbol at t_1, symbol at t_2): 0 = XX, 1 = XY, 2 = YX, 3 = YY
    (the paper's Q, R, S, U), i.e. ``2 [s_1 = Y] + [s_2 = Y]``.
    """
    (lo1, hi1), (lo2, hi2) = temporal_order_windows(length)
    k_dis, k_t1, k_t2, k_s = jax.random.split(key, 4)
    seq = jax.random.randint(k_dis, (n, length), 0, 4, jnp.int32)  # (n, T) distractors
    t1 = jax.random.randint(k_t1, (n, 1), lo1, hi1 + 1)
    t2 = jax.random.randint(k_t2, (n, 1), lo2, hi2 + 1)
    is_y = jax.random.bernoulli(k_s, 0.5, (n, 2)).astype(jnp.int32)  # (n, 2): symbol Y at t_1, t_2
    pos = jnp.arange(length, dtype=jnp.int32)[None, :]  # (1, T)
    seq = jnp.where(pos == t1, 4 + is_y[:, :1], seq)
    seq = jnp.where(pos == t2, 4 + is_y[:, 1:], seq)
    seq = jnp.where(pos == 0, 6, seq)
    seq = jnp.where(pos == length - 1, 7, seq)
    x = jax.nn.one_hot(seq, len(TEMPORAL_ORDER_SYMBOLS), dtype=jnp.float32)  # (n, T, 8)
    y = 2 * is_y[:, 0] + is_y[:, 1]
    return x, y.astype(jnp.int32)


def pixel_permutation(key: jax.Array, n_pixels: int = 784) -> jax.Array:
    """The fixed pixel order of permuted pixel MNIST: ``jax.random.permutation(key, n_pixels)``,
    int32 ``[n_pixels]``."""
    return jax.random.permutation(key, n_pixels).astype(jnp.int32)


def mnist_sequences(x, *, pixels: bool = False, permutation_key: jax.Array | None = None):
    """Images as sequences: sequential (row or pixel) MNIST, and permuted pixel MNIST.

    ``x [N, D]`` flattened square images (D = 784 for MNIST, 64 for digits), numpy or jax; the
    result has the same array type. ``pixels=False``: one row per step, ``[N, side, side]``
    (``[N, 28, 28]``); ``pixels=True``: one pixel per step, ``[N, D, 1]`` (``[N, 784, 1]``,
    Le, Jaitly & Hinton 2015). With ``permutation_key`` the pixels of every image are first
    reordered by the one permutation ``pixel_permutation(permutation_key, D)`` (permuted pixel
    MNIST when ``pixels=True``): ``out[i, t] = x[i, perm[t]]``.
    """
    n, d = x.shape
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"mnist_sequences needs square images flattened to [N, side^2], "
                         f"got {x.shape}")
    if permutation_key is not None:
        perm = pixel_permutation(permutation_key, d)
        x = x[:, np.asarray(perm)] if isinstance(x, np.ndarray) else x[:, perm]
    return x.reshape(n, d, 1) if pixels else x.reshape(n, side, side)
