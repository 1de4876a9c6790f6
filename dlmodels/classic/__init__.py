"""Classic neural models: McCulloch-Pitts units, the perceptron, Hebb's rule, associative memories."""

from dlmodels.classic import associative, perceptron
from dlmodels.classic.associative import (binary_recall, binary_store, degrade, linear_hebbian,
                                          linear_least_squares, linear_recall)
from dlmodels.classic.perceptron import (NovikoffBound, PerceptronResult, hebbian, hebbian_step,
                                         novikoff_bound, predict, threshold_unit)

__all__ = ["associative", "perceptron", "NovikoffBound", "PerceptronResult", "threshold_unit",
           "predict", "novikoff_bound", "hebbian", "hebbian_step", "binary_store",
           "binary_recall", "linear_hebbian", "linear_least_squares", "linear_recall", "degrade"]
