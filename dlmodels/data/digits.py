"""The 8x8 handwritten digits (1,797 images, 10 classes), embedded: needs no download.

The file ``digits.npz`` beside this module is a copy of the data scikit-learn ships as
``load_digits()`` (pixel counts 0..16; from the UCI "Optical Recognition of Handwritten Digits"
test set, Alpaydin & Kaynak 1998, CC BY 4.0), so the main job runs without scikit-learn; a test
checks the copy equals scikit-learn's.

Split: ``perm = np.random.default_rng(0).permutation(1797)``; test = ``perm[:360]``, valid =
``perm[360:540]``, train = ``perm[540:]`` (1,257). Within a split the examples keep their original
order (the indices are sorted), so the split is fixed and the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlmodels.data.cache import DataError

N_EXAMPLES = 1797
N_TEST = 360
N_VALID = 180
SPLITS = ("train", "valid", "test")
SEED = 0
EMBEDDED = Path(__file__).with_name("digits.npz")


def split_indices(split: str) -> np.ndarray:
    """Sorted int64 indices into ``load_digits()`` of one split (see the module docstring)."""
    perm = np.random.default_rng(SEED).permutation(N_EXAMPLES)
    parts = {"test": perm[:N_TEST], "valid": perm[N_TEST:N_TEST + N_VALID],
             "train": perm[N_TEST + N_VALID:]}
    return np.sort(parts[split])


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: x float32 ``[N, 64]`` = pixels / 16 in [0, 1], y int32 ``[N]`` in 0..9."""
    try:
        with np.load(EMBEDDED) as f:
            pixels, labels = f["x"], f["y"]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"the embedded digits file {EMBEDDED} is missing or damaged ({e}); "
                        "reinstall dlmodels") from e
    if pixels.shape != (N_EXAMPLES, 64) or labels.shape != (N_EXAMPLES,):
        raise DataError(f"the embedded digits file {EMBEDDED} has shapes {pixels.shape}, "
                        f"{labels.shape}; expected ({N_EXAMPLES}, 64), ({N_EXAMPLES},)")
    idx = split_indices(split)
    x = (pixels[idx] / 16.0).astype(np.float32)
    y = labels[idx].astype(np.int32)
    return x, y
