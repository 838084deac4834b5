"""Figures of a particle-level evaluation (mplhep CMS style, as :mod:`hepvld.evaluation.plots`).

:func:`plot_draw_distribution` draws any per-event quantity (one value per event, or
several, e.g. every object of one type) for the truth and the unfolded draws:

* main panel: the truth (filled), each model's histogram of **all** draws (weight
  ``w / S``) and its 16–84 % band **over draws** (the histogram of draw ``s`` of every
  event, for each ``s``; with 128 draws per event the band is the spread of the
  posterior's histogram);
* ratio panel: model / truth with the same band, the truth's ±1σ statistical band (grey)
  and, when an independent truth sample is given, the *truth floor*: that sample / truth
  (dashed), i.e. how far a perfect model would scatter.

Densities are per event (``Σ w`` of the events, not of the entries), so absent values and
a wrong multiplicity show as a lower or higher curve. :func:`plot_corner` overlays the
joint distribution of a few quantities with the ``corner`` package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hepvld.evaluation.plots import _TRUTH_COLOR, _band, label, ratio_limits, style

__all__ = ["draw_histograms", "plot_corner", "plot_draw_distribution"]


def draw_histograms(
    draws: np.ndarray, weights: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-event densities of ``draws (B, S, M)`` (NaN entries skipped).

    Returns ``pooled (N_bins,)`` (all draws, weight ``w / S``) and ``per_draw (S, N_bins)``
    (the histogram of draw ``s`` of every event), both divided by ``Σ w · bin width``."""
    b, s = draws.shape[:2]
    norm = weights.sum() * np.diff(edges)
    per_draw = np.empty((s, len(edges) - 1))
    for i in range(s):
        v = draws[:, i].reshape(b, -1)
        ww = np.broadcast_to(weights[:, None], v.shape)
        ok = np.isfinite(v)
        per_draw[i] = np.histogram(v[ok], bins=edges, weights=ww[ok])[0] / norm
    return per_draw.mean(axis=0), per_draw


def _truth_hist(
    values: np.ndarray, weights: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    v = values.reshape(len(values), -1)
    ww = np.broadcast_to(weights[:, None], v.shape)
    ok = np.isfinite(v)
    h = np.histogram(v[ok], bins=edges, weights=ww[ok])[0]
    h2 = np.histogram(v[ok], bins=edges, weights=ww[ok] ** 2)[0]
    norm = weights.sum() * np.diff(edges)
    return h / norm, np.sqrt(h2) / norm


def plot_draw_distribution(
    truth: np.ndarray,
    draws_by_model: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    weights: np.ndarray | None = None,
    floor: np.ndarray | None = None,
    floor_weights: np.ndarray | None = None,
    bins: int | np.ndarray = 30,
    value_range: tuple[float, float] | None = None,
    band: tuple[float, float] = (0.16, 0.84),
    ylabel: str = "Entries per event / bin width",
) -> tuple[Figure, tuple[Any, Any]]:
    """One quantity, truth vs models, with a ratio panel (see the module docstring).

    Parameters
    ----------
    truth : ndarray, shape (B,) or (B, M)
        Truth values (NaN: absent).
    draws_by_model : mapping name -> ndarray, shape (B, S) or (B, S, M)
    xlabel : str
    weights : ndarray, shape (B,), optional
    floor : ndarray, shape (B2,) or (B2, M), optional
        An independent truth sample (the truth floor line); ``floor_weights (B2,)``.
    bins, value_range
        Number of bins (range default: the truth's 0.5–99.5 % quantiles) or edges.
    band : (float, float)
        Quantiles over draws of the model band.

    Returns
    -------
    fig, (ax, ax_ratio)
    """
    t = np.asarray(truth, np.float64).reshape(len(truth), -1)
    b = len(t)
    w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
    if isinstance(bins, (int, np.integer)):
        if value_range is None:
            lo, hi = (float(q) for q in np.nanquantile(t, [0.005, 0.995]))
            value_range = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
        edges = np.linspace(*value_range, int(bins) + 1)
    else:
        edges = np.asarray(bins, np.float64)
    with style():
        fig = Figure(figsize=(8, 8), layout="constrained")
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)  # type: ignore[union-attr,call-arg]
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        ht, et = _truth_hist(t, w, edges)
        ax.stairs(ht, edges, color=_TRUTH_COLOR, fill=True, alpha=0.3, linewidth=0, label="Truth")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(ht > 0, et / ht, 0.0)
        _band(rax, edges, 1 - rel, 1 + rel, _TRUTH_COLOR)
        ratios = []
        if floor is not None:
            f = np.asarray(floor, np.float64).reshape(len(floor), -1)
            fw = np.ones(len(f)) if floor_weights is None else np.asarray(floor_weights)
            hf, _ = _truth_hist(f, fw, edges)
            with np.errstate(divide="ignore", invalid="ignore"):
                rf = np.where(ht > 0, hf / ht, np.nan)
            rax.stairs(rf, edges, color="k", linestyle=":", linewidth=1.4, label="Truth floor")
            ax.plot([], [], color="k", linestyle=":", label="Truth floor (ratio)")
            ratios.append(rf)
        for i, (name, draws) in enumerate(draws_by_model.items()):
            color = f"C{i}"
            d = np.asarray(draws, np.float64)
            d = d.reshape(d.shape[0], d.shape[1], -1)
            pooled, per_draw = draw_histograms(d, w, edges)
            lo, hi = np.quantile(per_draw, band, axis=0)
            ax.stairs(pooled, edges, color=color, linewidth=1.8, label=name)
            _band(ax, edges, lo, hi, color)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(ht > 0, pooled / ht, np.nan)
                rlo, rhi = np.where(ht > 0, lo / ht, np.nan), np.where(ht > 0, hi / ht, np.nan)
            rax.stairs(r, edges, color=color, linewidth=1.8)
            _band(rax, edges, rlo, rhi, color)
            ratios.append(r)
        rax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
        rax.set_ylim(*ratio_limits(*ratios))
        rax.set_ylabel("Model / truth")
        rax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        ax.legend(loc="best", title=f"band: {band[0]:.0%}–{band[1]:.0%} over draws")
        label(ax)
    return fig, (ax, rax)


