from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest

from hepvld.features import DETECTOR_FEATURES, detector_tensors, select
from hepvld.testing.synthetic import toy_events


@pytest.fixture(scope="module")
def selected() -> ak.Array:
    ev = toy_events(800, seed=8)
    return ev[select(ev)[0]]


def test_shapes_and_layout(selected: ak.Array) -> None:
    d = detector_tensors(selected)
    B = len(selected)
    assert d.objects.shape == (B, 21, 12) and d.objects.dtype == np.float32
    assert d.mask.shape == (B, 21) and d.mask.dtype == bool and d.globals.shape == (B, 2)
    assert d.mask[:, 0].all() and (d.mask[:, 1:].sum(1) >= 4).all()
    onehot = d.objects[..., 8:]
    assert (onehot[:, 0, :2] == 0).all() and (onehot[:, 0, 2:].sum(-1) == 1).all()
    assert (onehot[:, 1:, :2].sum(-1) == d.mask[:, 1:]).all()
    assert (d.objects[~d.mask] == 0).all()
    pt = d.objects[:, 1:, DETECTOR_FEATURES.index("pT")]
    assert (np.diff(pt, axis=1)[d.mask[:, 2:]] <= 0).all()  # jets in decreasing pT
    M, E, px, py, pz = (d.objects[..., i].astype(np.float64) for i in (0, 4, 5, 6, 7))
    np.testing.assert_allclose(E**2 - px**2 - py**2 - pz**2, M**2, atol=0.5, rtol=1e-3)
    np.testing.assert_allclose(d.globals[:, 0], ak.to_numpy(selected.MET.pt))


def test_truncation_is_logged(selected: ak.Array, caplog: pytest.LogCaptureFixture) -> None:
    many = ak.concatenate([selected.Jet] * 6, axis=1)
    ev = ak.with_field(selected, many, "Jet")
    with caplog.at_level(logging.INFO, logger="hepvld.features"):
        d = detector_tensors(ev, max_jets=20)
    assert d.objects.shape[1] == 21
    n_trunc = int((ak.to_numpy(ak.sum((many.pt > 25) & (abs(many.eta) < 2.5), axis=1)) > 20).sum())
    assert n_trunc > 0 and f"{n_trunc} of {len(ev)} events have more than 20" in caplog.text
    d5 = detector_tensors(selected, max_jets=5)
    assert d5.objects.shape == (len(selected), 6, 12)


def test_empty(selected: ak.Array) -> None:
    d = detector_tensors(selected[:0])
    assert d.objects.shape == (0, 21, 12) and d.mask.shape == (0, 21) and d.globals.shape == (0, 2)


def test_event_without_lepton_is_masked() -> None:
    ev = toy_events(50, seed=2)
    d = detector_tensors(ev)
    mask, _ = select(ev)
    assert (d.mask[:, 0] <= (d.mask[:, 0] | ~mask)).all()
    no_lep = ~d.mask[:, 0]
    assert no_lep.any() and (d.objects[no_lep, 0] == 0).all()


def _reference(events: ak.Array, max_jets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-event Python reference with vector objects (slow; a cross-check only)."""
    import vector

    from hepvld.features import PAPER_CUTS as c

    n = 1 + max_jets
    objects = np.zeros((len(events), n, 12))
    mask = np.zeros((len(events), n), dtype=bool)

    def feats(o, onehot):
        v = vector.obj(pt=o["pt"], eta=o["eta"], phi=o["phi"], mass=o["mass"])
        return [v.mass, v.pt, v.phi, v.eta, v.E, v.px, v.py, v.pz, *onehot]

    for i, ev in enumerate(ak.to_list(events)):
        leps = [
            (e, 1.0)
            for e in ev["Electron"]
            if e["pt"] > c.lepton_pt_min
            and abs(e["eta"]) < c.lepton_eta_max
            and e.get("pfRelIso03_all", 0.0) < c.electron_iso_max
        ] + [
            (m, 0.0)
            for m in ev["Muon"]
            if m["pt"] > c.lepton_pt_min
            and abs(m["eta"]) < c.lepton_eta_max
            and m.get("pfRelIso04_all", 0.0) < c.muon_iso_max
        ]
        if leps:
            lep, is_e = sorted(leps, key=lambda x: -x[0]["pt"])[0]
            objects[i, 0] = feats(lep, (0, 0, is_e, 1 - is_e))
            mask[i, 0] = True
        jets = [j for j in ev["Jet"] if j["pt"] > c.jet_pt_min and abs(j["eta"]) < c.jet_eta_max]
        for k, j in enumerate(sorted(jets, key=lambda j: -j["pt"])[:max_jets]):
            b = float(j["btagged"])
            objects[i, 1 + k] = feats(j, (b, 1 - b, 0, 0))
            mask[i, 1 + k] = True
    return objects, mask


@pytest.mark.parametrize("max_jets", [20, 4])
def test_values_match_a_per_event_reference(max_jets: int) -> None:
    ev = toy_events(60, seed=4)  # unselected: events without a lepton or with few jets too
    d = detector_tensors(ev, max_jets=max_jets)
    objects, mask = _reference(ev, max_jets)
    np.testing.assert_array_equal(d.mask, mask)
    np.testing.assert_allclose(d.objects, objects, rtol=2e-6, atol=1e-4)
