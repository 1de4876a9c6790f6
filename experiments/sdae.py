"""Stacked denoising autoencoders 784-1000-1000-1000 pretrained layer by layer, fine-tuned as an MNIST classifier.

Vincent, Larochelle, Lajoie, Bengio & Manzagol (2010, JMLR 11, table 3) report 1.28 % test error
for a 3-hidden-layer SDAE on MNIST (masking noise), against 1.60 % (their table) for the same
network trained by backpropagation from random weights; the Theano deep-learning tutorial's SdA
(784-1000-1000-1000-10, masking levels 0.1 / 0.2 / 0.3, 15 pretraining epochs per layer and
fine-tuning by SGD with early stopping over up to 1,000 epochs) reaches about 1.3 %.

Here: each layer is a denoising autoencoder with tied weights, sigmoid units and cross-entropy
reconstruction error (``dlmodels.autoencoders.pretrain(method="dae")``), trained with Adam on the
codes of the layer below (masking levels ``levels``); the encoders' weights and biases initialise
a 784-1000-1000-1000-10 sigmoid MLP with a new softmax layer (the encoder as a feature extractor),
fine-tuned by SGD with momentum (cosine-decayed rate) on the 50,000 training images; the same MLP
from random weights (Glorot's uniform init with the 4x sigmoid scale) gets the same fine-tuning
budget. Test error on the 10,000 test images per seed; the first layer's features (x* = W_i /
||W_i||) beside those of a plain autoencoder trained the same way without corruption.

Every training phase runs through ``dlmodels.train.fit`` with ``resume=True`` in its own folder
(``seed_<s>/pretrain/layer_<l>``, ``seed_<s>/plain/layer_0``, ``seed_<s>/finetune_<init>``), so
calling ``main`` again on the same run directory continues a killed run with the same results.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
import optax

from dlmodels import autoencoders as ae
from dlmodels.experiment import MetricsLog
from dlmodels.plots import training_curves
from dlmodels.experiments._finetune import (load_splits, make_finetune, pretrained_vs_random,
                                   summary)

PUBLISHED = {"sdae_3": 0.0128, "backprop_random_init": 0.016, "theano_sda": 0.013,
             "sources": "Vincent et al. 2010 (JMLR 11), table 3: SDAE-3 1.28 +- 0.22 %, "
                        "MLP from random weights 1.60 %; Theano tutorial SdA about 1.3 %"}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    hidden: tuple[int, ...] = (1000, 1000, 1000)  # hidden layer sizes, bottom up
    levels: tuple[float, ...] = (0.1, 0.2, 0.3)  # masking probability per layer while pretraining
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds, one fine-tuned network each (pretrained and random)
    n_train: int = 0  # training images (0: the whole training split)
    pretrain_epochs: int = 10  # denoising-autoencoder epochs per layer
    pretrain_learning_rate: float = 1e-3  # pretraining Adam learning rate
    finetune_epochs: int = 30  # fine-tuning epochs
    batch_size: int = 100  # examples per update
    learning_rate: float = 0.1  # fine-tuning SGD learning rate
    momentum: float = 0.9  # fine-tuning SGD momentum
    plain_features: bool = True  # also pretrain layer 1 without noise, for the feature figure
    checkpoint_every: int = 2500  # updates between checkpoints (500 an epoch at 50,000 images)

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if len(self.levels) != len(self.hidden):
            raise ValueError(f"one masking level per layer: {len(self.levels)} for "
                             f"{len(self.hidden)} layers")
        if not all(0.0 <= level < 1.0 for level in self.levels):
            raise ValueError(f"levels must be in [0, 1), got {self.levels}")
        if not self.seeds:
            raise ValueError("need at least one seed")
        for name in ("pretrain_epochs", "finetune_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def main(config: Config, run_dir: str) -> dict:
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = load_splits(config.dataset,
                                                                           config.n_train)
    sizes = (x_train.shape[1], *config.hidden, 10)
    log = MetricsLog(run_dir)

    model, finetune = make_finetune(
        sizes, (x_train, y_train), (x_valid, y_valid), (x_test, y_test),
        epochs=config.finetune_epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, momentum=config.momentum, log=log, run_dir=run_dir,
        checkpoint_every=config.checkpoint_every)

    runs = {"pretrained": [], "random": []}
    histories, first_layers, pretraining = {}, {}, {}
    for seed in config.seeds:
        key = jax.random.PRNGKey(seed)
        k_pre, k_out, k_plain = jax.random.split(key, 3)
        start = time.perf_counter()
        layers, pre_hist = ae.pretrain(
            k_pre, x_train, sizes[:-1], method="dae", level=config.levels,
            epochs=config.pretrain_epochs, batch_size=config.batch_size,
            optimizer=optax.adam(config.pretrain_learning_rate),
            run_dir=os.path.join(run_dir, f"seed_{seed}", "pretrain"), resume=True,
            callback=lambda layer, r, seed=seed: log(
                phase="pretrain", seed=seed, layer=layer,
                **{k: v for k, v in r.items() if k != "seconds"}))
        pretrain_seconds = time.perf_counter() - start
        pretraining[seed] = [{"level": level, "final_eval_cross_entropy":
                              h[-1]["eval_reconstruction_error"],
                              "final_eval_squared_error": h[-1]["eval_squared_error"]}
                             for level, h in zip(config.levels, pre_hist)]
        print(f"seed {seed}: pretrained {len(layers)} denoising autoencoders in "
              f"{pretrain_seconds:.0f} s", flush=True)
        if not first_layers:
            first_layers[f"denoising (masking {config.levels[0]:g})"] = np.asarray(layers[0]["w"])
            if config.plain_features:
                plain, _ = ae.pretrain(k_plain, x_train, sizes[:2], method="ae",
                                       epochs=config.pretrain_epochs, batch_size=config.batch_size,
                                       optimizer=optax.adam(config.pretrain_learning_rate),
                                       run_dir=os.path.join(run_dir, f"seed_{seed}", "plain"),
                                       resume=True)
                first_layers["plain (no corruption)"] = np.asarray(plain[0]["w"])
        pretrained_vs_random(finetune, model, layers, sizes[-1], k_out, seed, pretrain_seconds,
                             runs, histories)
    log.close()

    results = {
        "layer_sizes": sizes, "n_train": len(x_train), "published": PUBLISHED,
        "budget": {"pretrain_epochs_per_layer": config.pretrain_epochs,
                   "masking_levels": list(config.levels),
                   "pretrain_optimizer": f"Adam {config.pretrain_learning_rate}, batch "
                                         f"{config.batch_size}, tied weights, cross-entropy",
                   "finetune_epochs": config.finetune_epochs, "batch_size": config.batch_size,
                   "finetune_optimizer": f"SGD momentum {config.momentum}, lr "
                                         f"{config.learning_rate} cosine-decayed"},
        "pretrained": summary(runs["pretrained"]), "random": summary(runs["random"]),
        "pretraining": pretraining,
    }
    results["difference_random_minus_pretrained"] = (results["random"]["test_error_mean"]
                                                     - results["pretrained"]["test_error_mean"])
    results["gap_to_published"] = results["pretrained"]["test_error_mean"] - PUBLISHED["sdae_3"]
    side = int(round(np.sqrt(sizes[0])))
    results["features_png"] = os.path.basename(ae.feature_grid(
        first_layers, os.path.join(run_dir, "sdae_features.png"), image_shape=(side, side),
        title="first-layer features x* = W_i / ||W_i|| (first 100 units)"))
    results["curves_png"] = os.path.basename(training_curves(
        histories, os.path.join(run_dir, "sdae_finetune.png"), keys=("train_loss", "eval_error"),
        title="fine-tuning: denoising-pretrained vs random initialisation"))
    return results
