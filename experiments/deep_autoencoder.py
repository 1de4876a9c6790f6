"""Deep autoencoder 784-1000-500-250-30 pretrained with RBMs, unfolded and fine-tuned (Hinton & Salakhutdinov 2006).

Hinton & Salakhutdinov (2006, "Reducing the dimensionality of data with neural networks",
Science 313) pretrain a stack of RBMs 784-1000-500-250-30 on the 60,000 MNIST training images
(the top RBM with linear hidden units: unit-variance Gaussian noise around a linear mean), unfold ("unroll") it
into a 784-1000-500-250-30-250-500-1000-784 autoencoder (the decoder starts from the transposed
weights), and fine-tune it by backpropagating the cross-entropy reconstruction error. Their
average squared reconstruction error per test image (summed over the 784 pixels): autoencoder 3.00,
logistic PCA 8.01, PCA 13.87 (30 components). With a 784-1000-500-250-2 autoencoder the 2-D codes
of the test images separate the classes far better than the first two principal components (their
fig. 3).

Here: the same architecture and pretraining recipe (CD-1, momentum 0.5 -> 0.9, weight decay 2e-4,
learning rate 0.1 for the binary RBMs and 0.001 for the linear-code RBM) with a smaller budget:
``pretrain_epochs`` per RBM instead of 50 and ``finetune_epochs`` of Adam with a cosine-decayed
rate instead of 200 epochs of conjugate gradients. The lower three RBMs are shared by the 30-unit
and the 2-unit autoencoders (only the top RBM differs). Reported on the 10,000 test images:
squared error per image for the fine-tuned autoencoder, the unfolded stack before fine-tuning,
the same autoencoder trained from random weights with the same fine-tuning budget, and PCA with 30
(and 2) components fitted to the training images (scikit-learn's ``PCA``), beside the published
numbers; the 2-D code scatter beside PCA's 2-D projection; reconstructions.

Every training phase runs through ``dlmodels.train.fit`` with ``resume=True`` in its own folder
(``pretrain/layer_<l>``, ``pretrain_code_<n>/layer_0``, ``finetune_<name>``; checkpoints every
``checkpoint_every`` updates), so calling ``main`` again on the same run directory continues a
killed run and ends with the same results.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import autoencoders as ae
from dlmodels import data
from dlmodels.energy import rbm
from dlmodels.experiment import MetricsLog
from dlmodels.plots import code_scatter, training_curves
from dlmodels.train import TrainConfig, fit, make_evaluate
from dlmodels.extras import optional_import

PUBLISHED = {"autoencoder": 3.00, "logistic_pca": 8.01, "pca": 13.87,
             "source": "Hinton & Salakhutdinov 2006, Science 313, p. 506: average squared "
                       "reconstruction error per MNIST test image, 30-dimensional codes; 50 "
                       "epochs per RBM, 200 epochs of conjugate-gradient fine-tuning"}


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    hidden: tuple[int, ...] = (1000, 500, 250)  # encoder layer sizes, bottom up
    code: int = 30  # linear code units of the main autoencoder
    code_2d: int = 2  # code units of the second, 2-D autoencoder (0: skip it)
    n_train: int = 0  # training images (0: training and validation splits, 60,000)
    pretrain_epochs: int = 20  # CD-1 epochs per RBM layer
    rbm_learning_rate: float = 0.1  # CD-1 learning rate of the binary RBMs
    code_learning_rate: float = 0.001  # CD-1 learning rate of the linear-code RBM
    finetune_epochs: int = 40  # fine-tuning epochs of the main autoencoder
    finetune_epochs_2d: int = 20  # fine-tuning epochs of the 2-D autoencoder
    batch_size: int = 100  # examples per update
    learning_rate: float = 3e-4  # fine-tuning Adam learning rate
    random_baseline: bool = True  # also fine-tune from random weights, for comparison
    seed: int = 0  # seed of the params and batches
    checkpoint_every: int = 3000  # updates between checkpoints (600 an epoch at 60,000 images)

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1 or self.code < 1 or self.code_2d < 0:
            raise ValueError("layer sizes must be positive")
        for name in ("pretrain_epochs", "finetune_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(self.rbm_learning_rate, self.code_learning_rate, self.learning_rate) <= 0:
            raise ValueError("learning rates must be > 0")


def _training_images(config: Config):
    x, y = data.load(config.dataset, "train")
    if (not config.n_train or config.n_train > len(x)) and "valid" in data.splits(config.dataset):
        xv, yv = data.load(config.dataset, "valid")
        x, y = np.concatenate([x, xv]), np.concatenate([y, yv])
    if config.n_train:
        x, y = x[:config.n_train], y[:config.n_train]
    return x, y


def _pca(x_train, x_test, k):
    PCA = optional_import("sklearn.decomposition", needed_for="the PCA baseline").PCA

    pca = PCA(n_components=k, svd_solver="full" if k > 2 else "auto", random_state=0).fit(x_train)
    codes = pca.transform(x_test)
    return codes, pca.inverse_transform(codes)


def main(config: Config, run_dir: str) -> dict:
    x_train, _ = _training_images(config)
    x_test, y_test = data.load(config.dataset, "test")
    test = jnp.asarray(x_test)
    key = jax.random.PRNGKey(config.seed)
    k_lower, k_top, k_top2 = jax.random.split(key, 3)
    log = MetricsLog(run_dir)

    def rbm_config(rate, epochs=config.pretrain_epochs):
        return rbm.RBMTrainConfig(epochs=epochs, batch_size=config.batch_size, learning_rate=rate,
                                  checkpoint_every=config.checkpoint_every)

    def deterministic(record):
        return {k: v for k, v in record.items() if k != "seconds"}

    start = time.perf_counter()
    lower, _ = ae.pretrain(k_lower, x_train, (x_train.shape[1], *config.hidden), method="rbm",
                           rbm_configs=rbm_config(config.rbm_learning_rate),
                           run_dir=os.path.join(run_dir, "pretrain"), resume=True,
                           callback=lambda layer, r: log(phase="pretrain", layer=layer,
                                                         **deterministic(r)))
    codes_below = x_train
    for layer in lower:
        codes_below = rbm.hidden_probabilities(rbm.rbm(*layer["w"].shape), layer, codes_below)
    lower_seconds = time.perf_counter() - start
    print(f"pretrained {len(lower)} binary RBMs in {lower_seconds:.0f} s", flush=True)

    def squared_error(params, model):
        _, eval_fn = ae.objective(model.apply, reconstruction="cross_entropy")
        out = make_evaluate(eval_fn, 1000)(params, test)
        return float(out["squared_error"])

    def finetune(name, init_fn, sizes, epochs):
        model = ae.deep_autoencoder(sizes, code="identity")
        loss_fn, eval_fn = ae.objective(model.apply, reconstruction="cross_entropy")
        steps = epochs * (len(x_train) // config.batch_size)
        optimizer = optax.adam(optax.cosine_decay_schedule(config.learning_rate, steps))
        t = time.perf_counter()
        phase = "finetune_" + name.replace(", ", "_").replace(" ", "_")
        result = fit(init_fn or model.init, loss_fn, optimizer, x_train,
                     TrainConfig(epochs=epochs, batch_size=config.batch_size, seed=config.seed,
                                 progress=False, checkpoint_every=config.checkpoint_every),
                     eval_fn=eval_fn, eval_data=x_test, run_dir=os.path.join(run_dir, phase),
                     resume=True)
        seconds = time.perf_counter() - t
        for record in result.history:
            log(phase="finetune", run=name, **deterministic(record))
        error = squared_error(result.state.params, model)
        print(f"{name}: {error:.2f} squared error per test image ({seconds:.0f} s)", flush=True)
        return model, result, error, seconds

    results = {"published": PUBLISHED, "n_train": len(x_train), "n_test": len(x_test),
               "budget": {"pretrain_epochs_per_rbm": config.pretrain_epochs,
                          "finetune_epochs": config.finetune_epochs,
                          "finetune_epochs_2d": config.finetune_epochs_2d,
                          "batch_size": config.batch_size,
                          "rbm": f"CD-1, lr {config.rbm_learning_rate} (linear code: "
                                 f"{config.code_learning_rate}), momentum 0.5 -> 0.9, weight decay 2e-4",
                          "finetune": f"Adam, lr {config.learning_rate} cosine-decayed, "
                                      "cross-entropy loss",
                          "lower_rbms_seconds": round(lower_seconds, 1)}}
    histories, recon = {}, {}
    for code, epochs, k in ((config.code, config.finetune_epochs, k_top),
                            (config.code_2d, config.finetune_epochs_2d, k_top2)):
        if not code:
            continue
        sizes = (x_train.shape[1], *config.hidden, code)
        t = time.perf_counter()
        top, _ = ae.pretrain(k, codes_below, (config.hidden[-1], code), method="rbm",
                             code="identity", rbm_configs=rbm_config(config.code_learning_rate),
                             run_dir=os.path.join(run_dir, f"pretrain_code_{code}"), resume=True,
                             callback=lambda layer, r, code=code: log(
                                 phase="pretrain", layer=len(lower), code=code,
                                 **deterministic(r)))
        top_seconds = time.perf_counter() - t
        stacked = ae.unfold([*lower, *top])
        model = ae.deep_autoencoder(sizes, code="identity")
        row = {"layer_sizes": sizes, "top_rbm_seconds": round(top_seconds, 1),
               "unfolded_before_finetuning": squared_error(stacked, model)}
        model, fitted, row["pretrained_finetuned"], row["finetune_seconds"] = finetune(
            f"pretrained, code {code}", lambda _: stacked, sizes, epochs)
        histories[f"pretrained, code {code}"] = fitted.history
        r_test, h_test = jax.jit(lambda p, x: model.apply(p, x, return_code=True))(
            fitted.state.params, test[:2000] if code == config.code else test)
        if config.random_baseline and code == config.code:
            _, rnd, row["random_init_finetuned"], row["random_init_seconds"] = finetune(
                f"random init, code {code}", None, sizes, epochs)
            histories[f"random init, code {code}"] = rnd.history
        pca_codes, pca_recon = _pca(x_train, x_test, code)
        row["pca"] = float(np.mean(np.sum((x_test - pca_recon) ** 2, axis=1)))
        if code == config.code:
            recon = {f"deep autoencoder ({code})": np.asarray(r_test),
                     f"PCA ({code})": pca_recon}
            results["code_30"] = row
        else:
            results["code_2d"] = row
            results["scatter_png"] = os.path.basename(code_scatter(
                {f"deep autoencoder {'-'.join(map(str, sizes))}": (np.asarray(h_test), y_test),
                 "PCA, first two components": (pca_codes, y_test)},
                os.path.join(run_dir, "codes_2d.png"),
                title="MNIST test images in two dimensions"))
    log.close()

    if "code_30" in results:
        row = results["code_30"]
        row["beats_pca"] = row["pretrained_finetuned"] < row["pca"]
        row["ratio_to_pca"] = row["pretrained_finetuned"] / row["pca"]
        row["gap_to_published_autoencoder"] = row["pretrained_finetuned"] - PUBLISHED["autoencoder"]
        side = int(round(np.sqrt(x_test.shape[1])))
        results["reconstructions_png"] = os.path.basename(ae.reconstruction_grid(
            x_test, recon, os.path.join(run_dir, "reconstructions.png"), image_shape=(side, side),
            n=30, title="test images and their reconstructions from 30 numbers"))
    results["curves_png"] = os.path.basename(training_curves(
        histories, os.path.join(run_dir, "finetune.png"),
        keys=("train_loss", "eval_squared_error"), title="fine-tuning the unfolded autoencoders"))
    return results
