"""Rosenblatt's perceptron on separable data against Novikoff's mistake bound (R/gamma)^2, and on XOR.

For each input dimension in ``dims`` and each margin in ``margins``, ``n_seeds`` data sets of
``n_points`` points uniform in [-1, 1]^d are drawn, keeping only points at distance >= margin from
a random plane ``u . x + b = 0`` (``||u|| = 1``, ``b ~ U[-0.3, 0.3]``) and labelled by its side.
The perceptron (``dlmodels.classic.perceptron.fit``, from w = 0, examples in a fresh random order
each epoch) is trained with the fixed rate (eps = 1) and the normalised rate eps = 1/||x~|| until
an error-free epoch; the seeds run as one ``jax.vmap``-ed program. Its number of updates is
compared with Novikoff's (1962) bound (R/gamma)^2 on the augmented inputs ``x~ = (x, 1)``:
R = max ||x~||, gamma = the margin of the generating plane ``(u, b) / ||(u, b)||`` measured on
the drawn points (``bound``), and, tighter, of a near max-margin separator from a linear SVM
(``bound_svm``; any separator gives a valid bound). XOR (not linearly separable) is run for
``xor_max_epochs`` epochs: it must stop there, not converged.

Plots: ``perceptron.png`` (a 2-D data set with the generating plane and both learned boundaries;
XOR with the last boundary), ``perceptron_bound.png`` (updates against margin, beside both
bounds, per dimension; log-log).

Measured here (defaults: d = 2, 10, 50; margins 0.005-0.2; 500 points; 16 seeds; 2-core CPU,
jax 0.10.2; reference copy in ``experiments/results/perceptron/``):

- All 576 runs (3 dims x 6 margins x 16 seeds x 2 rates) converged and made fewer updates than
  both bounds; the largest updates / (R/gamma)^2 was 0.20 with the generating plane's margin and
  0.22 with the SVM separator's. The bound is loosest for small margins and high dimension
  (d = 50, margin 0.005: ~940 updates against 575,000, or 5,800 with the SVM margin) and
  within a factor 5-10 at margin 0.2 (d = 2: 7 updates on average, at most 15, bound 74).
- Mean updates, fixed / normalised rate, at margin 0.005, 0.05, 0.2: d = 2: 179 / 209, 35 / 46,
  7.4 / 6.8; d = 10: 1322 / 1291, 149 / 144, 27 / 23; d = 50: 943 / 907, 384 / 381, 82 / 83.
  The two rates do about equally well here: every point has ||x~|| in [1, R], so normalising
  changes the step by at most R (1.7 for d = 2, 5 for d = 50).
- XOR, both rates: not converged, stopped at the 100-epoch limit with 1-4 updates in every epoch
  (260 and 246 in all); the last boundary gets 2 of the 4 points wrong.
- 27 s of CPU time (user) for the whole run; 55 s wall on the shared, loaded machine.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.classic import perceptron
from dlmodels.plots import figure, save

RATES = ("fixed", "normalised")
COLORS = ("tab:green", "tab:purple")
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([0, 1, 1, 0], np.int32)


@dataclasses.dataclass(frozen=True)
class Config:
    dims: tuple[int, ...] = (2, 10, 50)  # input dimensions d
    margins: tuple[float, ...] = (  # margins gamma of the generated data sets (in (0, 1))
        0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    n_points: int = 500  # points per data set
    n_seeds: int = 16  # data sets per (d, margin), run as one vmapped program
    max_epochs: int = 2000  # most epochs before a run counts as not converged
    plot_margin: float = 0.05  # margin of the 2-D data set drawn in perceptron.png
    xor_max_epochs: int = 100  # epochs run on XOR (it must not converge)
    seed: int = 0  # seed of the data sets and example orders

    def __post_init__(self):
        if not self.dims or min(self.dims) < 1:
            raise ValueError(f"dims must be positive, got {self.dims}")
        if not self.margins or min(self.margins) <= 0 or max(self.margins) >= 1:
            raise ValueError(f"margins must be in (0, 1), got {self.margins}")
        for name in ("n_points", "n_seeds", "max_epochs", "xor_max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def separable_data(rng: np.random.Generator, n: int, d: int, margin: float):
    """``n`` points uniform in [-1, 1]^d at distance >= ``margin`` from a random plane
    ``u . x + b = 0``, labelled 1 on its positive side. Returns ``x [n, d]`` float32,
    ``y [n]`` int32, ``u [d]``, ``b``."""
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    b = rng.uniform(-0.3, 0.3)
    x = np.empty((0, d))
    while len(x) < n:
        cand = rng.uniform(-1.0, 1.0, size=(4 * n, d))
        x = np.concatenate([x, cand[np.abs(cand @ u + b) >= margin]])
    x = x[:n].astype(np.float32)
    return x, (x @ u + b > 0).astype(np.int32), u, b


@functools.partial(jax.jit, static_argnames=("rate", "max_epochs"))
def _fit_seeds(keys, xs, ys, rate: str, max_epochs: int):
    """``fit`` on every seed's data set at once: ``keys [S]``, ``xs [S, n, d]``, ``ys [S, n]``."""
    return jax.vmap(lambda k, x, y: perceptron.fit(k, x, y, rate=rate, max_epochs=max_epochs))(
        keys, xs, ys)


