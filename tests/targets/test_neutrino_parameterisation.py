"""The particle level's ``neutrino="w_mass"`` parameterisation (hepvld.targets.neutrino)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import vector

from hepvld.targets import get_level, level_from_meta
from hepvld.targets.neutrino import from_rapidity, from_w_mass, to_rapidity, to_w_mass
from hepvld.targets.particle import ParticleLevel
from hepvld.testing.synthetic import toy_events


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    t = get_level("particle").build(toy_events(400, seed=5))
    return t.values.astype(np.float64), t.mask


def _lepton(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading real e/μ slot of each event (independently of the module) and whether any."""
    obj = values[:, 1:]
    lep = (obj[..., 5:9].argmax(-1) >= 2) & mask[:, 1:]
    return obj[np.arange(len(values)), lep.argmax(-1)], lep.any(-1)


def test_mass_column_is_the_lepton_neutrino_mass(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    params = to_w_mass(values, mask)
    lep, has = _lepton(values, mask)
    assert has.mean() > 0.5  # the toy sample has leptonic events to test on
    ell = vector.array(
        {"px": lep[:, 0], "py": lep[:, 1], "pz": lep[:, 2], "mass": np.expm1(lep[:, 4])}
    )
    nu = vector.array(
        {"px": values[:, 0, 3], "py": values[:, 0, 4], "pz": values[:, 0, 5], "E": values[:, 0, 6]}
    )
    np.testing.assert_allclose(params[has, 0, 5], (ell + nu).mass[has], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(params[has, 0, 6], (nu.rapidity - ell.rapidity)[has], atol=1e-4)
    # everything but the two neutrino columns is untouched
    keep = np.ones(values.shape, bool)
    keep[:, 0, 5:7] = False
    np.testing.assert_array_equal(params[keep], values[keep])


def test_round_trip_numpy_and_torch(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    params = to_w_mass(values, mask)
    back = from_w_mass(params)
    # float32 truth: E = |p| to ~1e-5 relative
    np.testing.assert_allclose(back[:, 0, 5:7], values[:, 0, 5:7], rtol=1e-4, atol=1e-3)
    t = from_w_mass(torch.tensor(params))
    np.testing.assert_allclose(t.numpy(), back, rtol=1e-9, atol=1e-6)
    t32 = from_w_mass(torch.tensor(params, dtype=torch.float32))
    np.testing.assert_allclose(t32.numpy()[:, 0, 5:7], values[:, 0, 5:7], rtol=1e-3, atol=0.05)


def test_decoded_neutrino_is_massless_and_gradients_finite() -> None:
    g = np.random.default_rng(0)
    values = np.zeros((64, 5, 9))
    values[:, 0, 3:5] = g.normal(0, 40, (64, 2))
    values[:, 0, 5] = g.uniform(-10, 150, 64)  # masses below the kinematic minimum too
    values[:, 0, 6] = g.normal(0, 1, 64)
    values[:, 1, :3] = g.normal(0, 50, (64, 3))
    values[:, 1, 7] = 1.0  # an electron in slot 1
    values[:32, 1, 7], values[:32, 1, 5] = 0.0, 1.0  # no lepton: the fallback reference
    x = torch.tensor(values, requires_grad=True)
    out = from_w_mass(x)
    nu = out[:, 0, 3:7]
    m2 = nu[:, 3] ** 2 - (nu[:, :3] ** 2).sum(-1)
    assert torch.isfinite(out).all()
    assert (m2.abs() / nu[:, 3] ** 2).max() < 1e-9
    out[:, 0, 5:7].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the sign of column 6 picks the root: the neutrino lies on that side of the lepton
    ell = vector.array(
        {
            "px": values[32:, 1, 0],
            "py": values[32:, 1, 1],
            "pz": values[32:, 1, 2],
            "M": 0.0 * values[32:, 1, 0],
        }
    )
    y_nu = np.arcsinh(
        out[32:, 0, 5].detach().numpy() / np.hypot(values[32:, 0, 3], values[32:, 0, 4])
    )
    dy = y_nu - ell.rapidity
    moved = np.abs(dy) > 1e-6
    assert np.all(np.sign(dy[moved]) == np.sign(values[32:, 0, 6][moved]))


def test_level_options_preprocessing_and_state(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    level = get_level("particle", {"neutrino": "w_mass"})
    assert isinstance(level, ParticleLevel) and level.neutrino == "w_mass"
    assert level.options()["neutrino"] == "w_mass"
    assert "neutrino" not in get_level("particle").options()  # old checkpoints compare equal
    meta = {"target_level": "particle", "target_options": level.options()}
    assert level_from_meta(meta) == level
    with pytest.raises(ValueError, match="neutrino parameterisation"):
        get_level("particle", {"neutrino": "polar"})
    pre = level.preprocessing().fit(values, mask)
    z = pre.transform(values, mask)
    # the network's event columns 5, 6 are the standardised mass and rapidity difference
    params = to_w_mass(values, mask)
    np.testing.assert_allclose(
        z[:, 0, 5] * pre.event_scale[5] + pre.event_shift[5], params[:, 0, 5], rtol=1e-5, atol=1e-3
    )
    np.testing.assert_allclose(
        pre.inverse_transform(z, mask), np.where(mask[..., None], values, 0), rtol=1e-4, atol=1e-3
    )
    state = pre.state_dict()
    assert state["neutrino"] == "w_mass"
    assert "neutrino" not in get_level("particle").preprocessing().fit(values, mask).state_dict()
    with pytest.raises(ValueError, match="neutrino"):
        get_level("particle").preprocessing(state)
    # the model's decode (affine inverse, then the level's from_parameters) is the same map
    shift, scale = pre.affine()
    decoded = level.from_parameters(torch.tensor(z * scale + shift))
    np.testing.assert_allclose(
        np.where(mask[..., None], decoded.numpy(), 0),
        np.where(mask[..., None], values, 0),
        rtol=1e-4,
        atol=1e-3,
    )
    assert get_level("particle").from_parameters(values) is values


def test_records_of_w_mass_draws_match_cartesian(truth: tuple[np.ndarray, np.ndarray]) -> None:
    """What users get (records) is physical whatever the parameterisation."""
    values, mask = truth
    level = get_level("particle", {"neutrino": "w_mass"})
    decoded = level.from_parameters(to_w_mass(values, mask))
    a = level.to_records(decoded[:, None], mask[:, None])
    b = get_level("particle").to_records(values[:, None], mask[:, None])
    np.testing.assert_allclose(
        ak.to_numpy(a.event.nu.pz).ravel(), ak.to_numpy(b.event.nu.pz).ravel(), rtol=1e-4, atol=1e-3
    )


# -- objects="phase_space" ------------------------------------------------------------------


@pytest.mark.parametrize("phase_space", ["detector", "wide"])
def test_phase_space_objects_round_trip_and_bounds(phase_space: str) -> None:
    from hepvld.targets.objects import to_phase_space

    level = get_level("particle", {"objects": "phase_space", "phase_space": phase_space})
    assert isinstance(level, ParticleLevel)
    t = level.build(toy_events(300, seed=3))
    values, mask = t.values.astype(np.float64), t.mask
    params = to_phase_space(values, mask, level.cuts)
    real = mask[:, 1:]
    pt = np.hypot(values[:, 1:, 0], values[:, 1:, 1])
    np.testing.assert_allclose(
        np.exp(params[:, 1:, 0])[real],
        (pt - level.cuts.jet_pt_min)[real]
        if phase_space == "detector"
        else np.exp(params[:, 1:, 0])[real],
        rtol=1e-6,
    )
    np.testing.assert_allclose(np.hypot(params[:, 1:, 2], params[:, 1:, 3])[real], 1.0, atol=1e-9)
    # objects within the documented floor of a cut (pT - pT_min < 1e-3 GeV) move onto it
    jet = values[:, 1:, 5:7].sum(-1) > 0
    pt_min = np.where(jet, level.cuts.jet_pt_min, level.cuts.lepton_pt_min)
    clear = real & (pt - pt_min > 1e-3)
    assert clear.sum() > 0.99 * real.sum()
    for back in (
        level.from_parameters(params),
        level.from_parameters(torch.tensor(params)).numpy(),
    ):
        np.testing.assert_allclose(back[:, 1:][clear], values[:, 1:][clear], rtol=1e-6, atol=1e-4)
    # any drawn coordinates decode inside the cuts, on the mass shell
    g = np.random.default_rng(1)
    draws = np.zeros((500, 3, 9))
    draws[:, 1:, :5] = g.normal(0, 1.5, (500, 2, 5))  # E below the 13 TeV clamp
    draws[:, 1, 5] = 1.0  # a b-jet
    draws[:, 2, 8] = 1.0  # a muon
    out = level.from_parameters(torch.tensor(draws)).numpy()
    obj = out[:, 1:]
    opt, oeta = (
        np.hypot(obj[..., 0], obj[..., 1]),
        np.arcsinh(obj[..., 2] / np.hypot(obj[..., 0], obj[..., 1])),
    )
    cuts = level.cuts
    assert (opt[:, 0] > cuts.jet_pt_min).all() and (
        np.abs(oeta[:, 0]) < cuts.jet_eta_max + 1e-9
    ).all()
    assert (opt[:, 1] > cuts.lepton_pt_min).all() and (
        np.abs(oeta[:, 1]) < cuts.lepton_eta_max + 1e-9
    ).all()
    shell = level.consistency(torch.tensor(out), torch.ones(500, 3, dtype=torch.bool), scale=1e3)
    assert shell.abs().max().item() < 1e-6  # TeV² units: on shell to float64 rounding


def test_both_parameterisations_compose_and_are_recorded() -> None:
    level = get_level("particle", {"objects": "phase_space", "neutrino": "w_mass"})
    assert level.options()["objects"] == "phase_space" and level.options()["neutrino"] == "w_mass"
    t = level.build(toy_events(200, seed=8))
    values, mask = t.values.astype(np.float64), t.mask
    pre = level.preprocessing().fit(values, mask)
    state = pre.state_dict()
    assert (state["objects"], state["neutrino"]) == ("phase_space", "w_mass")
    again = level.preprocessing(state)
    np.testing.assert_allclose(
        again.inverse_transform(again.transform(values, mask), mask),
        np.where(mask[..., None], values, 0),
        rtol=1e-4,
        atol=1e-3,
    )
    with pytest.raises(ValueError, match="parameterisation"):
        get_level("particle", {"neutrino": "w_mass"}).preprocessing(state)
    with pytest.raises(ValueError, match="object parameterisation"):
        get_level("particle", {"objects": "polar"})


def test_rapidity_parameterisation_round_trip(truth: tuple[np.ndarray, np.ndarray]) -> None:
    values, mask = truth
    params = to_rapidity(values, mask)
    w = to_w_mass(values, mask)
    np.testing.assert_array_equal(params[:, 0, 5], w[:, 0, 6])  # Δy decodes
    np.testing.assert_array_equal(params[:, 0, 6], w[:, 0, 5])  # m_ℓν auxiliary
    np.testing.assert_allclose(
        from_rapidity(params)[:, 0, 5:7], values[:, 0, 5:7], rtol=1e-4, atol=1e-3
    )
    t = from_rapidity(torch.tensor(params, requires_grad=True))
    np.testing.assert_allclose(t.detach().numpy(), from_rapidity(params), rtol=1e-9, atol=1e-6)
    # the auxiliary column does not change the decoded neutrino
    shifted = params.copy()
    shifted[:, 0, 6] += 50.0
    np.testing.assert_array_equal(from_rapidity(shifted), from_rapidity(params))
    level = get_level("particle", {"neutrino": "rapidity", "objects": "phase_space"})
    back = level.from_parameters(level.to_parameters(values, mask))
    np.testing.assert_allclose(
        np.where(mask[..., None], back, 0)[:, 0], values[:, 0], rtol=1e-4, atol=1e-3
    )
