"""What the figures draw: labels, ratio ranges, flow bins, expected bands, data -> artists."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mplhep")

from evaluation_toys import physical_toy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import StepPatch

from hepvld.evaluation import plots
from hepvld.evaluation.aggregates import feature_index
from hepvld.evaluation.calibration import rank_histogram
from hepvld.evaluation.consistency import composite_masses
from hepvld.physics.constants import PARTONS


@pytest.fixture
def toy(rng):
    truth = physical_toy(rng, 400)
    draws = {"A": truth[:, None] + rng.normal(size=(400, 4, 55))}
    return truth, draws


def _steps(ax, label: str | None = None) -> list[StepPatch]:
    return [
        p
        for p in ax.patches
        if isinstance(p, StepPatch) and (label is None or p.get_label() == label)
    ]


def _assert_labelled(axes) -> None:
    for ax in np.ravel(axes):
        if not ax.get_visible() or not ax.axison:
            continue
        assert ax.get_xlabel().strip(), f"no x label: {ax.get_title()}"
        assert ax.get_ylabel().strip(), f"no y label: {ax.get_title()}"


def test_every_axis_is_labelled(toy, rng) -> None:
    from hepvld.evaluation.calibration import coverage, ranks

    truth, draws = toy
    _fig, axes = plots.plot_distribution(truth, draws, "t_had", "pT", bins=10)
    _assert_labelled([axes[1]])
    assert axes[0].get_ylabel()
    _assert_labelled(plots.plot_composite_masses(truth, draws)[1])
    _assert_labelled(plots.plot_mass_shell(truth, draws)[1])
    rh = rank_histogram(ranks(draws["A"], truth, rng), 4)
    _assert_labelled(plots.plot_rank_histograms(rh, [0, 1, 2])[1])
    _assert_labelled([plots.plot_coverage({"A": coverage(draws["A"], truth, (0.5,), rng=rng)})[1]])


def test_ratio_range_follows_the_data(toy) -> None:
    truth, _ = toy
    shifted = truth.copy()
    col = feature_index("t_had", "px")
    shifted[:, col] += 0.6 * truth[:, col].std()  # the model is far off in most bins
    draws = {"off": shifted[:, None].repeat(2, axis=1)}
    _fig, (_ax, rax) = plots.plot_distribution(truth, draws, "t_had", "px", bins=20)
    ratio = _steps(rax)[0].get_data().values
    finite = ratio[np.isfinite(ratio)]
    lo, hi = rax.get_ylim()
    inside = (finite >= lo) & (finite <= hi)
    assert inside.mean() >= 0.9, (lo, hi, finite)
    assert hi > 1.5 or lo < 0.5  # the old fixed 0.5-1.5 would have cut the line off
    assert lo <= 1.0 <= hi


def test_ratio_limits_are_robust() -> None:
    values = np.r_[np.full(50, 1.2), 40.0, np.nan, np.inf]
    lo, hi = plots.ratio_limits(values)
    assert lo <= 1.0 and 1.2 < hi < 2.0  # one outlier bin does not set the range


def test_composite_masses_draw_the_given_truth(toy) -> None:
    truth, draws = toy
    _fig, axes = plots.plot_composite_masses(truth, draws, bins=30)
    ax = axes.flat[0]
    name = ax.get_xlabel()
    (patch,) = _steps(ax, "Truth")
    values, edges = patch.get_data().values, patch.get_data().edges
    first = next(iter(composite_masses(truth)))
    expected, _ = np.histogram(composite_masses(truth)[first], bins=edges)
    np.testing.assert_allclose(values, expected / expected.sum())
    # a mutation of the plotted truth changes what is drawn
    mutated = truth.copy()
    mutated[: len(truth) // 2] = mutated[::-1][: len(truth) // 2]
    mutated[:, :] *= 1.02
    _fig, axes2 = plots.plot_composite_masses(mutated, draws, bins=30)
    (patch2,) = _steps(axes2.flat[0], "Truth")
    assert axes2.flat[0].get_xlabel() == name
    assert not np.allclose(patch2.get_data().values, values)


def test_mass_shell_shows_flow_and_defines_delta(toy, rng) -> None:
    truth, draws = toy
    wild = draws["A"].copy()
    wild[:40, :, 2::5] *= 50.0  # px of 10 % of the events: far off shell
    _fig, axes = plots.plot_mass_shell(truth, {"wild": wild})
    ax = axes.flat[PARTONS.index("t_had")]
    model = _steps(ax, "wild")[0]
    lo, hi = model.get_data().edges[[0, -1]]
    flows = [p for p in _steps(ax) if p.get_label() != "wild" and p.get_hatch() == "//"]
    # truth and model: one underflow and one overflow bin each, outside the range
    assert len(flows) == 4
    assert all(p.get_data().edges[0] >= hi or p.get_data().edges[-1] <= lo for p in flows)
    flow_total = sum(float(p.get_data().values[0]) for p in flows)
    assert flow_total > 0.02  # the wild draws land in the flow bins ...
    in_range = model.get_data().values
    assert in_range.sum() + flow_total <= 2.0 + 1e-9
    assert in_range[-1] < 0.5 and in_range[0] < 0.5  # ... not in an edge-bin spike
    text = " ".join(t.get_text() for a in axes.flat for t in a.texts)
    assert r"\Delta = M^2 - (E^2 - |\vec p|^2)" in text
    assert "overflow" in text and "underflow" in text


@pytest.mark.parametrize(("n_draws", "n_bins"), [(32, None), (32, 20)])
def test_rank_band_is_the_per_rank_expectation(rng, n_draws: int, n_bins: int | None) -> None:
    b = 4000
    rank = rng.integers(0, n_draws + 1, size=(b, 3))
    rh = rank_histogram(rank, n_draws, n_bins=n_bins)
    width = np.diff(rh.edges)
    if n_bins is None:
        assert len(set(width)) == 1 and (n_draws + 1) % len(width) == 0  # 33 ranks -> 11 x 3
    _fig, axes = plots.plot_rank_histograms(rh, [0])
    ax = axes.flat[0]
    (band,) = [p for p in _steps(ax) if p.get_label().startswith("uniform")]
    e = b / (n_draws + 1)  # per rank value
    top = band.get_data().values
    bottom = band.get_data().baseline
    np.testing.assert_allclose((top + bottom) / 2, e)
    np.testing.assert_allclose((top - bottom) / 2, np.sqrt(e * width) / width)
    (model,) = _steps(ax, "model")
    np.testing.assert_allclose(model.get_data().values, rh.counts[0] / width)


# --- coffea output -------------------------------------------------------------------------


def _output(levels: tuple[str, ...], rng) -> dict:
    import hist

    axis = hist.axis.Regular(20, 0, 400, name="t_had_pt", label=r"$p_T(t_{had})$ [GeV]")
    draw = hist.axis.Integer(0, 5, name="draw", underflow=False, overflow=False)
    out: dict = {"unfolded": {}, "detector": {}, "truth": {}}
    x = rng.gamma(4.0, 30.0, size=2000)
    if "unfolded" in levels:
        h = hist.Hist(draw, axis, storage=hist.storage.Weight())
        for s in range(5):
            h.fill(draw=s, t_had_pt=x * rng.normal(1.0, 0.05, size=x.size))
        out["unfolded"]["t_had_pt"] = h
    for level in ("detector", "truth"):
        if level in levels:
            out[level]["t_had_pt"] = hist.Hist(axis, storage=hist.storage.Weight()).fill(x)
    return out


@pytest.mark.parametrize(
    "levels",
    [("unfolded", "detector", "truth"), ("unfolded", "truth"), ("unfolded",), ("detector",)],
)
def test_plot_unfolded_with_some_levels(levels, rng) -> None:
    from hepvld.evaluation.coffea_plots import plot_unfolded

    fig, (ax, rax) = plot_unfolded(_output(levels, rng), "t_had_pt")
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert ("Truth" in labels) == ("truth" in levels)
    assert ("Unfolded (mean of draws)" in labels) == ("unfolded" in levels)
    assert rax.get_xlabel() == r"$p_T(t_{had})$ [GeV]" and ax.get_ylabel() == "Events"
    # the experiment label: bold "hepvld", then "Simulation" once, "(13 TeV)" on the right
    FigureCanvasAgg(fig).draw()
    parts = {t.get_text().strip(): t.get_window_extent() for t in ax.texts if t.get_text().strip()}
    assert set(parts) == {"hepvld", "Simulation", r"$\ $ (13 TeV)"}, parts
    exp, text, com = parts["hepvld"], parts["Simulation"], parts[r"$\ $ (13 TeV)"]
    assert exp.x0 < text.x0 and text.x1 < com.x0


def test_plot_unfolded_without_the_observable_names_it(rng) -> None:
    from hepvld.evaluation.coffea_plots import plot_unfolded

    with pytest.raises(KeyError, match=r"ttbar_mass.*t_had_pt"):
        plot_unfolded(_output(("unfolded", "truth"), rng), "ttbar_mass")
