"""The quality benchmark's table code (benchmarks/quality/metrics.py) on tiny inputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hepvld.targets import PARTON
from hepvld.testing.synthetic import toy_events

PATH = Path(__file__).parents[2] / "benchmarks" / "quality" / "metrics.py"


@pytest.fixture(scope="module")
def metrics() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_metrics", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_metrics"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    """(test truth (300, 55), training truth (300, 55)) of toy events."""
    x = PARTON.flat(PARTON.build(toy_events(600, seed=11)).values).astype(np.float64)
    return x[:300], x[300:]


def test_exact_draws_reproduce_the_truth_figures(metrics: ModuleType, truth: tuple) -> None:
    test, train = truth
    draws = np.repeat(test[:, None], 4, axis=1)
    r = metrics.quality_metrics(test, draws, train, n_boot=5)
    assert r["n_events"] == 300 and r["n_draws"] == 4
    assert r["distances"]["wasserstein"][0] == pytest.approx(0.0, abs=1e-9)
    assert r["floor"]["wasserstein"][0] > 0 and r["floor"]["wasserstein"][1] > 0
    for res, kinds in r["truth_masses"].items():
        for kind, peak in kinds.items():
            assert r["masses"][res][kind] == pytest.approx(peak, rel=1e-9)
    assert r["shell"] == pytest.approx(r["truth_shell"], rel=1e-9)
    w = r["truth_masses"]["W_had"]["summed"]
    assert 70 < w["median"] < 90 and w["width"] > 0
    assert np.isnan(r["crps_skill"]) and r["crps_exact"] == r["rank_of"]  # all exact


def test_calibrated_posterior_covers_and_beats_no_information(
    metrics: ModuleType, truth: tuple
) -> None:
    test, train = truth
    rng = np.random.default_rng(0)
    sigma = 0.3 * test.std(0) + 1e-9
    mu = test + sigma * rng.normal(size=test.shape)  # the truth is a draw around mu
    draws = mu[:, None] + sigma * rng.normal(size=(len(test), 16, test.shape[1]))
    r = metrics.quality_metrics(test, draws, train, n_boot=5)
    for level, c in r["coverage"].items():
        assert abs(c["median"] - float(level)) < 0.05
        assert c["within"] > c["of"] // 2
    assert r["crps_skill"] < 0.6 and r["es_skill"] < 0.8
    # no information: draws from the training prior
    prior = train[rng.integers(0, len(train), size=(len(test), 16))]
    p = metrics.quality_metrics(test, prior, train, n_boot=5)
    assert 0.8 < p["crps_skill"] < 1.2
    table = metrics.format_markdown({"calibrated": r, "prior": p})
    assert "| calibrated | prior |" in table.splitlines()[0]
    assert sum(line.startswith("| summed W_had") for line in table.splitlines()) == 1
    with pytest.raises(ValueError, match="draws"):
        metrics.quality_metrics(test, draws[:, :1], train)
