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

import math
from collections.abc import Callable

import torch
from torch import Tensor

from hepvld.diffusion import SamplerSpec
from hepvld.models.base import Batch, Condition, ConditionalGenerator, ModelIO
from hepvld.models.config import ModelConfig
from hepvld.models.denoising import ConditionalDiffusion, upgrade_diffusion_keys
from hepvld.models.registry import register
from hepvld.targets import model_shape

__all__ = ["VDM"]


class VDM(ConditionalGenerator):
    """Conditional VDM on the targets; parameters as :class:`~hepvld.models.vld.VLD`."""

    name = "vdm"

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        target_dim = math.prod(model_shape(io.target_level))
        super().__init__(config, io, noise_shape=(target_dim,))
        self.diffusion = ConditionalDiffusion(
            target_dim, self.condition_dim, config, self.gated_mlp
        )
        self._register_load_state_dict_pre_hook(
            lambda state, prefix, *_: upgrade_diffusion_keys(state, prefix, "diffusion")
        )

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
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        terms = self.diffusion.terms(self.flat_targets(batch), z_y, generator)
        total = terms["prior"] + terms["reconstruction"] + terms["diffusion"]
        return self.loss_dict(total, terms, batch.get("weights"))

    @torch.no_grad()
    def distillation_data(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """``(z_y (B, C), x (B, X), zeros (B, X))``: the condition and the standardised
        targets the diffusion is trained on (a point mass, std 0), for
        :mod:`hepvld.training.distill`."""
        x = self.flat_targets(batch)
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        return z_y, x, torch.zeros_like(x)

    def generate(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Diffusion from ``noise (M, X)`` given the condition: targets ``(M, X)``."""
        return self.diffusion.denoise(
            noise, condition.event, sampler=sampler, generator=generator, step_noise=step_noise
        )


register("vdm")(VDM)
