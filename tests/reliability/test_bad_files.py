"""Bad-input corpus, part 1: files and event content (docs/reliability.md, rows F*/V*/E*).

Every case asserts the project's exception class and a message that names the file /
tree / branch / value and says what to do, or a logged recovery with a count.
"""

from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import nano_branches, set_flat, write_branches

from hepvld.data import load_tensors
from hepvld.features import detector_tensors, select
from hepvld.io import (
    CorruptFileError,
    DuplicateEventError,
    HepvldIOError,
    InputFileNotFoundError,
    InvalidValueError,
    MissingBranchError,
    NonFiniteError,
    NotRootFileError,
    SchemaError,
    TreeNotFoundError,
    UnsupportedInputError,
    inspect_files,
    iterate_events,
    open_events,
)
from hepvld.testing.synthetic import toy_events, write_root


# ----------------------------------------------------------------------------- files (F)
def test_f01_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match=r"nope\.root' does not exist"):
        open_events(tmp_path / "nope.root")


def test_f02_glob_matches_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match=r"no file matches the pattern"):
        open_events(str(tmp_path / "*.root"))


def test_f03_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.root"
    path.write_bytes(b"")
    with pytest.raises(NotRootFileError, match=r"empty\.root' is empty \(0 bytes\), not a ROOT"):
        open_events(path)


def test_f04_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.root"
    path.write_text("run,event,pt\n1,2,3\n")
    with pytest.raises(NotRootFileError, match=r"notes\.root' is not a ROOT file.*text data"):
        open_events(path)
    assert not issubclass(NotRootFileError, FileNotFoundError)  # it exists


def test_f05_truncated_mid_basket(good_file: Path, tmp_path: Path) -> None:
    data = good_file.read_bytes()
    path = tmp_path / "cut.root"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.root' is truncated: its header says \d+"):
        open_events(path)


def test_f06_damaged_basket(good_events: ak.Array, tmp_path: Path) -> None:
    """Bytes of a basket overwritten (header intact): the read names file and entries."""
    path = tmp_path / "damaged.root"
    write_root(str(path), good_events)
    with uproot.open(path) as f:
        seek = int(f["Events"]["Jet_pt"].member("fBasketSeek")[0])
    raw = bytearray(path.read_bytes())
    raw[seek + 40 : seek + 400] = b"\x00" * 360
    path.write_bytes(bytes(raw))
    with pytest.raises(
        CorruptFileError, match=r"damaged\.root', tree 'Events': cannot read entries 0-200"
    ):
        open_events(path)


def test_f07_no_events_tree(good_events: ak.Array, tmp_path: Path) -> None:
    path = tmp_path / "other.root"
    write_root(str(path), good_events, tree="Nominal")
    with pytest.raises(
        TreeNotFoundError, match=r"no tree 'Events'.*--tree\) with one of \['Nominal'\]"
    ):
        open_events(path)
    assert len(open_events(path, tree="Nominal")) == len(good_events)


def test_f08_rntuple(tmp_path: Path) -> None:
    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"Jet_pt": np.ones(3, np.float32)}  # uproot writes an RNTuple here
    with pytest.raises(SchemaError, match=r"'Events' is an RNTuple; hepvld reads TTrees"):
        open_events(path)


def test_f09_histogram_only(tmp_path: Path) -> None:
    path = tmp_path / "hist.root"
    with uproot.recreate(path) as f:
        f["h"] = np.histogram(np.arange(10.0), bins=5)
    with pytest.raises(TreeNotFoundError, match=r"holds h \(TH1D\).*no TTree at all"):
        open_events(path)


def test_f10_missing_branch(good_events: ak.Array, tmp_path: Path) -> None:
    b = nano_branches(good_events)
    b["Jet"] = b["Jet"][[f for f in b["Jet"].fields if f != "eta"]]
    path = write_branches(tmp_path / "noeta.root", b)
    with pytest.raises(MissingBranchError, match=r"lacks required branches: \['Jet_eta'\]") as e:
        open_events(path)
    assert e.value.missing == ["Jet_eta"]


