"""Energy-based models: Hopfield networks, restricted Boltzmann machines (``rbm.rbm`` builds one;
``rbm.train`` trains it through ``dlmodels.train.fit``), deep belief networks."""

from dlmodels.energy import dbn, hopfield, rbm

__all__ = ["dbn", "hopfield", "rbm"]
