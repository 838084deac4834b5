"""Slow closure study (run by hand: ``pytest -m slow tests/test_closure_slow.py``).

Generates a sample, trains a ``small`` VLD for a few CPU minutes and checks that the
posterior draws returned by ``hepvld.unfold`` put the W and top mass peaks where the truth
has them, that the leaves are consistent with them (mass of the summed daughters), and
that the posteriors use the detector: the posterior mean of the lepton and neutrino px
must correlate with the truth (a model that ignores the detector gives r ~ 0; measured
r = 0.94 and 0.82 after 1200 steps, docs/models.md). Tolerances: a few GeV, far wider than
the statistical error of the medians (~0.1 GeV for hundreds of events x draws) and far
narrower than the spread of an untrained model (W peak at ~150 GeV); the correlation
thresholds sit many standard errors ((1 - r^2) / sqrt(n) < 0.05 for n ~ 400) below the
measured values and far above 0.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_mass_peaks_close_after_training(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.demo import main

    out = tmp_path / "demo"
    assert (
        main(
            [
                "--output",
                str(out),
                "--events",
                "4000",
                "--fast-physics",
                "--train-steps",
                "3000",
                "--train-time",
                "600",
                "--n-samples",
                "16",
                "--steps",
                "20",
            ]
        )
        == 0
    )
    import hepvld
    from hepvld.data import split_labels
    from hepvld.evaluation.consistency import composite_masses
    from hepvld.features import select
    from hepvld.io import open_events
    from hepvld.physics import parton_targets, target_index
    from hepvld.train import SPLIT

    events = open_events(out / "ttbar.root")
    events = events[select(events, require_truth=True)[0]]
    test = events[split_labels(ak.to_numpy(events["event"]), SPLIT) == 2]
    unfolded = hepvld.unfold(test, model=out / "run", n_samples=16, steps=20, raw=True)
    targets = parton_targets(test).astype(np.float64)
    truth = composite_masses(targets)
    draws = ak.to_numpy(unfolded.raw).astype(np.float64)  # (events, draws, 55)
    summed = composite_masses(draws)
    for name, tolerance in (("W_had", 5.0), ("W_lep", 5.0), ("t_had", 8.0), ("t_lep", 8.0)):
        peak = np.median(ak.to_numpy(ak.drop_none(unfolded[name].mass, axis=0)))
        assert abs(peak - np.median(truth[name])) < tolerance, (name, peak)
        # the leaves add up to the same resonances, within twice the tolerance
        assert abs(np.median(summed[name]) - np.median(truth[name])) < 2 * tolerance, (
            name,
            "summed",
        )
    mean = draws.mean(axis=1)
    for name, threshold in (("lep", 0.8), ("nu", 0.5)):
        index = target_index(name, "px")
        r = np.corrcoef(mean[:, index], targets[:, index])[0, 1]
        assert r > threshold, (name, r)
