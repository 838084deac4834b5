r"""Variational diffusion model (VDM) directly on the standardised targets (no VAE).

The data-space baseline of the VLD paper: Kingma et al.'s continuous-time VDM with the
learned schedule, conditioned on the detector encoder output :math:`z_y`, diffusing the
``X``-dim standardised target vector itself. Negative ELBO per event:

.. math:: \mathrm{KL}(q(x_1|x)\,\|\,N(0, I))
   - \log N\big(x;\ z_0/\alpha_0,\ (\sigma_0/\alpha_0)^2\big)
   + \tfrac12 E_t[\gamma'(t)\,\|\epsilon - \hat\epsilon\|^2]

(terms ``prior``, ``reconstruction``, ``diffusion``). There is no decoder, hence no
consistency loss: a draw is :math:`z_0/\alpha_0` of the sampler.

Shapes: ``B`` events, ``C`` condition size, ``X`` target size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hepvld.models.base import Batch
from hepvld.models.config import ModelConfig
from hepvld.models.denoising import DiffusionGenerator
from hepvld.physics.constants import TARGET_DIM

__all__ = ["VDM"]


class VDM(DiffusionGenerator):
    """Conditional VDM on the targets; parameters as :class:`~hepvld.models.vld.VLD`."""

    name = "vdm"

    def __init__(
        self,
        config: ModelConfig,
        object_features: int,
        global_features: int,
        target_dim: int = TARGET_DIM,
        target_shift: Tensor | None = None,
        target_scale: Tensor | None = None,
    ) -> None:
        super().__init__(
            config,
            object_features,
            global_features,
            target_dim,
            target_shift,
            target_scale,
            noise_dim=target_dim,
        )
        self.build_diffusion(target_dim)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Negative ELBO (see the module docstring).

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
            ``loss``, ``prior``, ``reconstruction``, ``diffusion``.
        """
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"])
        terms = self.diffusion_terms(batch["targets"], z_y, generator)
        return self.loss_dict(sum(terms.values()), terms, batch.get("weights"))

    def generate(
        self,
        noise: Tensor,
        z_y: Tensor,
        *,
        sampler: str,
        steps: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Diffusion from ``noise (M, X)`` given ``z_y (M, C)``: targets ``(M, X)``."""
        return self.denoise(noise, z_y, sampler=sampler, steps=steps, generator=generator)
