"""What every unfolding model shares: the detector encoder, the target affine map, the
reconstruction + consistency terms and the ``sample`` contract.

A model family subclasses :class:`ConditionalGenerator` and implements ``loss`` and
:meth:`ConditionalGenerator.generate` (noise and condition -> preprocessed targets);
``sample`` (the contract of ``docs/architecture.md``) is inherited.

Shapes: ``B`` events, ``N`` objects, ``F`` object features, ``G`` global features,
``C`` condition size, ``X`` target size (55), ``D`` latent size, ``S`` draws.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from hepvld.models.config import ModelConfig
from hepvld.models.consistency import mass_shell_residual
from hepvld.nn import GatedMLP, SetEncoder
from hepvld.physics.constants import TARGET_DIM

__all__ = ["Batch", "ConditionalGenerator", "randn", "weighted_mean"]

#: A training batch: ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``,
#: ``targets (B, X)`` (preprocessed), ``weights (B,)``.
Batch = dict[str, Tensor]


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of ``values (B,)`` weighted by ``weights (B,)`` (plain mean if None)."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def randn(
    like: Tensor, generator: torch.Generator | None, shape: torch.Size | None = None
) -> Tensor:
    """Standard normal noise of ``shape`` (default ``like.shape``), on ``like``'s device and dtype."""
    return torch.randn(
        like.shape if shape is None else shape,
        generator=generator,
        device=like.device,
        dtype=like.dtype,
    )


class ConditionalGenerator(nn.Module):
    """Base of every model: ``p(x | y)`` with ``y`` a detector event, ``x`` the targets.

    Holds the permutation-invariant detector encoder ``y -> z_y (B, C)`` (``C`` =
    ``config.dim``) and the affine map back to physical units used by the consistency loss.

    Parameters
    ----------
    config
        Hyper-parameters (see :class:`~hepvld.models.config.ModelConfig`).
    object_features, global_features
        Detector input sizes ``F`` and ``G``.
    target_dim
        Size ``X`` of the (preprocessed) target vector, 55 at parton level.
    target_shift, target_scale
        ``x_phys = x * scale + shift``, shape ``(X,)``; without them the consistency loss
        is off.
    noise_dim
        Size of the per-draw initial noise consumed by :meth:`sample`.
    """

    #: Registered name of the family (informative; the registry key is authoritative).
    name: ClassVar[str] = "base"

    target_shift: Tensor
    target_scale: Tensor

    def __init__(
        self,
        config: ModelConfig,
        object_features: int,
        global_features: int,
        target_dim: int = TARGET_DIM,
        target_shift: Tensor | None = None,
        target_scale: Tensor | None = None,
        *,
        noise_dim: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.target_dim = target_dim
        #: Size of the per-draw initial noise that :meth:`sample` consumes.
        self.noise_dim = noise_dim
        self.detector_encoder = SetEncoder(
            in_features=object_features,
            global_features=global_features,
            dim=config.dim,
            heads=config.heads,
            layers=config.encoder_layers,
            expansion=config.expansion,
            dropout=config.dropout,
        )
        has_affine = target_shift is not None and target_scale is not None
        shift = torch.zeros(target_dim) if target_shift is None else torch.as_tensor(target_shift)
        scale = torch.ones(target_dim) if target_scale is None else torch.as_tensor(target_scale)
        self.register_buffer("target_shift", shift.to(torch.float32))
        self.register_buffer("target_scale", scale.to(torch.float32))
        self.use_consistency = (
            has_affine and config.consistency_weight > 0 and target_dim == TARGET_DIM
        )

    # ------------------------------------------------------------------ building blocks
    @property
    def condition_dim(self) -> int:
        """Size ``C`` of the detector condition ``z_y``."""
        return self.config.dim

    def gated_mlp(self, in_dim: int, out_dim: int, n_blocks: int) -> GatedMLP:
        """A :class:`~hepvld.nn.GatedMLP` of this model's width, expansion and dropout."""
        c = self.config
        return GatedMLP(
            in_dim, out_dim, dim=c.dim, n_blocks=n_blocks, expansion=c.expansion, dropout=c.dropout
        )

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

    def to_physical(self, x: Tensor) -> Tensor:
        """Preprocessed targets ``(..., X)`` -> physical units (affine inverse)."""
        return x * self.target_scale + self.target_shift

    def reconstruction_terms(self, x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Squared error and mass-shell consistency of a prediction.

        Parameters
        ----------
        x_hat, x : (B, X)
            Prediction and truth, preprocessed.

        Returns
        -------
        squared_error : (B,)
            ``||x_hat - x||^2`` (Gaussian log-likelihood up to constants).
        consistency : (B,)
            ``sum_particles |M^2 - (E^2 - p^2)|`` of ``x_hat`` in units of
            ``consistency_scale^2``; zeros when the consistency loss is off.
        """
        squared_error = (x_hat - x).square().sum(-1)
        if not self.use_consistency:
            return squared_error, torch.zeros_like(squared_error)
        residual = mass_shell_residual(self.to_physical(x_hat), self.config.consistency_scale)
        return squared_error, residual.abs().sum(-1)

    @staticmethod
    def loss_dict(
        total: Tensor, terms: dict[str, Tensor], weights: Tensor | None
    ) -> dict[str, Tensor]:
        """``{"loss": weighted mean of total (B,), term: detached weighted mean of each (B,)}``."""
        out = {"loss": weighted_mean(total, weights)}
        out.update({k: weighted_mean(v, weights).detach() for k, v in terms.items()})
        return out

    # ------------------------------------------------------------------ contract
    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Training loss: ``loss`` (weighted scalar) plus logged terms. See subclasses."""
        raise NotImplementedError

    def generate(
        self,
        noise: Tensor,
        z_y: Tensor,
        *,
        sampler: str,
        steps: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Map initial noise ``(M, noise_dim)`` and conditions ``z_y (M, C)`` to targets ``(M, X)``.

        ``sampler`` and ``steps`` are ignored by models that are not diffusion models.
        """
        raise NotImplementedError

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
            A name in :data:`hepvld.diffusion.SAMPLERS` and its number of steps (diffusion
            models; ignored by the others).
        generator
            Source of all noise not given in ``noise``.
        noise : (B, S, noise_dim), optional
            Initial noise. Deterministic samplers (and the non-diffusion models) then
            depend on nothing else: draws are reproducible per event whatever the batching.

        Returns
        -------
        Tensor (B, S, X)
        """
        batch = objects.shape[0]
        expected = (batch, n_samples, self.noise_dim)
        if noise is None:
            noise = torch.randn(
                expected, generator=generator, device=objects.device, dtype=objects.dtype
            )
        elif tuple(noise.shape) != expected:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {expected}")
        z_y = self.condition(objects, mask, globals).repeat_interleave(n_samples, dim=0)
        x = self.generate(
            noise.flatten(0, 1), z_y, sampler=sampler, steps=steps, generator=generator
        )
        return x.unflatten(0, (batch, n_samples))
