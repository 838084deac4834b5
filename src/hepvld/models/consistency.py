"""The physics consistency loss of the paper: |M² − (E² − |p|²)| per particle."""

from __future__ import annotations

import torch
from torch import Tensor

from hepvld.physics.constants import COMPONENTS, PARTONS

__all__ = ["mass_shell_residual"]

_N_PARTICLES = len(PARTONS)
_N_COMPONENTS = len(COMPONENTS)
_LOG_E_MAX = 9.47  # log(13000 GeV)


def mass_shell_residual(x: Tensor, scale: float = 1.0) -> Tensor:
    """Off-shellness ``M² − (E² − |p|²)`` of every parton, in units of ``scale²``.

    Parameters
    ----------
    x
        Physical targets, shape ``(..., 55)``: per particle (M, log E, px, py, pz) in GeV.
    scale
        Energy unit in GeV; the residual is divided by ``scale**2`` so that the loss has
        order-one size for ``scale`` ≈ 100 GeV.

    Returns
    -------
    Tensor
        Shape ``(..., 11)``.
    """
    parts = x.unflatten(-1, (_N_PARTICLES, _N_COMPONENTS))
    mass = parts[..., 0] / scale
    # log E is clamped at log(13 TeV) so that a wild early decoder cannot overflow.
    energy = torch.exp(parts[..., 1].clamp(max=_LOG_E_MAX)) / scale
    p2 = (parts[..., 2:] / scale).square().sum(-1)
    return mass.square() - (energy.square() - p2)
