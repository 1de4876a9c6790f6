"""A linear autoencoder learns the principal subspace: principal angles to scikit-learn's PCA.

Baldi & Hornik (1989): for centred data X, every minimum of the linear autoencoder's squared error
||X - X W_1 W_2||_F^2 (k hidden units) has W_1's column space (and W_2^T's) equal to the span of the
top-k principal components, and the minimum is PCA's reconstruction error; the weights need not be
the components themselves (any invertible mixing A gives W_1 A, A^-1 W_2). So the comparison is
between subspaces: the principal angles theta_1 <= ... <= theta_k between span(W_2^T) (the space
the reconstructions lie in) and the span of PCA's top-k components, cos theta_i being the singular
values of Q_W^T Q_PCA for orthonormal bases. MNIST's covariance is singular or nearly so (border
pixels never or hardly ever vary): parts of W_1's columns along those directions get (almost) no
gradient and change (almost) no output, so the encoder is compared by what it computes: the
angles between the codes' span, span(X W_1) in R^N, and that of PCA's codes, span(X U_k).

Here: ``n_train`` MNIST training images, centred; ``dlmodels.autoencoders.autoencoder(784, k,
encoder="identity", decoder="identity")`` trained by full-batch Adam (cosine-decayed rate) on the
squared error, for each k in ``ks``, against ``sklearn.decomposition.PCA(k)`` fitted to the same
images. Reported: the largest principal angle (degrees) of the encoder's and the decoder's
subspaces, their reconstruction errors beside PCA's, and the eigenvalue gap lambda_k /
lambda_{k+1} that sets how fast gradient descent finds the subspace; the plot follows the angle
and the excess error during training and shows PCA's components beside the autoencoder's
decoder rows projected onto them.
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
from dlmodels.plots import figure, save
from dlmodels.extras import optional_import


@dataclasses.dataclass(frozen=True)
class Config:
    dataset: str = "mnist"  # data set: digits, mnist or fashion_mnist
    n_train: int = 6000  # training images (centred), full batch
    ks: tuple[int, ...] = (2, 10, 30)  # code sizes k compared with PCA(k)
    steps: int = 5000  # full-batch Adam updates per k
    record_every: int = 200  # updates between recorded angles and errors
    learning_rate: float = 3e-3  # peak Adam learning rate (cosine-decayed)
    seed: int = 0  # seed of the initial weights
    target_degrees: float = 1.0  # largest principal angle counted as having found the subspace

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive, got {self.ks}")
        if self.steps < 1 or self.record_every < 1 or self.n_train < 2:
            raise ValueError("steps, record_every and n_train must be positive")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees between span(a) and span(b) for ``a [D, k]``, ``b [D, k]``."""
    qa = np.linalg.qr(np.asarray(a, np.float64))[0]
    qb = np.linalg.qr(np.asarray(b, np.float64))[0]
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))          # ascending


