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
      + ||x - dec(z_x)||^2 + lambda_C |M^2 - (E^2 - p^2)|   reconstruction + consistency
      + KL(q(z_x | x, z_y) || p(z_x | z_0))              vae
      + 1/2 E_t[gamma'(t) ||eps - eps_hat||^2]           diffusion

with ``z_0 = alpha_0 z_x + sigma_0 eps_0`` and ``p(z_x | z_0) = N(z_0 / alpha_0, (sigma_0 / alpha_0)^2)``.

Shapes: ``B`` events, ``N`` objects, ``F`` object features, ``G`` global features,
``C`` condition size, ``X`` target size (55), ``D`` latent size, ``S`` draws.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hepvld.diffusion import (
    LearnedSchedule,
    continuous_diffusion_loss,
    diffuse,
    get_sampler,
    latent_kl,
    prior_kl,
    sample_times,
)
from hepvld.models.config import ModelConfig
from hepvld.models.consistency import mass_shell_residual
from hepvld.nn import GatedMLP, SetEncoder, SinusoidalEmbedding
from hepvld.physics.constants import TARGET_DIM

__all__ = ["VLD", "Batch"]

#: A training batch: ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``,
#: ``targets (B, X)`` (preprocessed), ``weights (B,)``.
Batch = dict[str, Tensor]


def _weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of ``values (B,)`` weighted by ``weights (B,)`` (plain mean if None)."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


class VLD(nn.Module):
    """End-to-end latent variational diffusion over a fixed-size target.

    Parameters
    ----------
    config
        Hyper-parameters and variant (see :class:`~hepvld.models.config.ModelConfig`).
    object_features, global_features
        Detector input sizes ``F`` and ``G``.
    target_dim
        Size ``X`` of the (preprocessed) target vector, 55 at parton level.
    target_shift, target_scale
        Affine map from the model's standardised targets back to physical units,
        ``x_phys = x * scale + shift``, shape ``(X,)``; used only by the consistency loss.
        Without them the consistency loss is switched off.
    """

    name = "vld"

    def __init__(
        self,
        config: ModelConfig,
        object_features: int,
        global_features: int,
        target_dim: int = TARGET_DIM,
        target_shift: Tensor | None = None,
        target_scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.target_dim = target_dim
        #: Size of the per-draw initial noise that :meth:`sample` consumes.
        self.noise_dim = config.latent_dim
        c = config
        self.detector_encoder = SetEncoder(
            in_features=object_features,
            global_features=global_features,
            dim=c.dim,
            heads=c.heads,
            layers=c.encoder_layers,
            expansion=c.expansion,
            dropout=c.dropout,
        )
        cond = c.dim
        self.vae_encoder = GatedMLP(
            in_dim=target_dim + (cond if c.conditional_encoder else 0),
            out_dim=2 * c.latent_dim,
            dim=c.dim,
            n_blocks=c.vae_encoder_blocks,
            expansion=c.expansion,
            dropout=c.dropout,
        )
        self.vae_decoder = GatedMLP(
            in_dim=c.latent_dim + (cond if c.conditional_decoder else 0),
            out_dim=target_dim,
            dim=c.dim,
            n_blocks=c.vae_decoder_blocks,
            expansion=c.expansion,
            dropout=c.dropout,
        )
        self.time_embedding = SinusoidalEmbedding(c.time_embedding_dim)
        self.denoiser = GatedMLP(
            in_dim=c.latent_dim + c.time_embedding_dim + cond,
            out_dim=c.latent_dim,
            dim=c.dim,
            n_blocks=c.denoiser_blocks,
            expansion=c.expansion,
            dropout=c.dropout,
        )
        self.schedule = LearnedSchedule(gamma_min=c.gamma_min, gamma_max=c.gamma_max)
        self._log_std_offset = 0.5 * c.gamma_min
        has_affine = target_shift is not None and target_scale is not None
        self.register_buffer(
            "target_shift",
            torch.zeros(target_dim) if target_shift is None else torch.as_tensor(target_shift, dtype=torch.float32),
        )
        self.register_buffer(
            "target_scale",
            torch.ones(target_dim) if target_scale is None else torch.as_tensor(target_scale, dtype=torch.float32),
        )
        self.use_consistency = has_affine and c.consistency_weight > 0 and target_dim == TARGET_DIM

    # ------------------------------------------------------------------ parts
    def condition(self, objects: Tensor, mask: Tensor, globals: Tensor) -> Tensor:
        """Detector condition ``z_y``.

        Parameters
        ----------
        objects : (B, N, F)
        mask : (B, N), True for real objects
        globals : (B, G)

        Returns
        -------
        Tensor (B, C)
        """
        event, _ = self.detector_encoder(objects, mask, globals)
        return event

    def encode(self, x: Tensor, z_y: Tensor) -> tuple[Tensor, Tensor]:
        """VAE posterior ``q(z_x | x (, z_y))``: mean ``(B, D)`` with norm sqrt(D), log std ``(B, D)``."""
        inputs = torch.cat([x, z_y], -1) if self.config.conditional_encoder else x
        mean, log_std = self.vae_encoder(inputs).chunk(2, dim=-1)
        mean = math.sqrt(mean.shape[-1]) * nn.functional.normalize(mean, dim=-1)
        # Offset so that an initial encoder's spread matches p(z_x | z_0), whose log std
        # is gamma(0)/2: otherwise the vae term starts at ~1e7 and swamps the others.
        return mean, (log_std + self._log_std_offset).clamp(-15.0, 5.0)

    def decode(self, z_x: Tensor, z_y: Tensor) -> Tensor:
        """Deterministic VAE decoder: ``z_x (B, D)`` -> preprocessed targets ``(B, X)``."""
        inputs = torch.cat([z_x, z_y], -1) if self.config.conditional_decoder else z_x
        return self.vae_decoder(inputs)

    def eps(self, z_t: Tensor, t: Tensor, z_y: Tensor) -> Tensor:
        """Noise prediction ``eps_hat (B, D)`` from ``z_t (B, D)``, ``t (B,)``, ``z_y (B, C)``."""
        return self.denoiser(torch.cat([z_t, self.time_embedding(t), z_y], -1))

    def to_physical(self, x: Tensor) -> Tensor:
        """Preprocessed targets ``(..., X)`` -> physical units (affine inverse)."""
        return x * self.target_scale + self.target_shift

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
        x = batch["targets"]
        weights = batch.get("weights")
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"])

        def randn(shape: torch.Size) -> Tensor:
            return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)

        mean, log_std = self.encode(x, z_y)
        z_x = mean + log_std.exp() * randn(mean.shape)

        # Diffusion terms on the latent z_x.
        t = sample_times(x.shape[0], generator=generator, device=x.device)
        noise = randn(z_x.shape)
        diffusion = continuous_diffusion_loss(
            lambda z_t, t_: self.eps(z_t, t_, z_y), self.schedule, z_x, t, noise
        )
        prior = prior_kl(z_x, self.schedule)

        # VAE posterior against the diffusion's p(z_x | z_0), z_0 = alpha_0 z_x + sigma_0 eps_0.
        gamma_0 = self.schedule.gamma(torch.zeros((), device=x.device, dtype=x.dtype))
        z_0 = diffuse(z_x, gamma_0, randn(z_x.shape))
        vae = latent_kl(mean, log_std, z_0, self.schedule)

        # Reconstruction (Gaussian likelihood up to a constant) and physics consistency.
        x_hat = self.decode(z_x, z_y)
        reconstruction = (x_hat - x).square().sum(-1)
        if self.use_consistency:
            residual = mass_shell_residual(self.to_physical(x_hat), self.config.consistency_scale)
            consistency = residual.abs().sum(-1)
        else:
            consistency = torch.zeros_like(reconstruction)

        terms = {
            "prior": prior,
            "reconstruction": reconstruction,
            "consistency": consistency,
            "vae": vae,
            "diffusion": diffusion,
        }
        total = prior + reconstruction + self.config.consistency_weight * consistency + vae + diffusion
        out = {"loss": _weighted_mean(total, weights)}
        out.update({k: _weighted_mean(v, weights).detach() for k, v in terms.items()})
        return out

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        objects: Tensor,
        mask: Tensor,
        globals: Tensor,
        *,
        n_samples: int = 1,
        sampler: str = "dpmpp2m",
        steps: int = 50,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Posterior draws of the preprocessed targets.

        Parameters
        ----------
        objects : (B, N, F)
        mask : (B, N)
        globals : (B, G)
        n_samples
            Draws ``S`` per event.
        sampler, steps
            A name in :data:`hepvld.diffusion.SAMPLERS` and its number of steps; every
            sampler runs on this model's learned schedule.
        generator
            Source of all noise not given in ``noise``.
        noise : (B, S, D), optional
            Initial latent noise at t = 1. Deterministic samplers then depend on nothing
            else, which makes draws reproducible per event whatever the batching.

        Returns
        -------
        Tensor (B, S, X)
        """
        batch = objects.shape[0]
        z_y = self.condition(objects, mask, globals).repeat_interleave(n_samples, dim=0)
        if noise is None:
            noise = torch.randn(
                (batch, n_samples, self.noise_dim),
                generator=generator,
                device=objects.device,
                dtype=objects.dtype,
            )
        elif noise.shape != (batch, n_samples, self.noise_dim):
            raise ValueError(
                f"noise has shape {tuple(noise.shape)}, expected "
                f"{(batch, n_samples, self.noise_dim)}"
            )
        z_0 = get_sampler(sampler)(
            lambda z_t, t: self.eps(z_t, t, z_y),
            self.schedule.gamma,
            noise.flatten(0, 1),
            steps=steps,
            generator=generator,
        )
        alpha_0, _ = self.schedule.alpha_sigma(torch.zeros(1, device=z_0.device, dtype=z_0.dtype))
        x = self.decode(z_0 / alpha_0, z_y)
        return x.unflatten(0, (batch, n_samples))
