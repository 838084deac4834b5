"""Slow closure study (run by hand: ``pytest -m slow tests/test_closure_slow.py``).

Generates a sample, trains a ``small`` VLD for a few CPU minutes and checks that the
posterior draws put the W and top mass peaks (from summed daughters) where the truth has
them. Tolerances: a few GeV, far wider than the statistical error of the medians
(~0.1 GeV for hundreds of events x draws) and far narrower than the spread of an
untrained model (W peak at ~150 GeV).
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
    assert main(["--output", str(out), "--events", "4000", "--fast-physics", "--train-time", "480",
                 "--n-samples", "16", "--steps", "20"]) == 0
    import hepvld
    from hepvld.data import split_labels
    from hepvld.evaluation.consistency import composite_masses
    from hepvld.features import select
    from hepvld.io import open_events
    from hepvld.train import SPLIT

    events = open_events(out / "ttbar.root")
    events = events[select(events, require_truth=True)[0]]
    test = events[split_labels(ak.to_numpy(events["event"]), SPLIT) == 2]
    draws = ak.to_numpy(hepvld.unfold(test, model=out / "run", n_samples=16, steps=20, raw=True).raw)
    masses = composite_masses(draws.astype(np.float64))
    assert abs(np.median(masses["W_had"]) - 80.4) < 5.0
    assert abs(np.median(masses["t_had"]) - 172.8) < 8.0
