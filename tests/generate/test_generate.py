"""End-to-end tests of event generation (need the ``generate`` extra)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from hepvld.cli.generate import main
from hepvld.generate import CUTS, generate, runner
from hepvld.generate.writer import COLLECTIONS, PROVENANCE_KEY, SCALAR_BRANCHES, TREE_NAME

pytestmark = pytest.mark.generate

#: Everything off: parton-level events in ~1 ms each (enough for bookkeeping tests).
FAST: dict[str, Any] = {"mpi": False, "isr": False, "fsr": False, "hadronisation": False}


def _arrays(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f[TREE_NAME].arrays()


def _four_vectors(a: ak.Array, slot: int) -> dict[str, np.ndarray]:
    pt = ak.to_numpy(a["GenPart_pt"][:, slot]).astype(np.float64)
    eta = ak.to_numpy(a["GenPart_eta"][:, slot]).astype(np.float64)
    phi = ak.to_numpy(a["GenPart_phi"][:, slot]).astype(np.float64)
    m = ak.to_numpy(a["GenPart_mass"][:, slot]).astype(np.float64)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return {"px": px, "py": py, "pz": pz, "e": np.sqrt(px**2 + py**2 + pz**2 + m**2)}


def _mass(*parts: dict[str, np.ndarray]) -> np.ndarray:
    s = {k: sum(p[k] for p in parts) for k in ("px", "py", "pz", "e")}
    return np.sqrt(np.maximum(s["e"] ** 2 - s["px"] ** 2 - s["py"] ** 2 - s["pz"] ** 2, 0.0))


# --- schema -------------------------------------------------------------------------


def test_schema_branches_and_types(tiny_root_file: Path) -> None:
    with uproot.open(tiny_root_file) as f:
        tree = f[TREE_NAME]
        assert isinstance(tree, uproot.TTree)  # not an RNTuple
        assert 250 <= tree.num_entries <= 350
        expected = set(SCALAR_BRANCHES)
        for name, fields in COLLECTIONS.items():
            expected |= {f"n{name}"} | {f"{name}_{field}" for field in fields}
        assert set(tree.keys()) == expected
        for name, dtype in SCALAR_BRANCHES.items():
            assert tree[name].array(library="np").dtype == dtype
        for name, fields in COLLECTIONS.items():
            for field, dtype in fields.items():
                content = ak.to_numpy(ak.flatten(tree[f"{name}_{field}"].array()))
                assert content.dtype == dtype, f"{name}_{field}"
        assert '"complete": true' in f[PROVENANCE_KEY]


def test_selected_events_pass_the_selection(tiny_root_file: Path) -> None:
    a = _arrays(tiny_root_file)
    assert np.all(a["nGenPart"] == 12)  # the hard-process chain + the last top copies
    good_jet = (a["Jet_pt"] > 25) & (abs(a["Jet_eta"]) < 2.5)
    assert ak.all(ak.sum(good_jet, axis=1) >= 4)
    assert ak.all(ak.sum(good_jet & a["Jet_btagged"], axis=1) >= 2)
    assert ak.all(a["nJet"] <= 20) and ak.all(a["Jet_pt"] > 20)
    assert ak.all(a["Jet_pt"][:, :-1] >= a["Jet_pt"][:, 1:])
    iso_e = (
        (a["Electron_pt"] > 25)
        & (abs(a["Electron_eta"]) < 2.5)
        & (a["Electron_pfRelIso03_all"] < 0.12)
    )
    iso_mu = (a["Muon_pt"] > 25) & (abs(a["Muon_eta"]) < 2.5) & (a["Muon_pfRelIso04_all"] < 0.25)
    assert ak.all(ak.sum(iso_e, axis=1) + ak.sum(iso_mu, axis=1) == 1)
    assert len(np.unique(a["event"])) == len(a)


# --- truth-chain physics ----------------------------------------------------------------


def test_truth_chain_kinematics(tiny_root_file: Path) -> None:
    a = _arrays(tiny_root_file)
    ids = ak.to_numpy(a["GenPart_pdgId"])
    assert np.all(ids[:, :6] == [6, -6, 24, 5, -24, -5])
    mothers = [-1, -1, 0, 0, 1, 1, 2, 2, 4, 4, 0, 1]  # the last copies hang off the tops
    assert np.all(ak.to_numpy(a["GenPart_genPartIdxMother"]) == mothers)
    p = [_four_vectors(a, i) for i in range(10)]
    m_top = ak.to_numpy(a["GenPart_mass"][:, 0])
    m_w = ak.to_numpy(a["GenPart_mass"][:, 2])
    # t = b + W and W = f + f̄ (float32 storage: relative precision ~1e-6 on momenta).
    np.testing.assert_allclose(_mass(p[2], p[3]), m_top, rtol=2e-3)
    np.testing.assert_allclose(_mass(p[6], p[7]), m_w, rtol=2e-3)
    np.testing.assert_allclose(_mass(p[8], p[9]), a["GenPart_mass"][:, 4], rtol=2e-3)
    # W mass peak: median within 1 GeV of 80.4, top near 173.
    assert abs(np.median(np.concatenate([m_w, ak.to_numpy(a["GenPart_mass"][:, 4])])) - 80.4) < 1.0
    assert abs(np.median(m_top) - 173.0) < 2.0
    # Hard process: the tt̄ system has no transverse momentum.
    tt = {k: p[0][k] + p[1][k] for k in ("px", "py")}
    assert np.all(np.hypot(tt["px"], tt["py"]) < 1e-2 * ak.to_numpy(a["GenPart_pt"][:, 0]) + 1e-3)


def test_last_top_copies_give_the_tops_after_isr(tiny_root_file: Path) -> None:
    """GenPart 10, 11: t and t̄ after ISR recoil (status 62, isLastCopy); with
    ``tops="after_isr"`` the parton level's tops are these, and tt̄ has pT."""
    from hepvld.io import open_events
    from hepvld.physics.partons import parton_momenta

    a = _arrays(tiny_root_file)
    assert np.all(ak.to_numpy(a["GenPart_pdgId"][:, 10:]) == [6, -6])
    assert np.all(ak.to_numpy(a["GenPart_status"][:, 10:]) == 62)
    flags = ak.to_numpy(a["GenPart_statusFlags"])
    last = (flags >> 13) & 1
    assert np.all(last[:, 10:] == 1) and np.all(last[:, :2] == 0) and np.all(last[:, 2:10] == 1)
    assert np.all((flags[:, 10:] >> 7) & 1 == 0)  # not isHardProcess: the chain is unchanged
    # the recoil moves the tops, not their masses
    np.testing.assert_allclose(a["GenPart_mass"][:, 10:], a["GenPart_mass"][:, :2], rtol=1e-4)
    p = [_four_vectors(a, i) for i in (0, 1, 10, 11)]
    hard_pt = np.hypot(p[0]["px"] + p[1]["px"], p[0]["py"] + p[1]["py"])
    isr_pt = np.hypot(p[2]["px"] + p[3]["px"], p[2]["py"] + p[3]["py"])
    assert hard_pt.max() < 1e-2 and np.median(isr_pt) > 10.0  # ISR on: tens of GeV

    events = open_events(str(tiny_root_file))
    after = parton_momenta(events, tops="after_isr")
    np.testing.assert_allclose(after["ttbar"].pt, isr_pt, rtol=1e-3, atol=0.05)
    top_pt = np.sort(np.stack([after["t_lep"].pt, after["t_had"].pt], 1), axis=1)
    np.testing.assert_allclose(top_pt, np.sort(a["GenPart_pt"][:, 10:], axis=1), rtol=1e-3)
    hard = parton_momenta(events)
    np.testing.assert_allclose(after["W_had"].mass, hard["W_had"].mass, rtol=1e-4)


