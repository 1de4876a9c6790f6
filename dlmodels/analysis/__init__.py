"""Analysis tools: what happens inside a network while it trains (activations, saturation,
back-propagated gradients)."""

from dlmodels.analysis import mlp_stats
from dlmodels.analysis.mlp_stats import (SATURATION_THRESHOLDS, activation_statistics,
                                         backprop_statistics, gradients, histograms, layer_names,
                                         layer_statistics)
