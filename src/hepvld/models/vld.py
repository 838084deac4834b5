"""Latent Variational Diffusion (VLD) and its conditional variants UC-VLD and C-VLD.

Shmakov et al., "End-To-End Latent Variational Diffusion Models for Inverse Problems in
High Energy Physics", NeurIPS 2023. One module holds the four parts that train together
on one variational bound:

* a permutation-invariant detector encoder ``y -> z_y`` (condition),
* a VAE encoder ``x (, z_y) -> q(z_x | x) = N(mu, sigma^2)`` with ``|mu| = sqrt(D)``,
* a learned variance-preserving noise schedule ``gamma(t)``,
* an epsilon-predicting denoiser ``(z_t, t, z_y) -> eps``,
* a deterministic VAE decoder ``z_x (, z_y) -> x``.

Loss (the paper's eq. 8, per event, weighted by the MC weight)::

    L = KL(q(z_1 | z_x) || N(0, I))                      prior
      - log N(x; dec(z_x), sigma_x^2) + lambda_C |M^2 - (E^2 - p^2)|   reconstruction + consistency
      + KL(q(z_x | x, z_y) || p(z_x | z_0))              vae
      + 1/2 E_t[gamma'(t) ||eps - eps_hat||^2]           diffusion

with ``z_0 = alpha_0 z_x + sigma_0 eps_0`` and ``p(z_x | z_0) = N(z_0 / alpha_0, (sigma_0 / alpha_0)^2)``.

Four defaults depart from a literal reading of the paper; each is a ``ModelConfig`` option
with the paper's setting one flag away, and docs/models.md gives the measurements behind
them:

* ``latent_norm``: the prior, vae and diffusion terms see the latent standardised per
  dimension across events (an affine map, under which the KL terms are invariant);
* ``latent_gradient = 0``: the latent terms do not backpropagate into the VAE encoder
  through the posterior draw and mean (the whole bound is still minimised, jointly; only
  that gradient path is cut). The posterior log std keeps the vae term's gradient, and
  with ``latent_norm`` so does the batch std inside the standardised log std;
* ``gaussian_eps`` (in the denoiser) and ``gamma_min = -4`` (initial ``gamma(0)``).

The detector encoder, consistency loss and ``sample`` come from
:class:`~hepvld.models.base.ConditionalGenerator`; the schedule, denoiser, VDM terms and
sampling path are the composed component ``self.diffusion``
(:class:`~hepvld.models.denoising.ConditionalDiffusion`, shared with LDM and VDM).

Shapes: ``B`` events, ``N`` objects, ``F`` object features, ``G`` global features,
``C`` condition size, ``X`` flat target size (55), ``D`` latent size, ``S`` draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from hepvld.diffusion import SamplerSpec
from hepvld.models.base import Batch, Condition, ConditionalGenerator, ModelIO, randn
from hepvld.models.config import VARIANTS, ModelConfig
from hepvld.models.denoising import ConditionalDiffusion, upgrade_diffusion_keys
from hepvld.models.registry import register

__all__ = ["VLD", "Batch"]


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``scale`` in the backward pass."""
    if scale == 1.0:
        return x
    return x.detach() + scale * (x - x.detach())


def _given(z_y: Tensor | None) -> Tensor:
    if z_y is None:
        raise ValueError("a conditional VAE encoder/decoder needs the condition z_y")
    return z_y


