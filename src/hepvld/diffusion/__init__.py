"""Variational diffusion: noise schedules, continuous-time losses, samplers.

Split as in k-diffusion / EDM: :mod:`~hepvld.diffusion.schedules` (γ(t) = −log SNR,
variance preserving), :mod:`~hepvld.diffusion.losses` (VDM loss terms, pure functions)
and :mod:`~hepvld.diffusion.samplers` (one shared signature, registry
:data:`~hepvld.diffusion.samplers.SAMPLERS`); :mod:`~hepvld.diffusion.distillation` holds
the maths of progressive distillation (the ``distilled`` sampler's students).
"""

from __future__ import annotations

from hepvld.diffusion.losses import (
    EpsFn,
    continuous_diffusion_loss,
    diffuse,
    gaussian_kl,
    latent_kl,
    latent_reconstruction,
    prior_kl,
    sample_times,
)
from hepvld.diffusion.samplers import (
    DISTILLED,
    SAMPLER_NAMES,
    SAMPLERS,
    STOCHASTIC,
    GammaFn,
    NoiseFn,
    Sampler,
    SamplerSpec,
    ddim,
    ddpm,
    distilled,
    dpmpp2m,
    get_sampler,
    pndm,
    timesteps,
)
from hepvld.diffusion.schedules import (
    CosineSchedule,
    FixedLinearSchedule,
    LearnedSchedule,
    NoiseSchedule,
    SlotSchedule,
    alpha_sigma_from_gamma,
)

__all__ = [
    "DISTILLED",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "STOCHASTIC",
    "CosineSchedule",
    "EpsFn",
    "FixedLinearSchedule",
    "GammaFn",
    "LearnedSchedule",
    "NoiseFn",
    "NoiseSchedule",
    "Sampler",
    "SamplerSpec",
    "SlotSchedule",
    "alpha_sigma_from_gamma",
    "continuous_diffusion_loss",
    "ddim",
    "ddpm",
    "diffuse",
    "distilled",
    "dpmpp2m",
    "gaussian_kl",
    "get_sampler",
    "latent_kl",
    "latent_reconstruction",
    "pndm",
    "prior_kl",
    "sample_times",
    "timesteps",
]