def main(config: Config, run_dir: str) -> dict:
    PCA = optional_import("sklearn.decomposition", needed_for="the PCA reference").PCA

    x, _ = data.load(config.dataset, "train")
    x = x[:config.n_train].astype(np.float64)
    if max(config.ks) >= min(x.shape):
        raise ValueError(f"k must be below min(N, D) = {min(x.shape)}, got {max(config.ks)}")
    x = (x - x.mean(0)).astype(np.float32)
    xj = jnp.asarray(x)
    n_chunks = -(-config.steps // config.record_every)
    results = {"n_train": len(x), "steps": n_chunks * config.record_every,
               "optimizer": f"full-batch Adam, lr {config.learning_rate} cosine-decayed",
               "target_degrees": config.target_degrees, "ks": {}}
    curves = {}
    for k in config.ks:
        pca = PCA(n_components=k + 1, svd_solver="full").fit(x)
        components = pca.components_[:k].T                                     # (D, k)
        pca_error = float(np.mean(np.sum((x - (x @ components) @ components.T) ** 2, 1)))
        model = ae.autoencoder(x.shape[1], k, encoder="identity", decoder="identity",
                               w_init="glorot_uniform")
        loss_fn, _ = ae.objective(model.apply, reconstruction="squared")
        optimizer = optax.adam(optax.cosine_decay_schedule(config.learning_rate,
                                                           n_chunks * config.record_every))

        @jax.jit
        def chunk(params, opt_state):
            def step(carry, _):
                params, opt_state = carry
                (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, xj, None)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss
            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), None,
                                                       length=config.record_every)
            return params, opt_state, losses[-1]

        params = model.init(jax.random.PRNGKey(config.seed))
        opt_state = optimizer.init(params)
        start = time.perf_counter()
        steps, angles, excess = [], [], []
        for c in range(n_chunks):
            params, opt_state, loss = chunk(params, opt_state)
            steps.append((c + 1) * config.record_every)
            angles.append(float(principal_angles(params["decoder"]["w"].T, components).max()))
            excess.append(float(loss) - pca_error)
        seconds = time.perf_counter() - start
        w1, w2 = np.asarray(params["encoder"]["w"]), np.asarray(params["decoder"]["w"])
        final_error = float(np.mean(np.sum((x - (x @ w1 + np.asarray(params["encoder"]["b"]))
                                            @ w2 - np.asarray(params["decoder"]["b"])) ** 2, 1)))
        encoder_angles = principal_angles(x @ w1, x @ components)          # codes, (N, k)
        decoder_angles = principal_angles(w2.T, components)
        ev = pca.explained_variance_
        results["ks"][str(k)] = {
            "max_angle_decoder_degrees": float(decoder_angles.max()),
            "max_angle_codes_degrees": float(encoder_angles.max()),
            "max_angle_encoder_weights_degrees": float(principal_angles(w1, components).max()),
            "angles_decoder_degrees": decoder_angles.tolist(),
            "below_target": bool(max(encoder_angles.max(), decoder_angles.max())
                                 < config.target_degrees),
            "autoencoder_error": final_error, "pca_error": pca_error,
            "relative_excess_error": (final_error - pca_error) / pca_error,
            "eigenvalue_gap": float(ev[k - 1] / ev[k]), "seconds": round(seconds, 1)}
        curves[k] = (steps, angles, excess, w2)
        print(f"k={k}: max angle {decoder_angles.max():.3f} deg (codes: "
              f"{encoder_angles.max():.3f}), error {final_error:.3f} vs PCA {pca_error:.3f} "
              f"({seconds:.0f} s)", flush=True)
        if k == max(config.ks):
            results["components_png"] = os.path.basename(_components_plot(
                components, w2, os.path.join(run_dir, "components.png")))
    results["all_below_target"] = all(r["below_target"] for r in results["ks"].values())
    results["angles_png"] = os.path.basename(_angles_plot(curves, config,
                                                          os.path.join(run_dir, "angles.png")))
    return results


def _angles_plot(curves, config, path):
    fig, (ax1, ax2) = figure(1, 2, figsize=(10, 3.8))
    for k, (steps, angles, excess, _) in curves.items():
        ax1.semilogy(steps, angles, label=f"k = {k}")
        ax2.semilogy(steps, np.maximum(excess, 1e-6), label=f"k = {k}")
    ax1.axhline(config.target_degrees, color="grey", linestyle="--", linewidth=1)
    ax1.set(xlabel="full-batch Adam step", ylabel="largest principal angle (degrees)",
            title="span(W_2^T) vs PCA's top-k subspace")
    ax2.set(xlabel="full-batch Adam step", ylabel="squared error - PCA's (per image)",
            title="excess reconstruction error")
    ax1.legend()
    return save(fig, path, "linear autoencoder vs PCA")


def _components_plot(components, w2, path, n=10):
    """PCA's first components beside an orthonormal basis of the decoder's row space span(W_2^T)
    rotated onto them by least squares (orthogonal Procrustes)."""
    from dlmodels.plots import image_grid

    q = components                                                    # (D, k) orthonormal
    basis = np.linalg.qr(w2.T.astype(np.float64))[0]                  # (D, k) orthonormal span(W_2^T)
    u, _, vt = np.linalg.svd(basis.T @ q)                             # Procrustes: min ||basis R - q||
    aligned = (basis @ (u @ vt)).T                                    # (k, D)
    side = int(round(np.sqrt(q.shape[0])))
    return image_grid({"PCA components": q.T[:n], "linear autoencoder (rotated)": aligned[:n]},
                      path, n_cols=5, image_shape=(side, side), symmetric=True,
                      title="the same subspace: PCA's components and the autoencoder's, aligned")