def test_f11_unsupported_python_object() -> None:
    with pytest.raises(UnsupportedInputError, match=r"numpy.ndarray.*flat NanoAOD branches"):
        open_events(np.zeros(3))
    rec = toy_events(2)[0]
    with pytest.raises(UnsupportedInputError, match=r"awkward.highlevel.Record"):
        open_events(rec)


# ------------------------------------------------------------------- types and layout (T)
def test_t01_int_stored_jet_pt_refused(good_events: ak.Array, tmp_path: Path) -> None:
    b = nano_branches(good_events)
    b["Jet"] = ak.with_field(b["Jet"], ak.values_astype(b["Jet"].pt, np.int32), "pt")
    path = write_branches(tmp_path / "intpt.root", b)
    with pytest.raises(SchemaError, match=r"'Jet_pt' is stored as int32.*truncated.*float32"):
        open_events(path)


def test_t02_string_branch_refused(good_events: ak.Array) -> None:
    ev = good_events[:3]
    strings = ak.Array([["a"] * int(n) for n in ak.num(ev.Jet)])
    bad = ak.with_field(ev, ak.with_field(ev.Jet, strings, "mass"), "Jet")
    with pytest.raises(SchemaError, match=r"branch 'Jet_mass' holds strings"):
        open_events(bad)


def test_t03_inconsistent_jet_counts_in_file(good_events: ak.Array, tmp_path: Path) -> None:
    b = nano_branches(good_events)
    jets = b.pop("Jet")
    for f in jets.fields:
        b[f"Jet_{f}"] = jets[f]
    b["Jet_eta"] = ak.concatenate([jets.eta[:5], jets.eta[5:6, :-1], jets.eta[6:]])
    path = write_branches(tmp_path / "ragged.root", b)  # each branch gets its own counter
    with pytest.raises(
        SchemaError, match=r"'Jet_\w+' and 'Jet_eta' have different numbers .* entry 5"
    ):
        open_events(path)


def test_t04_inconsistent_counts_flat_awkward(good_events: ak.Array) -> None:
    with uproot.open(_written(good_events)) as f:
        flat = f["Events"].arrays()
    bad = ak.with_field(flat, ak.concatenate([flat.Jet_eta[:1, :-1], flat.Jet_eta[1:]]), "Jet_eta")
    with pytest.raises(SchemaError, match=r"'Jet_\w+' and 'Jet_eta' have different.*entry 0"):
        open_events(bad)


_WRITTEN: dict[int, Path] = {}


def _written(ev: ak.Array) -> Path:
    import tempfile

    key = id(ev)
    if key not in _WRITTEN:
        path = Path(tempfile.mkdtemp()) / "flat.root"
        write_root(str(path), ev)
        _WRITTEN[key] = path
    return _WRITTEN[key]


# --------------------------------------------------------------------------- values (V)
@pytest.mark.parametrize(
    ("collection", "field", "value"),
    [
        ("Jet", "pt", np.nan),
        ("Jet", "eta", np.inf),
        ("Electron", "phi", np.nan),
        ("Muon", "pt", -np.inf),
        ("MET", "pt", np.nan),
        ("GenPart", "mass", np.inf),
    ],
)
def test_v01_nonfinite_in_every_collection(
    good_events: ak.Array, tmp_path: Path, collection: str, field: str, value: float
) -> None:
    def edit(flat: np.ndarray) -> None:
        flat[0] = value

    ev = set_flat(good_events, collection, field, edit)
    path = tmp_path / "nan.root"
    write_root(str(path), ev)
    branch = f"{collection}_{field}"
    with pytest.raises(
        NonFiniteError, match=rf"'{branch}' has 1 NaN/inf values in 1 of 200.*'drop'"
    ):
        open_events(path)
    with pytest.raises(NonFiniteError, match=rf"'{branch}'"):
        open_events(ev)  # awkward input: same check


