from __future__ import annotations

import numpy as np
import pytest
import vector
from evaluation_toys import physical_toy

from hepvld.evaluation.aggregates import (
    COMPONENT_TYPES,
    FEATURE_DIM,
    aggregate,
    feature_index,
    feature_labels,
    feature_table,
    kinematics,
    kinematics_to_targets,
)
from hepvld.evaluation.bootstrap import (
    bootstrap_counts,
    bootstrap_mean,
    compare_samples,
    global_sample,
    truth_floor,
)
from hepvld.physics.constants import PARTONS


def test_kinematics_round_trip(rng):
    x = physical_toy(rng, 50)
    k = kinematics(x)
    assert k.shape == (50, 11, len(COMPONENT_TYPES))
    np.testing.assert_allclose(kinematics_to_targets(k), x, rtol=1e-10, atol=1e-9)


def test_kinematics_match_vector(rng):
    x = physical_toy(rng, 20)
    k = kinematics(x)
    p = x.reshape(20, 11, 5)
    v = vector.array({"px": p[..., 2], "py": p[..., 3], "pz": p[..., 4], "E": np.exp(p[..., 1])})
    np.testing.assert_allclose(k[..., COMPONENT_TYPES.index("pT")], v.pt)
    np.testing.assert_allclose(k[..., COMPONENT_TYPES.index("eta")], v.eta)
    np.testing.assert_allclose(k[..., COMPONENT_TYPES.index("mass")], p[..., 0])


def test_zero_pt_gives_finite_eta(rng):
    x = physical_toy(rng, 3)
    x[:, 52] = 0.0  # ttbar px
    x[:, 53] = 0.0  # ttbar py
    assert np.all(np.isfinite(feature_table(x)))


def test_feature_table_layout(rng):
    x = physical_toy(rng, 5)
    f = feature_table(x)
    assert f.shape == (5, FEATURE_DIM) and len(feature_labels()) == FEATURE_DIM
    np.testing.assert_array_equal(f[:, :55], x)
    i = feature_index("t_had", "pT")
    assert feature_labels()[i] == "t_had/pT"
    np.testing.assert_allclose(f[:, i], np.hypot(x[:, 47], x[:, 48]))
    assert feature_index("W_had", "mass") == feature_index("W_had", "M")


def test_aggregate_sums():
    v = np.zeros(FEATURE_DIM)
    v[:55] = 1.0
    v[55:] = 2.0
    a = aggregate(v)
    assert a["total"] == 55
    np.testing.assert_array_equal(a["per_particle"], np.full(len(PARTONS), 5.0))
    expected = [11.0 if t in ("mass", "px", "py", "pz") else 22.0 for t in COMPONENT_TYPES]
    np.testing.assert_array_equal(a["per_type"], expected)


def test_bootstrap_mean_error_matches_standard_error(rng):
    values = rng.normal(size=(4000, 1))
    _mean, reps = bootstrap_mean(values, n_boot=200, rng=rng)
    assert np.std(reps[:, 0]) == pytest.approx(1 / np.sqrt(4000), rel=0.25)


def test_counts_sum_to_n(rng):
    c = bootstrap_counts(37, 5, rng)
    np.testing.assert_array_equal(c.sum(axis=1), 37)


def test_compare_and_floor(rng):
    truth = physical_toy(rng, 600)
    draws = truth[:, None] + rng.normal(size=(600, 3, 55))
    x, w, ev = global_sample(draws, use="all")
    assert x.shape == (1800, 55) and w.sum() == pytest.approx(600)
    res = compare_samples(x, truth, w, test_event=ev, paired=True, n_boot=8, rng=rng)
    val, err = res.aggregates("wasserstein")["total"]
    assert np.isfinite(val) and err > 0
    floor = truth_floor(truth, n_boot=8, rng=rng)
    assert floor.n_test == 300 and floor.n_reference == 300
    floor2 = truth_floor(truth, second=physical_toy(rng, 900), n_boot=0, rng=rng)
    assert floor2.n_test == 600
    # a model that is far off is far above the floor
    far = compare_samples(truth + 100.0, truth, n_boot=0, rng=rng)
    assert (
        far.aggregates("wasserstein")["total"][0] > 10 * floor.aggregates("wasserstein")["total"][0]
    )
