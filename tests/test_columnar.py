"""The columnar path of load_tensors gives the event path's tensors, cut-flows, logs and
errors bit for bit (or hands the input to the event path)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from hepvld.data import EventTensors, load_tensors
from hepvld.io import DuplicateEventError, InvalidValueError, NonFiniteError, TruthError
from hepvld.targets import get_level
from hepvld.testing.synthetic import nanoaod_history, toy_events, write_root

_ARRAYS = (
    "objects",
    "mask",
    "globals",
    "targets",
    "target_mask",
    "weights",
    "event",
    "pass_detector",
    "pass_truth",
)
_MIXED = ["semileptonic"] * 7 + ["tau", "dileptonic", "allhadronic"]
N_EVENTS = 700


def assert_same(a: EventTensors, b: EventTensors) -> None:
    """Every array equal in shape, dtype and bytes (NaN patterns included), cut-flows
    equal in names, counts and sums of weights."""
    for name in _ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, name
        assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), name
    assert a.cutflow == b.cutflow
    assert a.phase_space == b.phase_space


def both(path: Any, caplog: pytest.LogCaptureFixture | None = None, **kw: Any) -> EventTensors:
    """Load with both readers, check they agree (and log the same), return one."""
    logs = []
    out = []
    for reader in ("events", "columnar"):
        if caplog is not None:
            caplog.clear()
        with caplog.at_level(logging.INFO, logger="hepvld") if caplog else _null():
            out.append(load_tensors(path, reader=reader, **kw))
        if caplog is not None:
            logs.append([(r.name, r.levelno, r.getMessage()) for r in caplog.records])
    assert_same(*out)
    if caplog is not None:
        assert logs[0] == logs[1]
    return out[1]


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("columnar")
    toy = toy_events(N_EVENTS, seed=11, decay=_MIXED)
    out = {
        "nano": tmp / "nano.root",
        "baskets": tmp / "baskets.root",
        "delphes": tmp / "delphes.root",
        "history": tmp / "history.root",
        "history_noflags": tmp / "history_noflags.root",
    }
    write_root(str(out["nano"]), toy)
    write_root(str(out["baskets"]), toy, basket_size=170, compression="zstd:5")
    write_root(str(out["delphes"]), toy, layout="delphes")
    write_root(str(out["history"]), _history(toy, seed=2))
    write_root(str(out["history_noflags"]), _history(toy, status_flags=False, seed=3))
    return out


def _history(toy: ak.Array, **kw: Any) -> ak.Array:
    """NanoAOD-like shower history, recoil copies with |pT| (the jitter can go below 0)."""
    ev = nanoaod_history(toy, **kw)
    return _with(ev, "GenPart", "pt", abs(ev.GenPart.pt))


@pytest.mark.parametrize("kind", ["nano", "baskets", "delphes", "history", "history_noflags"])
@pytest.mark.parametrize("require_truth", [True, False])
def test_fixtures_bit_identical(
    files: dict[str, Path], kind: str, require_truth: bool, caplog: pytest.LogCaptureFixture
) -> None:
    out = both(files[kind], caplog, require_truth=require_truth, step_size=300)
    assert len(out) > 100 and out.cutflow.total == N_EVENTS
    if require_truth:  # the mixed decays are dropped by the truth requirement
        assert out.cutflow.names[-1] == "semi-leptonic (e/mu) ttbar truth"
        assert out.cutflow.counts[-1] < out.cutflow.counts[-2]
        assert np.isfinite(out.targets).all()


@pytest.mark.parametrize(
    "options",
    [
        {"parameterisation": "decay"},
        {"tops": "after_isr"},
        {"parameterisation": "decay", "tops": "after_isr"},
    ],
)
def test_parton_options(files: dict[str, Path], options: dict[str, str]) -> None:
    out = both(files["history"], level=get_level("parton", options))
    hard = load_tensors(files["history"])
    assert out.targets.shape == hard.targets.shape
    if options.get("tops") == "after_isr":  # the boosted tops differ from the hard ones
        assert not np.array_equal(out.targets, hard.targets)


def test_after_isr_without_last_copies_raises_the_same(files: dict[str, Path]) -> None:
    level = get_level("parton", {"tops": "after_isr"})
    messages = []
    for reader in ("events", "columnar"):
        with pytest.raises(TruthError, match="last copies") as err:
            load_tensors(files["nano"], level=level, reader=reader)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and f"entries 0-{N_EVENTS}" in messages[0]


def test_generated_file(request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("tiny_root_file")
    for options in ({}, {"tops": "after_isr"}, {"parameterisation": "decay"}):
        out = both(path, level=get_level("parton", options), step_size=120)
        assert len(out) > 100
    both(path, require_truth=False)


def test_ranges_several_files_and_chunks(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # the two files hold the same event numbers: across files that is only logged
    out = both([files["nano"], files["baskets"]], caplog, entry_start=300, entry_stop=1400)
    assert out.cutflow.total == 1100
    assert "and the files before it" in caplog.text
    out = both([files["nano"], files["delphes"]], entry_start=100, step_size=333)
    assert out.cutflow.total == 2 * N_EVENTS - 100


def test_duplicate_event_numbers_raise_the_same(tmp_path: Path) -> None:
    ev = toy_events(300, seed=4)
    ev = ak.with_field(ev, np.r_[np.arange(150), np.arange(150)].astype(np.uint64), "event")
    path = tmp_path / "dup.root"
    write_root(str(path), ev)
    messages = []
    for reader in ("events", "columnar"):
        with pytest.raises(DuplicateEventError) as err:
            load_tensors(path, reader=reader, step_size=100)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    both(path, on_duplicate="warn", step_size=100)


def _with(events: ak.Array, coll: str, field: str, values: ak.Array) -> ak.Array:
    return ak.with_field(events, ak.with_field(events[coll], values, field), coll)


@pytest.mark.parametrize(
    ("coll", "field", "value", "error"),
    [
        ("Jet", "pt", np.nan, NonFiniteError),
        ("GenPart", "pt", np.inf, NonFiniteError),
        ("Muon", "eta", 11.0, InvalidValueError),
        ("GenPart", "mass", -0.5, None),  # rounding: set to 0 (logged)
        ("Electron", "phi", 4.0, None),  # wrapped into [-pi, pi] (logged)
        ("Jet", "mass", -3.0, InvalidValueError),
    ],
)
def test_invalid_values_go_through_the_event_reader(
    tmp_path: Path,
    coll: str,
    field: str,
    value: float,
    error: type[Exception] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = toy_events(300, seed=5)
    flat = ak.to_numpy(ak.flatten(ev[coll][field])).astype(np.float32).copy()
    flat[[3, 40, 41]] = value  # entries of the first chunk only
    ev = _with(ev, coll, field, ak.unflatten(flat, ak.num(ev[coll])))
    path = tmp_path / "bad.root"
    write_root(str(path), ev)
    if error is not None:
        messages = []
        for reader in ("events", "columnar"):
            with pytest.raises(error) as err:
                load_tensors(path, reader=reader, step_size=100)
            messages.append(str(err.value))
        assert messages[0] == messages[1]
    out = both(path, caplog, on_nonfinite="drop", step_size=100)
    assert out.cutflow.total <= 300


def test_completion_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No Jet_btagged (DeepJet score), no isolation, no genWeight, no event number."""
    ev = toy_events(500, seed=6)
    score = ak.where(ev.Jet.btagged, 0.9, 0.1)
    jet = ak.zip(
        {k: ev.Jet[k] for k in ("pt", "eta", "phi", "mass")}
        | {"btagDeepFlavB": ak.values_astype(score, np.float32)},
        with_name="Momentum4D",
    )
    muon = ak.zip({k: ev.Muon[k] for k in ("pt", "eta", "phi", "mass", "charge")})
    ev = ak.with_field(ak.with_field(ev, jet, "Jet"), muon, "Muon")
    ev = ev[[f for f in ev.fields if f not in ("genWeight", "event")]]
    path = tmp_path / "nano_like.root"
    write_root(str(path), ev)
    out = both(path, caplog, step_size=200)
    assert out.cutflow.total == 500 and (out.event == out.event.astype(np.int64)).all()


