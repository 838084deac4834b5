"""Background subtraction before (classifier signal weights) and after unfolding."""

from __future__ import annotations

import numpy as np
import pytest

from hepvld.background import signal_weights, subtract_after
from hepvld.io.unbinned import histogram, poisson_replicas


def test_signal_weights_recover_the_signal_fraction_and_shape() -> None:
    rng = np.random.default_rng(0)
    n_s, n_b = 6000, 1500
    sig = rng.normal(0.0, 1.0, size=(n_s, 2))
    bkg = rng.normal(2.0, 1.0, size=(n_b, 2))
    data = np.concatenate([sig, bkg]).astype(np.float32)
    template = rng.normal(2.0, 1.0, size=(4000, 2)).astype(np.float32)  # independent
    w, loss = signal_weights(data, template, n_b, epochs=6, seed=1)
    assert loss < np.log(2)
    assert w.sum() == pytest.approx(n_s, rel=0.05)
    # the weighted data's first coordinate follows the signal's mean, not the mixture's
    assert abs(np.average(data[:, 0], weights=w)) < 0.08
    assert np.mean(data[:, 0]) > 0.3
    # signal-like events keep weight ~1, background-like ~0
    assert w[:n_s].mean() > 0.9 and w[n_s:].mean() < 0.4


def test_subtract_after_closes_on_independent_samples() -> None:
    rng = np.random.default_rng(2)
    edges = np.linspace(-3, 6, 10)
    sig = rng.normal(0, 1, size=(8000, 1)) + 0.3 * rng.normal(size=(8000, 4))
    bkg_in_data = rng.normal(2, 1, size=(2000, 1)) + 0.3 * rng.normal(size=(2000, 4))
    template = rng.normal(2, 1, size=(8000, 1)) + 0.3 * rng.normal(size=(8000, 4))
    data = np.concatenate([sig, bkg_in_data])
    hd = histogram(data, edges, bootstrap=poisson_replicas(np.arange(len(data)), 100))
    hb = histogram(
        template, edges, bootstrap=poisson_replicas(np.arange(len(template)) + 10**6, 100)
    )
    hs = subtract_after(hd, hb, scale=2000 / 8000)
    truth = histogram(sig, edges).nominal
    pulls = (hs.nominal - truth) / hs.stat
    assert np.all(np.abs(pulls) < 4)
    assert np.all(hs.stat > hd.stat)  # the template's error is added
    with pytest.raises(ValueError, match="edges"):
        subtract_after(hd, histogram(template, edges[:-1]))
