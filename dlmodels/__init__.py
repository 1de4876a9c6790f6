"""dlmodels: the classic deep-learning models as pure functions over parameter pytrees."""

from dlmodels.model import Model

__version__ = "0.1.0"
__all__ = ["Model", "__version__"]