def test_v02_nan_in_sixth_jet_drops_only_that_event(
    good_events: ak.Array, caplog: pytest.LogCaptureFixture
) -> None:
    six = np.flatnonzero(ak.to_numpy(ak.num(good_events.Jet)) >= 6)
    target = int(six[1])
    pt = ak.to_list(good_events.Jet.pt)
    pt[target][5] = float("nan")
    ev = ak.with_field(good_events, ak.with_field(good_events.Jet, ak.Array(pt), "pt"), "Jet")
    with pytest.raises(
        NonFiniteError,
        match=rf"'Jet_pt' has 1 NaN/inf values in 1 of 200 events \(entries {target}\)",
    ):
        open_events(ev)
    with caplog.at_level(logging.WARNING, logger="hepvld.io"):
        kept = open_events(ev, on_nonfinite="drop")
    assert len(kept) == 199
    assert target not in ak.to_numpy(kept.event).tolist()
    assert "dropped 1 of 200 events" in caplog.text and "'Jet_pt'" in caplog.text


@pytest.mark.parametrize(
    ("collection", "field", "value", "what"),
    [
        ("Jet", "pt", -30.0, "negative"),
        ("Jet", "mass", -5.0, "below -1 GeV"),
        ("Electron", "pt", 1e30, "above 100000 GeV"),
        ("Jet", "eta", 50.0, r"\|eta\| > 10"),
        ("Muon", "phi", 100.0, r"\|phi\| > 2 pi"),
        ("MET", "pt", 1e30, "above 100000 GeV"),
    ],
)
def test_v03_impossible_values(
    good_events: ak.Array, collection: str, field: str, value: float, what: str
) -> None:
    def edit(flat: np.ndarray) -> None:
        flat[1] = value

    ev = set_flat(good_events, collection, field, edit)
    with pytest.raises(InvalidValueError, match=rf"'{collection}_{field}' has 1 {what} values"):
        open_events(ev)
    assert len(open_events(ev, on_nonfinite="drop")) == 199


def test_v04_recoveries_small_negative_mass_and_wrapped_phi(
    good_events: ak.Array, caplog: pytest.LogCaptureFixture
) -> None:
    def neg(flat: np.ndarray) -> None:
        flat[:3] = -0.01

    def wrap(flat: np.ndarray) -> None:
        flat[0] = 4.0

    ev = set_flat(set_flat(good_events, "Jet", "mass", neg), "Jet", "phi", wrap)
    with caplog.at_level(logging.INFO, logger="hepvld.io"):
        out = open_events(ev)
    assert len(out) == 200
    assert ak.min(out.Jet.mass) >= 0
    assert abs(ak.flatten(out.Jet.phi)[0] - (4.0 - 2 * np.pi)) < 1e-5
    assert "3 negative values in 'Jet_mass'" in caplog.text and "set to 0" in caplog.text
    assert "1 values of 'Jet_phi' in (pi, 2pi] wrapped" in caplog.text


def test_v05_zero_energies_are_cut_not_dropped(good_events: ak.Array) -> None:
    ev = set_flat(good_events, "Jet", "pt", lambda flat: flat.__setitem__(slice(None), 0.0))
    out = open_events(ev)
    assert len(out) == 200  # accepted: zero-pT jets are valid, they fail the jet cut
    mask, cutflow = select(out)
    assert not mask.any() and cutflow.total == 200
    assert cutflow.counts[2] == 0  # the ">= 4 jets" cut rejects every event, counted


def test_v06_nonfinite_ignore_is_logged(
    good_events: ak.Array, caplog: pytest.LogCaptureFixture
) -> None:
    ev = set_flat(good_events, "Jet", "pt", lambda flat: flat.__setitem__(0, np.nan))
    with caplog.at_level(logging.WARNING, logger="hepvld.io"):
        assert len(open_events(ev, on_nonfinite="ignore")) == 200
    assert "kept (on_nonfinite='ignore')" in caplog.text


# ------------------------------------------------------------------ events and counts (E)
def test_e01_duplicate_event_numbers(good_events: ak.Array, tmp_path: Path, caplog) -> None:
    numbers = ak.to_numpy(good_events.event).copy()
    numbers[10] = numbers[3]
    ev = ak.with_field(good_events, numbers, "event")
    path = tmp_path / "dup.root"
    write_root(str(path), ev)
    with pytest.raises(
        DuplicateEventError,
        match=r"dup\.root', tree 'Events': 1 event numbers occur more than once \(e\.g\. 3\).*on_duplicate='warn'",
    ):
        open_events(path)
    with pytest.raises(DuplicateEventError):
        list(iterate_events(path, step_size=7))  # across chunks of one file too
    with caplog.at_level(logging.WARNING, logger="hepvld.io"):
        assert len(open_events(path, on_duplicate="warn")) == 200
    assert "accepted: on_duplicate='warn'" in caplog.text