def test_exactly_one_leptonic_w_and_charge_alternation(tiny_root_file: Path) -> None:
    a = _arrays(tiny_root_file)
    daughters = np.abs(ak.to_numpy(a["GenPart_pdgId"][:, 6:10]))
    leptonic_plus = np.isin(daughters[:, :2], (11, 12, 13, 14)).all(axis=1)
    leptonic_minus = np.isin(daughters[:, 2:], (11, 12, 13, 14)).all(axis=1)
    assert np.all(leptonic_plus ^ leptonic_minus)
    assert np.all(np.isin(daughters[leptonic_plus, 2:], (1, 2, 3, 4, 5)))
    even = ak.to_numpy(a["luminosityBlock"]) % 2 == 0
    np.testing.assert_array_equal(leptonic_plus, even)
    assert even.any() and (~even).any()
    # Exactly one prompt dressed lepton, of the W's flavour.
    assert ak.all(a["nGenDressedLepton"] == 1)


# --- coffea ------------------------------------------------------------------------------


def test_coffea_nanoaod_schema(tiny_root_file: Path) -> None:
    nanoevents = pytest.importorskip("coffea.nanoevents")
    with warnings.catch_warnings():
        # Our files carry no Electron/Muon -> GenPart/Jet index branches; coffea warns once per
        # missing cross-reference. Nothing else is silenced.
        warnings.filterwarnings(
            "ignore", message="Missing cross-reference", category=RuntimeWarning
        )
        events = nanoevents.NanoEventsFactory.from_root(
            {str(tiny_root_file): TREE_NAME}, schemaclass=nanoevents.NanoAODSchema, mode="eager"
        ).events()
    assert len(events.Jet.pt) == len(events)
    assert ak.all(ak.num(events.Jet) >= 4)
    gen = events.GenPart
    assert ak.all(ak.is_none(gen.parent.pdgId[:, :2], axis=1))
    assert gen.parent.pdgId[:, 2:6].tolist()[0] == [6, 6, -6, -6]
    assert ak.all(abs(gen.distinctParent.pdgId[:, 6:]) == 24)
    children = gen.children.pdgId
    assert sorted(children[0, 0].tolist()) == [5, 6, 24]  # W, b and the last copy
    assert ak.all(ak.num(children[:, 2], axis=1) == 2)
    assert ak.all(events.Jet.matched_gen.pt[events.Jet.genJetIdx >= 0] > 0)
    assert ak.all(events.MET.pt >= 0) and ak.all(events.GenMET.pt >= 0)