def plot_corner(
    truth: np.ndarray,
    unfolded: np.ndarray,
    labels: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    unfolded_weights: np.ndarray | None = None,
    quantiles: tuple[float, float] = (0.01, 0.99),
    name: str = "unfolded",
) -> Figure:
    """Joint distributions of ``truth (B, C)`` and ``unfolded (N, C)`` (rows with NaN
    dropped) overlaid with :func:`corner.corner`: 1σ/2σ contours, 1-D histograms on the
    diagonal, axis ranges from the truth's ``quantiles``."""
    import corner

    t = np.asarray(truth, np.float64)
    u = np.asarray(unfolded, np.float64)
    wt = np.ones(len(t)) if weights is None else np.asarray(weights, np.float64)
    wu = np.ones(len(u)) if unfolded_weights is None else np.asarray(unfolded_weights)
    kt, ku = np.isfinite(t).all(axis=1), np.isfinite(u).all(axis=1)
    t, wt, u, wu = t[kt], wt[kt], u[ku], wu[ku]
    if min(len(t), len(u)) <= t.shape[1]:
        raise ValueError(
            f"a corner plot of {t.shape[1]} quantities needs more complete rows than that: "
            f"truth has {len(t)}, unfolded {len(u)} (rows with an absent quantity are dropped)"
        )
    ranges = [tuple(np.quantile(t[:, j], quantiles)) for j in range(t.shape[1])]
    common = {
        "labels": list(labels),
        "range": ranges,
        "bins": 25,
        "levels": (0.393, 0.865),
        "plot_datapoints": False,
        "plot_density": False,
        "fill_contours": False,
        "smooth": 1.0,
        "label_kwargs": {"fontsize": 18},
        "max_n_ticks": 3,
    }
    with style():
        fig = Figure(figsize=(3.2 * len(labels), 3.2 * len(labels)))
        for x, ww, color in ((t, wt, _TRUTH_COLOR), (u, wu, "C0")):
            hist_kwargs = {"density": True, "color": color, "linewidth": 1.8}
            corner.corner(x, weights=ww, color=color, fig=fig, hist_kwargs=hist_kwargs, **common)
        for ax in fig.axes:
            ax.tick_params(labelsize=12)
        fig.legend(
            handles=[
                _line(_TRUTH_COLOR, "Truth"),
                _line("C0", name),
            ],
            loc="upper right",
            fontsize=16,
        )
    return fig


def _line(color: str, text: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, linewidth=2, label=text)
