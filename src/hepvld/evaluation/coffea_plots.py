"""mplhep ratio plots from the output of :class:`hepvld.processor.UnfoldingProcessor`.

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot (no global
state, nothing shown); the CMS style is applied only inside the function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hepvld.evaluation.plots import style

__all__ = ["draw_band", "plot_unfolded", "unfolded_summary"]

_COLORS = {"truth": "0.35", "detector": "C1", "unfolded": "C0"}


def _dataset_output(output: Mapping[str, Any], dataset: str | None) -> Mapping[str, Any]:
    """Accept a processor output keyed by dataset or one dataset's dict."""
    if "unfolded" in output:
        return output
    if dataset is None:
        if len(output) != 1:
            raise ValueError(f"output holds datasets {sorted(output)}: pass dataset=")
        dataset = next(iter(output))
    return output[dataset]


def draw_band(hist_2d: Any, quantiles: tuple[float, float] = (0.16, 0.84)) -> dict[str, np.ndarray]:
    """Spread over the ``draw`` axis of an unfolded histogram ``(draw, x)``.

    Returns
    -------
    dict
        ``edges (n + 1,)``, ``mean``, ``low``, ``high`` ``(n,)``: per-bin mean over the
        draws and the ``quantiles`` of the draws' bin contents (flow bins excluded).
    """
    values = np.asarray(hist_2d.values(), dtype=np.float64)  # (S, n)
    edges = np.asarray(hist_2d.axes[1].edges)
    low, high = np.quantile(values, quantiles, axis=0)
    return {"edges": edges, "mean": values.mean(axis=0), "low": low, "high": high}


_LEVELS = ("unfolded", "detector", "truth")


def _levels_with(out: Mapping[str, Any], observable: str) -> list[str]:
    """The levels of ``out`` holding a histogram of ``observable``; error if none."""
    levels = [lv for lv in _LEVELS if observable in out.get(lv, {})]
    if not levels:
        known = sorted({name for lv in _LEVELS for name in out.get(lv, {})})
        raise KeyError(
            f"no histogram of observable {observable!r} at any level "
            f"({', '.join(_LEVELS)}); histograms present: {known}"
        )
    return levels


def unfolded_summary(
    output: Mapping[str, Any], observable: str, *, dataset: str | None = None
) -> dict[str, np.ndarray]:
    """Per-bin numbers behind :func:`plot_unfolded` (no matplotlib).

    Levels without a histogram of ``observable`` are left out of the result (the
    processor fills ``detector`` only for observables with a detector-level definition,
    ``truth`` only for files with generator truth).

    Returns
    -------
    dict
        ``edges``; unfolded ``mean``/``low``/``high`` (draw spread) when the unfolded level
        holds the observable; ``detector``/``detector_err`` and ``truth``/``truth_err``
        (sqrt of the summed squared weights) when those levels do.

    Raises
    ------
    KeyError
        When no level holds ``observable`` (the message lists the histograms present).
    """
    out = _dataset_output(output, dataset)
    levels = _levels_with(out, observable)
    band: dict[str, np.ndarray] = {}
    if "unfolded" in levels:
        band.update(draw_band(out["unfolded"][observable]))
    for level in ("detector", "truth"):
        if level not in levels:
            continue
        h = out[level][observable]
        edges = np.asarray(h.axes[-1].edges)
        if "edges" in band and not np.allclose(band["edges"], edges):
            raise ValueError(
                f"{observable!r}: the {level} histogram has other bins than the unfolded one"
            )
        band["edges"] = edges
        band[level] = np.asarray(h.values(), dtype=np.float64)
        variances = h.variances()
        band[f"{level}_err"] = np.sqrt(
            np.asarray(variances if variances is not None else h.values())
        )
    return band