# --- determinism and parallelism ----------------------------------------------------------


def _assert_same_file(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    assert x.fields == y.fields
    for field in x.fields:
        assert ak.array_equal(x[field], y[field]), field


def test_same_seed_same_file_any_workers(tmp_path: Path) -> None:
    options = {"seed": 7, "chunk_size": 150, **FAST}
    one = generate(tmp_path / "one.root", 60, **options)
    again = generate(tmp_path / "again.root", 60, **options)
    two = generate(tmp_path / "two.root", 60, workers=2, **options)
    assert one.n_written == again.n_written == two.n_written == 60
    assert one.cutflow == two.cutflow
    _assert_same_file(tmp_path / "one.root", tmp_path / "again.root")
    _assert_same_file(tmp_path / "one.root", tmp_path / "two.root")
    other = generate(tmp_path / "other.root", 60, **{**options, "seed": 8})
    assert not ak.array_equal(
        _arrays(tmp_path / "other.root")["Jet_pt"], _arrays(tmp_path / "one.root")["Jet_pt"]
    )
    assert other.n_written == 60


def test_count_generated_and_no_select(tmp_path: Path) -> None:
    summary = generate(
        tmp_path / "all.root", 250, seed=3, count="generated", select=False, chunk_size=100, **FAST
    )
    assert summary.n_generated == 250 and summary.n_chunks == 3
    assert summary.n_written == summary.cutflow[CUTS[1]] == 250
    assert _arrays(tmp_path / "all.root")["event"].tolist() == list(range(250))


# --- interruption ------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("worker crashed"), KeyboardInterrupt()])
def test_interruption_leaves_a_readable_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    original = runner.process_chunk

    def failing(task: runner.ChunkTask) -> runner.ChunkResult:
        if task.index == 1:
            raise error
        return original(task)

    monkeypatch.setattr(runner, "process_chunk", failing)
    path = tmp_path / "partial.root"
    with pytest.raises(type(error)) as info:
        generate(path, 200, seed=5, count="generated", select=False, chunk_size=100, **FAST)
    notes = getattr(info.value, "__notes__", [])
    assert not notes or "holds 100 events" in notes[0]
    with uproot.open(path) as f:
        assert f[TREE_NAME].num_entries == 100
        assert '"complete": false' in f[PROVENANCE_KEY]


# --- command line ----------------------------------------------------------------------------


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.root"
    argv = [
        "-n",
        "20",
        "-o",
        str(path),
        "--seed",
        "2",
        "--chunk-size",
        "200",
        "--no-progress",
        "--compression",
        "lz4",
    ]
    assert main([*argv, "--no-mpi", "--no-isr", "--no-fsr", "--no-hadronisation"]) == 0
    out = capsys.readouterr().out
    assert "wrote 20 events" in out and ">= 2 b-tagged jets" in out
    with uproot.open(path) as f:
        assert f[TREE_NAME].num_entries == 20
