"""The training engine: train state, jitted (scanned, vmapped) steps, the epoch loop, checkpoints;
steps follow a loss_fn, a gradient estimator (CD-k / PCD with carried state) or an updater
(several players with their own optimizers: GANs)."""

from dlmodels.train.checkpoint import Checkpointer, CheckpointError
from dlmodels.train.estimators import GradientEstimator, Updater, as_estimator, from_loss
from dlmodels.train.loop import FitResult, NonFiniteError, TrainConfig, fit, summarize
from dlmodels.train.optimizers import (OptimizerConfig, cyclic, inverse_time,
                                       learning_rate_schedule, make_optimizer)
from dlmodels.train.state import TrainState, create, init_state, init_states, set_hyperparams
from dlmodels.train.step import (StepMetrics, make_evaluate, make_train_step, make_train_steps,
                                 make_vmapped_train_steps)

__all__ = ["Checkpointer", "CheckpointError", "FitResult", "NonFiniteError", "TrainConfig", "fit",
           "summarize", "GradientEstimator", "Updater", "as_estimator", "from_loss", "TrainState", "create",
           "init_state", "init_states", "set_hyperparams", "StepMetrics", "make_evaluate",
           "make_train_step", "make_train_steps", "make_vmapped_train_steps", "OptimizerConfig",
           "cyclic", "inverse_time", "learning_rate_schedule", "make_optimizer"]
