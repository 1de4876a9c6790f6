"""scikit-learn's embedded 8x8 digits (1,797 images, 10 classes): needs no download.

Split: ``perm = np.random.default_rng(0).permutation(1797)``; test = ``perm[:360]``, valid =
``perm[360:540]``, train = ``perm[540:]`` (1,257). Within a split the examples keep their original
order (the indices are sorted), so the split is fixed and the same on every machine.
"""

from __future__ import annotations

import numpy as np

from dlmodels.data.cache import DataError

N_EXAMPLES = 1797
N_TEST = 360
N_VALID = 180
SPLITS = ("train", "valid", "test")
SEED = 0


def split_indices(split: str) -> np.ndarray:
    """Sorted int64 indices into ``load_digits()`` of one split (see the module docstring)."""
    perm = np.random.default_rng(SEED).permutation(N_EXAMPLES)
    parts = {"test": perm[:N_TEST], "valid": perm[N_TEST:N_TEST + N_VALID],
             "train": perm[N_TEST + N_VALID:]}
    return np.sort(parts[split])


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x float32 ``[N, 64]`` = pixels / 16 in [0, 1], y int32 ``[N]`` in 0..9."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    if len(bunch.target) != N_EXAMPLES:
        raise DataError(f"scikit-learn's digits has {len(bunch.target)} examples, "
                           f"expected {N_EXAMPLES}")
    idx = split_indices(split)
    x = (bunch.images.reshape(N_EXAMPLES, -1)[idx] / 16.0).astype(np.float32)
    y = bunch.target[idx].astype(np.int32)
    return x, y
