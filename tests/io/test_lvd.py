"""The VL-VLD R&D dataset (HDF5) reader on a small file written in its layout."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest

from hepvld.data import load_tensors, prepare_data
from hepvld.io import MissingBranchError, inspect_files, iterate_events, open_events
from hepvld.io.lvd import is_lvd_path, iterate_lvd, lvd_entries, open_lvd
from hepvld.testing.lvd import write_lvd
from hepvld.testing.synthetic import toy_events

N = 700


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(N, seed=41)


@pytest.fixture(scope="module")
def lvd_file(events: ak.Array, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lvd") / "toy_lvd.h5"
    write_lvd(str(path), events)
    return path


def test_layout_and_events(lvd_file: Path, events: ak.Array) -> None:
    with h5py.File(lvd_file) as f:
        assert set(f) >= {"partonlevel", "particlelevel", "recolevel"}
        assert f["recolevel/jets/mask"].shape == (N, 16)
        assert f["partonlevel/Wm/d2/pid"].shape == (N, 1)
    assert lvd_entries(str(lvd_file)) == N and is_lvd_path(lvd_file) and not is_lvd_path("a.root")
    ev = open_lvd(lvd_file)
    assert len(ev) == N
    assert set(ev.fields) >= {
        "Jet",
        "Electron",
        "Muon",
        "MET",
        "GenJet",
        "GenDressedLepton",
        "GenPart",
    }
    np.testing.assert_array_equal(ak.to_numpy(ev.event), np.arange(N))
    np.testing.assert_array_equal(ak.num(ev.Jet), np.minimum(ak.num(events.Jet), 16))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.Jet.pt)), ak.to_numpy(ak.flatten(events.Jet.pt[:, :16]))
    )
    np.testing.assert_array_equal(
        ak.flatten(ev.Jet.btagged), ak.flatten(events.Jet.btagged[:, :16])
    )
    # chunks never change the content, entry_stop bounds it
    chunks = list(iterate_lvd(lvd_file, step_size=300, entry_stop=650))
    assert [len(c) for c in chunks] == [300, 300, 50]
    np.testing.assert_array_equal(ak.to_numpy(chunks[-1].event), np.arange(600, 650))
    # the generic readers (unfold, evaluate, the processor use them) take .h5 paths too
    part = open_events(str(lvd_file), entry_start=100, entry_stop=200)
    np.testing.assert_array_equal(ak.to_numpy(part.event), np.arange(100, 200))
    assert ak.all(part.Jet.pt == ev.Jet.pt[100:200])
    assert [len(c) for c in iterate_events(lvd_file, step_size=400)] == [400, 300]
    assert len(open_events(lvd_file, entry_start=N)) == 0


@pytest.mark.parametrize("level", ["particle", "parton"])
def test_load_tensors_matches_the_event_path(lvd_file: Path, events: ak.Array, level: str) -> None:
    t = load_tensors(lvd_file, level=level, step_size=250)
    ref = load_tensors(events, level=level)
    assert len(t) == len(ref) and t.targets is not None and ref.targets is not None
    np.testing.assert_array_equal(t.event, ref.event)
    np.testing.assert_array_equal(t.target_mask, ref.target_mask)
    np.testing.assert_allclose(t.targets, ref.targets, rtol=1e-4, atol=0.5)
    # E from float32 (pt, eta, phi, e): masses of light objects carry a rounding error
    np.testing.assert_allclose(t.objects[..., 1:], ref.objects[..., 1:], rtol=1e-4, atol=0.5)
    np.testing.assert_array_equal(t.pass_truth, ref.pass_truth)
    assert t.phase_space.as_dict() == ref.phase_space.as_dict()


def test_prepare_data_and_dry_run_inputs(lvd_file: Path) -> None:
    train, val, state = prepare_data([lvd_file], max_jets=20, level="particle")
    assert train["targets"].shape[1:] == (17, 9) and len(val["targets"])
    json.dumps(state)
    (info,) = inspect_files(str(lvd_file))
    assert info["entries"] == N and info["schema"] == "vl-vld-hdf5"


def test_clear_errors(tmp_path: Path, lvd_file: Path) -> None:
    broken = tmp_path / "broken.h5"
    with h5py.File(lvd_file) as src, h5py.File(broken, "w") as dst:
        for g in ("partonlevel", "particlelevel", "recolevel"):
            src.copy(src[g], dst, name=g)
        del dst["recolevel/jets/pt"]
    with pytest.raises(MissingBranchError, match=r"recolevel/jets has none of \['pt'\]"):
        load_tensors(broken, level="particle")
    not_lvd = tmp_path / "other.h5"
    with h5py.File(not_lvd, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(MissingBranchError, match="VL-VLD"):
        open_lvd(not_lvd)
