"""The one backend-generic (M, log E, p) kinematics of hepvld.physics.kinematics."""

import math

import awkward as ak
import numpy as np
import torch

from hepvld.physics import PARTONS
from hepvld.physics.kinematics import components_to_p4, mass_shell_residual, p4_components
from hepvld.targets import PARTON


def _on_shell(gen: torch.Generator) -> torch.Tensor:
    mass = torch.rand(4, len(PARTONS), generator=gen, dtype=torch.float64) * 200
    p = torch.randn(4, len(PARTONS), 3, generator=gen, dtype=torch.float64) * 100
    energy = torch.sqrt(mass**2 + p.square().sum(-1))
    return torch.cat([mass[..., None], energy.log()[..., None], p], -1)


def test_on_shell_particles_have_zero_residual() -> None:
    x = _on_shell(torch.Generator().manual_seed(0))
    residual = mass_shell_residual(x, scale=100.0)
    assert residual.shape == (4, len(PARTONS))
    torch.testing.assert_close(residual, torch.zeros_like(residual), atol=1e-9, rtol=0)
    # the same function on numpy, and the parton level's consistency term built on it
    np.testing.assert_allclose(mass_shell_residual(x.numpy(), scale=100.0), 0.0, atol=1e-9)
    torch.testing.assert_close(
        PARTON.consistency(x, None, scale=100.0),
        torch.zeros(4, dtype=torch.float64),
        atol=1e-8,
        rtol=0,
    )


def test_residual_units() -> None:
    # M = 0, E = 100 GeV, p = 0: residual = -(E/scale)^2 = -1 for scale 100.
    x = torch.zeros(1, 55, dtype=torch.float64)
    x[0, 1::5] = math.log(100.0)
    residual = mass_shell_residual(x.unflatten(-1, (11, 5)), scale=100.0)
    torch.testing.assert_close(residual, -torch.ones(1, 11, dtype=torch.float64))
    # GeV² without a scale; the level sums |residual| over the partons
    np.testing.assert_allclose(mass_shell_residual(x.unflatten(-1, (11, 5)).numpy()), -1e4)
    torch.testing.assert_close(
        PARTON.consistency(x.unflatten(-1, (11, 5)), None, scale=100.0),
        torch.full((1,), 11.0, dtype=torch.float64),
    )


def test_four_vector_round_trip_numpy_and_awkward() -> None:
    x = _on_shell(torch.Generator().manual_seed(1)).numpy()
    for on_shell in (True, False):
        p4 = components_to_p4(x, on_shell=on_shell)
        np.testing.assert_allclose(p4_components(p4), x, rtol=1e-6, atol=1e-6)
        records = components_to_p4(ak.from_numpy(x), on_shell=on_shell)
        assert (
            str(records.type)
            == f"4 * 11 * Momentum4D[px: float64, py: float64, pz: float64, {'mass' if on_shell else 'E'}: float64]"
        )
        np.testing.assert_allclose(p4_components(records), x, rtol=1e-6, atol=1e-6)