def test_unused_branches_are_not_validated(tmp_path: Path) -> None:
    """The documented difference: a NaN in a branch the tensors do not use (GenJet_pt)
    fails the event reader but not the columnar read."""
    ev = toy_events(300, seed=7)
    flat = ak.to_numpy(ak.flatten(ev.GenJet.pt)).copy()
    flat[5] = np.nan
    ev = _with(ev, "GenJet", "pt", ak.unflatten(flat, ak.num(ev.GenJet)))
    path = tmp_path / "genjet_nan.root"
    write_root(str(path), ev)
    with pytest.raises(NonFiniteError, match="GenJet_pt"):
        load_tensors(path, reader="events")
    reference = load_tensors(path, reader="events", on_nonfinite="ignore")
    assert_same(load_tensors(path, reader="columnar"), reference)


def test_what_is_not_covered_takes_the_event_path(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="'particle' target level"):
        load_tensors(files["nano"], reader="columnar", level="particle")
    with pytest.raises(ValueError, match="reader options \\['branches'\\]"):
        load_tensors(files["nano"], reader="columnar", branches=("Jet",))
    with pytest.raises(ValueError, match="not ROOT file paths"):
        load_tensors(toy_events(50, seed=1), reader="columnar")
    with pytest.raises(ValueError, match="reader="):
        load_tensors(files["nano"], reader="fast")
    # auto: the particle level and arrays are read by the event path, unchanged
    auto = load_tensors(files["nano"], level="particle", entry_stop=300)
    assert_same(
        auto, load_tensors(files["nano"], level="particle", entry_stop=300, reader="events")
    )
    arr = toy_events(200, seed=8)
    assert_same(load_tensors(arr), load_tensors(arr, reader="events"))
