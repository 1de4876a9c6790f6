"""RBMs (500 hidden units) on binarised MNIST by CD-1, CD-k and PCD: test log-likelihood by AIS.

Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief networks", table 1:
RBMs with 500 hidden units on binarised MNIST score -125.53 (CD1), -105.50 (CD3) and -86.34 nats
(CD25) of average test log-likelihood, estimated by annealed importance sampling with 14,500
intermediate distributions, 100 chains and a base-rate model fitted to the training data.

Here every variant is a 784-500 Bernoulli RBM trained on the 60,000 MNIST training images
(train + valid) binarised once by sampling each pixel with its intensity as probability (fixed
seed); SGD with momentum 0.5 -> 0.9, weight decay 2e-4 on W, learning rate decayed linearly to 0.
For each model: log Z by AIS (same schedule proportions, ``ais_betas`` distributions,
``ais_chains`` chains, ``ais_runs`` independent runs whose agreement is reported), the average
test and train log-likelihood -F(v) - log Z, pseudo-likelihood per epoch, samples (Gibbs chains)
and filters. The training budget (epochs) is far below the paper's; the gap is reported.

Each variant trains through ``dlmodels.train.fit`` (``rbm.train``) in ``run_dir/<variant>`` with
``resume=True`` and a checkpoint every ``checkpoint_every`` updates, so calling ``main`` again on
the same run directory continues where a killed run stopped and ends with the same results.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels import data
from dlmodels.energy import rbm
from dlmodels.experiment import MetricsLog
from dlmodels.plots import image_grid, training_curves

PUBLISHED = {"source": "Salakhutdinov & Murray 2008, table 1 (500 hidden units, AIS)",
             "cd1": -125.53, "cd3": -105.50, "cd25": -86.34}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    n_hidden: int = 500  # hidden units
    variants: tuple[str, ...] = (  # training rules: cd<k> (k Gibbs steps) or pcd
        "cd1", "pcd", "cd25")
    epochs: tuple[int, ...] = (40, 40, 12)  # training epochs, one per variant
    batch_size: int = 100  # examples per update
    learning_rate: float = 0.05  # CD learning rate
    pcd_learning_rate: float = 0.01  # PCD learning rate
    weight_decay: float = 2e-4  # L2 weight decay
    n_train: int = 0  # training images (0: all 60,000)
    n_test: int = 0  # test images (0: all 10,000)
    ais_betas: int = 14500  # intermediate distributions of each AIS run
    ais_chains: int = 100  # AIS chains per run
    ais_runs: int = 2  # independent AIS runs (their spread is reported)
    sample_steps: int = 1000  # Gibbs steps before the samples are drawn
    seed: int = 0  # seed of the params, batches and chains
    checkpoint_every: int = 3000  # updates between checkpoints (600 an epoch at 60,000 images)

    def __post_init__(self):
        if len(self.epochs) != len(self.variants):
            raise ValueError(f"one epochs value per variant: {self.variants} vs {self.epochs}")
        for v in self.variants:
            if v != "pcd" and not (v.startswith("cd") and v[2:].isdigit() and int(v[2:]) >= 1):
                raise ValueError(f"variants are 'cd<k>' (k >= 1) or 'pcd', got {v!r}")


def binarise(key: jax.Array, x: np.ndarray) -> np.ndarray:
    """Each pixel ~ Bernoulli(intensity), drawn once."""
    return np.asarray(jax.random.uniform(key, x.shape) < jnp.asarray(x), np.float32)


def _variant_config(name: str, epochs: int, config: Config, seed: int) -> rbm.RBMTrainConfig:
    pcd = name == "pcd"
    return rbm.RBMTrainConfig(
        epochs=epochs, batch_size=config.batch_size, method="pcd" if pcd else "cd",
        k=1 if pcd else int(name[2:]), n_chains=config.batch_size,
        learning_rate=config.pcd_learning_rate if pcd else config.learning_rate,
        learning_rate_decay=True, weight_decay=config.weight_decay, seed=seed,
        data_seed=config.seed, monitor_size=1000, checkpoint_every=config.checkpoint_every)


def _log_likelihoods(model, params, log_z, x, batch=5000):
    f = jax.jit(model.free_energy)
    total = sum(float(jnp.sum(f(params, jnp.asarray(x[i:i + batch])))) for i in range(0, len(x), batch))
    return -total / len(x) - log_z


def main(config: Config, run_dir: str) -> dict:
    key = jax.random.PRNGKey(config.seed)
    k_bin, k_models = jax.random.split(key)
    if config.dataset == "mnist":
        x_train = np.concatenate([data.load("mnist", "train")[0], data.load("mnist", "valid")[0]])
    else:
        x_train = data.load(config.dataset, "train")[0]
    x_test = data.load(config.dataset, "test")[0]
    if config.n_train:
        x_train = x_train[:config.n_train]
    if config.n_test:
        x_test = x_test[:config.n_test]
    k_tr, k_te = jax.random.split(k_bin)
    v_train, v_test = binarise(k_tr, x_train), binarise(k_te, x_test)
    n_visible = v_train.shape[1]
    side = int(round(np.sqrt(n_visible)))
    base_bias = rbm.base_rate_bias(v_train)
    model = rbm.rbm(n_visible, config.n_hidden)
    ais = jax.jit(model.ais_log_partition, static_argnums=(2, 3))

    results = {"published": PUBLISHED, "n_train": len(v_train), "n_test": len(v_test),
               "binarisation": "stochastic, once, fixed seed", "models": {}}
    histories, samples, filters = {}, {}, {}
    log = MetricsLog(run_dir)
    for i, (name, epochs) in enumerate(zip(config.variants, config.epochs)):
        k_seed, k_ais, k_sample = jax.random.split(jax.random.fold_in(k_models, i), 3)
        tc = _variant_config(name, epochs, config,
                             seed=int(jax.random.randint(k_seed, (), 0, 2 ** 30)))
        start = time.perf_counter()
        fitted = rbm.train(model, v_train, tc, monitor_data=v_test[:1000],
                           run_dir=os.path.join(run_dir, name), resume=True,
                           record={"experiment": "rbm_mnist", "variant": name})
        train_seconds = time.perf_counter() - start
        params, history = fitted.state.params, fitted.history
        histories[name] = history
        for record in history:    # deterministic records only: no wall-clock seconds
            log(variant=name, **{k: v for k, v in record.items() if k != "seconds"})

        start = time.perf_counter()
        runs = jax.block_until_ready([
            ais(k, params, config.ais_betas, config.ais_chains, base_visible_bias=base_bias)
            for k in jax.random.split(k_ais, config.ais_runs)])
        ais_seconds = time.perf_counter() - start
        log_zs = [float(r.log_z) for r in runs]
        log_z = float(np.mean(log_zs))
        test_ll = _log_likelihoods(model, params, log_z, v_test)
        train_ll = _log_likelihoods(model, params, log_z, v_train[:10000])
        published = PUBLISHED.get(name)
        results["models"][name] = {
            "method": tc.method, "k": tc.k, "epochs": epochs, "learning_rate": tc.learning_rate,
            "train_seconds": round(train_seconds, 1), "ais_seconds": round(ais_seconds, 1),
            "log_z_runs": log_zs, "log_z_spread": [float(r.spread) for r in runs], "log_z": log_z,
            "test_log_likelihood": test_ll, "train_log_likelihood_first_10k": train_ll,
            "published_test_log_likelihood": published,
            "gap_to_published": None if published is None else test_ll - published,
            "final_pseudo_log_likelihood_test": history[-1]["eval_pseudo_log_likelihood"],
            "final_reconstruction_error_test": history[-1]["eval_reconstruction_error"],
        }
        samples[f"{name}: samples"] = np.asarray(model.sample(
            k_sample, params, 100, config.sample_steps, v0=jnp.asarray(v_test[:100])))
        order = np.argsort(-np.linalg.norm(np.asarray(params["w"]), axis=0))[:100]
        filters[f"{name}: filters"] = np.asarray(params["w"])[:, order].T
        print(f"{name}: {epochs} epochs in {train_seconds:.0f} s; log Z {log_zs} "
              f"(AIS {ais_seconds:.0f} s); test log-likelihood {test_ll:.2f} nats "
              f"(published {published})", flush=True)
    log.close()

    shape = (side, side)
    results["samples_png"] = os.path.basename(image_grid(
        {"test data (chain starts)": v_test[:100], **samples}, os.path.join(run_dir, "rbm_samples.png"),
        image_shape=shape, title=f"RBM samples: p(v | h) after {config.sample_steps} Gibbs steps"))
    results["filters_png"] = os.path.basename(image_grid(
        filters, os.path.join(run_dir, "rbm_filters.png"), image_shape=shape, symmetric=True,
        title="RBM filters (columns of W, 100 of largest norm)"))
    results["curves_png"] = os.path.basename(training_curves(
        histories, os.path.join(run_dir, "rbm_curves.png"),
        keys=("eval_pseudo_log_likelihood", "eval_reconstruction_error"),
        title="monitors on 1,000 test images per epoch"))
    return results
