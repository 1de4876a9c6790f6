"""PNG plots of training curves (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def training_curves(histories: dict[str, list[dict]], path: str | os.PathLike, *,
                    keys: Sequence[str] = ("train_loss", "eval_accuracy"), title: str = "") -> str:
    """One panel per key (x: epoch), one line per named history (the trainer's per-epoch dicts);
    list-valued entries (K vmapped runs) are drawn as their mean with a min-max band."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
