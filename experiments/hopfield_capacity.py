"""Hopfield network capacity: retrieval overlap and one-step error rate vs load alpha = p/N.

Against alpha_c = 0.138 (Amit, Gutfreund & Sompolinsky 1985) and the crosstalk closed form.

For each load ``alpha`` in ``alphas``, ``n_seeds`` networks of N = ``n_units`` units store
``p = round(alpha N)`` random +-1 patterns (Hebbian, ``w_ij = (1/N) sum_nu x_i^nu x_j^nu``,
``w_ii = 0``; the patterns of a seed are nested across loads, the first p of one draw). From
``n_probes`` of the stored patterns (pattern ``j mod p`` for probe j; each bit flipped with
probability ``flip_fraction``, 0 by default: started exactly at the pattern) asynchronous recall
runs to a fixed point (at most ``max_sweeps`` sweeps, random order per sweep) and the final
overlap ``m = (1/N) sum_i z_i x_i`` with the pattern is recorded. Store and recall are vmapped over
seeds, the probes of a network batched in one recall (sharing its update order).

Mean-field theory (AGS 1985; Hertz, Krogh & Palmer 1991 ch. 2): retrieval states with
m ~ 0.97 exist up to alpha_c ~ 0.138, beyond which m jumps to the ~0.3-0.4 of a spin-glass state
for finite N. The measured transition is the load at which the mean final overlap crosses
0.8 and the one at which the fraction of probes retrieved (m > ``retrieved_overlap``) crosses
1/2, both linearly interpolated on the grid. Finite N smears the jump and moves it to higher
alpha, so the measured loads should sit a little above 0.138, not on it.

Second curve: the fraction of bits of the stored patterns that a single update would flip (the
one-step error rate, sign(h_i(x^nu)) != x_i^nu), against Hertz, Krogh & Palmer's (1991, ch. 2)
Gaussian-crosstalk closed form ``P_error = 1/2 (1 - erf(sqrt(1 / (2 alpha))))``.

Measured here (2026-11-22, defaults: N = 1000, 8 seeds x 50 probes, started at the pattern; 37 s
on the 2-core CPU; experiments/results/hopfield_capacity/): the mean final overlap is >= 0.99 up
to alpha = 0.12, 0.965 at 0.135 (AGS: m = 0.967 at alpha_c), then falls through 0.89 (0.15),
0.76 (0.16), 0.50 (0.18) to 0.35 and 0.32 at 0.20 and 0.25. It crosses 0.8 at alpha = 0.157, and
half the probes are retrieved (m > 0.9) up to alpha = 0.165: above 0.138, as finite N leads one
to expect. Every run reached a fixed point (at most 74 sweeps). The one-step error rate is within
6% of the closed form for alpha >= 0.1 and a little under it (e.g. 3.58e-3 vs 3.76e-3 at 0.14),
as expected in part from w_ii = 0, which makes the exact signal-to-noise ratio
sqrt((N - 1)/(p - 1)) rather than sqrt(N/p).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.energy import hopfield
from dlmodels.plots import figure, save

ALPHA_C = 0.138  # Amit, Gutfreund & Sompolinsky (1985)


@dataclasses.dataclass(frozen=True)
class Config:
    n_units: int = 1000  # units N of each network
    alphas: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08, 0.10, 0.11, 0.12, 0.13, 0.135, 0.14,
                                 0.145, 0.15, 0.16, 0.18, 0.20, 0.25)  # loads alpha = p / N to measure
    n_seeds: int = 8  # networks per load, stored and recalled as one vmapped program
    n_probes: int = 50  # recall probes per network
    max_sweeps: int = 100  # most asynchronous sweeps per recall
    flip_fraction: float = 0.0  # probability of flipping each probe bit (0: the pattern)
    retrieved_overlap: float = 0.9  # final overlap above which a probe counts as retrieved
    seed: int = 0  # seed of the patterns, probes and update orders


def n_patterns(alpha: float, n_units: int) -> int:
    """``p = round(alpha N)``, at least 1."""
    return max(1, int(round(alpha * n_units)))


def one_step_error_theory(alpha) -> np.ndarray:
    """``P_error = 1/2 (1 - erf(sqrt(1 / (2 alpha))))`` (Hertz, Krogh & Palmer 1991, ch. 2)."""
    return np.array([0.5 * (1.0 - math.erf(math.sqrt(1.0 / (2.0 * a)))) for a in np.ravel(alpha)])


def crossing(alphas, values, level: float) -> float | None:
    """The first alpha at which ``values`` falls below ``level``, linearly interpolated between
    the grid points either side; None if it never does (or starts below)."""
    alphas, values = np.asarray(alphas, float), np.asarray(values, float)
    below = np.flatnonzero(values < level)
    if below.size == 0 or below[0] == 0:
        return None
    i = below[0]
    a0, a1, v0, v1 = alphas[i - 1], alphas[i], values[i - 1], values[i]
    return float(a0 + (v0 - level) / (v0 - v1) * (a1 - a0))


def _recall_seeds(max_sweeps: int):
    """Jitted recall vmapped over seeds: keys ``[S]``, weights ``[S, N, N]``, probes
    ``[S, P, N]`` -> ``RecallInfo`` with leading ``[S, P]``. Shapes do not depend on alpha, so
    one compilation serves every load."""
    one = lambda key, weights, probes: hopfield.recall_with_info(key, weights, probes, max_sweeps)
    return jax.jit(jax.vmap(one))


def simulate(config: Config) -> dict:
    """Per load: final overlaps ``[S, P]``, sweeps ``[S, P]``, converged ``[S, P]`` and the
    one-step error rate per seed ``[S]``; ``alphas`` sorted."""
    n, s = config.n_units, config.n_seeds
    alphas = sorted(config.alphas)
    p_max = max(n_patterns(a, n) for a in alphas)
    k_patterns, k_noise, k_order = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    patterns = jnp.where(jax.random.bernoulli(k_patterns, 0.5, (s, p_max, n)), 1.0, -1.0)
    flips = jnp.where(jax.random.bernoulli(k_noise, config.flip_fraction,
                                           (len(alphas), s, config.n_probes, n)), -1.0, 1.0)
    order_keys = jax.random.split(k_order, (len(alphas), s))
    recall = _recall_seeds(config.max_sweeps)
    store = jax.jit(jax.vmap(hopfield.store))
    one_step = jax.jit(jax.vmap(lambda w, x: jnp.mean(hopfield.sync_step(w, x) != x)))
    out = {"alphas": alphas, "n_patterns": [], "overlaps": [], "sweeps": [], "converged": [],
           "one_step_error": []}
    for i, alpha in enumerate(alphas):
        p = n_patterns(alpha, n)
        stored = patterns[:, :p]                                              # [S, p, N]
        weights = store(stored)                                               # [S, N, N]
        targets = stored[:, np.arange(config.n_probes) % p]                   # [S, P, N]
        info = recall(order_keys[i], weights, targets * flips[i])
        out["n_patterns"].append(p)
        out["overlaps"].append(np.asarray(hopfield.overlap(info.state, targets)))
        out["sweeps"].append(np.asarray(info.sweeps))
        out["converged"].append(np.asarray(info.converged))
        out["one_step_error"].append(np.asarray(one_step(weights, stored)))
    return {k: np.asarray(v) for k, v in out.items()}


def plot(sim: dict, transition: dict, path: str, n_units: int) -> str:
    alphas = sim["alphas"]
    fig, axes = figure(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    per_probe = sim["overlaps"].reshape(len(alphas), -1)
    jitter = np.random.default_rng(0).uniform(-0.002, 0.002, per_probe.shape)
    ax.plot((alphas[:, None] + jitter).ravel(), per_probe.ravel(), ".", ms=2, alpha=0.15,
            color="grey", label="each probe")
    per_seed = sim["overlaps"].mean(-1)
    ax.errorbar(alphas, per_seed.mean(1), yerr=per_seed.std(1), marker="o", ms=4, capsize=2,
                label="mean overlap (+- std over seeds)")
    ax.plot(alphas, sim["retrieved_fraction"], "s--", ms=3,
            label=f"fraction retrieved (m > {transition['retrieved_overlap']:g})")
    ax.axvline(ALPHA_C, color="k", ls=":", label=f"alpha_c = {ALPHA_C} (AGS 1985)")
    for key, color, what in (("overlap_crosses_0.8", "C0", "mean m = 0.8"),
                             ("retrieved_crosses_half", "C1", "half retrieved")):
        if transition[key] is not None:
            ax.axvline(transition[key], color=color, lw=0.8, alpha=0.7,
                       label=f"{what} at alpha = {transition[key]:.3f}")
    ax.set_xlabel("load alpha = p / N")
    ax.set_ylabel("final overlap m")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"retrieval from the stored patterns, N = {n_units}")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    fine = np.linspace(min(alphas), max(alphas), 200)
    measured = sim["one_step_error"].mean(1)
    ax.semilogy(fine, one_step_error_theory(fine), "k-", lw=1,
                label="1/2 (1 - erf(sqrt(1/(2 alpha)))) (HKP)")
    ok = measured > 0
    ax.semilogy(alphas[ok], measured[ok], "o", ms=4, label="measured (mean over seeds)")
    ax.axvline(ALPHA_C, color="k", ls=":")
    ax.set_ylim(bottom=max(1e-8, 0.1 * measured[ok].min()) if ok.any() else None)
    ax.set_xlabel("load alpha = p / N")
    ax.set_ylabel("one-step error rate")
    ax.set_title("bits of stored patterns flipped by one update")
    ax.legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
    return save(fig, path)


def main(config: Config, run_dir: str) -> dict:
    t0 = time.perf_counter()
    sim = simulate(config)
    seconds_simulation = time.perf_counter() - t0
    overlaps = sim["overlaps"]                                                # [A, S, P]
    sim["retrieved_fraction"] = (overlaps > config.retrieved_overlap).mean((1, 2))
    mean_overlap = overlaps.mean((1, 2))
    transition = {
        "overlap_crosses_0.8": crossing(sim["alphas"], mean_overlap, 0.8),
        "retrieved_crosses_half": crossing(sim["alphas"], sim["retrieved_fraction"], 0.5),
        "retrieved_overlap": config.retrieved_overlap,
        "alpha_c_theory": ALPHA_C,
        "note": (f"finite N = {config.n_units}: the jump at alpha_c is smeared and shifted to "
                 "higher load; alpha_c = 0.138 is the N -> infinity value"),
    }
    plot(sim, transition, os.path.join(run_dir, "hopfield_capacity.png"), config.n_units)
    theory = one_step_error_theory(sim["alphas"])
    results = {
        "alphas": sim["alphas"], "n_patterns": sim["n_patterns"],
        "overlap_mean": mean_overlap,
        "overlap_per_seed": overlaps.mean(-1),
        "overlap_std_over_seeds": overlaps.mean(-1).std(1),
        "retrieved_fraction": sim["retrieved_fraction"],
        "sweeps_mean": sim["sweeps"].mean((1, 2)), "sweeps_max": sim["sweeps"].max((1, 2)),
        "converged_fraction": sim["converged"].mean((1, 2)),
        "one_step_error": sim["one_step_error"].mean(1),
        "one_step_error_per_seed": sim["one_step_error"],
        "one_step_error_theory": theory,
        "transition": transition,
        "plot": "hopfield_capacity.png",
        "seconds_simulation": seconds_simulation,
        "seconds": time.perf_counter() - t0,
    }
    print(f"{'alpha':>6} {'p':>4} {'mean m':>7} {'retrieved':>9} {'sweeps':>7} {'converged':>9} "
          f"{'1-step err':>10} {'theory':>9}")
    for i, alpha in enumerate(sim["alphas"]):
        print(f"{alpha:>6.3f} {sim['n_patterns'][i]:>4d} {mean_overlap[i]:>7.3f} "
              f"{sim['retrieved_fraction'][i]:>9.3f} {results['sweeps_mean'][i]:>7.1f} "
              f"{results['converged_fraction'][i]:>9.3f} {results['one_step_error'][i]:>10.2e} "
              f"{theory[i]:>9.2e}")
    show = lambda a: "none on the grid" if a is None else f"{a:.4f}"
    print(f"transition: mean overlap crosses 0.8 at alpha = {show(transition['overlap_crosses_0.8'])}"
          f", half retrieved at alpha = {show(transition['retrieved_crosses_half'])} "
          f"(alpha_c = {ALPHA_C}, N -> infinity); {results['seconds']:.1f} s")
    return results
