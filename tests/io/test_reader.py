from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepvld.io import (
    DEEPJET_MEDIUM_WP,
    InputFileNotFoundError,
    MissingBranchError,
    NonFiniteError,
    SchemaError,
    TreeNotFoundError,
    iterate_events,
    open_events,
)
from hepvld.testing.synthetic import toy_events, write_root

COLLECTIONS = ["Jet", "Electron", "Muon", "MET", "GenPart", "GenJet", "GenDressedLepton", "GenMET"]


def _write_branches(path: Path, branches: dict, tree: str = "Events") -> None:
    with uproot.recreate(path) as f:
        f.mktree(
            tree,
            {
                k: (v.dtype if isinstance(v, np.ndarray) else v.type.content)
                for k, v in branches.items()
            },
        )
        f[tree].extend(branches)


def _nano_branches(ev: ak.Array, drop: tuple[str, ...] = ()) -> dict:
    out = {
        "event": ak.to_numpy(ev.event),
        "MET_pt": ak.to_numpy(ev.MET.pt),
        "MET_phi": ak.to_numpy(ev.MET.phi),
    }
    for c in ("Jet", "Electron", "Muon", "GenPart"):
        out[c] = ak.zip({f: ev[c][f] for f in ev[c].fields if f"{c}_{f}" not in drop})
    return out


def test_nanoaod_file_round_trip(toy: ak.Array, nano_file: Path) -> None:
    ev = open_events(nano_file)
    assert len(ev) == len(toy)
    for c in COLLECTIONS:
        assert c in ev.fields
    assert ev.event.type.content.primitive == "uint64"
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(ev.Jet.pt)), ak.to_numpy(ak.flatten(toy.Jet.pt))
    )
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(ev.Jet.btagged)), ak.to_numpy(ak.flatten(toy.Jet.btagged))
    )
    assert ak.all(ev.GenPart.genPartIdxMother == toy.GenPart.genPartIdxMother)
    # vector behaviour attached
    assert np.allclose(
        ak.to_numpy(ak.flatten(ev.Jet.px)),
        ak.to_numpy(ak.flatten(toy.Jet.pt * np.cos(toy.Jet.phi))),
        rtol=1e-5,
        atol=1e-4,
    )


def test_delphes_layout_matches_nanoaod(toy: ak.Array, nano_file: Path, delphes_file: Path) -> None:
    nano = open_events(nano_file)
    dl = open_events(delphes_file)  # tree "Events" absent -> Delphes tree found
    assert len(dl) == len(nano)
    for c, f in [
        ("Jet", "pt"),
        ("Jet", "btagged"),
        ("Electron", "pt"),
        ("Muon", "charge"),
        ("GenPart", "pdgId"),
        ("GenPart", "genPartIdxMother"),
        ("GenJet", "eta"),
    ]:
        assert ak.all(dl[c][f] == nano[c][f]), (c, f)
    assert ak.all(dl.MET.pt == nano.MET.pt)
    assert ak.all(dl.event == nano.event)
    assert ak.all(dl.Electron.pdgId == nano.Electron.pdgId)
    assert ak.all(abs(dl.Muon.mass - 0.10566) < 1e-4)
    assert "GenDressedLepton" not in dl.fields
    assert ak.all(dl.genWeight == 1.0)


def test_explicit_schema_and_tree(delphes_file: Path) -> None:
    ev = open_events(delphes_file, tree="Delphes", schema="delphes", branches=["Jet", "MET"])
    assert set(ev.fields) == {"Jet", "MET", "event", "genWeight"}
    with pytest.raises(MissingBranchError, match="Jet_pt"):
        open_events(delphes_file, tree="Delphes", schema="nanoaod")


def test_multiple_files_and_global_entry_range(toy: ak.Array, nano_file: Path) -> None:
    ev = open_events([nano_file, nano_file], entry_start=250, entry_stop=400)
    assert len(ev) == 150
    np.testing.assert_array_equal(ak.to_numpy(ev.event[:50]), ak.to_numpy(toy.event[250:]))
    np.testing.assert_array_equal(ak.to_numpy(ev.event[50:]), ak.to_numpy(toy.event[:100]))


def test_iterate_events_chunks(toy: ak.Array, nano_file: Path) -> None:
    chunks = list(iterate_events([nano_file, nano_file], step_size=128, entry_stop=500))
    assert [len(c) for c in chunks] == [128, 128, 44, 128, 72]
    whole = open_events([nano_file, nano_file], entry_stop=500)
    assert ak.all(ak.concatenate(chunks).Jet.pt == whole.Jet.pt)
    with pytest.raises(ValueError, match="step_size"):
        next(iterate_events(nano_file, step_size=0))


def test_awkward_and_duck_typed_input(toy: ak.Array) -> None:
    ev = open_events(toy, entry_start=10, entry_stop=20)
    assert len(ev) == 10 and ak.all(ev.event == toy.event[10:20])

    class Duck:  # coffea-like: anything with .fields and item access
        def __init__(self, arr: ak.Array) -> None:
            self.arr = arr
            self.fields = arr.fields

        def __getitem__(self, key: object) -> object:
            return self.arr[key]

        def __len__(self) -> int:
            return len(self.arr)

    duck = open_events(Duck(toy))
    assert len(duck) == len(toy) and ak.all(duck.Jet.pt == toy.Jet.pt)
    chunks = list(iterate_events(toy, step_size=100))
    assert [len(c) for c in chunks] == [100, 100, 100]


def test_missing_file() -> None:
    with pytest.raises(InputFileNotFoundError, match=r"nope\.root"):
        open_events("/nonexistent/nope.root")
    with pytest.raises(InputFileNotFoundError, match="pattern"):
        open_events("/nonexistent/*.root")


