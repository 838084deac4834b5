from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from hepvld.evaluation.calibration import coverage, pit, rank_histogram, ranks
from hepvld.evaluation.scores import (
    crps_fair,
    crps_gaussian,
    energy_score,
    prior_reference,
    resolution,
    weighted_quantile,
)


def calibrated_toy(rng, b=3000, s=32, x=3, sigma=1.0, draw_sigma=None):
    """Per-event Gaussian posterior N(mu_i, sigma²); truth drawn from it."""
    mu = rng.normal(scale=3.0, size=(b, x))
    truth = mu + sigma * rng.normal(size=(b, x))
    ds = sigma if draw_sigma is None else draw_sigma
    draws = mu[:, None] + ds * rng.normal(size=(b, s, x))
    return mu, truth, draws


def test_crps_matches_closed_form(rng):
    mu, truth, draws = calibrated_toy(rng, b=2000, s=500, x=2)
    got = crps_fair(draws, truth).mean(axis=0)
    want = crps_gaussian(mu, 1.0, truth).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=0.01)


def test_crps_fair_unbiased_small_s(rng):
    # the fair estimator has no 1/S bias: S = 2 agrees with the closed form on average
    mu, truth, draws = calibrated_toy(rng, b=40_000, s=2, x=1)
    assert crps_fair(draws, truth).mean() == pytest.approx(
        crps_gaussian(mu, 1.0, truth).mean(), rel=0.02
    )


def test_reference_is_worse_than_sharp_posterior(rng):
    _mu, truth, draws = calibrated_toy(rng, sigma=0.5)
    ref = prior_reference(truth, len(truth), draws.shape[1], rng)
    assert ref.shape == draws.shape
    model, reference = crps_fair(draws, truth).mean(0), crps_fair(ref, truth).mean(0)
    assert np.all(model < 0.5 * reference)
    es_m = energy_score(draws, truth).mean()
    es_r = energy_score(ref, truth).mean()
    assert es_m < es_r


def test_energy_score_1d_equals_crps(rng):
    _, truth, draws = calibrated_toy(rng, b=200, s=8, x=2)
    es = energy_score(draws, truth, scale=np.ones(2), groups=[np.array([0]), np.array([1])])
    np.testing.assert_allclose(es, crps_fair(draws, truth), rtol=1e-10)


def test_resolution_of_median(rng):
    b = 20_000
    truth = rng.normal(size=(b, 2))
    draws = truth[:, None] + 0.3 + 2.0 * rng.normal(size=(b, 1, 2))  # S=1: median = the draw
    draws = np.repeat(draws, 3, axis=1)
    res, resid = resolution(draws, truth)
    np.testing.assert_allclose(res.bias, 0.3, atol=0.05)
    np.testing.assert_allclose(res.width, 2.0, rtol=0.05)
    np.testing.assert_allclose(res.width_iqr, 2.0, rtol=0.05)
    assert resid.shape == (b, 2)


def test_weighted_quantile_integer_weights(rng):
    v = rng.normal(size=(101, 2))
    k = rng.integers(1, 4, size=101)
    got = weighted_quantile(v, 0.5, k.astype(float))
    want = np.quantile(np.repeat(v, k, axis=0), 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("method", ["pit", "quantile"])
def test_coverage_of_calibrated_toy_is_nominal(rng, method):
    s = 16 if method == "pit" else 400  # the quantile interval is only exact for large S
    b = 3000 if method == "pit" else 1000
    _, truth, draws = calibrated_toy(rng, b=b, s=s, x=3)
    levels = (0.5, 0.68, 0.95)
    cov = coverage(draws, truth, levels, method=method, rng=rng)
    for j, lv in enumerate(levels):
        lo, hi = binom.ppf([0.0005, 0.9995], b, lv) / b
        tol = 0.01 if method == "quantile" else 0.0  # O(1/S) interpolation bias
        assert np.all((cov.coverage[j] >= lo - tol) & (cov.coverage[j] <= hi + tol)), (
            lv,
            cov.coverage[j],
        )
    assert np.all(np.abs(cov.pull()) < 5)


def test_overconfident_toy_undercovers(rng):
    _, truth, draws = calibrated_toy(rng, draw_sigma=0.5)
    cov = coverage(draws, truth, (0.68,), rng=rng)
    assert np.all(cov.coverage < 0.6)


def test_rank_histogram_calibrated_uniform(rng):
    _, truth, draws = calibrated_toy(rng, x=4)
    rh = rank_histogram(ranks(draws, truth, rng), draws.shape[1])
    assert rh.counts.shape[0] == 4
    assert np.all(rh.pvalue > 1e-4)
    assert rh.counts.sum(axis=1) == pytest.approx(np.full(4, len(truth)))


def test_rank_histogram_overconfident_rejected(rng):
    _, truth, draws = calibrated_toy(rng, x=4, draw_sigma=0.5)
    rh = rank_histogram(ranks(draws, truth, rng), draws.shape[1])
    assert np.all(rh.pvalue < 1e-6)


def test_ranks_break_ties_randomly(rng):
    draws = np.zeros((5000, 7, 1))
    truth = np.zeros((5000, 1))
    r = ranks(draws, truth, rng)
    assert r.min() == 0 and r.max() == 7
    assert rank_histogram(r, 7).pvalue[0] > 1e-4
    u = pit(draws, truth, rng)
    assert u.min() >= 0 and u.max() <= 1
