import math

import torch

from hepvld.models.consistency import mass_shell_residual
from hepvld.physics import PARTONS


def test_on_shell_particles_have_zero_residual() -> None:
    gen = torch.Generator().manual_seed(0)
    mass = torch.rand(4, len(PARTONS), generator=gen, dtype=torch.float64) * 200
    p = torch.randn(4, len(PARTONS), 3, generator=gen, dtype=torch.float64) * 100
    energy = torch.sqrt(mass**2 + p.square().sum(-1))
    x = torch.cat([mass[..., None], energy.log()[..., None], p], -1).flatten(-2)
    residual = mass_shell_residual(x, scale=100.0)
    assert residual.shape == (4, len(PARTONS))
    torch.testing.assert_close(residual, torch.zeros_like(residual), atol=1e-9, rtol=0)


def test_residual_units() -> None:
    # M = 0, E = 100 GeV, p = 0: residual = -(E/scale)^2 = -1 for scale 100.
    x = torch.zeros(1, 55, dtype=torch.float64)
    x[0, 1::5] = math.log(100.0)
    residual = mass_shell_residual(x, scale=100.0)
    torch.testing.assert_close(residual, -torch.ones(1, 11, dtype=torch.float64))
