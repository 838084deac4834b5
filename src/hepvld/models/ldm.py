r"""Latent diffusion model (LDM): a VAE trained first, frozen, then a latent diffusion on it.

The baseline of the VLD paper (Rombach et al. 2022 style), with exactly VLD's networks
(:class:`~hepvld.models.vld.VLD` with an unconditional VAE) but two stages instead of one
joint bound:

1. **VAE** (the first ``config.ldm_vae_steps`` optimiser steps): Gaussian likelihood
   (squared error) + :math:`\lambda_C` consistency + ``config.ldm_prior_weight`` (1e-4)
   :math:`\times\,\mathrm{KL}(q(z|x)\,\|\,N(0, I))`. Only the VAE encoder and decoder
   receive gradients.
2. **Latent diffusion**: the VAE is frozen (its forward pass runs without gradients, so
   its parameters get no gradient, hence no AdamW update nor weight decay); the detector
   encoder, denoiser and schedule minimise VLD's latent terms
   :math:`\mathrm{KL}(q(z_1|z_x)\|N(0,I)) + \mathrm{KL}(q(z_x|x)\|p(z_x|z_0)) + \mathcal{L}_\infty`
   with :math:`z_x \sim q(z_x|x)` of the frozen encoder.

**How the generic loop runs both stages.** The stage is a function of the persistent
integer buffer ``stage_step`` (in the state dict, hence in every checkpoint), which
``loss`` increments once per call in training mode with gradients enabled, i.e. once per
optimiser step of :func:`hepvld.training.train`. ``--resume`` restores it with the weights,
so a resumed run switches stage at the same step as an uninterrupted one. The EMA copy
gets the buffer copied (integer buffers are not averaged), so validation uses the same
stage. Limits: the learning-rate schedule (warm-up + cosine) spans both stages; the EMA
of the VAE weights keeps converging to the frozen weights during stage 2; because each
stage leaves parameters without gradients, multi-process DDP (which requires every
parameter to get one) is not supported for this model.

Sampling is VLD's: any sampler on the learned schedule in latent space, then decode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepvld.diffusion import gaussian_kl
from hepvld.models.base import Batch, ModelIO, randn
from hepvld.models.config import ModelConfig
from hepvld.models.registry import register
from hepvld.models.vld import VLD

__all__ = ["LDM"]

#: Logged terms, in both stages (zeros for the inactive stage).
TERMS = ("stage", "reconstruction", "mse", "consistency", "kl", "prior", "vae", "diffusion")


class LDM(VLD):
    """Two-stage latent diffusion (see the module docstring).

    Parameters are those of :class:`~hepvld.models.vld.VLD`; the VAE is built
    unconditional whatever ``config.variant`` says.
    """

    name = "ldm"
    stage_step: Tensor

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        if config.variant != "vld":
            config = ModelConfig.from_dict({**config.to_dict(), "variant": "vld"})
        super().__init__(config, io)
        self.register_buffer("stage_step", torch.zeros((), dtype=torch.long))

    @property
    def stage(self) -> int:
        """1 while the VAE trains (``stage_step < config.ldm_vae_steps``), then 2."""
        return 1 if int(self.stage_step) < self.config.ldm_vae_steps else 2

    def vae_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters trained in stage 1 (and frozen in stage 2)."""
        return [*self.vae_encoder.parameters(), *self.vae_decoder.parameters()]

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Loss of the current stage; advances ``stage_step`` when training.

        Parameters
        ----------
        batch
            ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, X)``,
            optional ``weights (B,)``.
        generator
            Source of every random number drawn here.

        Returns
        -------
        dict
            ``loss`` and the terms of :data:`TERMS` (weighted means; ``stage`` is 1 or 2).
        """
        stage = self.stage
        if self.training and torch.is_grad_enabled():
            self.stage_step += 1
        x = self.flat_targets(batch)
        zeros = x.new_zeros(x.shape[0])
        terms = dict.fromkeys(TERMS, zeros)
        terms["stage"] = torch.full_like(zeros, float(stage))
        if stage == 1:
            mean, log_std = self.encode(x, None)
            z_x = mean + log_std.exp() * randn(mean, generator)
            x_hat = self.decode(z_x, None)
            squared_error, consistency = self.reconstruction_terms(x_hat, x)
            reconstruction = self.reconstruction_nll(x_hat, x)  # Gaussian, learned sigma_x
            kl = gaussian_kl(mean, log_std, torch.zeros_like(mean), torch.zeros_like(log_std))
            terms.update(
                reconstruction=reconstruction,
                mse=squared_error / x.shape[-1],
                consistency=consistency,
                kl=kl,
            )
            total = (
                reconstruction
                + self.config.consistency_weight * consistency
                + self.config.ldm_prior_weight * kl
            )
        else:
            with torch.no_grad():
                mean, log_std = self.encode(x, None)
                z_x = mean + log_std.exp() * randn(mean, generator)
            z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
            latent = self.latent_terms(z_x, mean, log_std, z_y, generator)
            terms.update(latent)
            total = latent["prior"] + latent["vae"] + latent["diffusion"]
        return self.loss_dict(total, terms, batch.get("weights"))


register("ldm")(LDM)
