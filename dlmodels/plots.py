"""PNG plots of training curves and layer statistics.

Every figure is a ``matplotlib.figure.Figure`` drawn on its own Agg canvas, outside pyplot: no
display is needed, the caller's backend (``matplotlib.get_backend()``) is never changed, and no
figure is left registered with pyplot.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib


def figure(nrows: int = 1, ncols: int = 1, *, figsize=None, **subplots):
    """``(fig, axes)`` as ``matplotlib.pyplot.subplots(nrows, ncols, figsize=figsize,
    **subplots)`` gives, but the figure is a ``matplotlib.figure.Figure`` on its own Agg canvas,
    outside pyplot: the caller's backend is not touched and nothing needs closing. Write it with
    `save`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def _panels(n: int, width: float, height: float, **subplots):
    """``n`` panels side by side, each ``width`` x ``height`` inches: ``(fig, axes [1, n])``."""
    return figure(1, n, figsize=(width * n, height), squeeze=False, **subplots)


def save(fig, path: str | os.PathLike, title: str = "") -> str:
    """Title, lay out and write the PNG of a `figure`; returns the path. With several processes
    only process 0 writes (the others return the path)."""
    from dlmodels import distributed

    if not distributed.is_main():
        return os.fspath(path)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.fspath(path)


def training_curves(histories: dict[str, list[dict]], path: str | os.PathLike, *,
                    keys: Sequence[str] = ("train_loss", "eval_accuracy"), title: str = "") -> str:
    """One panel per key (x: epoch), one line per named history (the trainer's per-epoch dicts);
    list-valued entries (K vmapped runs) are drawn as their mean with a min-max band."""
    import numpy as np

    fig, axes = _panels(len(keys), 5.0, 3.6)
    for ax, key in zip(axes[0], keys):
        for label, history in histories.items():
            rows = [h for h in history if key in h]
            if not rows:
                continue
            epochs = [h["epoch"] for h in rows]
            values = np.asarray([h[key] for h in rows], dtype=float)
            if values.ndim == 2:
                ax.fill_between(epochs, values.min(1), values.max(1), alpha=0.25)
                values = values.mean(1)
            ax.plot(epochs, values, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if "loss" in key:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path, title)


def plot_layer_histograms(panels, path: str | os.PathLike, *, bins: int = 60,
                          value_range: tuple[float, float] | None = None, density: bool = True,
                          log_y: bool = False, xlabel: str = "value", title: str = "",
                          layer_label: str = "layer {}") -> str:
    """Per-layer histograms, one line per layer, as in Glorot & Bengio (2010)'s Figures 4, 6, 7.

    ``panels``: ``{panel title: [values of layer 1, ..., layer L]}`` (one panel each, side by
    side), or a bare list of per-layer arrays for a single panel. Arrays of any shape are
    flattened. All panels share bins over ``value_range`` (default: the min and max of everything),
    so they can be compared by eye; ``density`` normalises each histogram to area 1.
    ``layer_label`` is formatted with the 1-based layer number.
    """
    import numpy as np

    from dlmodels.analysis.mlp_stats import histograms

    if not isinstance(panels, dict):
        panels = {"": panels}
    if value_range is None:
        flat = [np.asarray(v, np.float64).ravel() for layers in panels.values() for v in layers]
        value_range = (min(a.min() for a in flat), max(a.max() for a in flat))
    fig, axes = _panels(len(panels), 4.6, 3.6, sharey=True)
    for ax, (name, layers) in zip(axes[0], panels.items()):
        counts, edges = histograms(layers, bins, value_range=value_range, density=density)
        centres = 0.5 * (edges[:-1] + edges[1:])
        colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(counts)))
        for i, (row, colour) in enumerate(zip(counts, colours)):
            ax.plot(centres, row, color=colour, lw=1.4, label=layer_label.format(i + 1))
        if log_y:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("density" if density else "count")
    axes[0][-1].legend(fontsize=8)
    return save(fig, path, title)


