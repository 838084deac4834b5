r"""Conditional variational auto-encoder (CVAE) baseline.

Conditional encoder :math:`q(z|x, z_y) = N(\mu, \sigma^2)` and conditional decoder
:math:`\hat x = \mathrm{dec}(z, z_y)` (gated MLPs of VLD's sizes), standard normal prior
:math:`p(z) = N(0, I)`, Gaussian likelihood. Loss per event:

.. math:: \|x - \hat x\|^2 + \lambda_C \sum |M^2 - (E^2 - p^2)| + \mathrm{KL}(q(z|x, z_y)\,\|\,N(0, I))

(terms ``reconstruction``, ``consistency``, ``kl``). A draw decodes :math:`z \sim N(0, I)`
(the sample noise) with the event's :math:`z_y`; ``sampler``/``steps`` are ignored.

Shapes: ``B`` events, ``C`` condition size, ``X`` target size, ``D`` latent size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hepvld.diffusion import SamplerSpec, gaussian_kl
from hepvld.models.base import Batch, Condition, ConditionalGenerator, ModelIO, randn
from hepvld.models.config import ModelConfig
from hepvld.models.registry import register

__all__ = ["CVAE"]


class CVAE(ConditionalGenerator):
    """Conditional VAE; parameters as :class:`~hepvld.models.vld.VLD`."""

    name = "cvae"

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        super().__init__(config, io, noise_shape=(config.latent_dim,))
        target_dim = self.target_dim
        c, cond = config, self.condition_dim
        self.vae_encoder = self.gated_mlp(target_dim + cond, 2 * c.latent_dim, c.vae_encoder_blocks)
        self.vae_decoder = self.gated_mlp(c.latent_dim + cond, target_dim, c.vae_decoder_blocks)

    def encode(self, x: Tensor, z_y: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``q(z | x, z_y)``: mean and log std, each ``(B, D)``."""
        mean, log_std = self.vae_encoder(torch.cat([x, z_y], -1)).chunk(2, dim=-1)
        return mean, log_std.clamp(-15.0, 5.0)

    def decode(self, z: Tensor, z_y: Tensor) -> Tensor:
        """``z (B, D)``, ``z_y (B, C)`` -> preprocessed targets ``(B, X)``."""
        return self.vae_decoder(torch.cat([z, z_y], -1))

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Negative ELBO plus consistency (see the module docstring).

        Parameters
        ----------
        batch
            ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, X)``,
            optional ``weights (B,)``.
        generator
            Source of the reparametrisation noise.

        Returns
        -------
        dict
            ``loss``, ``reconstruction``, ``consistency``, ``kl``.
        """
        x = self.flat_targets(batch)
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        mean, log_std = self.encode(x, z_y)
        z = mean + log_std.exp() * randn(mean, generator)
        reconstruction, consistency = self.reconstruction_terms(self.decode(z, z_y), x)
        kl = gaussian_kl(mean, log_std, torch.zeros_like(mean), torch.zeros_like(log_std))
        total = reconstruction + self.config.consistency_weight * consistency + kl
        terms = {"reconstruction": reconstruction, "consistency": consistency, "kl": kl}
        return self.loss_dict(total, terms, batch.get("weights"))

    def generate(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Decode prior draws ``noise (M, D)`` given the condition: targets ``(M, X)``."""
        return self.decode(noise, condition.event)


register("cvae")(CVAE)