class VLD(ConditionalGenerator):
    """End-to-end latent variational diffusion over a fixed-size target.

    Parameters
    ----------
    config
        Hyper-parameters and variant (see :class:`~hepvld.models.config.ModelConfig`).
    io
        Detector sizes, target level and normalisations (:class:`~hepvld.models.base.ModelIO`);
        without a target affine map the consistency loss is off.
    """

    name = "vld"
    latent_shift: Tensor
    latent_scale: Tensor
    latent_updates: Tensor

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        super().__init__(config, io, noise_shape=(config.latent_dim,))
        target_dim = self.target_dim
        c, cond = config, self.condition_dim
        self.vae_encoder = self.gated_mlp(
            target_dim + (cond if c.conditional_encoder else 0),
            2 * c.latent_dim,
            c.vae_encoder_blocks,
        )
        self.vae_decoder = self.gated_mlp(
            c.latent_dim + (cond if c.conditional_decoder else 0), target_dim, c.vae_decoder_blocks
        )
        self.diffusion = ConditionalDiffusion(c.latent_dim, cond, c, self.gated_mlp)
        self._log_std_offset = 0.5 * c.gamma_min
        # Log std of the decoder likelihood p(x | z_x) = N(dec(z_x), sigma_x^2), per
        # component, learned: the reconstruction weight then follows the achieved
        # precision (measured: per-component MSE 0.10 vs 0.17 with a fixed unit weight after
        # 1500 steps). Starts at 1/sqrt(2), where the term equals the plain squared error.
        self.decoder_log_scale = nn.Parameter(
            torch.full((target_dim,), -0.5 * math.log(2.0)), requires_grad=c.learn_decoder_scale
        )
        # Per-dimension statistics of the latent across events (``latent_norm``): the
        # diffusion runs on w = (z_x - shift) / scale. Training uses the batch's own
        # statistics (gradients flow through them, so shrinking the latent changes nothing
        # the diffusion sees); sampling uses their running averages.
        self.register_buffer("latent_shift", torch.zeros(c.latent_dim))
        self.register_buffer("latent_scale", torch.ones(c.latent_dim))
        self.register_buffer("latent_updates", torch.zeros((), dtype=torch.long))
        self._register_load_state_dict_pre_hook(
            lambda state, prefix, *_: upgrade_diffusion_keys(state, prefix, "diffusion")
        )

    # ------------------------------------------------------------------ parts
    def encode(self, x: Tensor, z_y: Tensor | None) -> tuple[Tensor, Tensor]:
        """VAE posterior ``q(z_x | x (, z_y))``: mean ``(B, D)`` with norm sqrt(D), log std ``(B, D)``.

        ``z_y (B, C)`` is only read by a conditional encoder (may be None otherwise).
        """
        inputs = torch.cat([x, _given(z_y)], -1) if self.config.conditional_encoder else x
        mean, log_std = self.vae_encoder(inputs).chunk(2, dim=-1)
        mean = math.sqrt(mean.shape[-1]) * nn.functional.normalize(mean, dim=-1)
        # Offset so that an initial encoder's spread matches p(z_x | z_0), whose log std
        # is gamma(0)/2: otherwise the vae term starts at ~1e7 and swamps the others.
        return mean, (log_std + self._log_std_offset).clamp(-15.0, 5.0)

    def decode(self, z_x: Tensor, z_y: Tensor | None) -> Tensor:
        """Deterministic VAE decoder: ``z_x (B, D)`` (, ``z_y (B, C)``) -> preprocessed targets ``(B, X)``."""
        inputs = torch.cat([z_x, _given(z_y)], -1) if self.config.conditional_decoder else z_x
        return self.vae_decoder(inputs)

    def latent_statistics(self, mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(shift, scale)``, each ``(D,)``, of the map ``w = (z_x - shift) / scale``.

        Identity unless ``config.latent_norm``. In training mode with posterior means
        ``mean (B, D)`` given: the batch mean and standard deviation (differentiable), which
        also update the running averages; otherwise the running averages.
        """
        if not self.config.latent_norm:
            return torch.zeros_like(self.latent_shift), torch.ones_like(self.latent_scale)
        if not (self.training and mean is not None and mean.shape[0] > 1):
            return self.latent_shift, self.latent_scale
        shift = mean.mean(0)
        scale = (mean.var(0, unbiased=False) + 1e-8).sqrt()
        with torch.no_grad():
            m = 1.0 if int(self.latent_updates) == 0 else self.config.latent_norm_momentum
            # (under autocast the batch statistics may be bf16; the buffers stay fp32)
            self.latent_shift.lerp_(shift.detach().to(self.latent_shift.dtype), m)
            self.latent_scale.lerp_(scale.detach().to(self.latent_scale.dtype), m)
            self.latent_updates += 1
        return shift, scale

    def standardise(self, z_x: Tensor) -> Tensor:
        """The diffused variable ``w (B, D)`` of latents ``z_x (B, D)`` (running statistics)."""
        shift, scale = self.latent_statistics()
        return (z_x - shift) / scale

    # ------------------------------------------------------------------ loss
    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Variational bound of eq. 8 plus the consistency loss.

        Parameters
        ----------
        batch
            ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, X)``
            (preprocessed), optional ``weights (B,)`` (per-event MC weights).
        generator
            Source of every random number drawn here (latent, time, noise).

        Returns
        -------
        dict
            ``loss`` (weighted total, scalar) and each term, weighted means: ``prior``,
            ``reconstruction``, ``consistency``, ``vae``, ``diffusion``.
        """
        x = self.flat_targets(batch)
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        mean, log_std = self.encode(x, z_y)
        z_x = mean + log_std.exp() * randn(mean, generator)
        latent = self.latent_terms(z_x, mean, log_std, z_y, generator)
        x_hat = self.decode(z_x, z_y)
        squared_error, consistency = self.reconstruction_terms(x_hat, x)
        reconstruction = self.reconstruction_nll(x_hat, x)
        terms = {
            "prior": latent["prior"],
            "reconstruction": reconstruction,
            "mse": squared_error / x.shape[-1],
            "consistency": consistency,
            "vae": latent["vae"],
            "diffusion": latent["diffusion"],
        }
        total = (
            latent["prior"]
            + reconstruction
            + self.config.consistency_weight * consistency
            + latent["vae"]
            + latent["diffusion"]
        )
        return self.loss_dict(total, terms, batch.get("weights"))

    def latent_terms(
        self,
        z_x: Tensor,
        mean: Tensor,
        log_std: Tensor,
        z_y: Tensor,
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]:
        """``prior``, ``vae`` and ``diffusion`` terms ``(B,)`` of a posterior draw ``z_x (B, D)``.

        They are computed on the standardised latent ``w = (z_x - shift) / scale`` (see
        :meth:`latent_statistics`; KL terms are invariant under this map, so the bound is
        that of the model ``z_x = shift + scale * w``). The gradient through ``w`` and the
        standardised mean is scaled by ``config.latent_gradient``; the standardised log std
        ``log_std - log(scale)`` is not scaled, so with batch statistics the vae term still
        reaches the encoder's means through ``scale``. ``mean, log_std (B, D)``: the VAE posterior.
        """
        shift, scale = self.latent_statistics(mean)
        w, w_mean, w_log_std = (z_x - shift) / scale, (mean - shift) / scale, log_std - scale.log()
        g = self.config.latent_gradient
        return self.diffusion.terms(
            _scale_gradient(w, g), z_y, generator, posterior=(_scale_gradient(w_mean, g), w_log_std)
        )

    def reconstruction_nll(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """``-log p(x | z_x)`` up to a constant: ``sum (x_hat - x)^2 / (2 sigma_x^2) + log sigma_x``.

        ``x_hat, x (B, X)``; returns ``(B,)``. With the initial ``sigma_x = 1/sqrt(2)`` this
        is the plain squared error (plus a constant).
        """
        log_scale = self.decoder_log_scale.clamp_min(math.log(self.config.min_decoder_scale))
        return (0.5 * (x_hat - x).square() * torch.exp(-2.0 * log_scale) + log_scale).sum(-1)

    @torch.no_grad()
    def distillation_data(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """What the latent diffusion is trained on, for distilling it
        (:mod:`hepvld.training.distill`): ``(z_y (B, C), mean (B, D), std (B, D))``.

        ``z_y`` is the detector condition; ``N(mean, std^2)`` is the VAE posterior
        ``q(z_x | x (, z_y))`` of the truth mapped to the diffused variable
        ``w = (z_x - shift) / scale`` (running statistics). The diffusion terms of the
        bound (and LDM's stage 2) are trained on draws of exactly this posterior, so the
        model's latent prior ``p(z_0 | z_y)`` is fitted to them: distilling on them puts
        the student's inputs ``z_t`` where the teacher was trained, and costs no teacher
        sampling (the teacher's own draws would cost ``N`` ε-calls each and carry its
        sampling error into the targets). Call in eval mode (running statistics, no dropout).
        """
        x = self.flat_targets(batch)
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        mean, log_std = self.encode(x, z_y)
        shift, scale = self.latent_statistics()
        return z_y, (mean - shift) / scale, log_std.exp() / scale

    # ------------------------------------------------------------------ sampling
    def generate(
        self,
        noise: Tensor,
        condition: Condition,
        *,
        sampler: SamplerSpec,
        generator: torch.Generator | None,
        step_noise: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Latent diffusion from ``noise (M, D)`` given the condition, then decode: ``(M, X)``."""
        z_y = condition.event
        w = self.diffusion.denoise(
            noise, z_y, sampler=sampler, generator=generator, step_noise=step_noise
        )
        shift, scale = self.latent_statistics()
        return self.decode(shift + scale * w, z_y)


def _variant(name: str) -> None:
    @register(name)
    def build(config: ModelConfig, io: ModelIO) -> VLD:
        if config.variant != name:
            config = ModelConfig.from_dict({**config.to_dict(), "variant": name})
        return VLD(config, io)


for _name in VARIANTS:
    _variant(_name)
