"""The particle level implements the TargetLevel contract (COMMON contract, issue 11)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from hepvld.features.particle_level import truth_objects
from hepvld.physics.partons import decay_chain
from hepvld.targets import LEVELS, TargetLevel, TargetPreprocessing, get_level, level_from_meta
from hepvld.targets.particle import (
    EVENT_FEATURES,
    EVENT_SLOT,
    N_CONTINUOUS,
    N_EVENT_FEATURES,
    OBJECT_FEATURES,
    OBJECT_TYPES,
    TYPE_COLUMNS,
    ParticleLevel,
)
from hepvld.testing.synthetic import toy_events, write_root


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(300, seed=11)


@pytest.fixture(scope="module")
def level() -> ParticleLevel:
    lv = get_level("particle")
    assert isinstance(lv, ParticleLevel)
    return lv


def test_contract_constants_registry_and_options(level: ParticleLevel) -> None:
    assert isinstance(level, TargetLevel) and "particle" in LEVELS
    assert level.shape == (17, 9) and not level.fixed_multiplicity
    assert level.options() == {"max_objects": 16, "phase_space": "detector"}
    assert (level.n_types, level.n_continuous, level.n_event_features) == (4, 5, 7)
    assert len(EVENT_FEATURES) == N_EVENT_FEATURES == 7 and len(OBJECT_FEATURES) == 9
    assert OBJECT_TYPES == ("bjet", "light_jet", "electron", "muon") and N_CONTINUOUS == 5
    assert (TYPE_COLUMNS.start, TYPE_COLUMNS.stop, EVENT_SLOT) == (5, 9, 0)
    again = level_from_meta({"target_level": "particle", "target_options": level.options()})
    assert again == level
    wide = get_level("particle", {"max_objects": 8, "phase_space": "wide"})
    assert wide.shape == (9, 9) and json.loads(json.dumps(wide.options()))["phase_space"] == "wide"
    with pytest.raises(ValueError, match="phase_space"):
        get_level("particle", {"phase_space": "narrow"})
    with pytest.raises(ValueError, match="unknown particle-level options"):
        get_level("particle", {"max_jets": 3})
    with pytest.raises(ValueError, match="max_objects"):
        ParticleLevel(max_objects=0)


def test_build_layout_order_and_types(events: ak.Array, level: ParticleLevel) -> None:
    t = level.build(events)
    B, K = len(events), level.shape[0]
    v, m = t.values, t.mask
    assert v.shape == (B, K, 9) and v.dtype == np.float32 and m.shape == (B, K)
    assert m[:, EVENT_SLOT].all()
    n = m.sum(1) - 1
    np.testing.assert_array_equal(m[:, 1:], np.arange(K - 1)[None] < n[:, None])  # prefix
    assert (v[~m] == 0).all() and (v[:, EVENT_SLOT, 7:] == 0).all()
    obj, om = v[:, 1:], m[:, 1:]
    np.testing.assert_array_equal(obj[..., TYPE_COLUMNS].sum(-1), om)  # exactly one type
    pt = np.hypot(obj[..., 0], obj[..., 1])
    assert (np.diff(np.where(om, pt, -1.0), axis=1) <= 1e-3).all()  # decreasing true pT
    # the same objects as the awkward half, in the same order
    ref = truth_objects(events)
    np.testing.assert_array_equal(n, np.minimum(ak.to_numpy(ak.num(ref)), 16))
    first = ak.to_numpy(ak.firsts(ref.pt))
    np.testing.assert_allclose(pt[:, 0], first, rtol=1e-5)
    types = np.argmax(obj[..., TYPE_COLUMNS], -1)
    np.testing.assert_array_equal(types[:, 0], ak.to_numpy(ak.firsts(ref["type"])))
    # b-jets are GenJets with hadronFlavour 5 (toy: the two b quarks' jets), leptons e/mu
    gj = events.GenJet[(events.GenJet.pt > 25) & (abs(events.GenJet.eta) < 2.5)]
    n_b = ak.to_numpy(ak.sum(gj.hadronFlavour == 5, axis=1))
    np.testing.assert_array_equal((obj[..., 5] == 1).sum(1), n_b)
    # event slot: GenMET and the hard-process neutrino
    np.testing.assert_allclose(v[:, 0, 0], ak.to_numpy(events.GenMET.pt), rtol=1e-6)
    phi = ak.to_numpy(events.GenMET.phi)
    np.testing.assert_allclose(v[:, 0, 1], np.sin(phi), atol=1e-6)
    np.testing.assert_allclose(v[:, 0, 2], np.cos(phi), atol=1e-6)
    nu = decay_chain(events).leaves["nu"]
    np.testing.assert_allclose(np.hypot(v[:, 0, 3], v[:, 0, 4]), nu[:, 0], rtol=1e-5)
    np.testing.assert_allclose(
        v[:, 0, 6], np.sqrt((v[:, 0, 3:6].astype(np.float64) ** 2).sum(-1)), rtol=1e-5
    )
    assert level.empty().values.shape == (0, K, 9) and len(level.build(events[:0])) == 0


def test_truncation_is_counted_and_wide_phase_space(
    events: ak.Array, caplog: pytest.LogCaptureFixture
) -> None:
    small = ParticleLevel(max_objects=4)
    n_all = ak.to_numpy(ak.num(truth_objects(events)))
    with caplog.at_level(logging.WARNING):
        t = small.build(events)
    over = int((n_all > 4).sum())
    assert over and f"{over} of {len(events)} events have more than 4" in caplog.text
    assert f"{int((n_all - 4)[n_all > 4].sum())} objects dropped" in caplog.text
    full = ParticleLevel().build(events)
    np.testing.assert_array_equal(t.values, full.values[:, :5])  # the leading four kept
    wide = ParticleLevel(phase_space="wide").build(events)
    assert (wide.multiplicity >= full.multiplicity).all()
    assert (wide.multiplicity > full.multiplicity).any()


def test_invalid_truth(level: ParticleLevel) -> None:
    ev = toy_events(20, seed=2, decay=["semileptonic", "tau"])
    from hepvld.io import TruthError

    with pytest.raises(TruthError, match="semi-leptonic"):
        level.build(ev)
    t = level.build(ev, on_invalid="nan")
    bad = np.arange(20) % 2 == 1
    assert np.isnan(t.values[bad, 0, 3:7]).all() and np.isfinite(t.values[~bad]).all()


def test_preprocessing_round_trip_and_padding(events: ak.Array, level: ParticleLevel) -> None:
    t = level.build(events)
    pre = level.preprocessing().fit(t.values, t.mask)
    assert isinstance(pre, TargetPreprocessing)
    z = pre.transform(t.values, t.mask)
    assert (z[~t.mask] == 0).all()
    obj = z[:, 1:, :5][t.mask[:, 1:]]
    np.testing.assert_allclose(obj.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(obj.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(z[:, 0, :7].mean(0), 0, atol=1e-4)
    np.testing.assert_array_equal(z[:, 1:, 5:], t.values[:, 1:, 5:])  # types untouched
    np.testing.assert_allclose(pre.inverse_transform(z, t.mask), t.values, rtol=1e-5, atol=2e-3)
    state = json.loads(json.dumps(pre.state_dict()))
    again = level.preprocessing(state)
    shift, scale = again.affine()
    assert shift.shape == scale.shape == level.shape
    assert (scale[1:, 5:] == 1).all() and (shift[1:, 5:] == 0).all()  # object types
    assert (scale[0, 7:] == 1).all() and (shift[0, 7:] == 0).all()  # unused event columns
    np.testing.assert_allclose(t.values, (z * scale + shift) * t.mask[..., None], atol=2e-3)
    garbage = t.values.copy()
    garbage[~t.mask] = np.float32(1e30)
    np.testing.assert_array_equal(again.transform(garbage, t.mask), z)
    zt = again.transform(torch.as_tensor(garbage), torch.as_tensor(t.mask))
    torch.testing.assert_close(zt, torch.as_tensor(z), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="slots"):
        ParticleLevel(max_objects=3).preprocessing(state)
    weights = np.where(np.arange(len(t)) % 2 == 0, 1.0, 3.0)
    assert not np.allclose(level.preprocessing().fit(t.values, t.mask, weights).affine()[0], shift)


def test_consistency_zero_on_truth_and_ignores_padding(
    events: ak.Array, level: ParticleLevel
) -> None:
    t = level.build(events)
    x = torch.as_tensor(t.values, dtype=torch.float64)
    m = torch.as_tensor(t.mask)
    c = level.consistency(x, m, scale=100.0)
    assert c.shape == (len(t),)
    off = x.clone()
    off[:, 1:, 4] += 0.5  # every object 65 % heavier in M+1
    c_off = level.consistency(off, m, scale=100.0)
    assert float(c.max()) < 1e-3 * float(c_off.min())  # float32 rounding only
    np.testing.assert_allclose(
        level.consistency(t.values.astype(np.float64), t.mask, scale=100.0), c.numpy()
    )
    garbage = x.clone().requires_grad_(True)
    with torch.no_grad():
        garbage[~m] = 1e6
    out = level.consistency(garbage, m, scale=100.0)
    torch.testing.assert_close(out, c)
    out.sum().backward()
    assert garbage.grad is not None and torch.isfinite(garbage.grad).all()
    assert (garbage.grad[~m] == 0).all()


def test_detector_records(events: ak.Array, level: ParticleLevel) -> None:
    from hepvld.features import select

    sel = events[select(events)[0]]
    rec = level.detector_records(sel)
    assert len(rec) == len(sel) and set(rec.fields) == {"objects", "event"}
    n_jets = ak.to_numpy(ak.sum(rec.objects["type"] <= 1, axis=1))
    n_lep = ak.to_numpy(ak.sum(rec.objects["type"] >= 2, axis=1))
    assert (n_jets >= 4).all() and (n_lep == 1).all()
    np.testing.assert_allclose(ak.to_numpy(rec.event.met), ak.to_numpy(sel.MET.pt), rtol=1e-6)
    assert ak.all(rec.event.nu.pt >= 0)


def test_root_files_nanoaod_and_delphes(tmp_path: Path, events: ak.Array) -> None:
    from hepvld.io import open_events

    nano, delphes = tmp_path / "toy.root", tmp_path / "toy_delphes.root"
    write_root(str(nano), events)
    write_root(str(delphes), events, layout="delphes")
    ref = ParticleLevel().build(events)
    t = ParticleLevel().build(open_events(str(nano)))
    np.testing.assert_allclose(t.values, ref.values, rtol=1e-5, atol=1e-4)
    # Delphes: no hadronFlavour (b from GenPart within dR 0.4), no dressed leptons
    d = ParticleLevel().build(open_events(str(delphes)))
    np.testing.assert_array_equal(d.mask[:, 0], True)
    np.testing.assert_allclose(d.values[:, 0], ref.values[:, 0], rtol=1e-4, atol=1e-3)
    n_b_ref = (ref.values[:, 1:, 5] == 1).sum(1)
    n_b = (d.values[:, 1:, 5] == 1).sum(1)
    assert (n_b >= n_b_ref).all() and np.mean(n_b == n_b_ref) > 0.9
    n_lep = d.values[:, 1:, 7:9].sum((1, 2))
    assert np.mean(n_lep == ref.values[:, 1:, 7:9].sum((1, 2))) > 0.95


def test_generated_file(request: pytest.FixtureRequest) -> None:
    """Our own generator's GenJet / GenDressedLepton / GenMET through the level."""
    path = request.getfixturevalue("tiny_root_file")
    from hepvld.data import load_tensors

    t = load_tensors(str(path), level="particle")
    assert len(t) > 0 and t.targets is not None and t.target_mask is not None
    n = t.target_mask.sum(1) - 1
    assert (n[t.pass_truth] >= 5).all()  # >= 4 jets and the lepton inside the phase space
    assert np.isfinite(t.targets).all()


def test_fiducial_cut_after_unfolding(events: ak.Array) -> None:
    """A wide-phase-space target cut to the detector phase space equals the narrow build."""
    wide, narrow = ParticleLevel(phase_space="wide"), ParticleLevel()
    tw, tn = wide.build(events), narrow.build(events)
    values, mask, passed = wide.fiducial(tw.values, tw.mask)
    np.testing.assert_array_equal(mask, tn.mask)
    np.testing.assert_allclose(values, tn.values, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(passed, narrow.truth_selection(events).passed)
    # draw axis (B, S, K, 9) and garbage in padded slots
    draws = np.repeat(tw.values[:, None], 2, axis=1)
    draws[~np.repeat(tw.mask[:, None], 2, axis=1)] = 1e6
    v2, m2, p2 = wide.fiducial(draws, np.repeat(tw.mask[:, None], 2, axis=1))
    assert p2.shape == (len(events), 2) and (p2 == passed[:, None]).all()
    np.testing.assert_allclose(v2[:, 1], tn.values, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(m2[:, 0], tn.mask)
