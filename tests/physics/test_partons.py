from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest

from hepvld.io import MissingBranchError, TruthError
from hepvld.physics import (
    PARTONS,
    TARGET_DIM,
    components_to_p4,
    decay_chain,
    momenta_to_targets,
    p4_components,
    parton_targets,
    target_index,
    targets_to_momenta,
)
from hepvld.testing.synthetic import nanoaod_history, toy_events


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(400, seed=11)


def test_targets_shape_and_physics(events: ak.Array) -> None:
    x = parton_targets(events)
    assert x.shape == (400, TARGET_DIM) and x.dtype == np.float32
    assert np.isfinite(x).all()
    mw = x[:, target_index("W_lep", "M")]
    mt = x[:, target_index("t_had", "M")]
    assert abs(np.median(mw) - 80.4) < 0.5 and abs(np.median(mt) - 173.0) < 0.5
    # hard process: tt̄ has no transverse momentum
    assert np.abs(x[:, target_index("ttbar", "px")]).max() < 1e-2
    # b quark mass is the generator's 4.8 GeV, neutrino massless
    assert np.allclose(x[:, target_index("b_lep", "M")], 4.8, atol=1e-3)
    assert np.abs(x[:, target_index("nu", "M")]).max() < 1e-3


def test_leaves_identified_by_identity(events: ak.Array) -> None:
    chain = decay_chain(events)
    assert chain.valid.all()
    gp = events.GenPart
    pdg = ak.to_numpy(gp.pdgId)
    lep_on_plus = np.isin(np.abs(pdg[:, 6]), (11, 12, 13, 14))
    # b from the top whose W decays leptonically (t -> entry 3, tbar -> entry 5)
    b_lep_idx = np.where(lep_on_plus, 3, 5)
    expect = ak.to_numpy(gp.pt)[np.arange(len(gp)), b_lep_idx]
    np.testing.assert_allclose(chain.leaves["b_lep"][:, 0], expect, rtol=1e-6)
    # q1 is the leading-pT quark
    assert (chain.leaves["q1"][:, 0] >= chain.leaves["q2"][:, 0]).all()
    lep_pdg = np.where(
        lep_on_plus,
        np.where(np.abs(pdg[:, 6]) % 2 == 1, pdg[:, 6], pdg[:, 7]),
        np.where(np.abs(pdg[:, 8]) % 2 == 1, pdg[:, 8], pdg[:, 9]),
    )
    assert np.isin(np.abs(lep_pdg), (11, 13)).all()


def test_composites_are_sums(events: ak.Array) -> None:
    x = parton_targets(events).astype(np.float64)
    p = targets_to_momenta(x)
    tl = p.b_lep + p.nu + p.lep
    np.testing.assert_allclose(ak.to_numpy(tl.px), x[:, target_index("t_lep", "px")], atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(tl.mass), x[:, target_index("t_lep", "M")], rtol=1e-4)


@pytest.mark.parametrize("flags", [True, False])
def test_nanoaod_multi_copy_history(events: ak.Array, flags: bool) -> None:
    hist = nanoaod_history(events, status_flags=flags)
    assert ak.num(hist.GenPart, axis=1)[0] == 22
    np.testing.assert_array_equal(parton_targets(hist), parton_targets(events))


def test_non_semileptonic_reported(caplog: pytest.LogCaptureFixture) -> None:
    ev = toy_events(30, decay=["semileptonic", "tau", "dileptonic"])
    chain = decay_chain(ev)
    assert chain.summary() == {"semileptonic (e/mu)": 10, "tau in a W decay": 10, "dileptonic": 10}
    with pytest.raises(TruthError, match=r"20 of 30 events.*tau in a W decay: 10.*dileptonic: 10"):
        parton_targets(ev)
    with caplog.at_level(logging.WARNING):
        x = parton_targets(ev, on_invalid="nan")
    assert np.isnan(x[~chain.valid]).all() and np.isfinite(x[chain.valid]).all()
    assert "20 of 30" in caplog.text
    allhad = decay_chain(toy_events(5, decay="allhadronic"))
    assert allhad.summary() == {"all-hadronic": 5}
    broken = ak.with_field(ev, ev.GenPart[:, :8], "GenPart")
    assert decay_chain(broken).summary() == {
        "incomplete chain (not 2 t->Wb with 4 W daughters)": 30
    }


def test_missing_genpart() -> None:
    ev = toy_events(3)
    with pytest.raises(MissingBranchError, match="GenPart"):
        parton_targets(ev[["Jet", "MET"]])


def test_empty_events() -> None:
    ev = toy_events(0)
    assert parton_targets(ev).shape == (0, 55)
    assert decay_chain(ev).valid.shape == (0,)


@pytest.mark.parametrize("shape", [(64,), (8, 5)])
def test_round_trip_components(events: ak.Array, shape: tuple[int, ...]) -> None:
    x = parton_targets(events)[: int(np.prod(shape))].astype(np.float64).reshape(*shape, 55)
    mom = targets_to_momenta(x)
    assert mom.fields == list(PARTONS) and len(mom) == shape[0]
    back = momenta_to_targets(mom)
    assert back.shape == x.shape
    # mass kept exactly, log E reproduced up to float32 rounding of the inputs
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-4)
    off = targets_to_momenta(x, on_shell=False)
    np.testing.assert_allclose(
        np.log(ak.to_numpy(off.t_had.E)), x[..., target_index("t_had", "logE")]
    )


def test_components_helpers() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(0, 100, 50), np.zeros(50), *rng.normal(0, 50, (3, 50))], axis=-1)
    x[:, 1] = 0.5 * np.log(x[:, 0] ** 2 + (x[:, 2:] ** 2).sum(1))
    np.testing.assert_allclose(p4_components(components_to_p4(x)), x, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(
        p4_components(components_to_p4(x, on_shell=False)), x, rtol=1e-6, atol=1e-6
    )
    with pytest.raises(ValueError, match="55"):
        targets_to_momenta(np.zeros((3, 54)))
