"""GANs on MNIST (or Fashion-MNIST): MLP GAN and DCGAN, several seeds; Parzen, Frechet, score.

Two GANs (``dlmodels.gan``) trained with the non-saturating generator loss and k = 1
discriminator update per generator update (Goodfellow et al. 2014, Algorithm 1), Adam (rate 2e-4,
b1 = 0.5, Radford et al. 2016) for both players, ``n_seeds`` seeds each:

- MLP GAN: generator z (100, N(0, I)) -> ReLU layers -> sigmoid -> 784 pixels; discriminator:
  maxout layers (5 pieces) with dropout 0.2 / 0.5 -> one logit. The paper used 1200-1200 and
  240-240 units and SGD with momentum; the defaults here (256-256 and 128-128) are for the CPU.
  The generator's weights start He-normal (``mlp_init``): with the paper's U(-0.05, 0.05) at these
  widths and Adam, every seed collapsed to one or two blurred modes within 4 epochs (z's signal
  shrinks through two narrow ReLU layers of small weights), measured on this run's first try.
  Its seeds train as one vmapped program (``fit(..., seeds=...)``).
- DCGAN: generator z -> dense 7x7x64 -> BN, ReLU -> 4x4/2 transposed conv 14x14x32 -> BN, ReLU
  -> 4x4/2 transposed conv 28x28x1 -> sigmoid; discriminator 4x4/2 conv 32 -> LReLU(0.2) -> 4x4/2
  conv 64 -> BN -> LReLU -> logit (the paper's 64x64 nets cut to 28x28 and to CPU widths).
  On the CPU its seeds train ONE AFTER ANOTHER (``dlmodels.backend.vmap_conv_seeds``), each
  with its own data order, as in the committed reference run (before the trainer ran conv-net
  seeds unrolled in one program, 4 vmapped seeds took 293 ms per step against 241 ms for 4 single
  seeds; now ``fit(..., seeds=4)`` runs them at 1.01x the single runs); the
  reference run: 58 ms per step and seed. Elsewhere they are one vmapped program.

Evaluation (``dlmodels.gan.evaluation``), for each seed on ``n_samples`` = 10,000 generated images:

- The Gaussian Parzen-window log-likelihood of the 10,000 test images (Breuleux et al. 2011),
  bandwidth chosen on the validation images over ``numpy.logspace(-1, 0, 10)`` as in the paper's
  code; pixels in [0, 1], 784-d, the paper's scaling, so the numbers compare with its Table 1
  (GAN 225 +- 2, DBN 138 +- 2, stacked CAE 121 +- 1.6, deep GSN 214 +- 1.1; MNIST). The Parzen
  estimate is a poor measure of a generative model in 784 dimensions (Theis, van den Oord &
  Bethge 2016): it rewards blurry spread more than sharp digits, its value is dominated by the
  bandwidth, and even 10,000 REAL training images used as the "samples" get only a modest number,
  reported beside the GANs as ``real_data.parzen`` (a model that memorised the training set would
  score the same).
- The Frechet distance (Heusel et al. 2017) and the classifier score (Salimans et al. 2016) on
  the features / softmax of a LeNet-5 trained by dlmodels for ``feature_epochs`` (cached in the
  run directory), with the real-data calibration: 10,000 real training images against the test
  set (the distance a perfect generator would reach with this many images; its score, the
  ceiling).
- Class histograms of the generated images by that LeNet-5 (mode collapse: modes covered, KL to
  uniform).

Fashion-MNIST (``--dataset fashion_mnist``) has no validation split: the last 10,000 training
images choose the bandwidth and monitor training, the first 50,000 train; the paper has no
Fashion-MNIST number. Each GAN checkpoints ``grid_points`` times; the sample grids over training
are drawn from those checkpoints, and a killed run resumes from them.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlmodels import backend, gan
from dlmodels.experiments.cnn_mnist import image_splits
from dlmodels.gan import evaluation
from dlmodels.plots import figure, image_grid, save
from dlmodels.train import Checkpointer, TrainConfig, fit, summarize

PAPER_TABLE1 = {"GAN (Goodfellow et al. 2014)": [225, 2], "DBN": [138, 2],
                "Stacked CAE": [121, 1.6], "Deep GSN": [214, 1.1]}
MODELS = ("mlp", "dcgan")


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: mnist or fashion_mnist
    models: tuple[str, ...] = ("mlp", "dcgan")  # GANs to train: mlp and/or dcgan
    n_seeds: int = 4  # seeds per GAN (the spread between runs)
    latent_dim: int = 100  # dimension of the noise z ~ N(0, I)
    mlp_generator: tuple[int, ...] = (256, 256)  # MLP generator ReLU layers (paper: 1200,1200)
    mlp_discriminator: tuple[int, ...] = (128, 128)  # MLP D maxout units, 5 pieces (paper: 240,240)
    mlp_init: str = "he_normal"  # MLP generator weight init (paper: uniform, U(-0.05, 0.05))
    dcgan_generator: tuple[int, ...] = (64, 32)  # DCGAN generator channels (7x7, 14x14 maps)
    dcgan_discriminator: tuple[int, ...] = (32, 64)  # DCGAN D channels (14x14, 7x7 maps)
    mlp_epochs: int = 15  # training epochs of the MLP GAN
    dcgan_epochs: int = 2  # training epochs of the DCGAN (per seed)
    mlp_batch_size: int = 100  # real images per discriminator update, m, MLP GAN (the paper: 100)
    dcgan_batch_size: int = 64  # real images per discriminator update, m, DCGAN
    k: int = 1  # discriminator updates per generator update (the paper: 1)
    learning_rate: float = 2e-4  # Adam rate of both players (b1 = 0.5)
    generator_loss: str = "non_saturating"  # generator loss: non_saturating or minimax
    n_samples: int = 10000  # generated images per GAN for Parzen, Frechet distance and score
    n_valid: int = 0  # validation images that choose the Parzen bandwidth (0: all)
    feature_epochs: int = 2  # training epochs of the LeNet-5 feature network
    grid_points: int = 4  # checkpoints over training whose samples are drawn
    evals_per_epoch: int = 2  # D/G loss evaluations (history entries) per epoch
    n_monitor: int = 1000  # validation images on which the D/G losses are evaluated
    n_train: int = 0  # training examples used (0: the whole training split)
    stop_after: int = 0  # stop each GAN after this many updates (0: to the end; tests resume)

    def __post_init__(self):
        if self.dataset not in ("mnist", "fashion_mnist"):
            raise ValueError(f"dataset must be 'mnist' or 'fashion_mnist', got {self.dataset!r}")
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise ValueError(f"models must be among {MODELS}, got {self.models!r}")
        if self.generator_loss not in gan.GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {gan.GENERATOR_LOSSES}, "
                             f"got {self.generator_loss!r}")


def gan_splits(dataset: str, n_train: int = 0) -> dict:
    """``{"train", "valid", "test"}`` of images ``[N, 28, 28, 1]`` in [0, 1] and labels; a data set
    without a validation split (Fashion-MNIST) gives its last 10,000 (or 1/6) training images."""
    splits = image_splits(dataset)
    if "valid" not in splits:
        x, y = splits["train"]
        n_valid = min(10000, len(y) // 6)
        splits["valid"] = (x[-n_valid:], y[-n_valid:])
        splits["train"] = (x[:-n_valid], y[:-n_valid])
    if n_train:
        splits["train"] = tuple(a[:n_train] for a in splits["train"])
    return splits


def players(name: str, config: Config):
    """``(generator, discriminator)`` StatefulModels of GAN ``name``."""
    if name == "mlp":
        return (gan.mlp_generator(config.latent_dim, config.mlp_generator, w_init=config.mlp_init),
                gan.mlp_discriminator(config.mlp_discriminator))
    return (gan.dcgan_generator(config.latent_dim, config.dcgan_generator),
            gan.dcgan_discriminator(config.dcgan_discriminator))


def make_eval_fn(G, D, latent_dim: int):
    """Per-example D/G losses on real validation images and as many generated ones (fixed noise),
    both players in evaluation mode (batch norm's running statistics, no dropout):
    ``d_loss = -log D(x) - log(1 - D(G(z)))``, ``g_loss = -log D(G(z))``, ``D(x)``, ``D(G(z))``."""

    def eval_fn(view, batch):
        (x,) = batch
        p, s = view["params"], view["state"]
        z = gan.noise(jax.random.PRNGKey(7), x.shape[0], latent_dim, x.dtype)
        fake = gan.generate(G, p["generator"], s["generator"], z)
        real_logits, _ = D.apply(p["discriminator"], s["discriminator"], x)
        fake_logits, _ = D.apply(p["discriminator"], s["discriminator"], fake)
        return {"d_loss": jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits),
                "g_loss": jax.nn.softplus(-fake_logits),
                "d_real": jax.nn.sigmoid(real_logits), "d_fake": jax.nn.sigmoid(fake_logits)}

    return eval_fn


def train_gan(name: str, config: Config, splits: dict, run_dir: str) -> dict:
    """Train ``n_seeds`` GANs ``name``; returns ``{"runs": [(fit_result, checkpoint_dir, index)]
    (index: the seed's row of a vmapped run, None for a single run), "seeds", "vmapped",
    "seconds", "steps", "epochs"}``."""
    G, D = players(name, config)
    updater, optimizer, init_fn = gan.training(
        G, D, latent_dim=config.latent_dim, k=config.k, generator_loss=config.generator_loss,
        d_optimizer=optax.adam(config.learning_rate, b1=0.5),
        g_optimizer=optax.adam(config.learning_rate, b1=0.5))
    conv = name == "dcgan"
    vmapped = not conv or backend.vmap_conv_seeds()
    epochs = config.dcgan_epochs if conv else config.mlp_epochs
    batch = config.k * (config.dcgan_batch_size if conv else config.mlp_batch_size)
    x_train = splits["train"][0]
    steps_per_epoch = len(x_train) // batch
    total = epochs * steps_per_epoch
    train_config = TrainConfig(
        epochs=epochs, batch_size=batch, progress=False, on_nonfinite="skip",
        steps_per_call=backend.conv_steps_per_call(50) if conv else 50,
        eval_every=max(steps_per_epoch // config.evals_per_epoch, 1),
        checkpoint_every=max(total // config.grid_points, 1),
        keep_checkpoints=config.grid_points + 2, max_steps=config.stop_after,
        eval_batch_size=1000)
    common = dict(eval_fn=make_eval_fn(G, D, config.latent_dim),
                  eval_data=(splits["valid"][0][:config.n_monitor],), resume=True,
                  record=dataclasses.asdict(config))
    seeds = list(range(config.n_seeds))
    start = time.perf_counter()
    if vmapped:
        directory = os.path.join(run_dir, name)
        result = fit(init_fn, updater, optimizer, (x_train,), train_config, seeds=seeds,
                     run_dir=directory, **common)
        runs = [(result, os.path.join(directory, "checkpoints"), i) for i in range(len(seeds))]
    else:
        runs = []
        for seed in seeds:
            directory = os.path.join(run_dir, name, f"seed_{seed}")
            result = fit(init_fn, updater, optimizer, (x_train,),
                         dataclasses.replace(train_config, seed=seed), run_dir=directory, **common)
            runs.append((result, os.path.join(directory, "checkpoints"), None))
    seconds = time.perf_counter() - start
    print(f"{name} GAN: {len(seeds)} seeds, {total} updates each, "
          f"{'vmapped' if vmapped else 'one after another'}, {seconds:.0f} s", flush=True)
    return {"G": G, "D": D, "runs": runs, "seeds": seeds, "vmapped": vmapped, "seconds": seconds,
            "steps": total, "epochs": epochs, "batch_size": batch}


def _row(tree, index):
    return tree if index is None else jax.tree.map(lambda a: a[index], tree)


def generators(trained: dict, step: int | None = None) -> list[tuple]:
    """``[(params_G, state_G)]`` per seed: the final ones, or those of checkpoint ``step``."""
    out, restored = [], {}
    for result, directory, index in trained["runs"]:
        state = result.state
        if step is not None:
            if directory not in restored:
                restored[directory] = Checkpointer(directory).restore(result.state, step=step)[0]
            state = restored[directory]
        out.append((_row(state.params["generator"], index),
                    _row(state.model_state["generator"], index)))
    return out


def checkpoint_steps(trained: dict) -> list[int]:
    """The checkpoint steps every seed has."""
    steps = None
    for _, directory, _ in trained["runs"]:
        have = set(Checkpointer(directory).steps())
        steps = have if steps is None else steps & have
    return sorted(steps)


def curves(trained: dict) -> list[dict]:
    """Per seed: ``{"epoch", "train_d_loss", "d_loss", "g_loss", "d_real", "d_fake"}`` lists
    from the training history (train_d_loss: the trainer's mean D loss since the last entry,
    training mode; the others evaluated on the monitor images)."""
    out = []
    for result, _, index in trained["runs"]:
        rows = result.history
        pick = (lambda v: v) if index is None else (lambda v: v[index])
        out.append({"epoch": [h["epoch"] for h in rows],
                    "train_d_loss": [pick(h["train_loss"]) for h in rows],
                    **{k: [pick(h[f"eval_{k}"]) for h in rows]
                       for k in ("d_loss", "g_loss", "d_real", "d_fake")}})
    return out


def evaluate_generators(G, gens: list[tuple], config: Config, splits: dict, net, test_moments,
                        *, key_offset: int = 0) -> tuple[list[dict], list[np.ndarray]]:
    """Per seed: Parzen (mean, se, sigma), Frechet distance, classifier score, class histogram
    of ``n_samples`` generated images; also returns the first 10 images of each seed."""
    x_test = splits["test"][0]
    x_valid = splits["valid"][0][:config.n_valid or None]
    generate = jax.jit(lambda p, s, z: gan.generate(G, p, s, z))
    rows, firsts = [], []
    for i, (params, state) in enumerate(gens):
        key = jax.random.PRNGKey(1000 + key_offset + i)
        z = gan.noise(key, config.n_samples, config.latent_dim)
        images = np.asarray(generate(params, state, z))                  # (n, 28, 28, 1)
        parzen = evaluation.parzen_log_likelihood(x_test, images, x_valid)
        row = {"seed": i, "parzen_mean": float(parzen.mean), "parzen_se": float(parzen.se),
               "parzen_sigma": float(parzen.sigma)}
        row.update(evaluation.sample_metrics(net, images, test_moments))
        rows.append(row)
        firsts.append(images[:10, ..., 0])
    return rows, firsts


def _summary(rows: list[dict]) -> dict:
    keys = ("parzen_mean", "parzen_se", "frechet_distance", "classifier_score", "modes_covered",
            "kl_to_uniform", "largest_fraction")
    return {k: summarize([r[k] for r in rows]) for k in keys}


def plot_grids(name: str, trained: dict, path: str, latent_dim: int, dataset: str) -> str:
    """Samples of every seed (rows) at every checkpoint (panels), the same 10 noise vectors."""
    G = trained["G"]
    z = gan.noise(jax.random.PRNGKey(3), 10, latent_dim)
    generate = jax.jit(lambda p, s: gan.generate(G, p, s, z))
    panels = {}
    for step in checkpoint_steps(trained):
        images = [np.asarray(generate(p, s))[..., 0] for p, s in generators(trained, step)]
        epoch = step / max(trained["steps"] / trained["epochs"], 1)
        panels[f"step {step} (epoch {epoch:.2g})"] = np.concatenate(images)
    return image_grid(panels, path, n_cols=10,
                      title=f"{name} GAN on {dataset}: one row per seed, over training")


def plot_histograms(models: dict, real_counts: list, path: str, dataset: str) -> str:
    fig, axes = figure(1, len(models), figsize=(5.0 * len(models), 3.6), squeeze=False)
    classes = np.arange(len(real_counts))
    for ax, (name, rows) in zip(axes[0], models.items()):
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            counts = np.asarray(row["class_counts"], float)
            ax.bar(classes - 0.4 + width * (i + 0.5), counts / counts.sum(), width,
                   label=f"seed {row['seed']}")
        real = np.asarray(real_counts, float)
        ax.step(classes, real / real.sum(), where="mid", color="k", label="real (train)")
        ax.axhline(1.0 / len(classes), color="grey", lw=0.8, ls=":")
        ax.set_xticks(classes)
        ax.set_xlabel("class (LeNet-5's decision)")
        ax.set_ylabel("fraction of generated images")
        ax.set_title(f"{name} GAN")
        ax.legend(fontsize=7)
    return save(fig, path, f"Class histograms of generated images ({dataset})")


def plot_losses(all_curves: dict, path: str, dataset: str) -> str:
    fig, axes = figure(len(all_curves), 3, figsize=(14.0, 3.4 * len(all_curves)), squeeze=False)
    for row, (name, per_seed) in zip(axes, all_curves.items()):
        for i, c in enumerate(per_seed):
            colour = f"C{i}"
            row[0].plot(c["epoch"], c["train_d_loss"], color=colour, label=f"seed {i}")
            row[0].plot(c["epoch"], c["d_loss"], color=colour, ls="--")
            row[1].plot(c["epoch"], c["g_loss"], color=colour, label=f"seed {i}")
            row[2].plot(c["epoch"], c["d_real"], color=colour, label=f"D(x), seed {i}")
            row[2].plot(c["epoch"], c["d_fake"], color=colour, ls="--")
        row[0].axhline(2 * np.log(2), color="grey", lw=0.8, ls=":")
        row[0].set_title(f"{name}: D loss (solid: training, dashed: eval)")
        row[1].set_title(f"{name}: G loss -log D(G(z)) (eval)")
        row[2].set_title(f"{name}: D(x) solid, D(G(z)) dashed (eval)")
        for ax in row:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    return save(fig, path, f"GAN losses per seed ({dataset}; dotted: 2 log 2, the equilibrium)")


def main(config: Config, run_dir: str) -> dict:
    splits = gan_splits(config.dataset, config.n_train)
    x_train, y_train = splits["train"]
    start = time.perf_counter()
    net = evaluation.train_feature_net(splits["train"], splits["test"],
                                       epochs=config.feature_epochs,
                                       run_dir=os.path.join(run_dir, "feature_net"))
    real_samples = x_train[:config.n_samples]
    real, test_moments = evaluation.real_data_reference(net, real_samples, splits["test"][0])
    parzen = evaluation.parzen_log_likelihood(splits["test"][0], real_samples,
                                              splits["valid"][0][:config.n_valid or None])
    real["parzen"] = {"mean": float(parzen.mean), "se": float(parzen.se),
                      "sigma": float(parzen.sigma), "n_samples": len(real_samples)}
    print(f"feature LeNet-5: test accuracy {net.test_accuracy:.4f}; real train vs test: Parzen "
          f"{real['parzen']['mean']:.1f}, Frechet {real['frechet_distance']:.3f}, score "
          f"{real['classifier_score']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)

    models, all_curves, pngs, finals = {}, {}, {}, {}
    for offset, name in enumerate(config.models):
        trained = train_gan(name, config, splits, run_dir)
        t0 = time.perf_counter()
        rows, firsts = evaluate_generators(trained["G"], generators(trained), config, splits, net,
                                           test_moments, key_offset=100 * offset)
        eval_seconds = time.perf_counter() - t0
        all_curves[name] = curves(trained)
        for row, c in zip(rows, all_curves[name]):
            row.update({f"final_{k}": c[k][-1] for k in ("d_loss", "g_loss", "d_real", "d_fake")})
        finals[f"{name} GAN"] = np.concatenate(firsts[:4])
        pngs[f"{name}_grids_png"] = os.path.basename(plot_grids(
            name, trained, os.path.join(run_dir, f"samples_{name}_over_training.png"),
            config.latent_dim, config.dataset))
        models[name] = {
            "per_seed": rows, "summary": _summary(rows), "train_seconds": trained["seconds"],
            "eval_seconds": eval_seconds, "steps": trained["steps"], "epochs": trained["epochs"],
            "batch_size": trained["batch_size"], "seeds_vmapped": trained["vmapped"],
            "n_params": {p: int(sum(np.size(a) for a in jax.tree.leaves(v)))
                         for p, v in (("generator", generators(trained)[0][0]),
                                      ("discriminator", _row(trained["runs"][0][0].state.params[
                                          "discriminator"], trained["runs"][0][2])))},
            "curves": all_curves[name]}
        s = models[name]["summary"]
        print(f"{name} GAN: Parzen {s['parzen_mean']['mean']:.1f} +- {s['parzen_mean']['std']:.1f}"
              f" (seeds), Frechet {s['frechet_distance']['mean']:.2f}, score "
              f"{s['classifier_score']['mean']:.2f}, modes {s['modes_covered']['mean']:.1f} "
              f"(eval {eval_seconds:.0f} s)", flush=True)

    finals["real (test)"] = splits["test"][0][:10 * min(4, config.n_seeds), ..., 0]
    pngs["samples_png"] = os.path.basename(image_grid(
        finals, os.path.join(run_dir, "samples.png"), n_cols=10,
        title=f"Final samples on {config.dataset}: one row per seed (the same noise)"))
    pngs["histograms_png"] = os.path.basename(plot_histograms(
        {name: m["per_seed"] for name, m in models.items()}, real["class_counts"],
        os.path.join(run_dir, "class_histograms.png"), config.dataset))
    pngs["losses_png"] = os.path.basename(plot_losses(
        all_curves, os.path.join(run_dir, "losses.png"), config.dataset))
    return {
        "dataset": config.dataset, "n_train": len(y_train), "n_test": len(splits["test"][1]),
        "n_valid_parzen": len(splits["valid"][1][:config.n_valid or None]),
        "pixels": "[0, 1], 784-d: the scaling of Goodfellow et al. (2014)'s Parzen numbers",
        "paper_table1_parzen": PAPER_TABLE1 if config.dataset == "mnist" else None,
        "feature_net": {"model": "lenet5 (ReLU, max pooling), features: F6 (84)",
                        "epochs": config.feature_epochs, "test_accuracy": net.test_accuracy},
        "real_data": real, "models": models, **pngs,
        "seconds": time.perf_counter() - start,
    }
