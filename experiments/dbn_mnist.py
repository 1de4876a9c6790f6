"""Deep belief net 784-500-500-2000 pretrained greedily with RBMs, fine-tuned as an MNIST classifier.

Hinton, Osindero & Teh (2006) report 1.25 % test error for a 784-500-500-2000 DBN fine-tuned with
the up-down algorithm; Hinton & Salakhutdinov (2006) 1.2 % for the same net pretrained and then
fine-tuned by backpropagation, against 1.6 % for backpropagation from random weights (their
figures; both with long training and no augmentation).

Here: for each seed, three RBMs (784-500, 500-500, 500-2000; CD-1, momentum 0.5 -> 0.9, weight
decay 2e-4) are trained one after the other, each on the hidden probabilities of the one below
(pixel intensities in [0, 1] are the first RBM's visible probabilities); their weights and hidden
biases initialise a 784-500-500-2000-10 sigmoid MLP with a new softmax layer, fine-tuned by
backpropagation (softmax cross-entropy, SGD with momentum, cosine-decayed rate) on the 50,000
training images; the same MLP from random weights (Glorot's uniform init with the 4x scale for
sigmoid units) gets the same fine-tuning budget. Test
error on the 10,000 test images, mean and spread over seeds; also ancestral samples of the DBN
(Gibbs in the top RBM, then one top-down pass).

Every training phase runs through ``dlmodels.train.fit`` with ``resume=True`` in its own folder
(``seed_<s>/pretrain/layer_<l>``, ``seed_<s>/finetune_<init>``), so calling ``main`` again on the
same run directory continues a killed run and ends with the same results.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlmodels.energy import dbn, rbm
from dlmodels.experiment import MetricsLog
from dlmodels.plots import image_grid, training_curves
from dlmodels.experiments._finetune import (load_splits, make_finetune, pretrained_vs_random,
                                   summary)

PUBLISHED = {"dbn_up_down": 0.0125, "dbn_backprop": 0.012, "backprop_random_init": 0.016,
             "sources": "Hinton, Osindero & Teh 2006 (up-down); Hinton & Salakhutdinov 2006 "
                        "(pretrained + backprop, and backprop from random weights)"}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    hidden: tuple[int, ...] = (500, 500, 2000)  # hidden layer sizes of the DBN, bottom up
    seeds: tuple[int, ...] = (0, 1, 2)  # seeds, one fine-tuned network each (pretrained and random)
    pretrain_epochs: int = 20  # CD-1 epochs per RBM layer
    pretrain_learning_rate: float = 0.05  # CD-1 learning rate
    finetune_epochs: int = 20  # fine-tuning epochs
    batch_size: int = 100  # examples per update
    learning_rate: float = 0.05  # fine-tuning SGD learning rate
    momentum: float = 0.9  # fine-tuning SGD momentum
    n_train: int = 0  # training images (0: the whole training split)
    sample_steps: int = 1000  # Gibbs steps in the top RBM before the samples are drawn
    checkpoint_every: int = 2500  # updates between checkpoints (500 an epoch at 50,000 images)

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if not self.seeds:
            raise ValueError("need at least one seed")


def main(config: Config, run_dir: str) -> dict:
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = load_splits(config.dataset,
                                                                           config.n_train)
    sizes = (x_train.shape[1], *config.hidden, 10)
    rbm_config = rbm.RBMTrainConfig(epochs=config.pretrain_epochs, batch_size=config.batch_size,
                                    learning_rate=config.pretrain_learning_rate,
                                    checkpoint_every=config.checkpoint_every)
    log = MetricsLog(run_dir)

    # the random baseline gets Glorot's init for sigmoid units (4x the tanh scale); with the
    # plain Glorot scale this 4-layer sigmoid net sits at chance for all 20 epochs
    model, finetune = make_finetune(
        sizes, (x_train, y_train), (x_valid, y_valid), (x_test, y_test),
        epochs=config.finetune_epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, momentum=config.momentum, log=log, run_dir=run_dir,
        checkpoint_every=config.checkpoint_every)
    runs = {"pretrained": [], "random": []}
    histories, pretrain_histories, samples = {}, {}, None
    for seed in config.seeds:
        key = jax.random.PRNGKey(seed)
        k_pre, k_out, k_sample = jax.random.split(key, 3)
        start = time.perf_counter()
        layers, pre_hist = dbn.pretrain(
            k_pre, x_train, sizes[:-1], rbm_config,
            run_dir=os.path.join(run_dir, f"seed_{seed}", "pretrain"), resume=True,
            callback=lambda layer, record, seed=seed: log(
                phase="pretrain", seed=seed, layer=layer,
                **{k: v for k, v in record.items() if k != "seconds"}))
        pretrain_seconds = time.perf_counter() - start
        pretrain_histories[seed] = [h[-1] for h in pre_hist]
        if samples is None:
            top_init = dbn.up_pass(layers[:-1], jnp.asarray(x_test[:100]))[-1]
            samples = np.asarray(dbn.sample(k_sample, layers, 100, config.sample_steps,
                                            top_init=top_init))
        pretrained_vs_random(finetune, model, layers, sizes[-1], k_out, seed, pretrain_seconds,
                             runs, histories)
    log.close()

    results = {
        "layer_sizes": sizes, "n_train": len(x_train), "published": PUBLISHED,
        "budget": {"pretrain_epochs_per_rbm": config.pretrain_epochs,
                   "finetune_epochs": config.finetune_epochs, "batch_size": config.batch_size,
                   "optimizer": f"SGD momentum {config.momentum}, lr {config.learning_rate} cosine"},
        "pretrained": summary(runs["pretrained"]), "random": summary(runs["random"]),
        "pretraining_final_epoch": pretrain_histories,
    }
    results["difference_random_minus_pretrained"] = (results["random"]["test_error_mean"]
                                                     - results["pretrained"]["test_error_mean"])
    side = int(round(np.sqrt(sizes[0])))
    results["samples_png"] = os.path.basename(image_grid(
        {"test images (start of the up-pass)": x_test[:100], "DBN samples": samples},
        os.path.join(run_dir, "dbn_samples.png"), image_shape=(side, side),
        title=f"DBN ancestral samples: {config.sample_steps} Gibbs steps in the top RBM, then down"))
    results["curves_png"] = os.path.basename(training_curves(
        histories, os.path.join(run_dir, "dbn_finetune.png"), keys=("train_loss", "eval_error"),
        title="fine-tuning: pretrained vs random initialisation"))
    return results
