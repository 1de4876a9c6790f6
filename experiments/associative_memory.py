"""Associative memories: binary (Willshaw) load and threshold, Hebbian vs least squares, noisy digits.

1. Binary hetero-associative memory (``dlmodels.classic.associative.binary_store`` /
   ``binary_recall``; Steinbuch 1961, Willshaw et al. 1969): P random pairs of sparse patterns,
   ``n`` = ``m`` = 256 units with exactly ``ones`` = 8 ones each, recalled from their complete keys
   with the threshold ``s = l - 1/2`` (l = ones in the probe). Per P: the fraction of values
   recalled exactly, false and missing ones per recall, the fraction of weights set, and the
   prediction ``(m - k) p^k`` for the false ones, p = 1 - (1 - k^2 / (n m))^(P - 1) the chance
   that a weight not set by the pair itself was set by another (independence approximation).
2. Threshold offset ``s = l - 1/2 - offset`` at ``offset_pairs`` stored pairs, for complete
   probes, probes with ``probe_changes`` of their ones removed, and probes with ``probe_changes``
   spurious ones added: removed ones cause no missing ones at offset 0 (l counts only the
   probe's ones) but more false ones (fewer ones constrain the output); spurious ones cause
   missing ones unless offset >= their number; every extra unit of offset adds false ones.
3. Linear associator ``y = W x`` on ``linear_n``-dimensional random unit keys with Gaussian
   values: relative recall error ``sqrt(sum ||W x^j - y^j||^2 / sum ||y^j||^2)`` against P for the
   Hebbian ``W = sum_j y^j x^jT`` (crosstalk ``~ sqrt((P - 1) / n)``; exact for orthonormal keys
   up to P = n) and the least-squares ``W = Y X^+`` (exact up to P = n, ``sqrt(1 - n / P)``
   beyond), averaged over ``linear_trials`` draws.
4. Auto-associative recall of real images: ``images_per_class`` training digits of each class
   (sklearn's 8x8 digits, binarised at 0.5, n = 64) are stored in a least-squares auto-associator
   on the +-1 code ``s = 2 x - 1`` (``W = S S^+``, the projection onto the stored patterns' span);
   a degraded probe is recalled by iterating ``s <- sign(W s)`` (sign(0) = +1) for
   ``recall_iterations`` steps, i.e. a linear associator followed by a threshold, fed back.
   Degradations (``degrade``): pixel flips with probability ``image_noise`` and an occluding band
   of ``image_occlusion`` of the pixels (zeroed = background). Reported: the fraction of images
   recalled exactly and the wrong pixels per image before and after recall, over
   ``image_trials`` random degradations; the curve sweeps the flip probability.

Plots: ``associative_memory.png`` (the curves of 1-4) and ``associative_recall.png`` (rows:
stored digits, flipped, recalled, occluded, recalled, for one draw, with wrong pixels counted).

Measured here (defaults, 2-core CPU, jax 0.10.2; reference copy in
``experiments/results/associative_memory/``):

- Binary memory, n = m = 256, 8 ones: every value recalled exactly up to P = 200 (18 % of the
  weights set), 99.3 % at P = 300, 94 % at 400, 78 % at 500, 28 % at 700, 0.4 % at 1000 (62 % of
  the weights set, 6.9 false ones per recall against 5.6 predicted). Complete probes never give
  a missing one; the prediction (m - k) p^k is low by up to 2x where the false ones first appear
  (0.25 measured vs 0.12 at P = 500) and within 10 % from P = 1000 on.
- Threshold offset at P = 250: complete probes 100 % exact at offset 0, 90 % at 1, 40 % at 2
  (1.1 false ones); probes missing 2 of their 8 ones 93 % exact at offset 0 (0.07 false ones, no
  missing one); probes with 2 spurious ones 0 % at offsets 0 and 1 (7.7 and 5.0 of the 8 ones
  missing), 88 % at offset 2 (0.13 false ones), 38 % at 3.
- Linear associator, n = 64: Hebbian error 0.10, 0.48, 1.00, 1.73 at P = 2, 16, 64, 192 against
  sqrt((P - 1) / n) = 0.13, 0.48, 0.99, 1.73; Hebbian with orthonormal keys and least squares
  exact (error < 2e-5) up to P = 64; least squares beyond: 0.336, 0.577, 0.707, 0.815 at
  P = 72, 96, 128, 192 against sqrt(1 - n / P) = 0.333, 0.577, 0.707, 0.816.
- Digits: with 10 stored (one per class), 10 % flipped pixels (6.5 wrong per image) are
  repaired completely in 93 % of the images (0.21 wrong pixels left on average) and a 25 %
  occluding band (4.7 wrong) in 88 % (0.46 left). The memory is small: with 20 stored digits
  (two per class) exact recall drops to 23 % / 11 %, with 30 to 2 % / 0 %: digits of one class
  are strongly correlated and the probes fall between them.
- 18.5 s of CPU time (user); 33 s wall on the shared, loaded machine.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import data
from dlmodels.classic import associative
from dlmodels.plots import figure, save


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 256  # binary memory: key units
    m: int = 256  # binary memory: value units
    ones: int = 8  # ones in every key and value pattern
    pair_counts: tuple[int, ...] = (  # numbers of stored pairs P on the load curve
        50, 100, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000)
    offsets: tuple[float, ...] = (  # threshold offsets swept at offset_pairs stored pairs
        0.0, 1.0, 2.0, 3.0, 4.0)
    offset_pairs: int = 250  # stored pairs for the threshold-offset sweep
    probe_changes: int = 2  # ones removed from / added to the probes of the offset sweep
    linear_n: int = 64  # linear associator: key dimension
    linear_counts: tuple[int, ...] = (  # linear associator: numbers of stored pairs P
        2, 4, 8, 16, 24, 32, 48, 56, 64, 72, 96, 128, 192)
    linear_trials: int = 20  # linear associator: random draws averaged per P
    dataset: str = "digits"  # images of the auto-associator: digits, mnist or fashion_mnist
    images_per_class: tuple[int, ...] = (  # training images stored per class (one curve each)
        1, 2, 3)
    image_noise: float = 0.1  # pixel-flip probability of the degraded probes
    image_occlusion: float = 0.25  # fraction of pixels hidden by the occluding band
    noise_levels: tuple[float, ...] = (  # flip probabilities swept on the recall curve
        0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    recall_iterations: int = 10  # iterations of s <- sign(W s) per recall
    image_trials: int = 50  # random degradations averaged per point
    seed: int = 0  # seed of every random draw

    def __post_init__(self):
        for name in ("n", "m", "ones", "offset_pairs", "linear_n", "linear_trials",
                     "recall_iterations", "image_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ones > min(self.n, self.m):
            raise ValueError(f"ones ({self.ones}) must be <= n ({self.n}) and m ({self.m})")
        if not 0 <= self.probe_changes < self.ones:
            raise ValueError(f"probe_changes must be in [0, ones), got {self.probe_changes}")
        if not self.pair_counts or min(self.pair_counts) < 1:
            raise ValueError(f"pair_counts must be positive, got {self.pair_counts}")
        if not self.images_per_class or min(self.images_per_class) < 1:
            raise ValueError(f"images_per_class must be positive, got {self.images_per_class}")


def sparse_patterns(rng: np.random.Generator, count: int, size: int, ones: int) -> np.ndarray:
    """``[count, size]`` float32 0/1 patterns with exactly ``ones`` ones each, uniformly placed."""
    out = np.zeros((count, size), np.float32)
    np.put_along_axis(out, rng.random((count, size)).argsort(axis=1)[:, :ones], 1.0, axis=1)
    return out


def recall_errors(recalled, target) -> dict:
    """Exact-recall fraction, false / missing ones per pattern, bitwise error rate."""
    recalled, target = np.asarray(recalled), np.asarray(target)
    false = np.sum((recalled == 1) & (target == 0), axis=1)
    missing = np.sum((recalled == 0) & (target == 1), axis=1)
    return {"exact": float(np.mean((false == 0) & (missing == 0))),
            "false_ones": float(np.mean(false)), "missing_ones": float(np.mean(missing)),
            "bit_error_rate": float(np.mean(recalled != target))}


def willshaw_load(config: Config, rng: np.random.Generator) -> dict:
    k, n, m = config.ones, config.n, config.m
    x_all = sparse_patterns(rng, max(config.pair_counts), n, k)
    y_all = sparse_patterns(rng, max(config.pair_counts), m, k)
    out = {}
    for count in config.pair_counts:
        x, y = x_all[:count], y_all[:count]
        w = associative.binary_store(x, y)
        row = recall_errors(associative.binary_recall(w, x), y)
        row["weights_set"] = float(jnp.mean(w))
        p = 1.0 - (1.0 - k * k / (n * m)) ** (count - 1)
        row["false_ones_predicted"] = (m - k) * p ** k
        out[str(count)] = row
    return out


def _change_probes(rng, x, changes: int, kind: str) -> np.ndarray:
    """Keys with ``changes`` of their ones removed or ``changes`` spurious ones added."""
    x = x.copy()
    for row in x:
        pool = np.flatnonzero(row == (1 if kind == "removed" else 0))
        row[rng.choice(pool, changes, replace=False)] = 0 if kind == "removed" else 1
    return x


def willshaw_offsets(config: Config, rng: np.random.Generator) -> dict:
    x = sparse_patterns(rng, config.offset_pairs, config.n, config.ones)
    y = sparse_patterns(rng, config.offset_pairs, config.m, config.ones)
    w = associative.binary_store(x, y)
    probes = {"complete": x,
              f"{config.probe_changes} ones removed": _change_probes(rng, x, config.probe_changes,
                                                                      "removed"),
              f"{config.probe_changes} spurious ones": _change_probes(rng, x,
                                                                      config.probe_changes,
                                                                      "added")}
    return {name: {f"{o:g}": recall_errors(associative.binary_recall(w, p, offset=o), y)
                   for o in config.offsets} for name, p in probes.items()}


@functools.partial(jax.jit, static_argnames=("max_count", "n"))
def _linear_trials(keys: jax.Array, rotations: jax.Array, count: jax.Array, max_count: int,
                   n: int) -> dict:
    """Relative recall errors of each associator with ``count`` stored pairs, one trial per key
    (and orthogonal matrix ``rotations [trials, n, n]``, whose rows are the orthonormal keys):
    ``{name: [trials]}``. The pairs past ``count`` are zero rows, which change neither W (Hebbian
    or least squares: pinv([X; 0]) = [pinv(X), 0]) nor the error, so one compilation serves
    every count."""
    used = (jnp.arange(max_count) < count)[:, None]  # [max_count, 1]

    def relative(w, x, y):
        return jnp.sqrt(jnp.sum((associative.linear_recall(w, x) - y) ** 2) / jnp.sum(y * y))

    def trial(key, q):
        kx, ky = jax.random.split(key)
        x = jax.random.normal(kx, (max_count, n))
        x = jnp.where(used, x / jnp.linalg.norm(x, axis=1, keepdims=True), 0.0)  # unit keys
        y = jnp.where(used, jax.random.normal(ky, (max_count, n)), 0.0)
        rows = jnp.concatenate([q, jnp.zeros((max(max_count - n, 0), n))])[:max_count]
        orthonormal = jnp.where(used, rows, 0.0)  # [max_count, n], count <= n of them used
        return {"hebbian": relative(associative.linear_hebbian(x, y), x, y),
                "least_squares": relative(associative.linear_least_squares(x, y), x, y),
                "hebbian_orthonormal": relative(associative.linear_hebbian(orthonormal, y),
                                                orthonormal, y)}

    return jax.vmap(trial)(keys, rotations)


def linear_sweep(config: Config, key: jax.Array, rng: np.random.Generator) -> dict:
    n, max_count = config.linear_n, max(config.linear_counts)
    names = ("hebbian", "hebbian_orthonormal", "least_squares")
    errors = {name: [] for name in names}
    for count in config.linear_counts:
        keys = jax.random.split(jax.random.fold_in(key, count), config.linear_trials)
        rotations = np.stack([np.linalg.qr(rng.normal(size=(n, n)))[0]
                              for _ in range(config.linear_trials)]).astype(np.float32)
        trials = _linear_trials(keys, rotations, jnp.int32(count), max_count, n)
        for name in names:
            valid = name != "hebbian_orthonormal" or count <= n
            errors[name].append(float(jnp.mean(trials[name])) if valid else None)
    return {"counts": list(config.linear_counts), "n": n, **errors,
            "hebbian_predicted": [float(np.sqrt((p - 1) / n)) for p in config.linear_counts],
            "least_squares_predicted": [float(np.sqrt(max(0.0, 1 - n / p)))
                                        for p in config.linear_counts]}


def stored_digits(config: Config, per_class: int) -> np.ndarray:
    """The first ``per_class`` training images of each class, binarised: ``[10 per_class, D]``,
    ordered 0, 1, ..., 9, 0, 1, ..."""
    x, y = data.load(config.dataset, "train")
    picks = [np.flatnonzero(y == c)[:per_class] for c in range(10)]
    idx = np.stack(picks, axis=1).reshape(-1)
    return (x[idx] > 0.5).astype(np.float32)


def auto_recall(w: jax.Array, probes: jax.Array, iterations: int) -> jax.Array:
    """Iterate ``s <- sign(W s)`` (sign(0) = +1) from 0/1 probes ``[..., n]`` coded as +-1;
    returns 0/1 patterns ``[..., n]``. ``W [n, n]``."""
    s = 2.0 * probes - 1.0
    s = jax.lax.fori_loop(0, iterations, lambda _, s: jnp.where(
        associative.linear_recall(w, s) >= 0, 1.0, -1.0), s)
    return (s + 1.0) / 2.0


@functools.partial(jax.jit, static_argnames=("kind", "iterations"))
def _degrade_and_recall(keys, x, w, level, *, kind: str, iterations: int):
    """One degradation of the stored set ``x [P, n]`` per key, and its recall: ``[K, P, n]``
    each."""
    probes = jax.vmap(lambda k: associative.degrade(k, x, kind, level))(keys)
    return probes, auto_recall(w, probes, iterations)


def image_memory(config: Config, key: jax.Array) -> tuple[dict, dict]:
    out, example = {}, None
    for per_class in config.images_per_class:
        x = jnp.asarray(stored_digits(config, per_class))
        w = associative.linear_least_squares(2.0 * x - 1.0, 2.0 * x - 1.0)
        keys = jax.random.split(jax.random.fold_in(key, per_class), config.image_trials)

        def trial(kind, level):
            probes, recalled = _degrade_and_recall(keys, x, w, jnp.float32(level), kind=kind,
                                                   iterations=config.recall_iterations)
            before = jnp.sum(probes != x[None], axis=-1)  # [trials, P]
            after = jnp.sum(recalled != x[None], axis=-1)
            return probes, recalled, {"exact": float(jnp.mean(after == 0)),
                                      "wrong_pixels_before": float(jnp.mean(before)),
                                      "wrong_pixels_after": float(jnp.mean(after))}

        row = {"stored": int(x.shape[0]),
               "noise": {f"{lvl:g}": trial("noise", lvl)[2] for lvl in config.noise_levels}}
        noisy, noisy_recalled, row["noise_figure"] = trial("noise", config.image_noise)
        occluded, occluded_recalled, row["occlusion"] = trial("occlusion", config.image_occlusion)
        out[f"{per_class}_per_class"] = row
        if example is None:
            example = {"stored": np.asarray(x), "noisy": np.asarray(noisy[0]),
                       "noisy_recalled": np.asarray(noisy_recalled[0]),
                       "occluded": np.asarray(occluded[0]),
                       "occluded_recalled": np.asarray(occluded_recalled[0])}
    return out, example


def plot_curves(results: dict, config: Config, path: str) -> str:
    fig, axes = figure(2, 3, figsize=(15, 8.4))
    load = results["willshaw_load"]
    counts = [int(c) for c in load]
    ax = axes[0, 0]
    ax.plot(counts, [r["exact"] for r in load.values()], "o-", label="values recalled exactly")
    ax.plot(counts, [r["weights_set"] for r in load.values()], "s--", label="weights set (= 1)")
    ax.set(xscale="log", xlabel="stored pairs P", ylim=(-0.02, 1.02),
           title=f"Binary memory, n = m = {config.n}, {config.ones} ones per pattern")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(counts, [r["false_ones"] for r in load.values()], "o-", label="false ones (measured)")
    ax.plot(counts, [r["false_ones_predicted"] for r in load.values()], "k:",
            label="(m - k) p^k (predicted)")
    ax.plot(counts, [r["missing_ones"] for r in load.values()], "x-", label="missing ones")
    ax.set(xscale="log", xlabel="stored pairs P", ylabel="per recalled value",
           title="Errors per recall, complete probes, s = l - 1/2")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    offsets = results["willshaw_offsets"]
    for (name, rows), color in zip(offsets.items(), ("tab:blue", "tab:orange", "tab:green")):
        o = [float(k) for k in rows]
        ax.plot(o, [r["false_ones"] for r in rows.values()], "o-", c=color,
                label=f"{name}: false ones")
        ax.plot(o, [r["missing_ones"] for r in rows.values()], "x--", c=color,
                label=f"{name}: missing ones")
    ax.set(xlabel="threshold offset (s = l - 1/2 - offset)", ylabel="per recalled value",
           title=f"Threshold offset at P = {config.offset_pairs}")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for name, rows in offsets.items():
        ax.plot([float(k) for k in rows], [r["exact"] for r in rows.values()], "o-", label=name)
    ax.set(xlabel="threshold offset", ylabel="values recalled exactly", ylim=(-0.02, 1.02),
           title=f"Exact recall vs offset, P = {config.offset_pairs}")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    lin = results["linear"]
    c = np.asarray(lin["counts"])
    for name, style in (("hebbian", "o-"), ("hebbian_orthonormal", "s-"),
                        ("least_squares", "^-")):
        values = np.asarray([np.nan if v is None else v for v in lin[name]])
        ax.plot(c, values, style, label=name.replace("_", " "))
    ax.plot(c, lin["hebbian_predicted"], "k:", label="sqrt((P - 1) / n)")
    ax.plot(c, lin["least_squares_predicted"], "k--", lw=0.8, label="sqrt(1 - n / P)")
    ax.axvline(lin["n"], c="grey", lw=0.8)
    ax.set(xlabel="stored pairs P", ylabel="relative recall error",
           title=f"Linear associator, n = {lin['n']}, random unit keys")
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    for name, row in results["images"].items():
        levels = [float(k) for k in row["noise"]]
        ax.plot(levels, [r["exact"] for r in row["noise"].values()], "o-",
                label=f"{row['stored']} digits stored")
    ax.set(xlabel="pixel flip probability", ylabel="digits recalled exactly", ylim=(-0.02, 1.02),
           title=f"LS auto-associator on {config.dataset} (+-1, iterated sign)")
    ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return save(fig, path, "Associative memories")


def plot_recall(example: dict, config: Config, path: str, side: int) -> str:
    rows = [("stored", "stored"), ("noisy", f"{config.image_noise:.0%} flipped"),
            ("noisy_recalled", "recalled"), ("occluded", f"{config.image_occlusion:.0%} occluded"),
            ("occluded_recalled", "recalled")]
    stored = example["stored"]
    cols = min(len(stored), 10)
    fig, axes = figure(len(rows), cols, figsize=(1.25 * cols, 1.45 * len(rows)),
                             squeeze=False)
    for i, (key, label) in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.imshow(example[key][j].reshape(side, side), cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if key != "stored":
                ax.set_title(f"{int(np.sum(example[key][j] != stored[j]))} wrong", fontsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    return save(fig, path, f"Least-squares auto-associator, {len(stored)} binarised digits stored "
                            f"(iterated sign(W s))")


def main(config: Config, run_dir: str) -> dict:
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    key = jax.random.PRNGKey(config.seed)
    results: dict = {"willshaw_load": willshaw_load(config, rng)}
    for count, r in results["willshaw_load"].items():
        print(f"binary memory P={count:>5}: exact {r['exact']:.3f}, false ones "
              f"{r['false_ones']:.2f}"
              f" (predicted {r['false_ones_predicted']:.2f}), weights set {r['weights_set']:.3f}")
    exact = [(int(c), r["exact"]) for c, r in results["willshaw_load"].items()]
    results["willshaw_max_pairs_exact_0.99"] = max([c for c, e in exact if e >= 0.99], default=0)
    results["willshaw_offsets"] = willshaw_offsets(config, rng)
    for name, rows in results["willshaw_offsets"].items():
        print(f"offsets, {name}: " + ", ".join(
            f"{o}: exact {r['exact']:.2f} false {r['false_ones']:.2f} missing "
            f"{r['missing_ones']:.2f}" for o, r in rows.items()))
    results["linear"] = linear_sweep(config, jax.random.fold_in(key, 1), rng)
    lin = results["linear"]
    print("linear associator P: " + " ".join(f"{p}" for p in lin["counts"]))
    for name in ("hebbian", "hebbian_orthonormal", "least_squares"):
        print(f"  {name:>20}: " + " ".join("-" if v is None else f"{v:.3f}" for v in lin[name]))
    results["images"], example = image_memory(config, jax.random.fold_in(key, 2))
    for name, row in results["images"].items():
        flips, occlusion = row["noise_figure"], row["occlusion"]
        print(f"digits, {row['stored']} stored: flips {config.image_noise:g} -> exact "
              f"{flips['exact']:.2f} ({flips['wrong_pixels_before']:.1f} -> "
              f"{flips['wrong_pixels_after']:.2f} wrong pixels); occlusion "
              f"{config.image_occlusion:g} -> exact {occlusion['exact']:.2f} "
              f"({occlusion['wrong_pixels_before']:.1f} -> {occlusion['wrong_pixels_after']:.2f})")
    side = int(round(np.sqrt(example["stored"].shape[1])))
    results["plots"] = [
        os.path.basename(plot_curves(results, config, os.path.join(run_dir,
                                                                   "associative_memory.png"))),
        os.path.basename(plot_recall(example, config, os.path.join(run_dir,
                                                                   "associative_recall.png"),
                                     side))]
    results["seconds"] = time.perf_counter() - t_start
    print(f"associative_memory finished in {results['seconds']:.0f} s")
    return results
