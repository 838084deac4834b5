"""Particle-level evaluation: metrics on feature tables, what the figures draw, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

pytest.importorskip("hepvld.targets.particle")

from hepvld.evaluation.particle_metrics import (
    column_calibration,
    column_distances,
    multiplicity_table,
)


def test_column_distances_match_scipy_ignoring_absent_values() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 2)), rng.normal(0.3, 1.0, size=(300, 2))
    x[::7, 1] = np.nan  # absent entries
    res = column_distances(x, y, paired=False, n_boot=20, rng=rng, labels=["a", "b"])
    for j in range(2):
        xj = x[:, j][np.isfinite(x[:, j])]
        assert res.values["wasserstein"][j] == pytest.approx(
            scipy.stats.wasserstein_distance(xj, y[:, j]), rel=1e-9
        )
        assert res.values["ks"][j] == pytest.approx(scipy.stats.ks_2samp(xj, y[:, j]).statistic)
    assert np.all(res.error("wasserstein") > 0) and res.labels == ["a", "b"]


def test_multiplicity_fractions_and_pulls() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(3, 11, size=500)
    draws = rng.integers(3, 11, size=(500, 8))
    mt = multiplicity_table(truth, draws, low=4, high=8, n_boot=50, rng=rng)
    assert mt.bins == ["≤ 4", "5", "6", "7", "≥ 8"]
    expect_t = [np.mean(truth <= 4), *(np.mean(truth == k) for k in (5, 6, 7)), np.mean(truth >= 8)]
    np.testing.assert_allclose(mt.truth, expect_t)
    np.testing.assert_allclose(mt.unfolded[0], np.mean(draws <= 4))
    np.testing.assert_allclose(mt.truth.sum(), 1.0)
    # same distribution: pulls are O(1); a shifted model: large pulls
    assert np.all(np.abs(mt.pull) < 4)
    off = multiplicity_table(truth, draws + 2, low=4, high=8, n_boot=50, rng=rng)
    assert np.nanmax(np.abs(off.pull)) > 5


def test_calibration_of_the_true_posterior_and_skill() -> None:
    rng = np.random.default_rng(2)
    b, s = 2000, 32
    mu = rng.normal(0.0, 3.0, size=(b, 1))  # informative "detector"
    truth = mu + rng.normal(size=(b, 1))
    draws = mu[:, None] + rng.normal(size=(b, s, 1))
    pool = rng.normal(0.0, np.sqrt(10.0), size=(5000, 1))  # the prior marginal
    cal = column_calibration(truth, draws, pool, ["x"], n_boot=50, rng=rng)
    assert abs(cal.coverage68[0] - 0.68) < 4 * cal.coverage68_error[0]
    assert abs(cal.coverage95[0] - 0.95) < 4 * cal.coverage95_error[0]
    # CRPS of N(0,1) vs the prior N(0, 10): skill near 1 - 0.56/1.78 = 0.68
    assert 0.6 < cal.skill[0] < 0.76 and cal.skill_error[0] > 0
    assert cal.n_events[0] == b


def test_calibration_skips_events_without_the_feature() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(100, 1))
    draws = truth[:, None] + rng.normal(size=(100, 4, 1))
    truth[:10] = np.nan
    draws[10:20, 2] = np.nan
    cal = column_calibration(truth, draws, truth[10:], ["x"], n_boot=0, rng=rng)
    assert cal.n_events[0] == 80 and np.isfinite(cal.crps[0])


def test_draw_distribution_draws_pooled_histogram_and_band_over_draws() -> None:
    pytest.importorskip("mplhep")
    from matplotlib.patches import StepPatch

    from hepvld.evaluation.particle_plots import plot_draw_distribution

    rng = np.random.default_rng(4)
    b, s = 300, 16
    truth = rng.normal(size=(b, 3))
    truth[:, 2] = np.nan  # a third object that never exists
    draws = truth[:, None] + 0.5 * rng.normal(size=(b, s, 3))
    floor = rng.normal(size=(b, 3))
    edges = np.linspace(-3, 3, 13)
    _fig, (ax, rax) = plot_draw_distribution(
        truth, {"M": draws}, xlabel="x", floor=floor, bins=edges, band=(0.16, 0.84)
    )
    steps = {p.get_label(): p for p in ax.patches if isinstance(p, StepPatch)}
    width = np.diff(edges)
    expect_truth = np.histogram(truth[np.isfinite(truth)], bins=edges)[0] / (b * width)
    np.testing.assert_allclose(steps["Truth"].get_data().values, expect_truth)
    per_draw = np.stack(
        [np.histogram(draws[:, i][np.isfinite(draws[:, i])], bins=edges)[0] for i in range(s)]
    ) / (b * width)
    np.testing.assert_allclose(steps["M"].get_data().values, per_draw.mean(axis=0))
    # the model band on the main panel spans the 16-84 % quantiles over draws
    colour = np.asarray(steps["M"].get_edgecolor())[:3]
    band = [c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3], colour)]
    assert band, "no band in the model's colour"
    ys = band[0].get_paths()[0].vertices[:, 1]
    lo, hi = np.quantile(per_draw, (0.16, 0.84), axis=0)
    assert ys.min() == pytest.approx(lo.min()) and ys.max() == pytest.approx(hi.max())
    ratio_steps = {p.get_label(): p for p in rax.patches if isinstance(p, StepPatch)}
    floor_hist = np.histogram(floor[np.isfinite(floor)], bins=edges)[0] / (b * width)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(
            ratio_steps["Truth floor"].get_data().values, floor_hist / expect_truth
        )
    assert ax.get_ylabel() and rax.get_xlabel() == "x" and rax.get_ylabel()


def test_corner_plot_overlays_truth_and_model() -> None:
    pytest.importorskip("corner")
    from hepvld.evaluation.particle_plots import plot_corner

    rng = np.random.default_rng(5)
    t = rng.normal(size=(400, 3))
    fig = plot_corner(t, t + 0.1, ["a", "b", "c"])
    assert len(fig.axes) == 9
    with pytest.raises(ValueError, match="complete rows"):
        plot_corner(t[:3], t[:3], ["a", "b", "c"])
    assert [fig.axes[6].get_xlabel(), fig.axes[7].get_xlabel(), fig.axes[8].get_xlabel()] == [
        "a",
        "b",
        "c",
    ]


def test_particle_report_tables_and_json(tmp_path) -> None:
    from hepvld.evaluation.particle_report import write_particle_report
    from hepvld.targets import get_level
    from hepvld.testing.particle import fake_particle_values

    level = get_level("particle", {"max_objects": 10})
    rng = np.random.default_rng(6)
    truth = fake_particle_values(rng, (120,), 10)
    draws = fake_particle_values(rng, (120, 4), 10)
    report = write_particle_report(
        tmp_path, level, truth, {"fake": draws}, n_boot=10, plots=False, seed=1
    )
    assert {"distances", "multiplicity_n_jets", "calibration_fake"} <= set(report.tables)
    dist = report.tables["distances"]
    assert [r[0] for r in dist.rows][:2] == ["n_objects", "n_jets"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["summary"] == report.summary and report.html.is_file()
    assert "halves of the test truth" in results["meta"]


def test_particle_report_figures(tmp_path) -> None:
    pytest.importorskip("mplhep")
    pytest.importorskip("corner")
    from hepvld.evaluation.particle_report import write_particle_report
    from hepvld.targets import get_level
    from hepvld.testing.particle import fake_particle_values

    level = get_level("particle", {"max_objects": 10})
    rng = np.random.default_rng(7)
    truth = fake_particle_values(rng, (60,), 10)
    train = fake_particle_values(rng, (80,), 10)
    draws = fake_particle_values(rng, (60, 4), 10)
    report = write_particle_report(
        tmp_path, level, truth, {"fake": draws}, train_truth=train, n_boot=5, seed=2
    )
    names = {p.stem for p in report.files if p.suffix == ".png"}
    expect = {
        "multiplicity_n_jets",
        "inclusive_bjet_pt",
        "inclusive_lepton_eta",
        "dist_obj1_pt",
        "dist_met",
        "dist_t_had_mass",
        "dist_ttbar_rapidity",
        "ranks_fake",
        "coverage",
        "corner_fake",
    }
    assert expect <= names
    assert "training truth (80 events)" in report.results["meta"]
    html = report.html.read_text()
    assert html.count("data:image/png;base64") == len(names)
