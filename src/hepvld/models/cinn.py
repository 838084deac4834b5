r"""Conditional invertible neural network (CINN): a conditional normalising flow baseline.

The flow maps the standardised targets :math:`x` to a standard normal :math:`u` through
``config.flow_blocks`` All-In-One blocks (Ardizzone et al., FrEIA's ``AllInOneBlock``):

1. an affine coupling: half of the components (checkered mask, alternating) are scaled
   and shifted by a gated MLP of the other half and the detector condition :math:`z_y`,
   log-scales soft-clamped to :math:`\pm 2`;
2. a global affine map (learned per-component scale and shift, ActNorm-like);
3. a fixed random permutation (stored in the state dict).

Built from zuko's lazy transforms (:class:`zuko.flows.GeneralCouplingTransform`,
:class:`zuko.transforms.MonotonicAffineTransform`,
:class:`zuko.transforms.PermutationTransform`); the coupling sub-networks are our
:class:`~hepvld.nn.GatedMLP`, and :math:`z_y` comes from the shared detector encoder.

Loss per event (the VLD paper's CINN: maximum likelihood plus MSE and consistency of a
draw, instead of the MMD of the original cINN unfolding):

.. math:: -\log p(x + \nu\,|\,z_y) + \|\hat x - x\|^2 + \lambda_C \sum |M^2 - (E^2 - p^2)|(\hat x),
   \qquad \hat x = f^{-1}(u; z_y),\ u \sim N(0, I)

with small Gaussian noise :math:`\nu \sim N(0, \texttt{flow\_noise}^2)` in the likelihood
only: several components are constant or two-valued (tt̄ pT, quark and lepton masses), on
which the likelihood of a flow is unbounded. A draw is one inverse pass
(``sampler``/``steps`` ignored). Terms: ``nll``, ``reconstruction``, ``consistency``.

Shapes: ``B`` events, ``C`` condition size, ``X`` target size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import zuko
from torch import Tensor, nn
from zuko.distributions import DiagNormal
from zuko.flows import (
    Flow,
    GeneralCouplingTransform,
    UnconditionalDistribution,
    UnconditionalTransform,
)
from zuko.lazy import LazyTransform
from zuko.transforms import MonotonicAffineTransform, PermutationTransform

from hepvld.diffusion import SamplerSpec
from hepvld.models.base import Batch, Condition, ConditionalGenerator, ModelIO, randn
from hepvld.models.config import ModelConfig
from hepvld.models.registry import register
from hepvld.targets import model_shape

__all__ = ["CINN", "GatedCoupling", "all_in_one_flow"]

#: Soft clamp of the coupling log-scales (FrEIA's ``affine_clamping`` default).
LOG_SCALE_CLAMP = 2.0


class GatedCoupling(GeneralCouplingTransform):
    """zuko affine coupling whose hyper-network is a given module (e.g. a gated MLP).

    Parameters
    ----------
    features, context
        Sizes of the transformed vector and of the condition.
    mask : (features,) bool
        Components that condition the others (passed through unchanged).
    hyper
        ``(..., mask.sum() + context) -> (..., 2 * (~mask).sum())`` (shift, unconstrained scale).
    """

    def __init__(self, features: int, context: int, mask: Tensor, hyper: nn.Module) -> None:
        affine = partial(MonotonicAffineTransform, slope=math.exp(-LOG_SCALE_CLAMP))
        super().__init__(features, context, mask, univariate=affine, hidden_features=())
        self.hyper = hyper


def all_in_one_flow(
    features: int, context: int, blocks: int, hyper: Callable[[int, int], nn.Module]
) -> Flow:
    """A conditional zuko :class:`~zuko.flows.Flow` of All-In-One blocks.

    Parameters
    ----------
    features, context
        Sizes ``X`` of the variable and ``C`` of the condition.
    blocks
        Number of (coupling, global affine, permutation) blocks.
    hyper
        ``hyper(in_dim, out_dim) -> nn.Module`` for each coupling sub-network.

    Returns
    -------
    Flow
        ``flow(c (B, C))`` is a distribution over ``(B, X)``.
    """
    transforms: list[LazyTransform] = []
    for i in range(blocks):
        mask = torch.arange(features) % 2 == i % 2
        n_in, n_out = int(mask.sum()), features - int(mask.sum())
        transforms.append(GatedCoupling(features, context, mask, hyper(n_in + context, 2 * n_out)))
        transforms.append(
            UnconditionalTransform(
                MonotonicAffineTransform, torch.zeros(features), torch.zeros(features)
            )
        )
        transforms.append(
            UnconditionalTransform(PermutationTransform, torch.randperm(features), buffer=True)
        )
    base = UnconditionalDistribution(
        DiagNormal, torch.zeros(features), torch.ones(features), buffer=True
    )
    return Flow(transforms, base)


class CINN(ConditionalGenerator):
    """Conditional normalising flow; parameters as :class:`~hepvld.models.vld.VLD`."""

    name = "cinn"

    def __init__(self, config: ModelConfig, io: ModelIO) -> None:
        target_dim = math.prod(model_shape(io.target_level))
        super().__init__(config, io, noise_shape=(target_dim,))
        self.flow = all_in_one_flow(
            target_dim,
            self.condition_dim,
            config.flow_blocks,
            lambda n_in, n_out: self.gated_mlp(n_in, n_out, config.flow_subnet_blocks),
        )

    def distribution(self, z_y: Tensor) -> zuko.distributions.NormalizingFlow:
        """``p(x | z_y)`` for ``z_y (B, C)``: ``log_prob (B, X) -> (B,)``; ``.transform`` maps x to u."""
        return self.flow(z_y)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Negative log-likelihood plus MSE and consistency of a draw (module docstring).

        Parameters
        ----------
        batch
            ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``, ``targets (B, X)``,
            optional ``weights (B,)``.
        generator
            Source of the likelihood noise and of the draw.

        Returns
        -------
        dict
            ``loss``, ``nll``, ``reconstruction``, ``consistency``.
        """
        x = self.flat_targets(batch)
        z_y = self.condition(batch["objects"], batch["mask"], batch["globals"]).event
        dist = self.distribution(z_y)
        nll = -dist.log_prob(x + self.config.flow_noise * randn(x, generator))
        x_hat = dist.transform.inv(randn(x, generator))
        reconstruction, consistency = self.reconstruction_terms(x_hat, x)
        total = nll + reconstruction + self.config.consistency_weight * consistency
        terms = {"nll": nll, "reconstruction": reconstruction, "consistency": consistency}
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
        """One inverse pass of ``noise (M, X)`` given the condition: targets ``(M, X)``."""
        return self.distribution(condition.event).transform.inv(noise)


register("cinn")(CINN)
