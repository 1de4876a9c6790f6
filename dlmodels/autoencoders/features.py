"""What the hidden units have learned: maximally activating inputs and reconstruction grids.

For a unit h_i = f(sum_j W_ji x_j + b_i) with monotone f, the input of norm ||x||_2 <= 1 that
activates it most is x* = W_:i / ||W_:i||_2 (Cauchy-Schwarz; the course notes' feature
visualisation, as in Ng's sparse autoencoder notes), so drawing the normalised weight columns as
images shows each unit's preferred pattern.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.plots import image_grid
from dlmodels.validation import check_rank


def max_activating_inputs(w: jax.Array, *, eps: float = 1e-12) -> jax.Array:
    """x*_i = W_:i / ||W_:i||_2 for each hidden unit i of a first layer ``w [D, H]`` -> ``[H, D]``."""
    check_rank(w, 2, "max_activating_inputs: weights w [D, H]")
    return (w / jnp.maximum(jnp.linalg.norm(w, axis=0, keepdims=True), eps)).T


def feature_grid(w: jax.Array, path: str | os.PathLike, *, image_shape: tuple[int, int],
                 n_units: int = 100, n_cols: int = 10, title: str = "", name: str = "units") -> str:
    """The first ``n_units`` maximally activating inputs of ``w [D, H]`` as an image grid
    (grey = 0, symmetric colour scale per unit). ``w`` may be a dict ``{panel: w}`` to draw several
    models side by side. Returns the path written."""
    panels = w if isinstance(w, dict) else {name: w}
    images = {k: np.asarray(max_activating_inputs(jnp.asarray(v)))[:n_units] for k, v in panels.items()}
    return image_grid(images, path, n_cols=n_cols, image_shape=image_shape, symmetric=True,
                      title=title)


def reconstruction_grid(x, reconstructions: dict, path: str | os.PathLike, *,
                        image_shape: tuple[int, int], n: int = 20, n_cols: int = 10,
                        title: str = "") -> str:
    """Inputs ``x [N, D]`` beside each model's reconstructions ``{name: r [N, D]}`` (first ``n``)."""
    panels = {"input": np.asarray(x)[:n]}
    panels.update({k: np.asarray(v)[:n] for k, v in reconstructions.items()})
    return image_grid(panels, path, n_cols=n_cols, image_shape=image_shape, title=title)
