"""Building blocks: layers, activations, initialisers, dropout."""

from dlmodels.nn import activations, initializers
from dlmodels.nn.activations import arctan, relu, sigmoid, softplus, step, tanh
from dlmodels.nn.dense import dense
from dlmodels.nn.dropout import dropout

__all__ = ["activations", "initializers", "dense", "dropout", "sigmoid", "tanh", "relu", "arctan",
           "softplus", "step"]
