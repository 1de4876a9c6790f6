"""Building blocks: layers, activations, initialisers, dropout, convolutions (plain and
transposed), pooling, normalisation (local response, batch)."""

from dlmodels.nn import activations, initializers
from dlmodels.nn.activations import arctan, relu, sigmoid, softplus, step, tanh
from dlmodels.nn.conv import (conv1d, conv1d_layer, conv2d, conv2d_layer, conv_transpose2d,
                              conv_transpose2d_layer, flatten)
from dlmodels.nn.dense import dense
from dlmodels.nn.dropout import dropout, masking_noise
from dlmodels.nn.normalization import batch_norm, local_response_norm
from dlmodels.nn.pooling import avg_pool, max_pool

__all__ = ["activations", "initializers", "dense", "dropout", "masking_noise", "sigmoid", "tanh",
           "relu", "arctan", "softplus", "step", "conv1d", "conv2d", "conv1d_layer", "conv2d_layer",
           "conv_transpose2d", "conv_transpose2d_layer", "flatten", "max_pool", "avg_pool",
           "local_response_norm", "batch_norm"]
