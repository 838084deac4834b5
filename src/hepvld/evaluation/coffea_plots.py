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


def unfolded_summary(
    output: Mapping[str, Any], observable: str, *, dataset: str | None = None
) -> dict[str, np.ndarray]:
    """Per-bin numbers behind :func:`plot_unfolded` (no matplotlib).

    Returns
    -------
    dict
        ``edges``, unfolded ``mean``/``low``/``high`` (draw spread), ``detector``,
        ``detector_err``, ``truth``, ``truth_err`` (sqrt of the summed squared weights).
    """
    out = _dataset_output(output, dataset)
    band = draw_band(out["unfolded"][observable])
    for level in ("detector", "truth"):
        h = out[level][observable]
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
    ratio_range: tuple[float, float] = (0.5, 1.5),
    text: str = "Simulation",
) -> tuple[Figure, tuple[Axes, Axes]]:
    """Unfolded distribution (mean over draws, draw spread as a band) vs detector and truth.

    Parameters
    ----------
    output
        The processor output (keyed by dataset, or one dataset's dict).
    observable
        Observable name (a key of ``output["unfolded"]``).
    dataset
        Which dataset, when the output holds several.
    density
        Normalise every curve to unit area (the band with the mean's normalisation).
    ratio_range
        y-limits of the ratio panel.
    text
        Experiment-label text.

    Returns
    -------
    fig : Figure
    (ax, ax_ratio) : Axes
        The ratio panel divides by truth when it has entries, else by detector level.
        Band: 16–84 % quantiles of the per-draw bin contents.
    """
    import mplhep

    s = unfolded_summary(output, observable, dataset=dataset)
    edges = s["edges"]
    h_unf = _dataset_output(output, dataset)["unfolded"][observable]
    label = h_unf.axes[1].label or observable
    has_truth = s["truth"].sum() > 0
    if density:
        width = np.diff(edges)
        totals = {k: s[k].sum() for k in ("mean", "detector", "truth")}
        for key in ("mean", "low", "high", "detector", "detector_err", "truth", "truth_err"):
            total = totals["mean" if key in ("low", "high") else key.removesuffix("_err")]
            s[key] = s[key] / (total * width) if total > 0 else s[key]
    ref_key = "truth" if has_truth else "detector"
    ref = s[ref_key]

    def ratio(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ref > 0, x / ref, np.nan)

    with style():
        fig = Figure(figsize=(8, 8), layout="constrained")
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)  # type: ignore[union-attr,call-arg]
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        if has_truth:
            mplhep.histplot(
                s["truth"],
                edges,
                yerr=s["truth_err"],
                ax=ax,
                histtype="fill",
                color=_COLORS["truth"],
                alpha=0.3,
                label="Truth",
            )
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
            a.fill_between(
                edges,
                np.append(lo, lo[-1]),
                np.append(hi, hi[-1]),
                step="post",
                color=_COLORS["unfolded"],
                alpha=0.3,
                linewidth=0,
                label="Draw spread (16-84%)" if a is ax else None,
            )
        rax.stairs(ratio(s["mean"]), edges, color=_COLORS["unfolded"], linewidth=1.8)
        rax.stairs(ratio(s["detector"]), edges, color=_COLORS["detector"], linestyle="--")
        rax.axhline(1.0, color="k", linewidth=0.8, linestyle=":")
        rax.set_ylim(*ratio_range)
        rax.set_ylabel(f"Ratio to {ref_key}")
        rax.set_xlabel(label)
        ax.set_ylabel("Density" if density else "Events")
        ax.set_xlabel("")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
        mplhep.label.exp_label(exp="hepvld", llabel=text, ax=ax, loc=0)
    return fig, (ax, rax)
