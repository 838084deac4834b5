"""The coffea processor with a particle-level (variable-length) model.

The network is a stand-in that draws fake particle-level values in the level's layout
(deterministic per event), so the histograms are checked against values recomputed here
from the raw draws of ``hepvld.unfold`` with independent formulas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("coffea")
pytest.importorskip("hepvld.targets.particle")

from hepvld.api import UnfoldingModel, unfold
from hepvld.io import open_events
from hepvld.particle_observables import PARTICLE_OBSERVABLES
from hepvld.processor import UnfoldingProcessor, _default_observables
from hepvld.targets import get_level
from hepvld.testing.particle import FakeParticleNet

S = 4
K_OBJECTS = 10


@pytest.fixture(scope="module")
def fake_model() -> UnfoldingModel:
    return UnfoldingModel(FakeParticleNet(K_OBJECTS), {"model": "fake", "max_jets": 20})


@pytest.fixture(scope="module")
def events(tiny_root_file: Path) -> ak.Array:
    return open_events(tiny_root_file)[:120]


@pytest.fixture(scope="module")
def output(fake_model: UnfoldingModel, events: ak.Array) -> dict[str, Any]:
    import hepvld.processor as proc_module

    proc = UnfoldingProcessor("fake-checkpoint", PARTICLE_OBSERVABLES, n_samples=S, batch_size=50)
    original = proc_module.cached_model
    proc_module.cached_model = lambda *a, **k: fake_model  # type: ignore[assignment]
    try:
        return proc.process(events)["events"]
    finally:
        proc_module.cached_model = original  # type: ignore[assignment]


@pytest.fixture(scope="module")
def raw(fake_model: UnfoldingModel, events: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw draws of the selected events (B, S, K, H), their mask and genWeight."""
    out = unfold(events, model=fake_model, n_samples=S, batch_size=50, seed=0, raw=True)
    ok = ~ak.to_numpy(ak.is_none(out, axis=0))
    rows = ak.drop_none(out, axis=0)
    k, h = fake_model.level.shape
    x = ak.to_numpy(rows.raw).reshape(len(rows), S, k, h)
    mask = np.zeros(x.shape[:-1], dtype=bool)
    mask[..., 0] = True
    mask[..., 1:] = np.abs(x[..., 1:, :]).sum(-1) > 0
    return x, mask, ak.to_numpy(events.genWeight[ok]).astype(np.float64)


def test_multiplicities_per_draw_match_the_raw_draws(output, raw) -> None:
    x, mask, w = raw
    real = mask[..., 1:]
    jets = real & (x[..., 1:, 5:7].sum(-1) > 0.5)  # b or light type column
    bjets = real & (x[..., 1:, 5] > 0.5)
    for name, n in (("n_jets", jets.sum(-1)), ("n_bjets", bjets.sum(-1))):
        h = output["unfolded"][name]
        edges = h.axes[name].edges
        for s in range(S):
            expect, _ = np.histogram(n[:, s], bins=edges, weights=w)
            np.testing.assert_allclose(h.values()[s], expect)


def test_leading_jet_pt_and_met_match_the_raw_draws(output, raw) -> None:
    x, mask, w = raw
    real = mask[..., 1:]
    jets = real & (x[..., 1:, 5:7].sum(-1) > 0.5)
    pt = np.where(jets, np.hypot(x[..., 1:, 0], x[..., 1:, 1]), -1.0).max(-1)
    for name, v in (("jet1_pt", pt), ("met", x[..., 0, 0])):
        h = output["unfolded"][name]
        for s in range(S):
            expect, _ = np.histogram(v[:, s], bins=h.axes[name].edges, weights=w)
            np.testing.assert_allclose(h.values()[s], expect, rtol=1e-9, atol=1e-9)


def test_absent_values_are_counted_not_filled(output, raw) -> None:
    x, mask, w = raw
    real = mask[..., 1:]
    n_b = (real & (x[..., 1:, 5] > 0.5)).sum(-1)
    n_lep = (real & (x[..., 1:, 7:9].sum(-1) > 0.5)).sum(-1)
    # bjet1 is absent in draws without a b-jet; lepton_pt in draws without a lepton
    assert output["absent"]["bjet1_pt"]["unfolded"] == int((n_b == 0).sum())
    assert output["absent"]["lepton_pt"]["unfolded"] == int((n_lep == 0).sum())
    h = output["unfolded"]["lepton_pt"]
    total = h.values(flow=True).sum()
    assert total == pytest.approx(float((w[:, None] * (n_lep > 0)).sum()))