def run_margin(config: Config, d: int, margin: float, i_d: int, i_m: int):
    """Every seed's data, fits (both rates) and bounds at one (dimension, margin)."""
    sets = [separable_data(np.random.default_rng([config.seed, i_d, i_m, s]), config.n_points,
                           d, margin) for s in range(config.n_seeds)]
    xs = np.stack([s[0] for s in sets])  # [S, n, d]
    ys = np.stack([s[1] for s in sets])  # [S, n]
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), 1000 * d + i_m),
                            config.n_seeds)
    bounds = [perceptron.novikoff_bound(x, y, u, b) for x, y, u, b in sets]
    svm = [perceptron.novikoff_bound(x, y) for x, y, _, _ in sets]
    out = {"radius": [b.radius for b in bounds], "gamma": [b.margin for b in bounds],
           "bound": [b.bound for b in bounds], "gamma_svm": [b.margin for b in svm],
           "bound_svm": [b.bound for b in svm]}
    fits = {}
    for rate in RATES:
        r = _fit_seeds(keys, jnp.asarray(xs), jnp.asarray(ys), rate, config.max_epochs)
        fits[rate] = r
        mistakes = np.asarray(r.mistakes)
        out[rate] = {"mistakes": mistakes.tolist(), "epochs": np.asarray(r.epochs).tolist(),
                     "converged": np.asarray(r.converged).tolist(),
                     "under_bound": bool(np.all(mistakes <= np.asarray(out["bound"]))),
                     "under_bound_svm": bool(np.all(mistakes <= np.asarray(out["bound_svm"]))),
                     "max_mistakes_over_bound": float(np.max(mistakes / np.asarray(out["bound"]))),
                     "max_mistakes_over_bound_svm": float(
                         np.max(mistakes / np.asarray(out["bound_svm"])))}
    return out, sets, fits


def run_xor(config: Config) -> dict:
    out = {}
    for rate in RATES:
        r = perceptron.fit(jax.random.PRNGKey(config.seed), XOR_X, XOR_Y, rate=rate,
                           max_epochs=config.xor_max_epochs)
        out[rate] = {"converged": bool(r.converged), "epochs": int(r.epochs),
                     "max_epochs": config.xor_max_epochs, "mistakes": int(r.mistakes),
                     "min_mistakes_per_epoch": int(np.min(r.mistakes_per_epoch)),
                     "mistakes_per_epoch": np.asarray(r.mistakes_per_epoch).tolist(),
                     "w": np.asarray(r.w).tolist(), "b": float(r.b),
                     "errors_after": int(np.sum(np.asarray(perceptron.predict(r, XOR_X)) != XOR_Y))}
    return out


