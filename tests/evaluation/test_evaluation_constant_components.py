import numpy as np

from hepvld.evaluation.scores import constant_components, energy_score


def test_float32_rounding_noise_counts_as_constant() -> None:
    rng = np.random.default_rng(0)
    truth = np.stack(
        [
            rng.normal(0, 50, 1000),  # real spread
            rng.normal(0, 7e-6, 1000),  # tt̄ px after float32
            np.full(1000, 4.8),  # b mass
            rng.choice([0.000511, 0.10566], 1000),
        ],
        -1,
    )  # lepton mass: two values
    assert constant_components(truth).tolist() == [False, True, True, False]


def test_energy_score_leaves_constant_components_out() -> None:
    rng = np.random.default_rng(1)
    truth = np.stack([rng.normal(0, 1, 200), np.zeros(200)], -1)
    draws = truth[:, None, :] + rng.normal(0, 1, (200, 8, 2))
    wild = draws.copy()
    wild[..., 1] += rng.normal(0, 1e3, (200, 8))  # the constant component goes wild
    np.testing.assert_allclose(energy_score(draws, truth), energy_score(wild, truth))
