"""The awkward half of the particle level: truth objects and the truth selection."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hepvld.features.particle_level import (
    OBJECT_TYPES,
    WIDE_CUTS,
    event_truth,
    has_b,
    truth_objects,
    truth_selection,
)
from hepvld.io import MissingBranchError
from hepvld.testing.synthetic import toy_events


def test_has_b() -> None:
    pdg = np.array([5, -5, 511, -521, 531, 5122, -5232, 4, 421, 21, 11, 2212, 443, 553])
    np.testing.assert_array_equal(
        has_b(pdg), [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    )  # 553 = Upsilon (b b-bar)


def test_truth_objects_cuts_types_and_order() -> None:
    ev = toy_events(200, seed=4)
    obj = truth_objects(ev)
    assert ak.all(obj.pt > 25) and ak.all(abs(obj.eta) < 2.5)
    assert ak.all(obj.pt[:, :-1] >= obj.pt[:, 1:])
    t = obj["type"]
    assert set(np.unique(ak.to_numpy(ak.flatten(t)))) <= set(range(len(OBJECT_TYPES)))
    gj = ev.GenJet[(ev.GenJet.pt > 25) & (abs(ev.GenJet.eta) < 2.5)]
    np.testing.assert_array_equal(ak.to_numpy(ak.sum(t <= 1, axis=1)), ak.to_numpy(ak.num(gj)))
    np.testing.assert_array_equal(
        ak.to_numpy(ak.sum(t == 0, axis=1)), ak.to_numpy(ak.sum(gj.hadronFlavour == 5, axis=1))
    )
    dl = ev.GenDressedLepton[(ev.GenDressedLepton.pt > 25) & (abs(ev.GenDressedLepton.eta) < 2.5)]
    n_e = ak.to_numpy(ak.sum(abs(dl.pdgId) == 11, axis=1))
    np.testing.assert_array_equal(ak.to_numpy(ak.sum(t == 2, axis=1)), n_e)
    wide = truth_objects(ev, WIDE_CUTS)
    assert ak.all(ak.num(wide) >= ak.num(obj)) and ak.any(abs(wide.eta) > 2.5)
    with pytest.raises(MissingBranchError, match="GenJet"):
        truth_objects(ev[["Jet", "GenPart"]])


def test_truth_selection_counts_add_up() -> None:
    ev = toy_events(400, seed=6, decay=["semileptonic"] * 7 + ["tau", "dileptonic", "allhadronic"])
    sel = truth_selection(ev)
    counts = sel.masks.sum(1)
    assert (np.diff(counts) <= 0).all() and len(sel.names) == 4
    assert counts[0] == int(0.7 * len(ev))  # the semi-leptonic chain
    obj = truth_objects(ev)
    t = obj["type"]
    manual = (
        (np.arange(len(ev)) % 10 < 7)
        & (ak.to_numpy(ak.sum(t >= 2, axis=1)) == 1)
        & (ak.to_numpy(ak.sum(t <= 1, axis=1)) >= 4)
        & (ak.to_numpy(ak.sum(t == 0, axis=1)) >= 2)
    )
    np.testing.assert_array_equal(sel.passed, manual)
    cf = sel.cutflow(within=np.arange(len(ev)) < 100, prefix="truth: ")
    assert cf.names[0].startswith("truth: ") and cf.counts[0] == int(sel.masks[0, :100].sum())
    assert cf.passed == int(manual[:100].sum())


def test_event_truth_falls_back_without_genmet(caplog: pytest.LogCaptureFixture) -> None:
    ev = toy_events(20, seed=1)
    full = event_truth(ev)
    no_met = event_truth(ev[[f for f in ev.fields if f != "GenMET"]])
    assert "no GenMET" in caplog.text
    nu_pt = np.hypot(full["nu"][:, 0], full["nu"][:, 1])
    np.testing.assert_allclose(no_met["met"], nu_pt)
    np.testing.assert_allclose(full["met"], nu_pt, rtol=1e-5)  # toy GenMET = the neutrino