def plot_unfolded(
    output: Mapping[str, Any],
    observable: str,
    *,
    dataset: str | None = None,
    density: bool = False,
    ratio_range: tuple[float, float] | None = None,
    text: str = "Simulation",
) -> tuple[Figure, tuple[Axes, Axes]]:
    """Unfolded distribution (mean over draws, draw spread as a band) vs detector and truth.

    Parameters
    ----------
    output
        The processor output (keyed by dataset, or one dataset's dict).
    observable
        Observable name (a key of ``output["unfolded"]``, ``["detector"]`` or
        ``["truth"]``); levels without it are left out of the figure.
    dataset
        Which dataset, when the output holds several.
    density
        Normalise every curve to unit area (the band with the mean's normalisation).
    ratio_range
        y-limits of the ratio panel; default: from the plotted ratios
        (:func:`hepvld.evaluation.plots.ratio_limits`).
    text
        Experiment-label text (after the bold "hepvld"; "(13 TeV)" goes on the right).

    Returns
    -------
    fig : Figure
    (ax, ax_ratio) : Axes
        The ratio panel divides by truth when it has entries, else by detector level
        (no ratio panel content when neither is there). Band: 16–84 % quantiles of the
        per-draw bin contents.

    Raises
    ------
    KeyError
        When no level holds ``observable``.
    """
    import mplhep

    from hepvld.evaluation.plots import label, ratio_limits

    s = unfolded_summary(output, observable, dataset=dataset)
    edges = s["edges"]
    out = _dataset_output(output, dataset)
    first = next(lv for lv in _LEVELS if observable in out.get(lv, {}))
    axis_label = out[first][observable].axes[-1].label or observable
    has_unfolded = "mean" in s
    has_truth = "truth" in s and s["truth"].sum() > 0
    has_detector = "detector" in s
    if density:
        width = np.diff(edges)
        keys = [k for k in ("mean", "detector", "truth") if k in s]
        totals: dict[str, float] = {k: float(s[k].sum()) for k in keys}
        for key in list(s):
            if key == "edges":
                continue
            total = totals["mean" if key in ("low", "high") else key.removesuffix("_err")]
            s[key] = s[key] / (total * width) if total > 0 else s[key]
    ref_key = "truth" if has_truth else "detector" if has_detector else None
    ref = s[ref_key] if ref_key else None

    def ratio(x: np.ndarray) -> np.ndarray:
        if ref is None:
            return np.full_like(x, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ref > 0, x / ref, np.nan)

    with style():
        fig = Figure(figsize=(8, 8), layout="constrained")
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)  # type: ignore[union-attr,call-arg]
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        ratios = []
        if has_truth:
            mplhep.histplot(
                s["truth"],
                edges,
                ax=ax,
                histtype="fill",
                color=_COLORS["truth"],
                alpha=0.3,
                label="Truth",
            )
            rel = ratio(s["truth"] + s["truth_err"])
            rax.stairs(
                rel,
                edges,
                baseline=ratio(s["truth"] - s["truth_err"]),
                fill=True,
                color=_COLORS["truth"],
                alpha=0.3,
                linewidth=0,
            )
        if has_detector:
            mplhep.histplot(
                s["detector"],
                edges,
                yerr=s["detector_err"],
                ax=ax,
                histtype="step",
                color=_COLORS["detector"],
                linestyle="--",
                label="Detector (pseudo-top)",
            )
            if ref_key != "detector":
                ratios.append(ratio(s["detector"]))
                rax.stairs(ratios[-1], edges, color=_COLORS["detector"], linestyle="--")
        if has_unfolded:
            mplhep.histplot(
                s["mean"],
                edges,
                ax=ax,
                histtype="step",
                color=_COLORS["unfolded"],
                linewidth=1.8,
                label="Unfolded (mean of draws)",
            )
            for a, lo, hi in ((ax, s["low"], s["high"]), (rax, ratio(s["low"]), ratio(s["high"]))):
                a.stairs(
                    hi,
                    edges,
                    baseline=lo,
                    fill=True,
                    color=_COLORS["unfolded"],
                    alpha=0.3,
                    linewidth=0,
                    label="Draw spread (16-84%)" if a is ax else None,
                )
            ratios.append(ratio(s["mean"]))
            rax.stairs(ratios[-1], edges, color=_COLORS["unfolded"], linewidth=1.8)
        rax.axhline(1.0, color="k", linewidth=0.8, linestyle=":")
        rax.set_ylim(*(ratio_range or ratio_limits(*ratios)))
        rax.set_ylabel(f"Ratio to {ref_key}" if ref_key else "Ratio (no reference)")
        rax.set_xlabel(axis_label)
        ax.set_ylabel("Density" if density else "Events")
        ax.set_xlabel("")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.25)  # room for the legend
        ax.legend(loc="upper right")
        label(ax, text)
    return fig, (ax, rax)
