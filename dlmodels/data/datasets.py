"""The registry of data sets: `load` a split of an (x, y) set by name, `fetch` what any data set
(an (x, y) set of `DATASETS` or a text corpus of `TEXT_DATASETS`) needs into the cache."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from dlmodels.data import (austen, digits, fashion_mnist, listops, mnist, numbers, pattern,
                           shakespeare, sotu, word_similarity)
from dlmodels.data.cache import DataError

_MODULES: dict[str, ModuleType] = {"digits": digits, "mnist": mnist, "fashion_mnist": fashion_mnist}
DATASETS: tuple[str, ...] = tuple(_MODULES)
# Text corpora: each module has its own loaders (dlmodels.data.shakespeare.load(split), ...).
_TEXT_MODULES: dict[str, ModuleType] = {"shakespeare": shakespeare, "austen": austen,
                                        "pattern_corpora": pattern, "numbers": numbers,
                                        "listops": listops, "word_similarity": word_similarity,
                                        "sotu": sotu}
TEXT_DATASETS: tuple[str, ...] = tuple(_TEXT_MODULES)


def _module(name: str) -> ModuleType:
    if name in _TEXT_MODULES:
        module = _TEXT_MODULES[name].__name__
        raise DataError(f"{name} is a text corpus, not an (x, y) data set: use {module} "
                        "(e.g. its load(split))")
    if name not in _MODULES:
        raise DataError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)} "
                        f"(text corpora: {', '.join(TEXT_DATASETS)})")
    return _MODULES[name]


def splits(name: str) -> tuple[str, ...]:
    """The split names of data set ``name``, e.g. ``("train", "valid", "test")``."""
    return _module(name).SPLITS


def load(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of a data set as host arrays ``(x, y)``.

    x: float32 ``[N, D]``, each example flattened, values in [0, 1] (D = 64 for digits, 784 for
    mnist and fashion_mnist). y: int32 ``[N]`` class labels in 0..9.
    Splits: digits train/valid/test = 1,257/180/360; mnist train/valid/test = 50k/10k/10k;
    fashion_mnist train/test = 60k/10k. Raises `DataError` if the name or split is unknown or the
    data is missing from the cache (the message says the command that fetches it).
    """
    module = _module(name)
    if split not in module.SPLITS:
        raise DataError(f"unknown split {split!r} of {name}; valid splits: {', '.join(module.SPLITS)}")
    return module.load(split)


def fetch(name: str) -> str:
    """Download what data set ``name`` (in `DATASETS` or `TEXT_DATASETS`) needs into the cache;
    returns a line for the user (the path its loaders read, or for digits a note that nothing
    needs fetching). Safe to rerun: does nothing when the cache already verifies."""
    if name == "digits":
        return "digits is embedded in scikit-learn: nothing to fetch"
    if name in _TEXT_MODULES:
        return str(_TEXT_MODULES[name].fetch())
    return str(_module(name).fetch())
