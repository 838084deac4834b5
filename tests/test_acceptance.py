"""Fakes and inefficiencies: fiducial cut on draws, fake cut-flow, efficiency correction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepvld.acceptance import (
    FiducialCuts,
    correct,
    efficiency,
    fake_cutflow,
    fake_rates,
    fiducial_fraction,
    purity,
)
from hepvld.io.unbinned import histogram, poisson_replicas
from hepvld.physics import targets_to_momenta


def _records(pt: np.ndarray, eta: np.ndarray) -> Any:
    """Parton records whose lepton and quarks all have the given pT and η."""
    b = pt.shape
    x = np.zeros((*b, 11, 5), np.float32)
    px, pz = pt, pt * np.sinh(eta)
    x[..., 2], x[..., 4] = px[..., None], pz[..., None]
    x[..., 1] = np.log(np.sqrt(px**2 + pz**2) + 1e-3)[..., None]
    return targets_to_momenta(x.reshape(*b, 55))


def test_fiducial_cuts_on_truth_and_on_draws() -> None:
    pt = np.array([30.0, 20.0, 30.0])
    eta = np.array([0.5, 0.5, 3.0])
    np.testing.assert_array_equal(FiducialCuts()(_records(pt, eta)), [True, False, False])
    draws = _records(np.array([[30.0, 20.0], [30.0, 30.0]]), np.zeros((2, 2)))
    passed = FiducialCuts()(draws)
    assert passed.shape == (2, 2)
    np.testing.assert_allclose(fiducial_fraction(passed), [0.5, 1.0])
    assert FiducialCuts(quark_pt=15, lepton_pt=15)(_records(pt, eta)).tolist() == [
        True,
        True,
        False,
    ]


def test_fake_cutflow_reports_unfolded_and_true_fake_rate() -> None:
    passed = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], bool)
    cf = fake_cutflow(
        passed, np.array([1.0, 1.0, 1.0, 2.0]), truth_fiducial=np.array([1, 1, 0, 0], bool)
    )
    assert cf.names[0] == "detector-selected" and cf.sumw[0] == 5.0
    assert cf.sumw[1] == pytest.approx(1 + 0.5 + 0 + 2)
    rates = fake_rates(cf)
    assert rates["unfolded"] == pytest.approx(1 - 3.5 / 5) and rates["true"] == pytest.approx(
        1 - 2 / 5
    )


def test_efficiency_correction_recovers_the_fiducial_spectrum() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    x = rng.exponential(50.0, n)
    fid = rng.random(n) < 0.9
    eff_true = 0.2 + 0.6 * np.clip(x / 200, 0, 1)  # rises with x
    sel = rng.random(n) < eff_true
    edges = np.array([0, 25, 50, 100, 200, 400.0])
    eff = efficiency(x, fid, sel, edges)
    centres = np.array([12.5, 37.5, 75, 150, 300])
    # the binned efficiency follows the model within a few errors (bin averages)
    assert np.all(np.abs(eff.efficiency - (0.2 + 0.6 * np.clip(centres / 200, 0, 1))) < 0.08)
    assert np.all(eff.error > 0) and np.all(eff.error < 0.05)
    # "unfolding" = the truth of the selected fiducial events; corrected -> all fiducial
    keep = fid & sel
    h = histogram(x[keep][:, None], edges, bootstrap=poisson_replicas(np.arange(keep.sum()), 50))
    fixed = correct(h, eff)
    target = np.histogram(x[fid], edges)[0]
    np.testing.assert_allclose(fixed.nominal, target, rtol=1e-9)  # same events: exact
    np.testing.assert_allclose(fixed.stat, h.stat / eff.efficiency)
    with pytest.raises(ValueError, match="edges"):
        correct(h, efficiency(x, fid, sel, edges[:-1]))


def test_purity_correction_recovers_the_fiducial_spectrum_from_all_draws() -> None:
    """A model that draws the fakes' soft objects inside the fiducial cut (an unfolded fake
    rate below the true one): the purity of an independent simulation sample corrects all
    draws to the fiducial spectrum within the statistical error; the per-draw cut does not."""
    rng = np.random.default_rng(3)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = rng.exponential(60.0, n) + 5.0
        fid = x > 25.0  # the truth's fiducial cut on x itself
        # the fiducial events' draws are their truth (no migration: what the purity does
        # not correct); the fakes are drawn 15 ± 2 above theirs, many inside the cut
        fake_draws = x[:, None] + 15.0 + rng.normal(0.0, 2.0, (n, 8))
        return x, fid, np.where(fid[:, None], x[:, None], fake_draws)

    edges = np.array([0, 25, 50, 100, 200, 400.0])
    _, fid_a, d_a = sample(60_000)  # simulation
    x_b, fid_b, d_b = sample(20_000)  # "data"
    pur = purity(d_a, fid_a, edges)
    assert 0.5 < pur.purity[1] < 0.9 and np.all(pur.purity[2:] > 0.99)  # fakes in bin 1
    assert np.all(pur.error[1:] < 0.01)
    eff = efficiency(x_b, fid_b, np.ones_like(fid_b), edges)  # every event selected
    h = histogram(d_b, edges, bootstrap=poisson_replicas(np.arange(len(x_b)), 50, seed=1))
    fixed = correct(h, eff, purity=pur)
    target = np.histogram(x_b[fid_b], edges)[0].astype(float)
    # within 4 statistical errors (data bootstrap + the purity's own binomial error)
    err = np.hypot(fixed.stat, fixed.nominal * pur.error / pur.purity)
    assert np.all(np.abs(fixed.nominal - target)[1:] < 4 * err[1:] + 1)
    # the per-draw cut keeps the fakes drawn inside: bin 1 is far too high
    cut = histogram(np.where(d_b > 25.0, d_b, np.nan), edges)
    assert cut.nominal[1] > target[1] + 10 * err[1]
    with pytest.raises(ValueError, match="purity"):
        correct(h, eff, purity=purity(d_a, fid_a, edges[:-1]))
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        purity(d_a[:, 0], fid_a, edges)


def test_processor_fills_truth_before_the_selection(tmp_path: Path, tiny_run_dir: Path) -> None:
    pytest.importorskip("pythia8mc")
    from hepvld.generate import generate
    from hepvld.io import open_events
    from hepvld.processor import UnfoldingProcessor

    path = tmp_path / "mixed.root"
    generate(path, 60, seed=5, mpi=False, count="generated", select=False, progress=False)
    proc = UnfoldingProcessor(tiny_run_dir, ["t_had_pt"], n_samples=2, sampler="ddim", steps=2)
    events = open_events(str(path))
    out = proc.process(events)["events"]
    n_all = out["truth_all"]["t_had_pt"].sum(flow=True).value
    n_sel = out["truth"]["t_had_pt"].sum(flow=True).value
    assert n_all == pytest.approx(out["cutflow"].total)  # every generated event has a chain
    assert 0 < n_sel < n_all and n_sel == pytest.approx(out["cutflow"].passed)
    merged = proc.empty_output()["truth_all"]["t_had_pt"] + out["truth_all"]["t_had_pt"]
    assert merged.sum(flow=True).value == n_all