def _line(ax, w, b, lim, **kw):
    """Draw w . x + b = 0 inside the box [-lim, lim]^2 (nothing if w = 0)."""
    w = np.asarray(w, float)
    t = np.linspace(-lim, lim, 2)
    if abs(w[1]) > abs(w[0]):
        ax.plot(t, -(w[0] * t + b) / w[1], **kw)
    elif w[0] != 0:
        ax.plot(-(w[1] * t + b) / w[0], t, **kw)
    else:
        ax.plot([], [], **kw)  # keeps the legend entry


def plot_examples(example: dict | None, xor: dict, path: str) -> str:
    """A 2-D data set with its boundaries (if ``example``), XOR, and mistakes per epoch."""
    n = 3 if example else 2
    fig, axes = figure(1, n, figsize=(4.8 * n, 5.0))
    if example:
        _plot_example(axes[0], example)
    ax = axes[-2]
    ax.scatter(*XOR_X[XOR_Y == 1].T, s=80, c="tab:red")
    ax.scatter(*XOR_X[XOR_Y == 0].T, s=80, c="tab:blue")
    for rate, color in zip(RATES, COLORS):
        r = xor[rate]
        w = ", ".join(f"{v:.3g}" for v in r["w"])
        _line(ax, r["w"], r["b"], 2.0, color=color, lw=1.5,
              label=f"{rate}: w = ({w}), b = {r['b']:.3g}\n{r['errors_after']} of 4 wrong "
                    f"after {r['epochs']} epochs")
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 2.2), title="XOR (red: y = 1): last boundary")
    ax.legend(fontsize=7, loc="upper center")
    ax = axes[-1]
    for rate, color in zip(RATES, COLORS):
        per_epoch = np.asarray(xor[rate]["mistakes_per_epoch"])
        ax.plot(np.arange(1, len(per_epoch) + 1), per_epoch, c=color, lw=1, label=f"XOR, {rate}")
        if example:
            ours = np.asarray(example["fits"][rate]["mistakes_per_epoch"])
            ours = ours[:max(int(np.flatnonzero(ours)[-1]) + 2, 1) if ours.any() else 1]
            ax.plot(np.arange(1, len(ours) + 1), ours, c=color, ls="--", marker="o", ms=3,
                    label=f"2-D example, {rate}")
    ax.set(xscale="log", xlabel="epoch", ylabel="updates in the epoch",
           title="Updates per epoch (separable data reaches 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path, "Rosenblatt's perceptron (boundaries w . x + b = 0)")


def _plot_example(ax, example: dict) -> None:
    x, y, u, b = example["data"]
    ax.scatter(*x[y == 1].T, s=8, c="tab:red", label="y = 1")
    ax.scatter(*x[y == 0].T, s=8, c="tab:blue", label="y = 0")
    _line(ax, u, b, 1.2, color="k", ls="--", lw=1, label="generating plane")
    for rate, color in zip(RATES, COLORS):
        r = example["fits"][rate]
        _line(ax, r["w"], r["b"], 1.2, color=color, lw=1.5,
              label=f"perceptron, {rate} rate ({r['mistakes']} updates)")
    ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.6),
           title=f"margin {example['margin']:g}: bound (R/gamma)^2 = {example['bound']:.0f}")
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def plot_bounds(sweep: dict, config: Config, path: str) -> str:
    fig, axes = figure(1, len(config.dims), figsize=(5.2 * len(config.dims), 4.2),
                             squeeze=False)
    for ax, d in zip(axes[0], config.dims):
        rows = [sweep[f"d={d}"][f"margin={m:g}"] for m in config.margins]
        margins = np.asarray(config.margins)
        ax.plot(margins, [np.mean(r["bound"]) for r in rows], "k-",
                label="(R/gamma)^2, generating plane")
        ax.plot(margins, [np.mean(r["bound_svm"]) for r in rows], "k:",
                label="(R/gamma)^2, SVM separator")
        for k, (rate, color) in enumerate(zip(RATES, COLORS)):
            shift = 1.0 + 0.04 * (2 * k - 1)  # side by side, so both rates' seeds are visible
            for m, r in zip(margins, rows):
                ax.scatter(np.full(len(r[rate]["mistakes"]), m * shift), r[rate]["mistakes"],
                           s=8, c=color, alpha=0.5)
            ax.plot(margins * shift, [np.mean(r[rate]["mistakes"]) for r in rows], "o-",
                    c=color, ms=4, label=f"updates, {rate} rate (dots: seeds)")
        ax.set(xscale="log", yscale="log", xlabel="margin imposed on the data",
               ylabel="number of updates", title=f"d = {d}, {config.n_points} points")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return save(fig, path, "Perceptron updates vs Novikoff's bound")