def plot_layer_curves(panels: dict, path: str | os.PathLike, *, ylabel: str = "value",
                      xlabel: str = "training step", title: str = "",
                      ylim: tuple[float, float] | None = None, layer_label: str = "layer {}",
                      line_label: str = "", marker_label: str = "") -> str:
    """Per-layer statistics over training, one panel per entry, one colour per layer, as in
    Glorot & Bengio (2010)'s Figure 2 (mean with a +-std band) and Figure 3 (98th percentile as
    markers, std as lines).

    ``panels``: ``{panel title: {"steps": [S], "values": [S, L], "spread": [S, L] (optional: a
    band values +- spread), "markers": [S, L] (optional: drawn as markers alone)}}``.
    """
    import numpy as np

    fig, axes = _panels(len(panels), 5.2, 3.8, sharey=True)
    for ax, (name, panel) in zip(axes[0], panels.items()):
        steps = np.asarray(panel["steps"])
        values = np.asarray(panel["values"], dtype=float)
        colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, values.shape[1]))
        for l, colour in enumerate(colours):
            label = layer_label.format(l + 1) + (f" {line_label}" if line_label else "")
            ax.plot(steps, values[:, l], color=colour, lw=1.4, label=label)
            if panel.get("spread") is not None:
                spread = np.asarray(panel["spread"], dtype=float)[:, l]
                ax.fill_between(steps, values[:, l] - spread, values[:, l] + spread, color=colour,
                                alpha=0.15, lw=0)
            if panel.get("markers") is not None:
                ax.plot(steps, np.asarray(panel["markers"], dtype=float)[:, l], ls="none",
                        marker=".", ms=3, color=colour,
                        label=marker_label if (marker_label and l == 0) else None)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7, ncol=2)
    return save(fig, path, title)


def plot_per_layer(panels: dict, path: str | os.PathLike, *, ylabel: str = "value",
                   log_y: bool = False, title: str = "", xlabel: str = "layer") -> str:
    """One value per layer, one line per series, one panel per entry: e.g. the variance of the
    back-propagated gradients at each layer for several networks (Glorot & Bengio 2010, sec. 4.2).

    ``panels``: ``{panel title: {series label: [value of layer 1, ..., layer L]}}``.
    """
    import numpy as np

    fig, axes = _panels(len(panels), 5.0, 3.8)
    for ax, (name, series) in zip(axes[0], panels.items()):
        for label, values in series.items():
            values = np.asarray(values, dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=4, label=label)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path, title)


def image_grid(panels: dict, path: str | os.PathLike, *, n_cols: int = 10,
               image_shape: tuple[int, int] | None = None, symmetric: bool = False,
               title: str = "") -> str:
    """Grids of small images side by side, one panel per ``{name: images [n, h, w] or [n, h*w]}``
    (``image_shape`` reshapes flat rows). ``symmetric``: a grey-centred colour scale per image,
    for weights (filters) whose sign matters; otherwise each panel is drawn in [min, max]."""
    import numpy as np

    # height follows the grids' aspect (rows / columns), plus room for the titles
    most = max(len(np.asarray(v)) for v in panels.values())
    aspect = -(-most // n_cols) / min(n_cols, max(most, 1))
    fig, axes = _panels(len(panels), 4.2, 4.2 * aspect + 0.9)
    for ax, (name, images) in zip(axes[0], panels.items()):
        images = np.asarray(images, np.float32)
        if image_shape is not None:
            images = images.reshape(-1, *image_shape)
        if images.ndim != 3:
            raise ValueError(f"panel {name!r}: images must be [n, h, w], got {images.shape}")
        if symmetric:
            scale = np.max(np.abs(images), axis=(1, 2), keepdims=True) + 1e-12
            images = 0.5 + 0.5 * images / scale
            lo, hi = 0.0, 1.0
        else:
            lo, hi = float(images.min()), float(images.max())
        n, h, w = images.shape
        rows = -(-n // n_cols)
        canvas = np.full((rows * (h + 1) + 1, n_cols * (w + 1) + 1), hi if not symmetric else 1.0,
                         np.float32)
        for i, image in enumerate(images):
            r, c = divmod(i, n_cols)
            canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = image
        ax.imshow(canvas, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    return save(fig, path, title)


def code_scatter(panels: dict, path: str | os.PathLike, *, title: str = "",
                 class_names: Sequence[str] | None = None, point_size: float = 2.0) -> str:
    """2-D codes coloured by class, one panel per ``{name: (codes [N, 2], labels [N])}`` (e.g. a
    deep autoencoder's 2-unit code beside PCA's first two components)."""
    import numpy as np

    fig, axes = _panels(len(panels), 5.2, 4.8)
    for ax, (name, (codes, labels)) in zip(axes[0], panels.items()):
        codes, labels = np.asarray(codes), np.asarray(labels)
        if codes.ndim != 2 or codes.shape[1] != 2 or labels.shape != codes.shape[:1]:
            raise ValueError(f"panel {name!r}: need codes [N, 2] and labels [N], got "
                             f"{codes.shape} and {labels.shape}")
        classes = np.unique(labels)
        cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for i, c in enumerate(classes):
            keep = labels == c
            label = class_names[int(c)] if class_names is not None else str(c)
            ax.scatter(codes[keep, 0], codes[keep, 1], s=point_size, color=cmap(i % cmap.N),
                       label=label, rasterized=True)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, path, title)
