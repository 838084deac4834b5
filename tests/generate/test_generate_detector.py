"""Unit tests of the parametric detector formulas (pure numpy, no Pythia needed)."""

from __future__ import annotations

import numpy as np
import pytest

from hepvld.generate import detector

N_DRAWS = 200_000
Z = 5.0  # tolerance in standard errors


def test_tracking_efficiency_matches_card() -> None:
    pid = np.array([211, 211, 211, 211, 11, 11, 11, 13, 13, 211, 211])
    pt = np.array([0.05, 0.5, 5.0, 5.0, 5.0, 500.0, 500.0, 5.0, 0.5, 5.0, 5.0])
    eta = np.array([0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0, 2.0, 1.0, 2.6, -2.0])
    expected = [0.0, 0.70, 0.95, 0.85, 0.95, 0.99, 0.90, 0.98, 0.75, 0.0, 0.85]
    np.testing.assert_allclose(detector.tracking_efficiency(pid, pt, eta), expected)


def test_lepton_identification_efficiency() -> None:
    np.testing.assert_allclose(
        detector.electron_efficiency([5.0, 30.0, 30.0, 30.0], [0.0, 1.0, -2.0, 2.6]),
        [0.0, 0.95, 0.85, 0.0],
    )
    np.testing.assert_allclose(
        detector.muon_efficiency([5.0, 30.0, 30.0, 2000.0], [0.0, 2.3, 2.45, 0.0]),
        [0.0, 0.95, 0.0, 0.95 * np.exp(0.5 - 1.0)],
    )


def test_track_resolution_formula() -> None:
    pt = np.array([50.0, 50.0, 50.0, 50.0])
    eta = np.array([0.2, 1.0, 2.0, 3.0])
    got = detector.track_resolution(np.array([211, 11, 13, 211]), pt, eta)
    expected = [
        np.sqrt(0.01**2 + 50**2 * 1.5e-4**2),
        np.sqrt(0.05**2 + 50**2 * 1.7e-3**2),
        np.sqrt(0.025**2 + 50**2 * 3.5e-4**2),
        0.0,
    ]
    np.testing.assert_allclose(got, expected)


def test_calorimeter_resolutions() -> None:
    e = np.array([100.0, 100.0, 100.0, 100.0])
    eta = np.array([0.0, 2.0, 4.0, 5.5])
    central = np.sqrt(100**2 * 0.008**2 + 100 * 0.11**2 + 0.40**2)
    np.testing.assert_allclose(
        detector.ecal_resolution(e, eta),
        [central, 2.16 * central, np.sqrt(100**2 * 0.107**2 + 100 * 2.08**2), 0.0],
    )
    np.testing.assert_allclose(
        detector.hcal_resolution(e, eta),
        [np.sqrt(100**2 * 0.05**2 + 100 * 1.5**2)] * 2
        + [np.sqrt(100**2 * 0.13**2 + 100 * 2.7**2), 0.0],
    )


def test_jet_energy_scale() -> None:
    np.testing.assert_allclose(
        detector.jet_energy_scale([25.0], [1.0]), [np.sqrt(2.35**2 / 25.0 + 1.0)]
    )
    assert np.all(detector.jet_energy_scale([20.0, 100.0, 1000.0], [0.0, 0.0, 0.0]) > 1.0)


@pytest.mark.parametrize(
    ("flavour", "pt", "expected"),
    [
        (5, 50.0, 0.85 * np.tanh(0.125) * 25.0 / (1 + 0.063 * 50)),
        (-5, 100.0, 0.85 * np.tanh(0.25) * 25.0 / (1 + 6.3)),
        (4, 50.0, 0.25 * np.tanh(0.9) / (1 + 0.065)),
        (0, 50.0, 0.01 + 0.000038 * 50),
        (21, 200.0, 0.01 + 0.000038 * 200),
    ],
)
def test_btag_efficiency(flavour: int, pt: float, expected: float) -> None:
    np.testing.assert_allclose(detector.btag_efficiency([flavour], [pt]), [expected])


def test_btag_rates_are_sensible() -> None:
    pt = np.linspace(25, 300, 50)
    b, c, light = (detector.btag_efficiency(np.full(50, f), pt) for f in (5, 4, 0))
    assert np.all((b > c) & (c > light) & (b <= 1) & (light > 0))


@pytest.mark.parametrize("probability", [0.05, 0.5, 0.95])
def test_accept_is_bernoulli(probability: float) -> None:
    rng = np.random.default_rng(1)
    passed = detector.accept(np.full(N_DRAWS, probability), rng)
    standard_error = np.sqrt(probability * (1 - probability) / N_DRAWS)
    assert abs(passed.mean() - probability) < Z * standard_error


@pytest.mark.parametrize(("mean", "sigma"), [(50.0, 5.0), (10.0, 4.0), (200.0, 0.5)])
def test_lognormal_smear_moments(mean: float, sigma: float) -> None:
    rng = np.random.default_rng(2)
    x = detector.lognormal_smear(np.full(N_DRAWS, mean), np.full(N_DRAWS, sigma), rng)
    assert np.all(x > 0)
    assert abs(x.mean() - mean) < Z * sigma / np.sqrt(N_DRAWS)
    # log(x) is exactly normal with standard deviation b: its sample std has SE b/sqrt(2N).
    b = np.sqrt(np.log1p((sigma / mean) ** 2))
    assert abs(np.log(x).std() - b) < Z * b / np.sqrt(2 * N_DRAWS)


def test_lognormal_smear_zero_mean_and_reproducibility() -> None:
    out = detector.lognormal_smear(
        np.array([0.0, -1.0, 5.0]), np.array([1.0, 1.0, 0.0]), np.random.default_rng(0)
    )
    np.testing.assert_allclose(out, [0.0, 0.0, 5.0])
    a = detector.lognormal_smear(np.ones(10), np.full(10, 0.1), np.random.default_rng(7))
    b = detector.lognormal_smear(np.ones(10), np.full(10, 0.1), np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
