"""Seeded, shuffled mini-batches over host (numpy) arrays.

The order of examples is a pure function of ``(key, epoch)``, so a run that stops and resumes at
any step sees exactly the batches it would have seen without stopping.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import jax
import numpy as np


def batch_indices(key: jax.Array, n: int, batch_size: int, *, epoch: int = 0,
                  shuffle: bool = True, drop_last: bool = True) -> np.ndarray:
    """Indices of the mini-batches of one epoch, as an int array ``[n_batches, batch_size]``.

    The permutation is ``jax.random.permutation(fold_in(key, epoch), n)``. With ``drop_last`` the
    ``n % batch_size`` examples left over are not used this epoch (another permutation next epoch);
    without it the last row is padded by wrapping around to the start of the permutation.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n < batch_size and drop_last:
        raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} examples)")
    if shuffle:
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
    else:
        order = np.arange(n)
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    need = n_batches * batch_size
    if need > n:
        order = np.concatenate([order, order[: need - n]])
    return order[:need].reshape(n_batches, batch_size)


def batches(key: jax.Array, arrays: Sequence[np.ndarray], batch_size: int, *, epoch: int = 0,
            shuffle: bool = True, drop_last: bool = True) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield tuples of mini-batches ``(a[idx] for a in arrays)`` for one epoch."""
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"arrays have different numbers of examples: {sorted(sizes)}")
    for idx in batch_indices(key, sizes.pop(), batch_size, epoch=epoch, shuffle=shuffle,
                             drop_last=drop_last):
        yield tuple(a[idx] for a in arrays)
