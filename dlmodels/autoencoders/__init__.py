"""Autoencoders: the one-hidden-layer family (undercomplete, linear, sparse, denoising, contractive),
its training objective, deep and stacked autoencoders with greedy pretraining, and feature
visualisation.

- ``shallow``: ``autoencoder``, ``corrupt``, ``contractive_penalty``, ``l1_sparsity``, ``kl_sparsity``
- ``objective``: ``objective`` (loss_fn, eval_fn for ``dlmodels.train.fit``), ``reconstruction_error``
- ``deep``: ``deep_autoencoder``, ``pretrain`` (the one greedy layer-wise path: RBMs, autoencoders or denoising
  autoencoders), ``unfold``
- ``features``: ``max_activating_inputs``, ``feature_grid``, ``reconstruction_grid``
"""

from dlmodels.autoencoders.deep import deep_autoencoder, pretrain, unfold
from dlmodels.autoencoders.features import (feature_grid, max_activating_inputs,
                                            reconstruction_grid)
from dlmodels.autoencoders.objective import objective, reconstruction_error
from dlmodels.autoencoders.shallow import (CORRUPTIONS, autoencoder, contractive_penalty, corrupt,
                                           kl_sparsity, l1_sparsity)

__all__ = ["CORRUPTIONS", "autoencoder", "contractive_penalty", "corrupt", "deep_autoencoder",
           "feature_grid", "kl_sparsity", "l1_sparsity", "max_activating_inputs", "objective",
           "pretrain", "reconstruction_error", "reconstruction_grid", "unfold"]
