from __future__ import annotations

import pickle

import awkward as ak
import numpy as np
import pytest

from hepvld.features import Cutflow, select
from hepvld.testing.synthetic import toy_events


@pytest.fixture(scope="module")
def events() -> ak.Array:
    return toy_events(600, seed=5, decay=["semileptonic"] * 4 + ["dileptonic"])


def _reference(events: ak.Array) -> np.ndarray:
    """Per-event Python reference (slow, only for a cross-check)."""
    out = []
    for ev in ak.to_list(events):
        leps = [
            e
            for e in ev["Electron"]
            if e["pt"] > 25 and abs(e["eta"]) < 2.5 and e["pfRelIso03_all"] < 0.12
        ]
        leps += [
            m
            for m in ev["Muon"]
            if m["pt"] > 25 and abs(m["eta"]) < 2.5 and m["pfRelIso04_all"] < 0.25
        ]
        jets = [j for j in ev["Jet"] if j["pt"] > 25 and abs(j["eta"]) < 2.5]
        out.append(len(leps) == 1 and len(jets) >= 4 and sum(j["btagged"] for j in jets) >= 2)
    return np.array(out)


def test_select_matches_reference(events: ak.Array) -> None:
    mask, cf = select(events)
    np.testing.assert_array_equal(mask, _reference(events))
    assert cf.total == 600 and cf.passed == mask.sum() and len(cf) == 4
    assert all(a >= b for a, b in zip(cf.counts, cf.counts[1:]))


def test_truth_requirement(events: ak.Array) -> None:
    mask, _cf = select(events)
    mask_t, cf_t = select(events, require_truth=True)
    assert (mask_t <= mask).all() and len(cf_t) == 5
    assert cf_t.passed == mask_t.sum() < mask.sum()  # dileptonic events removed


def test_cutflow_merge_pickle_str(events: ak.Array) -> None:
    _, a = select(events[:300])
    _, b = select(events[300:])
    _, whole = select(events)
    merged = a + b
    assert merged.counts == whole.counts and merged.names == whole.names
    assert sum([a, b]).counts == whole.counts
    assert pickle.loads(pickle.dumps(merged)) == merged
    assert Cutflow.from_dict(merged.to_dict()) == merged
    text = str(merged)
    assert "all events" in text and str(whole.passed) in text
    extra = Cutflow(["all events", "new cut"], [5, 2], [5.0, 2.0])
    m2 = merged + extra
    assert m2["all events"] == 605 and m2.names[-1] == "new cut"
    assert str(Cutflow()).startswith("cut")


def test_select_empty(events: ak.Array) -> None:
    mask, cf = select(events[:0], require_truth=True)
    assert mask.shape == (0,) and mask.dtype == bool and cf.total == 0
