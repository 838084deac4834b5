from __future__ import annotations

import numpy as np
import pytest
from evaluation_toys import physical_toy

from hepvld.evaluation.consistency import composite_masses, mass_shell_residual, regressed_masses
from hepvld.evaluation.posterior import brute_force_posterior, flatten_detector
from hepvld.physics.constants import DERIVED, PARTONS


def consistent_event(rng, n):
    """Leaves on shell; composites = sums of leaves with their true masses."""
    p = np.zeros((n, 11, 5))
    m_leaf = np.array([4.8, 0.0, 0.1, 4.8, 0.3, 0.3])
    mom = rng.normal(scale=50.0, size=(n, 6, 3))
    e = np.sqrt(m_leaf**2 + (mom**2).sum(-1))
    p[:, :6, 0] = m_leaf
    p[:, :6, 1] = np.log(e)
    p[:, :6, 2:] = mom
    for name, leaves in DERIVED.items():
        idx = [PARTONS.index(leaf) for leaf in leaves]
        ec = e[:, idx].sum(1)
        pc = mom[:, idx].sum(1)
        j = PARTONS.index(name)
        p[:, j, 0] = np.sqrt(ec**2 - (pc**2).sum(-1))
        p[:, j, 1] = np.log(ec)
        p[:, j, 2:] = pc
    return p.reshape(n, 55)


def test_mass_shell_zero_for_consistent(rng):
    x = consistent_event(rng, 10)
    d = mass_shell_residual(x)
    assert d.shape == (10, 11)
    scale = np.exp(x.reshape(10, 11, 5)[..., 1]) ** 2
    np.testing.assert_allclose(d / scale, 0.0, atol=1e-9)


def test_composite_masses_match_regressed(rng):
    x = consistent_event(rng, 10)
    cm, rm = composite_masses(x), regressed_masses(x)
    for name in DERIVED:
        np.testing.assert_allclose(cm[name], rm[name], rtol=1e-6)
    x3 = np.stack([x, x], axis=1)  # (B, S, 55)
    assert composite_masses(x3)["t_had"].shape == (10, 2)


def test_brute_force_weights(rng):
    train_f = rng.normal(size=(500, 6))
    train_t = physical_toy(rng, 500)
    bf = brute_force_posterior(train_f, train_t, train_f[3])
    assert bf.weights.sum() == pytest.approx(1.0)
    assert np.argmax(bf.weights) == 3
    assert 1.0 <= bf.n_eff <= 500
    dens, edges = bf.histogram("t_had", "pT", bins=20)
    assert dens.shape == (20,) and np.sum(dens * np.diff(edges)) == pytest.approx(1.0)
    hot = brute_force_posterior(train_f, train_t, train_f[3], temperature=1e6)
    assert hot.n_eff > 450  # τ -> ∞: the prior


def test_flatten_detector_masks_padding(rng):
    obj = rng.normal(size=(4, 3, 2))
    mask = np.array([[1, 1, 0]] * 4, dtype=bool)
    flat = flatten_detector(obj, mask, rng.normal(size=(4, 2)))
    assert flat.shape == (4, 8)
    np.testing.assert_array_equal(flat[:, 4:6], 0.0)
