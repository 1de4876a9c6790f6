"""The training engine: train state, jitted (scanned, vmapped) steps, the epoch loop, checkpoints."""

from dlmodels.train.checkpoint import Checkpointer, CheckpointError
from dlmodels.train.loop import FitResult, NonFiniteError, TrainConfig, fit, summarize
from dlmodels.train.optimizers import (OptimizerConfig, cyclic, inverse_time,
                                       learning_rate_schedule, make_optimizer)
from dlmodels.train.state import TrainState, create, init_state, init_states, set_hyperparams
from dlmodels.train.step import (StepMetrics, make_evaluate, make_train_step, make_train_steps,
                                 make_vmapped_train_steps)

__all__ = ["Checkpointer", "CheckpointError", "FitResult", "NonFiniteError", "TrainConfig", "fit",
           "summarize", "TrainState", "create", "init_state", "init_states", "set_hyperparams",
           "StepMetrics", "make_evaluate", "make_train_step", "make_train_steps",
           "make_vmapped_train_steps", "OptimizerConfig", "cyclic", "inverse_time",
           "learning_rate_schedule", "make_optimizer"]