def main(config: Config, run_dir: str) -> dict:
    t_start = time.perf_counter()
    sweep, example = {}, None
    plot_m = min(config.margins, key=lambda m: abs(m - config.plot_margin))
    for i_d, d in enumerate(config.dims):
        sweep[f"d={d}"] = {}
        for i_m, margin in enumerate(config.margins):
            row, sets, fits = run_margin(config, d, margin, i_d, i_m)
            sweep[f"d={d}"][f"margin={margin:g}"] = row
            print(f"d={d:<3} margin {margin:<5g} bound {np.mean(row['bound']):8.0f} "
                  f"(SVM {np.mean(row['bound_svm']):7.0f})  updates fixed "
                  f"{np.mean(row['fixed']['mistakes']):6.1f} (max {max(row['fixed']['mistakes'])})"
                  f", normalised {np.mean(row['normalised']['mistakes']):6.1f} "
                  f"(max {max(row['normalised']['mistakes'])})")
            if example is None and d == 2 and margin == plot_m:
                example = {"margin": margin, "data": sets[0], "bound": row["bound"][0],
                           "fits": {rate: {"w": np.asarray(f.w[0]), "b": float(f.b[0]),
                                           "mistakes": int(f.mistakes[0]),
                                           "mistakes_per_epoch": np.asarray(
                                               f.mistakes_per_epoch[0])}
                                    for rate, f in fits.items()}}
    xor = run_xor(config)
    for rate, r in xor.items():
        print(f"XOR {rate}: converged {r['converged']}, epochs {r['epochs']} of "
              f"{r['max_epochs']}, {r['mistakes']} updates")
    rows = [r for by_margin in sweep.values() for r in by_margin.values()]
    results = {
        "all_converged": all(all(r[rate]["converged"]) for r in rows for rate in RATES),
        "all_under_bound": all(r[rate]["under_bound"] for r in rows for rate in RATES),
        "all_under_bound_svm": all(r[rate]["under_bound_svm"] for r in rows for rate in RATES),
        "max_mistakes_over_bound": max(r[rate]["max_mistakes_over_bound"] for r in rows
                                       for rate in RATES),
        "max_mistakes_over_bound_svm": max(r[rate]["max_mistakes_over_bound_svm"] for r in rows
                                           for rate in RATES),
        "xor_not_converged_at_limit": all(not r["converged"] and r["epochs"] == r["max_epochs"]
                                          for r in xor.values()),
        "sweep": sweep, "xor": xor, "plots": []}
    results["plots"].append(os.path.basename(
        plot_examples(example, xor, os.path.join(run_dir, "perceptron.png"))))
    results["plots"].append(os.path.basename(
        plot_bounds(sweep, config, os.path.join(run_dir, "perceptron_bound.png"))))
    results["seconds"] = time.perf_counter() - t_start
    print(f"all under the bound: {results['all_under_bound']} (largest updates/bound "
          f"{results['max_mistakes_over_bound']:.3f}); XOR stopped at the limit: "
          f"{results['xor_not_converged_at_limit']}; {results['seconds']:.0f} s")
    return results
