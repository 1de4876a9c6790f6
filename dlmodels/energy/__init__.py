"""Energy-based models: Hopfield networks, restricted Boltzmann machines, deep belief networks."""

from dlmodels.energy import dbn, hopfield, rbm, training

__all__ = ["dbn", "hopfield", "rbm", "training"]