def test_wrong_tree_lists_trees(nano_file: Path) -> None:
    with pytest.raises(TreeNotFoundError, match=r"no tree 'Foo'.*\['Events'\]"):
        open_events(nano_file, tree="Foo")


def test_missing_branches_are_listed(tmp_path: Path) -> None:
    ev = toy_events(20)
    path = tmp_path / "broken.root"
    _write_branches(path, _nano_branches(ev, drop=("Jet_eta", "Muon_phi")))
    with pytest.raises(MissingBranchError) as err:
        open_events(path)
    msg = str(err.value)
    assert "broken.root" in msg and "'Events'" in msg
    assert "Jet_eta" in msg and "Muon_phi" in msg
    assert set(err.value.missing) == {"Jet_eta", "Muon_phi"}
    assert isinstance(err.value, SchemaError) and isinstance(err.value, ValueError)


def test_nan_detection_names_branch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ev = toy_events(50)
    met = ak.to_numpy(ev.MET.pt).copy()
    met[[3, 7]] = [np.nan, np.inf]
    branches = _nano_branches(ev)
    branches["MET_pt"] = met
    path = tmp_path / "nan.root"
    _write_branches(path, branches)
    with pytest.raises(
        NonFiniteError, match=r"'MET_pt' has 2 NaN/inf values in 2 of 50 events.*entries 3, 7"
    ):
        open_events(path)
    with caplog.at_level(logging.WARNING, logger="hepvld.io"):
        dropped = open_events(path, on_nonfinite="drop")
    assert len(dropped) == 48 and "dropped 2 of 50" in caplog.text
    assert len(open_events(path, on_nonfinite="ignore")) == 50


def test_nanoaod_without_btagged_and_weight(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ev = toy_events(40)
    branches = _nano_branches(ev, drop=("Jet_btagged",))
    disc = ak.values_astype(ev.Jet.btagged, np.float32) * 0.9 + 0.05
    branches["Jet"] = ak.with_field(branches["Jet"], disc, "btagDeepFlavB")
    path = tmp_path / "cms.root"
    _write_branches(path, branches)
    with caplog.at_level(logging.INFO, logger="hepvld.io"):
        out = open_events(path)
    assert ak.all(out.Jet.btagged == (disc > DEEPJET_MEDIUM_WP))
    assert ak.all(out.genWeight == 1.0) and "genWeight" in caplog.text
    assert "DeepJet" in caplog.text
    assert "GenJet" not in out.fields


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.root"
    write_root(str(path), toy_events(0))
    ev = open_events(path)
    assert len(ev) == 0 and "Jet" in ev.fields
    assert list(iterate_events(path)) == []


def test_rntuple_is_rejected_clearly(tmp_path: Path) -> None:
    path = tmp_path / "rn.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"event": np.arange(3, dtype=np.uint64)}
    with pytest.raises(SchemaError, match="RNTuple"):
        open_events(path)


def test_unknown_branch_subset(nano_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown collections"):
        open_events(nano_file, branches=["Jets"])


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hepvld.io, hepvld.physics, hepvld.features; "
        "bad = [m for m in ('torch', 'uproot') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_coffea_nanoevents_input(nano_file: Path) -> None:
    import warnings

    nanoevents = pytest.importorskip("coffea.nanoevents")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing cross-references of the toy file
        ev = nanoevents.NanoEventsFactory.from_root(
            {str(nano_file): "Events"}, schemaclass=nanoevents.NanoAODSchema, mode="virtual"
        ).events()
    out = open_events(ev)
    ref = open_events(nano_file)
    assert len(out) == len(ref)
    for c, f in [("Jet", "pt"), ("Jet", "btagged"), ("GenPart", "pdgId"), ("MET", "phi")]:
        assert ak.all(out[c][f] == ref[c][f])


def test_coffea_delphes_like_awkward(toy: ak.Array) -> None:
    """DelphesSchema output: capitalised fields, Particle, flattened singletons."""
    t = toy
    delphes = ak.zip(
        {
            "Event": ak.zip({"Number": ak.values_astype(t.event, np.int64), "Weight": t.genWeight}),
            "Jet": ak.zip(
                {
                    "PT": t.Jet.pt,
                    "Eta": t.Jet.eta,
                    "Phi": t.Jet.phi,
                    "Mass": t.Jet.mass,
                    "BTag": ak.values_astype(t.Jet.btagged, np.uint32),
                }
            ),
            "Electron": ak.zip(
                {
                    "PT": t.Electron.pt,
                    "Eta": t.Electron.eta,
                    "Phi": t.Electron.phi,
                    "Charge": t.Electron.charge,
                }
            ),
            "Muon": ak.zip(
                {"PT": t.Muon.pt, "Eta": t.Muon.eta, "Phi": t.Muon.phi, "Charge": t.Muon.charge}
            ),
            "MissingET": ak.zip({"MET": t.MET.pt, "Phi": t.MET.phi}),
            "Particle": ak.zip(
                {
                    "PT": t.GenPart.pt,
                    "Eta": t.GenPart.eta,
                    "Phi": t.GenPart.phi,
                    "Mass": t.GenPart.mass,
                    "PID": t.GenPart.pdgId,
                    "Status": t.GenPart.status,
                    "M1": t.GenPart.genPartIdxMother,
                }
            ),
        },
        depth_limit=1,
    )
    out = open_events(delphes)
    assert ak.all(out.MET.pt == t.MET.pt) and ak.all(out.event == t.event)
    assert ak.all(out.GenPart.genPartIdxMother == t.GenPart.genPartIdxMother)
    assert ak.all(out.Electron.pfRelIso03_all == 0)
