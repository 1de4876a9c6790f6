"""Training RBMs with CD-k or PCD and an optax optimizer, one jitted ``lax.scan`` per epoch.

The default optimizer follows Hinton's practical guide (2010): SGD on the CD/PCD gradient with
momentum 0.5 for the first epochs then 0.9, and L2 weight decay on the weights only
(``theta <- theta - eps (g + lambda W)``, biases not decayed).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels.energy import rbm


@dataclasses.dataclass(frozen=True)
class RBMTrainConfig:
    """``method``: ``"cd"`` (CD-k from the data) or ``"pcd"`` (persistent chains, ``n_chains`` of
    them). ``momentum`` applies after ``momentum_switch_epochs`` epochs at ``initial_momentum``.
    ``monitor_size`` examples of the training data (or of ``monitor_data``) are scored after each
    epoch by reconstruction error and, for binary RBMs, exact pseudo-log-likelihood."""

    epochs: int = 10
    batch_size: int = 100
    method: Literal["cd", "pcd"] = "cd"
    k: int = 1
    learning_rate: float = 0.05
    learning_rate_decay: bool = False
    initial_momentum: float = 0.5
    momentum: float = 0.9
    momentum_switch_epochs: int = 5
    weight_decay: float = 2e-4
    n_chains: int = 100
    sample_visible_units: bool = True
    seed: int = 0
    monitor_size: int = 500
    progress: bool = False

    def __post_init__(self):
        if self.method not in ("cd", "pcd"):
            raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")
        for name in ("epochs", "batch_size", "k", "n_chains"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("initial_momentum", "momentum"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


def default_optimizer(config: RBMTrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD with momentum ``initial_momentum`` -> ``momentum`` and weight decay on ``w`` only; the
    learning rate optionally decays linearly to 0 over training."""
    total = config.epochs * steps_per_epoch
    lr = (optax.linear_schedule(config.learning_rate, 0.0, total) if config.learning_rate_decay
          else config.learning_rate)
    switch = config.momentum_switch_epochs * steps_per_epoch

    def momentum(count):
        return jnp.where(count < switch, config.initial_momentum, config.momentum)

    def decay_mask(params):
        return {name: name == "w" for name in params}

    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum),
    )


def make_epoch(config: RBMTrainConfig, optimizer: optax.GradientTransformation) -> Callable:
    """``epoch(params, opt_state, chains, data, key) -> (params, opt_state, chains, recon_error)``:
    one pass over ``data [N, n_v]`` in a random order of ``N // batch_size`` batches, jitted, with
    ``lax.scan`` over the batches (the remainder of the permutation is dropped)."""

    def update(carry, batch_key):
        params, opt_state, chains = carry
        batch, key = batch_key
        if config.method == "cd":
            grads, stats = rbm.cd_k(params, batch, key, config.k,
                                    sample_visible_units=config.sample_visible_units,
                                    return_stats=True)
            error = stats.reconstruction_error
        else:
            grads, chains = rbm.pcd(params, batch, chains, key, config.k,
                                    sample_visible_units=config.sample_visible_units)
            error = jnp.zeros((), batch.dtype)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, chains), error

    @jax.jit
    def epoch(params, opt_state, chains, data, key):
        n_batches = data.shape[0] // config.batch_size
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, data.shape[0])[:n_batches * config.batch_size]
        batches = data[order].reshape(n_batches, config.batch_size, data.shape[1])
        keys = jax.random.split(k_steps, n_batches)
        (params, opt_state, chains), errors = jax.lax.scan(
            update, (params, opt_state, chains), (batches, keys))
        return params, opt_state, chains, jnp.mean(errors)

    return epoch


def train(key: jax.Array, params: rbm.Params, data, config: RBMTrainConfig, *,
          optimizer: optax.GradientTransformation | None = None, monitor_data=None,
          callback: Callable[[int, rbm.Params, dict], None] | None = None):
    """Train ``params`` on ``data [N, n_v]`` (binary for a Bernoulli RBM, standardised reals for a
    Gaussian one). Returns ``(params, history)`` with one dict per epoch: ``epoch``,
    ``reconstruction_error`` (mean over the monitor set; CD runs also report the training average
    as ``train_reconstruction_error``), ``pseudo_log_likelihood`` (binary RBMs) and ``seconds``.
    ``callback(epoch, params, record)`` runs after each epoch (plots, checkpoints)."""
    data = jnp.asarray(data, params["w"].dtype)
    if data.ndim != 2 or data.shape[1] != params["w"].shape[0]:
        raise ValueError(f"data must have shape [N, {params['w'].shape[0]}], got {data.shape}")
    if data.shape[0] < config.batch_size:
        raise ValueError(f"{data.shape[0]} examples are fewer than one batch ({config.batch_size})")
    if not bool(jnp.all(jnp.isfinite(data))):
        raise ValueError("data contains NaN or inf")
    if not rbm.is_gaussian(params) and not bool(jnp.all((data >= 0) & (data <= 1))):
        raise ValueError("a Bernoulli RBM needs data in [0, 1]")
    steps_per_epoch = data.shape[0] // config.batch_size
    optimizer = optimizer or default_optimizer(config, steps_per_epoch)
    opt_state = optimizer.init(params)
    epoch_fn = make_epoch(config, optimizer)
    k_chains, key = jax.random.split(key)
    chains = data[jax.random.choice(k_chains, data.shape[0], (config.n_chains,), replace=False)
                  if config.n_chains <= data.shape[0] else
                  jax.random.randint(k_chains, (config.n_chains,), 0, data.shape[0])]
    monitor = jnp.asarray(monitor_data if monitor_data is not None else data[:config.monitor_size],
                          params["w"].dtype)[:config.monitor_size]
    scores = jax.jit(lambda p, v: (rbm.reconstruction_error(p, v),
                                   jnp.zeros(()) if rbm.is_gaussian(p) or rbm.has_gaussian_hidden(p)
                                   else rbm.pseudo_log_likelihood(p, v)))
    history = []
    epochs = range(config.epochs)
    if config.progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc=f"rbm {config.method}-{config.k}")
    for e in epochs:
        start = time.perf_counter()
        params, opt_state, chains, train_error = epoch_fn(params, opt_state, chains, data,
                                                          jax.random.fold_in(key, e))
        train_error.block_until_ready()
        seconds = time.perf_counter() - start
        if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params)):
            raise FloatingPointError(f"RBM parameters became non-finite in epoch {e + 1}; "
                                     "lower the learning rate")
        error, pl = scores(params, monitor)
        record = {"epoch": e + 1, "reconstruction_error": float(error), "seconds": seconds}
        if config.method == "cd":
            record["train_reconstruction_error"] = float(train_error)
        if not (rbm.is_gaussian(params) or rbm.has_gaussian_hidden(params)):
            record["pseudo_log_likelihood"] = float(pl)
        history.append(record)
        if callback is not None:
            callback(e + 1, params, record)
    return params, history


def transform(params: rbm.Params, data, *, batch_size: int = 10000) -> np.ndarray:
    """p(h = 1 | v) for every row of ``data [N, n_v]``, in batches: the input of the next RBM
    in greedy layer-wise training. Returns ``[N, n_h]`` as a numpy array."""
    fn = jax.jit(rbm.hidden_probs)
    data = np.asarray(data)
    return np.concatenate([np.asarray(fn(params, jnp.asarray(data[i:i + batch_size], params["w"].dtype)))
                           for i in range(0, data.shape[0], batch_size)])