def test_pseudo_top_histograms_are_filled(output, raw) -> None:
    from hepvld.targets import particle_output as po

    x, mask, w = raw
    level = get_level("particle", {"max_objects": K_OBJECTS})
    labels = po.feature_labels(level)
    table = po.feature_table(level, x, mask)
    mass = table[..., labels.index("t_had/mass")]
    h = output["unfolded"]["t_had_mass"]
    for s in range(S):
        ok = np.isfinite(mass[:, s])
        expect, _ = np.histogram(mass[ok, s], bins=h.axes["t_had_mass"].edges, weights=w[ok])
        np.testing.assert_allclose(h.values()[s], expect)


def test_detector_and_truth_beside_the_draws(output, raw) -> None:
    _, _, w = raw
    det = output["detector"]["n_jets"]
    assert det.values(flow=True).sum() == pytest.approx(w.sum())
    flow = output["truth_cutflow"].to_dict()
    assert flow["counts"][0] == len(w) and 0 < flow["counts"][1] <= len(w)
    truth = output["truth"]["n_jets"]
    assert truth.values(flow=True).sum() == pytest.approx(flow["sumw"][1])
    # truth multiplicities are those of the level's own truth tensors
    assert truth.axes["n_jets"].edges[0] == -0.5


def test_default_observables_follow_the_checkpoint_level(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "meta.json").write_text(json.dumps({"extra": {"target_level": "particle"}}))
    assert tuple(_default_observables(str(ckpt))) == PARTICLE_OBSERVABLES
    (ckpt / "meta.json").write_text(json.dumps({"extra": {"target_level": "parton"}}))
    assert "n_jets" not in _default_observables(str(ckpt))


# ------------------------------------------------- the efficiency denominator (truth_all)
@pytest.fixture(scope="module")
def no_select(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Events generated without the detector selection (every generated event written)."""
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from hepvld.generate import generate

    path = tmp_path_factory.mktemp("noselect") / "all.root"
    generate(path, 400, seed=11, mpi=False, count="generated", select=False, progress=False)
    return path


def test_truth_all_is_the_particle_level_phase_space_of_every_input_event(
    fake_model: UnfoldingModel, no_select: Path
) -> None:
    import hepvld.processor as proc_module
    from hepvld.data import load_tensors
    from hepvld.targets import particle_output as po

    events = open_events(no_select)
    proc = UnfoldingProcessor("fake-checkpoint", PARTICLE_OBSERVABLES, n_samples=2, batch_size=50)
    original = proc_module.cached_model
    proc_module.cached_model = lambda *a, **k: fake_model  # type: ignore[assignment]
    try:
        out = proc.process(events)["events"]
    finally:
        proc_module.cached_model = original  # type: ignore[assignment]

    # independently: the columnar reader with the misses kept (pass_truth flags every event)
    level = fake_model.level
    tensors = load_tensors(no_select, level=level, max_jets=20, include_misses=True)
    labels = po.feature_labels(level)
    table = po.feature_table(level, tensors.targets, tensors.target_mask)
    w = np.asarray(tensors.weights, dtype=np.float64)
    fid, sel = np.asarray(tensors.pass_truth), np.asarray(tensors.pass_detector)
    assert 0 < (fid & sel).sum() < fid.sum() < len(events)  # misses exist in this sample
    for name in ("n_jets", "n_bjets"):
        edges = out["truth_all"][name].axes[name].edges
        n = table[:, labels.index(name)]
        expect_all, _ = np.histogram(n[fid], bins=edges, weights=w[fid])
        expect_fid, _ = np.histogram(n[fid & sel], bins=edges, weights=w[fid & sel])
        np.testing.assert_allclose(out["truth_all"][name].values(), expect_all)
        np.testing.assert_allclose(out["truth_fiducial"][name].values(), expect_fid)
    # the efficiency per bin of a pseudo-top observable lies in [0, 1], below 1 somewhere
    h_all, h_fid = out["truth_all"]["t_had_mass"], out["truth_fiducial"]["t_had_mass"]
    filled = h_all.values() > 0
    eff = h_fid.values()[filled] / h_all.values()[filled]
    assert ((eff >= 0) & (eff <= 1)).all() and (eff < 1).any()
    # truth keeps the fakes: it holds at least the fiducial numerator
    assert out["truth"]["n_jets"].sum(flow=True).value >= h_fid.sum(flow=True).value
    flow = out["truth_cutflow"].to_dict()
    assert flow["counts"][2] == int((fid & sel).sum())
    assert out["absent"]["t_had_mass"]["truth_all"] >= 0
