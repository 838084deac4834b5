"""The plots draw what they should: the plotted histograms are recomputed here from the
inputs with independent formulas (a mutation of a plotted array fails these tests)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mplhep")

from evaluation_toys import physical_toy
from matplotlib.patches import StepPatch

from hepvld.evaluation import plots


def _stairs(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (values, edges)}`` of the labelled step histograms drawn on ``ax`` (the
    unlabelled hatched under/overflow bins of the mass-shell plot are :func:`_flow`)."""
    out = {}
    for patch in ax.patches:
        if isinstance(patch, StepPatch) and patch.get_label() and patch.get_hatch() is None:
            values, edges, _ = patch.get_data()
            out[patch.get_label()] = (np.asarray(values), np.asarray(edges))
    return out


def _signed_root_residual(x: np.ndarray) -> np.ndarray:
    """sgn(Δ)√|Δ| with Δ = M² − (E² − p²), written out per parton (not hepvld's code)."""
    p = x.reshape(*x.shape[:-1], 11, 5)
    delta = p[..., 0] ** 2 - (np.exp(2 * p[..., 1]) - (p[..., 2:] ** 2).sum(-1))
    return np.sign(delta) * np.sqrt(np.abs(delta))


def test_mass_shell_plot_draws_truth_and_model_residuals(rng: np.random.Generator) -> None:
    truth = physical_toy(rng, 200)  # on the mass shell by construction
    off = truth[:, None].repeat(3, axis=1)
    off[..., 0::5] += 30.0  # every regressed mass 30 GeV too high: Δ > 0 for every parton
    _, axes = plots.plot_mass_shell(truth, {"shifted": off}, bins=20)
    t, m = _signed_root_residual(truth), _signed_root_residual(off).reshape(-1, 11)
    assert np.abs(t).max() < 1e-3 and (m > 1.0).all()
    for p, ax in enumerate(axes.flat[:11]):
        drawn = _stairs(ax)
        assert set(drawn) == {"Truth", "shifted"}
        tv, edges = drawn["Truth"]
        assert tv.sum() == pytest.approx(1.0) and tv.max() == pytest.approx(1.0)  # not zeros
        zero_bin = np.searchsorted(edges, 0.0, side="right") - 1
        assert tv[zero_bin] == pytest.approx(1.0)  # every true parton on its shell
        mv, _ = drawn["shifted"]
        want, _ = np.histogram(m[:, p], bins=edges)
        # fraction of all entries; the range ends at a quantile of the data, so entries
        # at the upper edge may fall either side of it with this independent formula
        np.testing.assert_allclose(mv[:-1], want[:-1] / len(m))
        assert abs(mv[-1] - want[-1] / len(m)) <= 3.5 / len(m)
        assert mv[: zero_bin + 1].sum() == 0.0  # all model entries at positive residual
        flow = sum(
            float(patch.get_data()[0].sum())
            for patch in ax.patches
            if isinstance(patch, StepPatch) and patch.get_hatch() is not None
        )
        outside = ((m[:, p] < edges[0]) | (m[:, p] > edges[-1])).mean()
        # the hatched under/overflow bins hold the entries outside the range
        truth_out = ((t[:, p] < edges[0]) | (t[:, p] > edges[-1])).mean()
        assert abs(flow - outside - truth_out) <= 3.5 / len(m)
    note = axes.flat[-1]
    assert any("Delta" in text.get_text() for text in note.texts)  # Δ defined on the figure


def test_distribution_plot_draws_the_feature_histograms(rng: np.random.Generator) -> None:
    truth = physical_toy(rng, 300)
    draws = truth[:, None] + rng.normal(size=(300, 2, 55))
    edges = np.linspace(0.0, 150.0, 11)
    _, (ax, rax) = plots.plot_distribution(truth, {"A": draws}, "t_had", "pT", bins=edges)
    i = 9 * 5  # t_had: (M, log E, px, py, pz) at 45..49
    pt_truth = np.hypot(truth[:, i + 2], truth[:, i + 3])
    pt_model = np.hypot(draws[:, 0, i + 2], draws[:, 0, i + 3])  # use="first"
    drawn = _stairs(ax)
    for label, values in (("Truth", pt_truth), ("A", pt_model)):
        got, got_edges = drawn[label]
        np.testing.assert_allclose(got_edges, edges)
        counts, _ = np.histogram(values, bins=edges)
        assert counts.sum() > 0.5 * len(values)  # the range holds most events
        # normalised to all events (out-of-range ones included)
        np.testing.assert_allclose(got, counts / (len(values) * np.diff(edges)), rtol=1e-12)
    ratio = [p for p in rax.patches if isinstance(p, StepPatch)][-1].get_data()[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(drawn["Truth"][0] > 0, drawn["A"][0] / drawn["Truth"][0], np.nan)
    np.testing.assert_allclose(ratio, want)
