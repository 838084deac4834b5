from __future__ import annotations

import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hepvld.data import (
    EventTensors,
    load_tensors,
    prepare_data,
    split_by_event,
    split_labels,
    splitmix64,
)
from hepvld.io import open_events
from hepvld.physics import decay_chain, target_index
from hepvld.testing.synthetic import toy_events, write_root


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.root"
    write_root(str(path), toy_events(1200, seed=21, decay=["semileptonic"] * 9 + ["tau"]))
    return path


@pytest.fixture(scope="module")
def tensors(toy_file: Path) -> EventTensors:
    return load_tensors(toy_file)


def test_load_tensors(
    toy_file: Path, tensors: EventTensors, caplog: pytest.LogCaptureFixture
) -> None:
    B = len(tensors)
    assert B > 100 and tensors.objects.shape == (B, 21, 12) and tensors.targets.shape == (B, 11, 5)
    assert tensors.target_mask.shape == (B, 11) and tensors.target_mask.all()
    assert tensors.event.dtype == np.uint64 and tensors.weights.dtype == np.float32
    assert tensors.cutflow.total == 1200 and tensors.cutflow.passed == B
    with caplog.at_level(logging.INFO, logger="hepvld.data"):
        chunked = load_tensors(toy_file, step_size=250, entry_stop=1000)
    assert "dropped" in caplog.text and "all events" in caplog.text
    assert chunked.cutflow.total == 1000
    np.testing.assert_array_equal(chunked.event, tensors.event[tensors.event < 1000])
    no_truth = load_tensors(toy_events(300, seed=1), require_truth=False)
    assert no_truth.targets is None and len(no_truth.cutflow) == 4


def test_subset_concatenate_empty(tensors: EventTensors) -> None:
    a, b = tensors.subset(slice(0, 10)), tensors.subset(np.arange(10, len(tensors)))
    both = EventTensors.concatenate([a, b])
    np.testing.assert_array_equal(both.objects, tensors.objects)
    assert both.cutflow.total == 2 * tensors.cutflow.total  # cut-flows add
    assert a.objects.flags["C_CONTIGUOUS"]
    empty = EventTensors.empty()
    assert len(empty) == 0 and empty.targets.shape == (0, 11, 5)
    assert len(EventTensors.concatenate([empty, a])) == 10
    assert len(load_tensors(toy_events(0))) == 0
    with pytest.raises(ValueError, match="rows"):
        EventTensors(a.objects, a.mask[:5], a.globals, a.targets, a.weights, a.event)


def test_split_is_deterministic_and_stable(tensors: EventTensors) -> None:
    ev = np.arange(100_000, dtype=np.uint64)
    labels = split_labels(ev, (0.8, 0.1, 0.1))
    frac = np.bincount(labels) / len(ev)
    np.testing.assert_allclose(frac, [0.8, 0.1, 0.1], atol=0.01)
    perm = np.random.default_rng(0).permutation(len(ev))
    np.testing.assert_array_equal(split_labels(ev[perm], (0.8, 0.1, 0.1)), labels[perm])
    extended = split_labels(np.arange(200_000, dtype=np.uint64), (0.8, 0.1, 0.1))
    np.testing.assert_array_equal(extended[:100_000], labels)
    assert (split_labels(ev, (0.8, 0.1, 0.1), salt=1) != labels).any()
    assert splitmix64(np.array([0], np.uint64))[0] == np.uint64(0xE220A8397B1DCDAF)
    train, val, test = split_by_event(tensors)
    assert len(train) + len(val) + len(test) == len(tensors)
    assert not set(train.event) & set(test.event)
    with pytest.raises(ValueError, match="sum to 1"):
        split_labels(ev, (0.5, 0.1))


def test_prepare_data_standardises_with_the_level_preprocessing(toy_file: Path) -> None:
    train, _, state = prepare_data([toy_file], max_jets=20)
    assert train["targets"].shape[1:] == (11, 5) and train["target_mask"].all()
    assert set(state) == {"detector_preprocessor", "target_preprocessor"}
    # standardised on the training part: mean 0, unit spread where the spread is not floored
    mean = train["targets"].reshape(len(train["targets"]), -1).mean(0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)
    again, _, _ = prepare_data([toy_file], max_jets=20, preprocessing=state)
    np.testing.assert_array_equal(again["targets"], train["targets"])
    with pytest.raises(ValueError, match="passes the selection"):
        prepare_data([toy_file], max_jets=20, entry_stop=0)


def _robust_tol(x: np.ndarray) -> float:
    mad = 1.4826 * np.median(np.abs(x - np.median(x)))
    return 1.0 + 4 * 1.2533 * mad / np.sqrt(len(x))


def test_tiny_generated_file_end_to_end(request: pytest.FixtureRequest) -> None:
    """The generator's file (session fixture from tests/conftest.py) read end to end."""
    try:
        path = request.getfixturevalue("tiny_root_file")
    except pytest.FixtureLookupError:
        pytest.skip("tiny_root_file fixture not available yet")
    events = open_events(path)
    assert decay_chain(events).valid.all(), "schema: every event has a semi-leptonic chain"
    t = load_tensors(path)
    assert t.cutflow.total == len(events) and t.cutflow.passed == len(t) > 0
    assert np.isfinite(t.objects).all() and np.isfinite(t.targets).all()
    for name, ref in [("W_lep", 80.4), ("W_had", 80.4), ("t_lep", 173.0), ("t_had", 173.0)]:
        m = t.targets.reshape(len(t), -1)[:, target_index(name, "M")].astype(np.float64)
        assert abs(np.median(m) - ref) < _robust_tol(m), (name, np.median(m))
    assert ak.all(events.event >= 0)
