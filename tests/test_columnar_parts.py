"""The shortcuts the columnar path relies on agree with the general code they skip."""

from __future__ import annotations

import numpy as np
import pytest

from hepvld.features.detector import _ranked
from hepvld.io import DuplicateEventError
from hepvld.io.validate import check_unique_events, check_values, values_clean
from hepvld.physics.constants import PARTONS
from hepvld.physics.kinematics import p4_components
from hepvld.physics.partons import _by_event_then_pt, chain_momenta, chain_targets, decay_chain
from hepvld.testing.synthetic import nanoaod_history, toy_events

_CASES = [
    ("Jet", "pt", [1.0, 2.0], True),
    ("Jet", "pt", [1.0, np.nan], False),
    ("Jet", "pt", [1.0, -0.1], False),
    ("Jet", "pt", [1.0, 2e5], False),
    ("Jet", "mass", [-0.5, 3.0], False),  # repaired to 0
    ("Jet", "mass", [-3.0, 3.0], False),
    ("Jet", "eta", [-10.5, 0.0], False),
    ("GenPart", "eta", [-1e4, 1e4], True),  # beam partons: not range-checked
    ("Muon", "phi", [-3.1416, 3.1416], True),
    ("Muon", "phi", [0.0, 4.0], False),  # wrapped
    ("Muon", "phi", [0.0, 7.0], False),
    ("", "genWeight", [1.0, np.inf], False),
    ("", "genWeight", [-1.0, 5.0], True),
]


@pytest.mark.parametrize(("coll", "field", "values", "clean"), _CASES)
def test_values_clean_iff_check_values_does_nothing(
    coll: str, field: str, values: list[float], clean: bool
) -> None:
    rng = np.random.default_rng(0)
    flat = rng.uniform(0, 1, 200).astype(np.float32)  # valid for every field
    flat[[17, 101]] = values
    cols = {coll: {field: flat.copy()}}
    keep = check_values(cols, lambda c, f: f"{c}_{f}", 200, 0, "test", "drop")
    untouched = keep is None and np.array_equal(cols[coll][field], flat)
    assert values_clean(coll, field, flat) is clean
    assert untouched is clean


def test_unique_events_shortcut_matches_the_sort() -> None:
    a = np.arange(0, 500, dtype=np.uint64)
    b = np.arange(500, 900, dtype=np.uint64)
    seen = check_unique_events(a, "x")
    np.testing.assert_array_equal(check_unique_events(b, "x", seen=seen), np.arange(900))
    with pytest.raises(DuplicateEventError, match="2 event numbers occur more than once"):
        check_unique_events(np.array([3, 499, 700], np.uint64), "x", seen=seen)
    out = check_unique_events(np.array([7, 3, 1000], np.uint64), "x", seen=seen, raise_error=False)
    np.testing.assert_array_equal(out, np.union1d(seen, [7, 3, 1000]))


def test_order_shortcuts_equal_lexsort() -> None:
    rng = np.random.default_rng(1)
    for k in range(30):
        counts = rng.integers(0, 4 if k % 2 else 3, 40)
        event = np.repeat(np.arange(40), counts)
        pt = rng.choice([10.0, 20.0, 30.0], len(event))  # many ties
        if k % 3 == 0:
            pt = -np.sort(-pt)  # sorted overall: also within events
        if k % 5 == 0 and len(pt):
            pt[0] = np.nan
        np.testing.assert_array_equal(_by_event_then_pt(event, pt), np.lexsort((-pt, event)))
        order, _ = _ranked(event, pt, 40)
        np.testing.assert_array_equal(order, np.lexsort((-pt, event)))


@pytest.mark.parametrize("history", [False, True])
def test_cartesian_targets_match_vector(history: bool) -> None:
    """chain_targets (Cartesian numpy) equals the vector sums to float32 rounding except
    tt̄ px/py, which cancel to ~1e-6 GeV in these hard-process records (≤ 1e-10 GeV)."""
    ev = toy_events(3000, seed=9)
    if history:
        ev = nanoaod_history(ev, seed=4)
    chain = decay_chain(ev, tops="hard")
    new = chain_targets(chain)
    p4 = chain_momenta(chain)
    ref = np.concatenate([p4_components(p4[n]) for n in PARTONS], axis=-1).astype(np.float32)
    cancel = [PARTONS.index("ttbar") * 5 + 2, PARTONS.index("ttbar") * 5 + 3]
    rest = np.setdiff1d(np.arange(55), cancel)
    np.testing.assert_array_equal(new[:, rest], ref[:, rest])
    np.testing.assert_allclose(new[:, cancel], ref[:, cancel], rtol=0, atol=1e-10)


def test_fast_lexsort_equals_lexsort() -> None:
    from hepvld.features.detector import _lexsort_event_pt

    rng = np.random.default_rng(2)
    for k in range(20):
        event = np.sort(rng.integers(0, 50, 300))
        if k % 4 == 1:
            event = rng.integers(0, 50, 300)  # not grouped
        pt = rng.choice([0.0, -0.0, 12.5, 40.0, 1e-3, 7e4], 300)
        if k % 4 == 2:
            pt = rng.exponential(40.0, 300)  # not float32: the general lexsort
        if k % 4 == 3:
            pt = pt.astype(np.float32).astype(np.float64) * np.where(rng.random(300) < 0.1, -1, 1)
        np.testing.assert_array_equal(_lexsort_event_pt(event, pt), np.lexsort((-pt, event)))
