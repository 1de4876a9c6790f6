"""Analysis tools: what happens inside a network while it trains (activations, saturation,
back-propagated gradients) and how gradients flow through time in recurrent networks."""

from dlmodels.analysis import mlp_stats
from dlmodels.analysis.mlp_stats import (SATURATION_THRESHOLDS, activation_statistics,
                                         backprop_statistics, gradients, histograms, layer_names,
                                         layer_statistics)
from dlmodels.analysis import recurrent
from dlmodels.analysis.recurrent import (hidden_gradient_norms, hidden_gradients,
                                         jacobian_products, spectrum, step_jacobians,
                                         vanishing_bound, with_largest_singular_value,
                                         with_spectral_radius)
from dlmodels.analysis import bptt
from dlmodels.analysis.bptt import contributions, elman_contributions
