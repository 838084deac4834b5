"""A stand-in for the ``particle`` target level in model tests: the contract's layout
(COMMON contract: slot 0 the event vector, objects ``(px, py, pz, log(E+1), log(M+1))`` +
one-hot type, padded slots 0 and masked) with random physical values, and just the level
members a model reads (``name``, ``shape``, ``fixed_multiplicity``, sizes, ``consistency``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

K_OBJECTS = 8
SLOTS, FEATURES = 1 + K_OBJECTS, 9


class FakeParticleLevel:
    """The layout of the particle level with ``max_objects = 8``."""

    name = "fake-particle"
    max_objects = K_OBJECTS
    n_types = 4
    n_continuous = 5
    n_event_features = 7

    @property
    def shape(self) -> tuple[int, int]:
        return (SLOTS, FEATURES)

    @property
    def fixed_multiplicity(self) -> bool:
        return False

    def options(self) -> dict[str, Any]:
        return {}

    def consistency(self, values: Tensor, mask: Tensor, *, scale: float) -> Tensor:
        """``sum_objects |M^2 - (E^2 - p^2)| / scale^2`` from the object columns."""
        p2 = values[..., 1:, :3].square().sum(-1)
        e = torch.expm1(values[..., 1:, 3])
        m = torch.expm1(values[..., 1:, 4])
        residual = (m.square() - (e.square() - p2)).abs() / scale**2
        return (residual * mask[..., 1:].to(values.dtype)).sum(-1)


def fake_targets(batch: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Physical ``values (B, K, H)`` and ``mask (B, K)`` in the contract's layout."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.randint(3, K_OBJECTS + 1, (batch,), generator=gen)
    mask = torch.arange(SLOTS)[None, :] <= n[:, None]
    values = torch.zeros(batch, SLOTS, FEATURES)
    pt = 30.0 + 60.0 * torch.rand(batch, K_OBJECTS, generator=gen)
    pt = pt.sort(-1, descending=True).values
    phi = 6.28 * torch.rand(batch, K_OBJECTS, generator=gen)
    pz = 80.0 * torch.randn(batch, K_OBJECTS, generator=gen)
    mass = 5.0 * torch.rand(batch, K_OBJECTS, generator=gen)
    px, py = pt * phi.cos(), pt * phi.sin()
    energy = (px.square() + py.square() + pz.square() + mass.square()).sqrt()
    types = torch.randint(0, 4, (batch, K_OBJECTS), generator=gen)
    values[:, 1:, 0], values[:, 1:, 1], values[:, 1:, 2] = px, py, pz
    values[:, 1:, 3], values[:, 1:, 4] = energy.log1p(), mass.log1p()
    values[:, 1:, 5:] = torch.nn.functional.one_hot(types, 4).float()
    met = 20.0 + 50.0 * torch.rand(batch, generator=gen)
    met_phi = 6.28 * torch.rand(batch, generator=gen)
    nu_pz = 60.0 * torch.randn(batch, generator=gen)
    values[:, 0, 0] = met
    values[:, 0, 1], values[:, 0, 2] = met_phi.sin(), met_phi.cos()
    values[:, 0, 3], values[:, 0, 4] = met * met_phi.cos(), met * met_phi.sin()
    values[:, 0, 5] = nu_pz
    values[:, 0, 6] = (met.square() + nu_pz.square()).sqrt()
    values = values.masked_fill(~mask.unsqueeze(-1), 0.0)
    return values, mask


def fake_affine() -> tuple[Tensor, Tensor]:
    """A ``(shift, scale)`` of the contract's kind: continuous columns standardised, type and
    unused columns shift 0 scale 1."""
    shift = torch.zeros(SLOTS, FEATURES)
    scale = torch.ones(SLOTS, FEATURES)
    scale[0, :7] = torch.tensor([30.0, 0.7, 0.7, 40.0, 40.0, 60.0, 60.0])
    shift[0, 0], shift[0, 6] = 45.0, 80.0
    scale[1:, :5] = torch.tensor([50.0, 50.0, 80.0, 0.6, 0.5])
    shift[1:, 3], shift[1:, 4] = 4.5, 1.2
    return shift, scale
