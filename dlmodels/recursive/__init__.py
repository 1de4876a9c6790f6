"""Recursive networks: trees packed into a padded node table (:class:`Forest`, :func:`pack`,
:func:`binarize`) and evaluated level by level in one ``lax.scan`` (:func:`bottom_up`); Socher's
recursive net and the child-sum / N-ary Tree-LSTMs (Tai et al. 2015) on top."""

from dlmodels.recursive.forest import (Forest, binarize, bottom_up, check_forest, chunk_size,
                                       n_levels, pack, root_rows)
from dlmodels.recursive.models import KINDS, node_states, recursive_net, tree_lstm

__all__ = ["Forest", "pack", "binarize", "bottom_up", "check_forest", "chunk_size",
           "n_levels", "root_rows", "recursive_net", "tree_lstm", "node_states", "KINDS"]
