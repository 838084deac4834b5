"""Model configuration: one frozen dataclass for every registered model.

Fields shared by all families come first; a few are read by one family only (their help
text names it: ``ldm_*`` by LDM, ``flow_*`` by CINN, ``vlvld_*`` by VL-VLD; ``variant`` by the VLD family).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hepvld.config import Config, from_dict, to_dict

__all__ = ["PRESETS", "VARIANTS", "ModelConfig", "model_config"]

#: The paper's VLD variants, as (conditional VAE encoder, conditional VAE decoder).
VARIANTS: dict[str, tuple[bool, bool]] = {
    "vld": (False, False),
    "uc-vld": (True, False),
    "c-vld": (True, True),
}


@dataclass(frozen=True)
class ModelConfig(Config):
    """Hyper-parameters of a latent variational diffusion model.

    Defaults are the paper's (Shmakov et al. 2023, appendix B); ``PRESETS["small"]``
    fits a CPU demo. On the same :class:`hepvld.config.Config` base as ``TrainConfig``:
    values are coerced and type-checked on construction, then :meth:`validate` checks
    ranges (a :class:`hepvld.config.ConfigError`, a ``ValueError``, naming the field).
    """

    variant: Literal["vld", "uc-vld", "c-vld"] = field(
        default="vld",
        metadata={"help": "VLD: unconditional VAE; UC-VLD: conditional encoder; C-VLD: both"},
    )
    dim: int = field(default=96, metadata={"help": "hidden size of every network"})
    latent_dim: int = field(default=96, metadata={"help": "VAE latent size D (may exceed 55)"})
    heads: int = field(default=4, metadata={"help": "attention heads of the detector encoder"})
    expansion: int = field(default=2, metadata={"help": "feed-forward expansion factor k"})
    encoder_layers: int = field(default=8, metadata={"help": "detector transformer layers"})
    vae_encoder_blocks: int = field(default=6, metadata={"help": "gated blocks of the VAE encoder"})
    vae_decoder_blocks: int = field(default=6, metadata={"help": "gated blocks of the VAE decoder"})
    denoiser_blocks: int = field(default=10, metadata={"help": "gated blocks of the denoiser"})
    time_embedding_dim: int = field(default=32, metadata={"help": "sinusoidal time encoding size"})
    dropout: float = field(default=0.0, metadata={"help": "dropout in every block"})
    consistency_weight: float = field(
        default=0.1, metadata={"help": "lambda_C of the |M^2 - (E^2 - p^2)| loss"}
    )
    consistency_scale: float = field(
        default=100.0,
        metadata={"help": "GeV unit in which the consistency loss is computed (|...|/scale^2)"},
    )
    latent_gradient: float = field(
        default=0.0,
        metadata={
            "help": "scale of the diffusion terms' gradient into the VAE encoder: 0 = stopped "
            "(the latent is shaped by the reconstruction and VAE terms; the default, see "
            "docs/models.md), 1 = fully end to end as in the paper"
        },
    )
    gaussian_eps: bool = field(
        default=True,
        metadata={
            "help": "add sigma_t * z_t to the denoiser's output (the exact epsilon of N(0, I) "
            "data), so the network learns the correction to a Gaussian (LSGM's mixed score)"
        },
    )
    latent_norm: bool = field(
        default=True,
        metadata={
            "help": "diffuse the VAE latent standardised per dimension with batch statistics "
            "(running averages when sampling), so that the diffusion loss cannot shrink "
            "the spread of the latent across events"
        },
    )
    latent_norm_momentum: float = field(
        default=0.01, metadata={"help": "update rate of the running latent statistics"}
    )
    learn_decoder_scale: bool = field(
        default=True,
        metadata={
            "help": "learn the per-component std of the VAE decoder's Gaussian likelihood "
            "(else fixed at 1/sqrt(2): plain squared error)"
        },
    )
    min_decoder_scale: float = field(
        default=0.01,
        metadata={"help": "floor of the learned decoder std (standardised units)"},
    )
    gamma_min: float = field(
        default=-4.0,
        metadata={
            "help": "initial gamma(0) (log SNR = -gamma); sets the posterior noise of the "
            "VAE latent, sigma_0 = sqrt(sigmoid(gamma(0)))"
        },
    )
    gamma_max: float = field(default=5.0, metadata={"help": "initial gamma(1)"})
    ldm_vae_steps: int = field(
        default=10000,
        metadata={
            "help": "LDM: optimiser steps of stage 1 (VAE alone); the diffusion trains after"
        },
    )
    ldm_prior_weight: float = field(
        default=1e-4, metadata={"help": "LDM: weight of KL(q(z|x) || N(0, I)) in stage 1"}
    )
    vlvld_latent_dim: int = field(
        default=16, metadata={"help": "VL-VLD: latent size per slot (event slot and objects)"}
    )
    vlvld_multiplicity: Literal["gamma", "categorical"] = field(
        default="categorical",
        metadata={
            "help": "VL-VLD: multiplicity predictor used to draw N: 'gamma' (N ~ Gamma(k, theta) "
            "rounded, the talk's) or 'categorical' (the default: better held-out likelihood "
            "and multiplicity distribution, benchmarks/README.md)"
        },
    )
    vlvld_multiplicity_weight: float = field(
        default=1.0, metadata={"help": "VL-VLD: weight of the multiplicity NLL in the loss"}
    )
    vlvld_types: Literal["independent", "joint"] = field(
        default="joint",
        metadata={
            "help": "VL-VLD: how a draw's object types are chosen: 'joint' (the default) draws "
            "the composition (n_b, n_e, n_mu | n, y) from a head trained on the detector "
            "condition, inside the level's phase space, then types the slots by a "
            "constrained argmax of their decoded type probabilities; 'independent' (the "
            "behaviour before this option, and of checkpoints without the head) takes each "
            "slot's own argmax (hepvld.models.composition)"
        },
    )
    vlvld_composition_weight: float = field(
        default=1.0,
        metadata={"help": "VL-VLD: weight of the type-composition NLL in the loss"},
    )
    vlvld_candidate_weight: float = field(
        default=0.0,
        metadata={
            "help": "VL-VLD: weight of the pseudo-top candidate term: pseudo-Huber of the "
            "differences of the decoded W_had, W_lep, t_had, t_lep masses built from the slots "
            "of the true particle level's pseudo-top assignment and the true ones, in units "
            "of vlvld_candidate_scale (0: off; hepvld.models.vlvld)"
        },
    )
    vlvld_candidate_scale: float = field(
        default=10.0,
        metadata={"help": "VL-VLD: GeV unit of the candidate term's mass differences"},
    )
    vlvld_schedule_hidden: int = field(
        default=16,
        metadata={"help": "VL-VLD: width of each slot's monotone noise-schedule network"},
    )
    vlvld_learn_gamma_0: bool = field(
        default=False,
        metadata={
            "help": "VL-VLD: learn each slot's gamma(0) (else fixed at gamma_min; learned, it "
            "ran away to pure noise at t = 0 and the reconstruction collapsed, "
            "benchmarks/README.md)"
        },
    )
    flow_blocks: int = field(
        default=12,
        metadata={"help": "CINN: All-In-One blocks (coupling, global affine, permutation)"},
    )
    flow_subnet_blocks: int = field(
        default=2, metadata={"help": "CINN: gated blocks of each coupling sub-network"}
    )
    flow_noise: float = field(
        default=0.01,
        metadata={
            "help": "CINN: std of the Gaussian noise added to the standardised targets in "
            "the likelihood (constant components would make it unbounded)"
        },
    )

    def validate(self) -> None:
        self.check(self.variant in VARIANTS, "variant", f"one of {sorted(VARIANTS)}")
        for name in (
            "dim",
            "latent_dim",
            "heads",
            "expansion",
            "encoder_layers",
            "vae_encoder_blocks",
            "vae_decoder_blocks",
            "denoiser_blocks",
            "time_embedding_dim",
            "flow_blocks",
            "flow_subnet_blocks",
            "vlvld_latent_dim",
        ):
            self.check(getattr(self, name) >= 1, name, "a positive integer")
        self.check(self.dim % self.heads == 0, "dim", f"divisible by heads={self.heads}")
        self.check(self.time_embedding_dim % 2 == 0, "time_embedding_dim", "even")
        self.check(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)")
        self.check(self.consistency_weight >= 0, "consistency_weight", ">= 0")
        self.check(0.0 <= self.latent_gradient <= 1.0, "latent_gradient", "in [0, 1]")
        self.check(0.0 < self.latent_norm_momentum <= 1.0, "latent_norm_momentum", "in (0, 1]")
        self.check(0 < self.min_decoder_scale < 1, "min_decoder_scale", "in (0, 1)")
        self.check(self.consistency_scale > 0, "consistency_scale", "> 0")
        self.check(self.ldm_vae_steps >= 0, "ldm_vae_steps", "a non-negative integer")
        self.check(
            self.vlvld_multiplicity in ("gamma", "categorical"),
            "vlvld_multiplicity",
            "'gamma' or 'categorical'",
        )
        self.check(self.vlvld_schedule_hidden >= 0, "vlvld_schedule_hidden", ">= 0")
        self.check(
            self.vlvld_types in ("independent", "joint"), "vlvld_types", "'independent' or 'joint'"
        )
        self.check(self.vlvld_candidate_scale > 0, "vlvld_candidate_scale", "> 0")
        for name in (
            "ldm_prior_weight",
            "flow_noise",
            "vlvld_multiplicity_weight",
            "vlvld_composition_weight",
            "vlvld_candidate_weight",
        ):
            self.check(getattr(self, name) >= 0, name, ">= 0")
        self.check(self.gamma_min < self.gamma_max, "gamma_min", f"< gamma_max={self.gamma_max}")

    @property
    def conditional_encoder(self) -> bool:
        """Whether the VAE encoder sees the detector condition."""
        return VARIANTS[self.variant][0]

    @property
    def conditional_decoder(self) -> bool:
        """Whether the VAE decoder sees the detector condition."""
        return VARIANTS[self.variant][1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (:func:`hepvld.config.to_dict`)."""
        out: dict[str, Any] = to_dict(self)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict` (:func:`hepvld.config.from_dict`): values validated,
        unknown keys an error naming them."""
        return from_dict(cls, data)


#: Named presets: ``paper`` (the defaults) and ``small`` (CPU demo, seconds per epoch).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {
        "dim": 64,
        "latent_dim": 64,
        "heads": 4,
        "encoder_layers": 3,
        "vae_encoder_blocks": 2,
        "vae_decoder_blocks": 2,
        "denoiser_blocks": 4,
        "ldm_vae_steps": 1000,
        "flow_blocks": 8,
        "flow_subnet_blocks": 1,
    },
    "tiny": {
        "dim": 16,
        "latent_dim": 8,
        "heads": 2,
        "encoder_layers": 1,
        "vae_encoder_blocks": 1,
        "vae_decoder_blocks": 1,
        "denoiser_blocks": 1,
        "time_embedding_dim": 8,
        "ldm_vae_steps": 4,
        "flow_blocks": 2,
        "flow_subnet_blocks": 1,
    },
}


def model_config(preset: str = "paper", **overrides: Any) -> ModelConfig:
    """A :class:`ModelConfig` from a named preset plus keyword overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[preset], **overrides})
