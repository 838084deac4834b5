"""The particle level's ``lepton_mass="dressing"`` parameterisation (hepvld.targets.objects)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hepvld.targets import get_level, level_from_meta
from hepvld.targets.objects import (
    LEPTON_MASS_SCALE,
    LEPTON_MASSES,
    from_dressing_mass,
    to_dressing_mass,
)
from hepvld.targets.particle import ParticleLevel
from hepvld.testing.synthetic import toy_events

M_E, M_MU = LEPTON_MASSES


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    """Toy particle level with the leptons dressed: a third of them get 0.05–2 GeV more."""
    t = get_level("particle").build(toy_events(400, seed=7))
    values, mask = t.values.astype(np.float64), t.mask
    obj = values[:, 1:]
    lepton = (obj[..., 5:9].argmax(-1) >= 2) & mask[:, 1:]
    rng = np.random.default_rng(1)
    dressed = lepton & (rng.random(lepton.shape) < 0.33)
    extra = rng.uniform(0.05, 2.0, lepton.shape)
    mass = np.expm1(obj[..., 4]) + np.where(dressed, extra, 0.0)
    obj[..., 4] = np.log1p(mass)
    return values, mask


def _leptons(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kind = values[:, 1:, 5:9].argmax(-1)
    return (kind >= 2) & mask[:, 1:], np.where(kind == 2, M_E, M_MU)


def test_column_is_the_dressing_excess_in_10_mev(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    lepton, rest = _leptons(values, mask)
    assert lepton.sum() > 100 and (values[:, 1:, 7][lepton] == 1).any()  # e and μ present
    assert (values[:, 1:, 8][lepton] == 1).any()
    params = to_dressing_mass(values)
    mass = np.expm1(values[:, 1:, 4])
    expected = np.log1p(np.maximum(mass - rest, 0) / LEPTON_MASS_SCALE)
    np.testing.assert_allclose(params[:, 1:, 4][lepton], expected[lepton], atol=1e-6)
    # an undressed lepton (rest mass) is the column's 0; jets and the event slot untouched
    undressed = lepton & np.isclose(mass, rest, rtol=1e-5)
    assert undressed.sum() > 50
    assert np.abs(params[:, 1:, 4][undressed]).max() < 0.05
    keep = np.ones(values.shape, bool)
    keep[:, 1:, 4] = ~lepton
    np.testing.assert_array_equal(params[keep], values[keep])


def test_round_trip_numpy_and_torch(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    lepton, _ = _leptons(values, mask)
    params = to_dressing_mass(values)
    back = from_dressing_mass(params)
    np.testing.assert_allclose(
        np.expm1(back[:, 1:, 4][lepton]), np.expm1(values[:, 1:, 4][lepton]), atol=1e-5
    )
    t = from_dressing_mass(torch.tensor(params, requires_grad=True))
    np.testing.assert_allclose(t.detach().numpy(), back, atol=1e-9)
    t[:, 1:, 4].sum().backward()  # differentiable (the training's consistency terms)


def test_a_draw_below_the_rest_mass_is_the_rest_mass() -> None:
    """The network draws a lepton column < 0 (below the rest mass): it decodes to m_e or m_μ
    exactly by the slot's type, never to a mass below it; a jet's column is untouched."""
    values = np.zeros((3, 9))
    values[1, 4], values[1, 7] = -0.4, 1.0  # electron slot
    values[2, 4], values[2, 6] = -0.4, 1.0  # light-jet slot (slot 0 is the event slot)
    values = np.stack([values, values])
    values[1, 1, 7:9] = (0.0, 1.0)  # event 1: the lepton is a muon
    out = from_dressing_mass(values)
    np.testing.assert_allclose(np.expm1(out[:, 1, 4]), [M_E, M_MU], rtol=1e-6)
    assert (out[:, 2, 4] == -0.4).all()
    up = values.copy()
    up[:, 1, 4] = np.log1p(30.0)  # 30 units of 10 MeV above the rest mass
    np.testing.assert_allclose(
        np.expm1(from_dressing_mass(up)[:, 1, 4]), np.array([M_E, M_MU]) + 0.3, rtol=1e-6
    )


def test_level_option_round_trip_and_old_checkpoints(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    level = get_level("particle", {"objects": "phase_space", "lepton_mass": "dressing"})
    assert level.options()["lepton_mass"] == "dressing"
    again = level_from_meta({"target_level": "particle", "target_options": level.options()})
    assert again == level
    # a checkpoint without the option (every run before it) reads as log(M+1)
    old = level_from_meta({"target_level": "particle", "target_options": {"max_objects": 16}})
    assert old.lepton_mass == "log" and "lepton_mass" not in old.options()
    back = level.from_parameters(level.to_parameters(values, mask))
    real = mask.astype(bool)
    np.testing.assert_allclose(back[real][:, :5], values[real][:, :5], rtol=1e-5, atol=2e-3)
    with pytest.raises(ValueError, match="lepton_mass"):
        ParticleLevel(lepton_mass="pdg")