def test_e02_duplicates_across_files_are_logged(good_file: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hepvld.io"):
        ev = open_events([good_file, good_file])
    assert len(ev) == 400
    assert "and the files before it: 200 event numbers occur more than once" in caplog.text


def test_e03_zero_events(tmp_path: Path) -> None:
    path = tmp_path / "zero.root"
    write_root(str(path), toy_events(0))
    assert len(open_events(path)) == 0
    tensors = load_tensors(path)
    assert len(tensors) == 0 and tensors.cutflow.total == 0


def test_e04_one_event(good_events: ak.Array, tmp_path: Path) -> None:
    path = tmp_path / "one.root"
    write_root(str(path), good_events[:1])
    ev = open_events(path)
    assert len(ev) == 1
    det = detector_tensors(ev)
    assert det.objects.shape == (1, 21, 12) and np.isfinite(det.objects).all()


def test_e05_more_jets_than_max_jets(good_events: ak.Array, caplog) -> None:
    ev = good_events[:4]
    many = ak.concatenate([ev.Jet] * 8, axis=1)  # 8x the jets: > 20 in every event
    ev = ak.with_field(ev, many, "Jet")
    n_good = ak.to_numpy(ak.sum((many.pt > 25) & (abs(many.eta) < 2.5), axis=1))
    with caplog.at_level(logging.WARNING, logger="hepvld.features"):
        det = detector_tensors(ev, max_jets=20)
    assert det.mask[:, 1:].sum(axis=1).tolist() == np.minimum(n_good, 20).tolist()
    dropped = int(np.clip(n_good - 20, 0, None).sum())
    assert f"({dropped} jets dropped in total" in caplog.text


@pytest.mark.parametrize(
    ("decay", "category"),
    [("allhadronic", "all-hadronic"), ("dileptonic", "dileptonic"), ("tau", "tau in a W decay")],
)
def test_e06_truth_chain_without_semileptonic_top(decay: str, category: str, caplog) -> None:
    ev = toy_events(300, seed=3, decay=decay)
    with caplog.at_level(logging.INFO, logger="hepvld"):
        tensors = load_tensors(ev, require_truth=True)
    assert len(tensors) == 0
    cf = tensors.cutflow
    assert cf.total == 300 and cf.names[-1].startswith("semi-leptonic") and cf.passed == 0
    if cf.counts[-2]:
        assert f"{category}: {cf.counts[-2]}" in caplog.text


def test_e07_no_top_at_all(good_events: ak.Array, caplog) -> None:
    gp = good_events.GenPart
    pdg = ak.where(abs(gp.pdgId) == 6, 25, gp.pdgId)  # tops relabelled as Higgs bosons
    ev = ak.with_field(good_events, ak.with_field(gp, pdg, "pdgId"), "GenPart")
    with caplog.at_level(logging.INFO, logger="hepvld"):
        tensors = load_tensors(ev, require_truth=True)
    assert len(tensors) == 0
    assert "incomplete chain" in caplog.text


# ---------------------------------------------------------------- train --dry-run (D)
def test_d01_dry_run_opens_and_validates(good_file: Path, tmp_path: Path, capsys) -> None:
    from hepvld.train import main

    assert main([str(good_file), "--dry-run", "--preset", "tiny"]) == 0
    assert '"entries": 200' in capsys.readouterr().out
    bad = tmp_path / "bad.root"
    bad.write_text("not root")
    assert main([str(good_file), str(bad), "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert "bad.root' is not a ROOT file" in err and "Traceback" not in err
    assert inspect_files(good_file)[0]["schema"] == "nanoaod"


def test_every_error_is_a_project_error() -> None:
    for cls in (
        CorruptFileError,
        DuplicateEventError,
        InputFileNotFoundError,
        InvalidValueError,
        MissingBranchError,
        NonFiniteError,
        NotRootFileError,
        SchemaError,
        TreeNotFoundError,
        UnsupportedInputError,
    ):
        assert issubclass(cls, HepvldIOError)
