"""hepvld.data at the particle level: fakes / misses flagged and counted, training set."""

from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepvld.data import EventTensors, load_tensors, prepare_data
from hepvld.features import select
from hepvld.targets import get_level
from hepvld.testing.synthetic import toy_events, write_root

N = 1500


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(N, seed=31, decay=["semileptonic"] * 9 + ["tau"])


@pytest.fixture(scope="module")
def toy_file(events: ak.Array, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.root"
    write_root(str(path), events)
    return path


def test_flags_and_counts_add_up(events: ak.Array, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hepvld.data"):
        t = load_tensors(events, level="particle", step_size=400)
    det, _ = select(events, require_truth=True)
    truth = get_level("particle").truth_selection(events).passed
    assert len(t) == det.sum() and t.pass_detector.all()
    np.testing.assert_array_equal(t.pass_truth, truth[det])
    ps = t.phase_space.as_dict()
    assert ps["pass detector"] == det.sum() and ps["pass truth"] == truth.sum()
    assert ps["pass both"] == (det & truth).sum()
    assert ps["pass both"] + ps["fakes (pass detector, fail truth)"] == ps["pass detector"]
    assert ps["pass both"] + ps["misses (pass truth, fail detector)"] == ps["pass truth"]
    assert (
        ps["fakes (pass detector, fail truth)"] > 0 and ps["misses (pass truth, fail detector)"] > 0
    )
    assert "misses (pass truth, fail detector)" in caplog.text
    cf = t.cutflow
    assert cf.names[-1] == "truth: >= 2 b-jets" and cf.passed == ps["pass both"]
    assert cf.total == N
    # misses on request, flagged
    m = load_tensors(events, level="particle", include_misses=True)
    assert len(m) == (det | truth).sum()
    assert (~m.pass_detector).sum() == ps["misses (pass truth, fail detector)"]
    assert m.pass_truth[~m.pass_detector].all()
    # parton level: unchanged, all flags true, no phase-space counts
    p = load_tensors(events)
    assert p.pass_detector.all() and p.pass_truth.all() and len(p.phase_space) == 0
    # subset / concatenate keep flags and sum the counts
    both = EventTensors.concatenate([m.subset(slice(0, 7)), m.subset(np.arange(7, len(m)))])
    np.testing.assert_array_equal(both.pass_detector, m.pass_detector)
    assert both.phase_space["pass truth"] == 2 * ps["pass truth"]
    empty = EventTensors.empty(level="particle")
    assert empty.targets.shape == (0, 17, 9) and empty.pass_truth.shape == (0,)


def test_prepare_data_trains_on_the_level_phase_space(
    toy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hepvld.data"):
        train, val, state = prepare_data([toy_file], max_jets=20, level="particle")
    assert "fakes (pass detector, fail truth) and are not trained on" in caplog.text
    assert train["targets"].shape[1:] == (17, 9) and train["target_mask"].shape[1:] == (17,)
    assert (train["targets"][~train["target_mask"]] == 0).all()
    assert state["target_preprocessor"]["type"] == "ParticlePreprocessing"
    wide = get_level("particle", {"phase_space": "wide"})
    wtrain, wval, _ = prepare_data([toy_file], max_jets=20, level=wide)
    assert len(wtrain) and len(wtrain["targets"]) + len(wval["targets"]) > len(
        train["targets"]
    ) + len(val["targets"])
    # reusing the stored preprocessing gives the same arrays
    again, _, _ = prepare_data([toy_file], max_jets=20, level="particle", preprocessing=state)
    np.testing.assert_array_equal(again["targets"], train["targets"])
