from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from hepvld.evaluation.distances import (
    PairedSamples,
    binned_kl,
    distances,
    energy_distance,
    histogram_edges,
    ks_statistic,
    wasserstein,
)


@pytest.fixture
def samples(rng):
    x = rng.normal(size=(400, 4))
    y = rng.normal(0.2, 1.3, size=(650, 4))
    x[:40, 2] = 0.0  # ties, within and across samples
    y[:25, 2] = 0.0
    x[:, 3] = np.round(x[:, 3], 1)  # heavy ties
    y[:, 3] = np.round(y[:, 3], 1)
    return x, y


def test_agrees_with_scipy_uniform(samples):
    x, y = samples
    d = distances(x, y)
    for c in range(x.shape[1]):
        assert d["wasserstein"][c] == pytest.approx(
            scipy.stats.wasserstein_distance(x[:, c], y[:, c]), rel=1e-12
        )
        assert d["energy"][c] == pytest.approx(
            scipy.stats.energy_distance(x[:, c], y[:, c]), rel=1e-12
        )
        assert d["ks"][c] == pytest.approx(
            scipy.stats.ks_2samp(x[:, c], y[:, c]).statistic, abs=1e-12
        )


def test_agrees_with_scipy_weighted(samples, rng):
    x, y = samples
    wx, wy = rng.random(len(x)), rng.random(len(y))
    d = distances(x, y, wx, wy)
    for c in range(x.shape[1]):
        assert d["wasserstein"][c] == pytest.approx(
            scipy.stats.wasserstein_distance(x[:, c], y[:, c], wx, wy), rel=1e-10
        )
        assert d["energy"][c] == pytest.approx(
            scipy.stats.energy_distance(x[:, c], y[:, c], wx, wy), rel=1e-10
        )


def test_identical_samples_are_zero(rng):
    x = rng.normal(size=(300, 3))
    d = distances(x, x.copy())
    for name, v in d.items():
        np.testing.assert_allclose(v, 0.0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("delta", [0.1, 0.5, 2.0])
def test_gaussian_shift(rng, delta):
    n = 20_000
    x = rng.normal(size=n) + delta
    y = rng.normal(size=n)
    # W1 between N(δ,1) and N(0,1) is δ; sampling noise ~ 1/sqrt(n)
    assert wasserstein(x, y) == pytest.approx(delta, abs=5 / np.sqrt(n) * 3)
    # KS: sup |Φ(t) - Φ(t - δ)| = 2Φ(δ/2) - 1
    ks_true = 2 * scipy.stats.norm.cdf(delta / 2) - 1
    assert ks_statistic(x, y) == pytest.approx(ks_true, abs=3 * 1.36 * np.sqrt(2 / n))


def test_integer_weights_equal_duplication(samples, rng):
    x, y = samples
    kx = rng.integers(0, 4, size=len(x))
    ky = rng.integers(0, 3, size=len(y))
    weighted = distances(x, y, kx.astype(float), ky.astype(float))
    duplicated = distances(np.repeat(x, kx, axis=0), np.repeat(y, ky, axis=0))
    for name in ("wasserstein", "energy", "ks"):
        np.testing.assert_allclose(
            weighted[name], duplicated[name], rtol=1e-9, atol=1e-12, err_msg=name
        )


def test_bootstrap_counts_equal_resampling(samples, rng):
    """Multinomial counts as weights reproduce a resampled sample, KL included."""
    x, y = samples
    kx = rng.multinomial(len(x), np.full(len(x), 1 / len(x)))
    ky = rng.multinomial(len(y), np.full(len(y), 1 / len(y)))
    lim = np.stack([y.min(axis=0), y.max(axis=0)], axis=1)  # same binning for both
    weighted = distances(x, y, kx.astype(float), ky.astype(float), kl_range=lim)
    resampled = distances(np.repeat(x, kx, axis=0), np.repeat(y, ky, axis=0), kl_range=lim)
    for name in weighted:
        np.testing.assert_allclose(
            weighted[name], resampled[name], rtol=1e-9, atol=1e-12, err_msg=name
        )


def test_weight_scale_invariance(samples, rng):
    x, y = samples
    wx, wy = rng.random(len(x)), rng.random(len(y))
    a = distances(x, y, wx, wy)
    b = distances(x, y, 1e3 * wx, 1e-2 * wy)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, err_msg=name)


def test_single_column_helpers_return_float(rng):
    x, y = rng.normal(size=50), rng.normal(size=60)
    for f in (wasserstein, energy_distance, ks_statistic):
        assert isinstance(f(x, y), float)


def test_batched_weights_match_single(samples, rng):
    x, y = samples
    wx = rng.random((3, len(x)))
    wy = rng.random((3, len(y)))
    pairs = PairedSamples(x, y)
    batch = pairs.compute(wx, wy, dtype=np.float64)
    for r in range(3):
        single = pairs.compute(wx[r], wy[r])
        for name in single:
            np.testing.assert_allclose(
                batch[name][r], single[name], rtol=1e-10, atol=1e-13, err_msg=name
            )
    batch32 = pairs.compute(wx, wy)  # float32 default for batches
    np.testing.assert_allclose(batch32["wasserstein"], batch["wasserstein"], rtol=1e-4)


def test_non_finite_entries_are_ignored(rng):
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(250, 2))
    x_bad = x.copy()
    x_bad[5, 0] = np.nan
    x_bad[7, 1] = np.inf
    got = distances(x_bad, y)
    ref0 = distances(np.delete(x[:, 0], 5), y[:, 0])
    ref1 = distances(np.delete(x[:, 1], 7), y[:, 1])
    for name in got:
        assert got[name][0] == pytest.approx(ref0[name][0], rel=1e-12)
        assert got[name][1] == pytest.approx(ref1[name][0], rel=1e-12)


def test_histogram_edges_constant_column():
    y = np.zeros((10, 2))
    y[:, 1] = np.arange(10)
    e = histogram_edges(y, 4)
    assert e.shape == (2, 5)
    assert e[0, 0] < 0 < e[0, -1]
    np.testing.assert_allclose(e[1, [0, -1]], [0, 9])


def test_binned_kl_smoothing():
    p = np.array([10.0, 0.0, 10.0])
    assert binned_kl(p, p) == pytest.approx(0.0)
    q = np.array([0.0, 20.0, 0.0])
    kl = binned_kl(p, q, alpha=0.5)
    pp = (p + 0.5) / 21.5
    qq = (q + 0.5) / 21.5
    assert kl == pytest.approx(np.sum(pp * np.log(pp / qq)))
    assert np.isfinite(kl)
