"""Undercomplete, sparse, denoising and contractive autoencoders on the same MNIST subset: one table, seeds vmapped.

Four one-hidden-layer autoencoders ``dlmodels.autoencoders.autoencoder(784, n_hidden)`` (sigmoid
code h = sigmoid(x W_1 + b_1), untied sigmoid decoder r = sigmoid(h W_2 + b_2), cross-entropy
reconstruction loss, Adam), trained on the same ``n_train`` MNIST training digits with the same
initial params and batch order, differ only in their regulariser
(``dlmodels.autoencoders.objective``):

- ``undercomplete``: none; the bottleneck n_hidden < 784 is the only constraint (course notes);
- ``sparse``: beta sum_j KL(rho || rho^_j), rho^_j the batch-mean activation of unit j (Ng's
  CS294A sparse autoencoder notes), rho = ``sparsity_target``, beta = ``sparsity_weight``;
- ``denoising``: the input is corrupted by masking noise (each pixel set to 0 with probability
  ``denoising_level``) and the clean image is reconstructed (Vincent, Larochelle, Bengio &
  Manzagol 2008; Vincent et al. 2010, 25 % masking on MNIST);
- ``contractive``: lambda ||J_f(x)||_F^2, the squared Frobenius norm of the encoder's Jacobian
  (Rifai, Vincent, Muller, Glorot & Bengio 2011), lambda = ``contractive_weight``.

Each variant trains ``n_seeds`` seeds in ONE vmapped program (``fit(..., seeds=...)``). Measured
on ``n_test`` test digits for every seed (the table gives mean and std over seeds):

- ``clean_error``: squared reconstruction error per image, sum_i (x_i - r_i)^2, of clean inputs;
- ``masked_error``: the same for inputs masked at ``test_mask_level`` (one fixed draw shared by
  all models), measured against the CLEAN image (how well each model denoises);
- ``mean_activation``: the code's mean activation over test images and units;
- ``inactive_fraction``: the fraction of (image, unit) code activations below 0.1 (sparsity);
- ``jacobian_norm``: ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 ||W_1[:, j]||^2 averaged over test
  images (small = contractive: the code moves little when the input moves);
- ``probe_accuracy``: test accuracy of a softmax-regression (linear) classifier trained with Adam
  for ``probe_epochs`` on the frozen codes of the training subset (zero init, fixed batch order;
  vmapped over seeds). The same classifier on raw pixels is the baseline row.

Writes ``results.json`` (``table``, ``per_seed``, ``table_markdown``, hyper-parameters, seconds),
``metrics.jsonl`` (per epoch: training loss and reconstruction error on ``n_monitor`` validation
digits, per variant), ``features.png`` (the first seed's 100 first encoder filters W_1[:, j] /
||W_1[:, j]|| per variant) and ``reconstructions.png`` (clean and masked test digits and each
variant's reconstructions). Budget: about 6.5 minutes on a 2-core CPU at the default config
(100 epochs of 100 steps per variant, 3 seeds vmapped: ~90 s per variant).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import data, losses
from dlmodels.autoencoders import (autoencoder, contractive_penalty, corrupt, feature_grid,
                                   objective, reconstruction_grid)
from dlmodels.data import batch_indices
from dlmodels.experiment import MetricsLog
from dlmodels.train import TrainConfig, fit

VARIANTS = ("undercomplete", "sparse", "denoising", "contractive")
METRICS = ("clean_error", "masked_error", "mean_activation", "inactive_fraction", "jacobian_norm",
           "probe_accuracy")
INACTIVE_BELOW = 0.1


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # an MNIST-shaped data set: digits, mnist, fashion_mnist
    n_train: int = 10000  # training digits (autoencoders and linear probes)
    n_test: int = 10000  # test digits for every measurement
    n_monitor: int = 1000  # validation digits evaluated after each epoch
    n_hidden: int = 256  # code units of every autoencoder
    epochs: int = 100  # training epochs of every autoencoder
    batch_size: int = 100  # examples per update
    learning_rate: float = 1e-3  # Adam learning rate of the autoencoders
    sparsity_target: float = 0.05  # sparse AE: target mean activation rho
    sparsity_weight: float = 3.0  # sparse AE: weight beta of the KL sparsity penalty
    denoising_level: float = 0.25  # denoising AE: masking probability while training
    contractive_weight: float = 0.5  # contractive AE: weight lambda of the Jacobian penalty
    test_mask_level: float = 0.25  # masking probability of the corrupted test inputs
    probe_epochs: int = 30  # epochs of each linear probe on the codes
    probe_batch_size: int = 100  # examples per update of the linear probes
    probe_learning_rate: float = 3e-3  # learning rate of the linear probes
    n_seeds: int = 3  # seeds per variant, trained as one vmapped program
    seed: int = 0  # first seed (runs use seed, seed + 1, ...)

    def __post_init__(self):
        for name in ("n_train", "n_test", "n_monitor", "n_hidden", "epochs", "batch_size",
                     "probe_epochs", "probe_batch_size", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "probe_learning_rate"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"Config.{name} must be > 0, got {getattr(self, name)}")
        for name in ("sparsity_weight", "contractive_weight"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"Config.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("denoising_level", "test_mask_level"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Config.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.sparsity_target < 1.0:
            raise ValueError(f"Config.sparsity_target must be in (0, 1), got {self.sparsity_target}")


def regularisers(config: Config) -> dict[str, dict]:
    """The ``objective`` keywords that make each variant."""
    return {"undercomplete": {},
            "sparse": {"kl": config.sparsity_weight, "rho": config.sparsity_target},
            "denoising": {"corruption": "mask", "level": config.denoising_level},
            "contractive": {"contractive": config.contractive_weight}}


def encode(params: dict, x: jax.Array) -> jax.Array:
    """The sigmoid code h = sigmoid(x W_1 + b_1): ``[N, D] -> [N, H]``."""
    return jax.nn.sigmoid(x @ params["encoder"]["w"] + params["encoder"]["b"][None, :])


def code_metrics(apply, params: dict, x: jax.Array, x_masked: jax.Array) -> dict:
    """The table's autoencoder measurements (module docstring) of one model on clean test images
    ``x [N, D]`` and their corrupted copies ``x_masked [N, D]``; a dict of scalars."""
    r, h = apply(params, x, return_code=True)                             # (N, D), (N, H)
    r_masked = apply(params, x_masked)                                    # (N, D)
    return {"clean_error": jnp.mean(jnp.sum((x - r) ** 2, axis=-1)),
            "masked_error": jnp.mean(jnp.sum((x - r_masked) ** 2, axis=-1)),
            "mean_activation": jnp.mean(h),
            "inactive_fraction": jnp.mean((h < INACTIVE_BELOW).astype(h.dtype)),
            "jacobian_norm": jnp.mean(contractive_penalty(params["encoder"], x))}


def linear_probe(train_features, y_train, test_features, y_test, *, epochs: int, batch_size: int,
                 learning_rate: float, key: jax.Array, n_classes: int = 10) -> dict:
    """Softmax regression on frozen features, one per leading index: ``train_features [S, N, D]``,
    ``test_features [S, M, D]``, labels ``[N]``/``[M]``. Zero init, Adam, ``epochs`` passes of
    mini-batches in the order drawn from ``key`` (the same for every S). Returns
    ``{"train_accuracy", "test_accuracy"}``, each ``[S]``."""
    n = train_features.shape[1]
    idx = np.concatenate([batch_indices(key, n, batch_size, epoch=e) for e in range(epochs)])
    out = _fit_probes(jnp.asarray(train_features), jnp.asarray(y_train), jnp.asarray(test_features),
                      jnp.asarray(y_test), jnp.asarray(idx), jnp.float32(learning_rate),
                      n_classes=n_classes)
    return {k: np.asarray(v) for k, v in out.items()}


@functools.partial(jax.jit, static_argnames="n_classes")
def _fit_probes(train_features, y_train, test_features, y_test, idx, learning_rate, *,
                n_classes: int) -> dict:
    """``linear_probe``'s compiled part (once per feature shape): a scan over the batches ``idx
    [T, B]``, vmapped over the leading axis of the features."""
    optimizer = optax.adam(learning_rate)

    def scores(params, f):
        return f @ params["w"] + params["b"][None, :]                    # (B, K)

    def accuracy(params, f, y):
        return jnp.mean((jnp.argmax(scores(params, f), -1) == y).astype(jnp.float32))

    def train_one(f_train, f_test):
        params = {"w": jnp.zeros((f_train.shape[-1], n_classes), f_train.dtype),
                  "b": jnp.zeros((n_classes,), f_train.dtype)}

        def step(carry, batch):
            params, opt_state = carry
            grads = jax.grad(lambda p: jnp.mean(losses.softmax_cross_entropy(
                scores(p, f_train[batch]), y_train[batch])))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), idx)
        return {"train_accuracy": accuracy(params, f_train, y_train),
                "test_accuracy": accuracy(params, f_test, y_test)}

    return jax.vmap(train_one)(train_features, test_features)


def _mean_std(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std())}


def markdown_table(table: dict, n_seeds: int) -> str:
    """The results table as GitHub markdown (mean ± std over seeds)."""
    columns = [("clean_error", "clean sq. error", 2), ("masked_error", "masked sq. error", 2),
               ("mean_activation", "mean act.", 3), ("inactive_fraction", f"frac < {INACTIVE_BELOW:g}", 3),
               ("jacobian_norm", "‖J_f‖²_F", 2), ("probe_accuracy", "linear probe acc.", 4)]
    lines = [f"| model ({n_seeds} seeds) | " + " | ".join(c[1] for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{row[k]['mean']:.{p}f} ± {row[k]['std']:.{p}f}" if k in row else "—"
                 for k, _, p in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(config: Config, run_dir: str) -> dict:
    start = time.perf_counter()
    x_train, y_train = (a[:config.n_train] for a in data.load(config.dataset, "train"))
    x_monitor = data.load(config.dataset, "valid")[0][:config.n_monitor]
    x_test, y_test = (a[:config.n_test] for a in data.load(config.dataset, "test"))
    n_in = x_train.shape[1]
    side = int(round(np.sqrt(n_in)))
    key = jax.random.PRNGKey(config.seed)
    k_mask, k_probe = jax.random.split(key)
    x_test_j = jnp.asarray(x_test)
    x_masked = corrupt(k_mask, x_test_j, "mask", config.test_mask_level)
    seeds = [config.seed + i for i in range(config.n_seeds)]
    model = autoencoder(n_in, config.n_hidden, encoder="sigmoid", decoder="sigmoid", tied=False)
    measure = jax.jit(jax.vmap(functools.partial(code_metrics, model.apply), in_axes=(0, None, None)))
    encode_all = jax.jit(jax.vmap(encode, in_axes=(0, None)))
    probe = functools.partial(linear_probe, epochs=config.probe_epochs,
                              batch_size=config.probe_batch_size,
                              learning_rate=config.probe_learning_rate, key=k_probe)

    per_seed, train_seconds, first_params = {}, {}, {}
    log = MetricsLog(run_dir)
    for name, regulariser in regularisers(config).items():
        loss_fn, eval_fn = objective(model.apply, reconstruction="cross_entropy", **regulariser)
        t0 = time.perf_counter()
        result = fit(model.init, loss_fn, optax.adam(config.learning_rate), x_train,
                     TrainConfig(epochs=config.epochs, batch_size=config.batch_size,
                                 seed=config.seed, data_seed=config.seed, progress=False),
                     eval_fn=eval_fn, eval_data=x_monitor, seeds=seeds,
                     run_dir=os.path.join(run_dir, name), resume=True)
        params = result.state.params                                      # leading seed axis
        jax.block_until_ready(params)
        train_seconds[name] = round(time.perf_counter() - t0, 1)
        for entry in result.history:
            log(variant=name, **entry)
        row = {k: np.asarray(v).tolist() for k, v in measure(params, x_test_j, x_masked).items()}
        codes_train = encode_all(params, jnp.asarray(x_train))            # (S, N, H)
        codes_test = encode_all(params, x_test_j)                         # (S, M, H)
        fitted = probe(codes_train, y_train, codes_test, y_test)
        row["probe_accuracy"] = fitted["test_accuracy"].tolist()
        row["probe_train_accuracy"] = fitted["train_accuracy"].tolist()
        per_seed[name] = row
        first_params[name] = jax.tree.map(lambda a: a[0], params)
        print(f"{name}: " + ", ".join(f"{k} {np.mean(row[k]):.4g}" for k in METRICS)
              + f" ({train_seconds[name]:.0f} s training)", flush=True)
    log.close()

    raw = probe(x_train[None], y_train, x_test[None], y_test)
    per_seed["raw pixels"] = {"probe_accuracy": raw["test_accuracy"].tolist(),
                              "probe_train_accuracy": raw["train_accuracy"].tolist()}
    print(f"raw pixels: probe_accuracy {raw['test_accuracy'][0]:.4g}", flush=True)
    table = {name: {k: _mean_std(v) for k, v in row.items()} for name, row in per_seed.items()}

    features_png = feature_grid({k: p["encoder"]["w"] for k, p in first_params.items()},
                                os.path.join(run_dir, "features.png"), image_shape=(side, side),
                                n_units=100, n_cols=10,
                                title=f"first 100 of {config.n_hidden} encoder filters (seed {seeds[0]})")
    shown = jnp.concatenate([x_test_j[:10], x_masked[:10]])               # (20, D)
    reconstructions_png = reconstruction_grid(
        shown, {k: model.apply(p, shown) for k, p in first_params.items()},
        os.path.join(run_dir, "reconstructions.png"), image_shape=(side, side), n=20, n_cols=10,
        title=f"top: clean test digits; bottom: masked ({config.test_mask_level:.0%}) "
              f"-> reconstructions (seed {seeds[0]})")
    markdown = markdown_table(table, config.n_seeds)
    print(markdown, flush=True)
    return {"n_train": len(x_train), "n_test": len(x_test), "seeds": seeds,
            "hyperparameters": {"n_hidden": config.n_hidden, "reconstruction": "cross_entropy",
                                "optimizer": f"adam({config.learning_rate:g})",
                                "epochs": config.epochs, "batch_size": config.batch_size,
                                "regularisers": regularisers(config),
                                "test_mask_level": config.test_mask_level,
                                "inactive_below": INACTIVE_BELOW,
                                "probe": {"epochs": config.probe_epochs,
                                          "batch_size": config.probe_batch_size,
                                          "optimizer": f"adam({config.probe_learning_rate:g})"}},
            "table": table, "table_markdown": markdown, "per_seed": per_seed,
            "train_seconds": train_seconds, "seconds": round(time.perf_counter() - start, 1),
            "features_png": os.path.basename(features_png),
            "reconstructions_png": os.path.basename(reconstructions_png)}
