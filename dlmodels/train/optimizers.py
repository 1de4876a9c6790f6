"""Optimisers and learning-rate schedules by name, for configs and the command line.

Everything is optax; this module only maps a flat config onto an optax chain:
``clip_by_global_norm(clip_norm)`` (Pascanu, Mikolov & Bengio 2013, Algorithm 1: if ||g|| > c then
g <- c g / ||g||), then weight decay, then the optimiser with its learning-rate schedule.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import optax

from dlmodels.validation import check_choice, check_nonnegative, check_positive

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential", "inverse_time", "step", "cyclic", "sgdr",
             "warmup_cosine")


def cyclic(base_rate: float, max_rate: float, step_size: int) -> Callable:
    """Triangular cyclical learning rate (Smith 2017): the rate climbs linearly from ``base_rate``
    to ``max_rate`` over ``step_size`` steps, falls back over the next ``step_size``, and repeats:
    ``cycle = floor(1 + t / (2 s))``, ``x = |t / s - 2 cycle + 1|``,
    ``lr = base + (max - base) max(0, 1 - x)``."""
    check_positive("cyclic step_size", step_size)

    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        cycle = jnp.floor(1.0 + t / (2.0 * step_size))
        x = jnp.abs(t / step_size - 2.0 * cycle + 1.0)
        return base_rate + (max_rate - base_rate) * jnp.maximum(0.0, 1.0 - x)

    return schedule


def inverse_time(rate: float, tau: float) -> Callable:
    """Annealing ``lr_t = lr_0 / (1 + t / tau)``, the Robbins-Monro rate (sum lr = inf,
    sum lr^2 < inf)."""
    check_positive("inverse_time tau", tau)
    return lambda count: rate / (1.0 + jnp.asarray(count, jnp.float32) / tau)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optimiser, its learning-rate schedule and what is done to the gradient first, as flat
    fields for configs and the command line (see `make_optimizer`)."""

    name: str = "adam"
    """one of `OPTIMIZERS`"""
    learning_rate: float = 1e-3
    """the peak rate of every schedule"""
    momentum: float = 0.9
    """the momentum of the "momentum" and "nesterov" optimisers"""
    schedule: str = "constant"
    """one of `SCHEDULES`"""
    decay_steps: int = 0
    """the period of cosine, exponential, step and sgdr, the full cycle of cyclic, tau of
    inverse_time (0: the run's total steps; a tenth of it for inverse_time)"""
    decay_rate: float = 0.1
    """the factor per period of exponential and step"""
    min_rate: float = 0.0
    """the cyclic base rate (0: lr / 10) and the floor of cosine, sgdr and warmup_cosine"""
    warmup_steps: int = 0
    """the linear warm-up of warmup_cosine"""
    clip_norm: float = 0.0
    """> 0: clip the global gradient norm to it (Pascanu, Mikolov & Bengio 2013)"""
    weight_decay: float = 0.0
    """adds ``weight_decay * w`` to the gradient (classic weight decay, the gradient of
    ``weight_decay/2 ||w||^2``); for adamw the decoupled decay of Loshchilov & Hutter 2019"""

    def __post_init__(self):
        check_choice("OptimizerConfig.name", self.name, OPTIMIZERS)
        check_choice("OptimizerConfig.schedule", self.schedule, SCHEDULES)
        check_positive("OptimizerConfig.learning_rate", self.learning_rate)
        for name in ("decay_steps", "decay_rate", "min_rate", "warmup_steps", "clip_norm",
                     "weight_decay", "momentum"):
            check_nonnegative(f"OptimizerConfig.{name}", getattr(self, name))


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The schedule of ``config`` for a run of ``total_steps`` updates."""
    lr, period = config.learning_rate, config.decay_steps or max(total_steps, 1)
    match config.schedule:
        case "constant":
            return optax.constant_schedule(lr)
        case "cosine":
            return optax.cosine_decay_schedule(lr, period, alpha=config.min_rate / lr)
        case "exponential":
            return optax.exponential_decay(lr, period, config.decay_rate)
        case "inverse_time":
            return inverse_time(lr, config.decay_steps or max(total_steps / 10, 1.0))
        case "step":
            return optax.exponential_decay(lr, period, config.decay_rate, staircase=True)
        case "cyclic":
            return cyclic(config.min_rate or lr / 10, lr, max(period // 2, 1))
        case "sgdr":
            cycles = max(total_steps // period, 1)
            return optax.sgdr_schedule([{"init_value": lr, "peak_value": lr, "decay_steps": period,
                                         "warmup_steps": 0, "end_value": config.min_rate}] * cycles)
        case "warmup_cosine":
            return optax.warmup_cosine_decay_schedule(0.0, lr, config.warmup_steps,
                                                      max(total_steps, config.warmup_steps + 1),
                                                      end_value=config.min_rate)
    raise AssertionError(config.schedule)


def make_optimizer(config: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    """The optax chain for ``config``: [clip] -> [weight decay] -> optimiser(schedule)."""
    schedule = learning_rate_schedule(config, total_steps)
    match config.name:
        case "sgd":
            core = optax.sgd(schedule)
        case "momentum":
            core = optax.sgd(schedule, momentum=config.momentum)
        case "nesterov":
            core = optax.sgd(schedule, momentum=config.momentum, nesterov=True)
        case "adam":
            core = optax.adam(schedule)
        case "adamw":
            core = optax.adamw(schedule, weight_decay=config.weight_decay)
        case "rmsprop":
            core = optax.rmsprop(schedule)
    parts = []
    if config.clip_norm:
        parts.append(optax.clip_by_global_norm(config.clip_norm))
    if config.weight_decay and config.name != "adamw":
        parts.append(optax.add_decayed_weights(config.weight_decay))
    parts.append(core)
    return optax.chain(*parts)
