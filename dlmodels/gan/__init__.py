"""Generative adversarial networks (Goodfellow et al. 2014; DCGAN, Radford, Metz & Chintala 2016):
the adversarial losses, the players (MLP and DCGAN generators and discriminators) and their
training through the one trainer (k discriminator updates and one generator update per step)."""

from dlmodels.gan.losses import GENERATOR_LOSSES, discriminator_loss, generator_loss
from dlmodels.gan.networks import (LARGE_DCGAN_DISCRIMINATOR, LARGE_DCGAN_GENERATOR,
                                   PAPER_MLP_DISCRIMINATOR, PAPER_MLP_GENERATOR,
                                   dcgan_discriminator, dcgan_generator, mlp_discriminator,
                                   mlp_generator)
from dlmodels.gan.training import generate, noise, sample, training, two_player_optimizer

__all__ = ["GENERATOR_LOSSES", "discriminator_loss", "generator_loss", "mlp_generator",
           "mlp_discriminator", "dcgan_generator", "dcgan_discriminator", "PAPER_MLP_GENERATOR",
           "PAPER_MLP_DISCRIMINATOR", "LARGE_DCGAN_GENERATOR", "LARGE_DCGAN_DISCRIMINATOR",
           "training", "two_player_optimizer", "noise", "generate", "sample"]
