"""Random MNIST-shaped splits for the experiments' smoke tests (no data set needed)."""

import numpy as np


def loader(sizes: dict[str, int]):
    """A stand-in for ``dlmodels.data.load``: split ``s`` gives ``sizes[s]`` random examples,
    x float32 [N, 784] in [0, 1] and y int32 [N] in 0..9, the same for the same split."""

    def load(name, split):
        rng = np.random.default_rng(list(sizes).index(split))
        n = sizes[split]
        return (rng.uniform(size=(n, 784)).astype(np.float32),
                rng.integers(0, 10, n).astype(np.int32))

    return load
