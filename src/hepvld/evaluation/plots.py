"""mplhep-styled figures. Every function returns ``(fig, axes)``.

Figures are :class:`matplotlib.figure.Figure` objects created without pyplot: no global
state, no backend switch, nothing shown. The CMS-like style is applied only inside each
function (``matplotlib.style.context``). Save with :func:`save_figure`.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hepvld.evaluation.aggregates import feature_index, feature_table
from hepvld.evaluation.calibration import Coverage, RankHistogram
from hepvld.evaluation.consistency import composite_masses, mass_shell_residual, regressed_masses
from hepvld.evaluation.posterior import BruteForcePosterior
from hepvld.physics.constants import DERIVED, target_labels
from hepvld.targets.parton import PARTON

__all__ = [
    "figure_to_base64",
    "label",
    "plot_composite_masses",
    "plot_coverage",
    "plot_distribution",
    "plot_event_posterior",
    "plot_mass_shell",
    "plot_rank_histograms",
    "ratio_limits",
    "save_figure",
    "style",
]

_UNITS = {
    "M": "GeV",
    "mass": "GeV",
    "logE": "",
    "px": "GeV",
    "py": "GeV",
    "pz": "GeV",
    "pT": "GeV",
    "eta": "",
    "phi": "rad",
    "energy": "GeV",
}
_SYMBOL = {
    "M": "M",
    "mass": "M",
    "logE": r"\log E",
    "px": "p_x",
    "py": "p_y",
    "pz": "p_z",
    "pT": "p_T",
    "eta": r"\eta",
    "phi": r"\phi",
    "energy": "E",
}
_TRUTH_COLOR = "0.35"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying the mplhep CMS style (locally, restored on exit)."""
    import mplhep

    with matplotlib.style.context(mplhep.style.CMS):
        yield


def label(ax: Axes, text: str = "Simulation", **kwargs: object) -> None:
    """The experiment label (bold "hepvld", italic ``text``, "(13 TeV)" on the right).

    Uses mplhep's label API, which places and spaces the parts itself, so they never
    overlap; keyword arguments go to :func:`mplhep.label.exp_label` (e.g. ``lumi``).
    """
    import mplhep

    mplhep.label.exp_label(exp="hepvld", llabel=text, loc=0, ax=ax, **kwargs)


def ratio_limits(
    *curves: np.ndarray, quantiles: tuple[float, float] = (0.02, 0.98), margin: float = 0.15
) -> tuple[float, float]:
    """y-limits of a ratio panel chosen from the plotted ratios.

    The ``quantiles`` of the finite values of all ``curves`` (robust to a few empty or
    nearly empty bins), widened to include 1, then by ``margin`` of the span on each
    side; never below 0 and at least ±0.1 around 1.
    """
    pool = np.concatenate(
        [np.ravel(np.asarray(c, dtype=np.float64)) for c in curves] or [np.ones(1)]
    )
    pool = pool[np.isfinite(pool)]
    lo, hi = np.quantile(pool, quantiles) if len(pool) else (1.0, 1.0)
    lo, hi = min(float(lo), 1.0), max(float(hi), 1.0)
    span = max(hi - lo, 0.2)
    lo, hi = lo - margin * span, hi + margin * span
    return max(lo, 0.0), hi


def particle_tex(particle: str) -> str:
    """TeX of a parton name without ``$`` (``t_had`` -> ``t_{had}``)."""
    name = particle.replace("_", r"_{") + ("}" if "_" in particle else "")
    return name.replace("ttbar", r"t\bar{t}").replace("nu", r"\nu")


def axis_label(particle: str, kind: str) -> str:
    """Axis label such as ``$p_T(t_{had})$ [GeV]``."""
    name = particle_tex(particle)
    unit = _UNITS.get(kind, "")
    return f"${_SYMBOL.get(kind, kind)}({name})$" + (f" [{unit}]" if unit else "")


def _hist(
    values: np.ndarray, weights: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Density and its statistical error (sqrt(Σw²)), out-of-range entries dropped."""
    h, _ = np.histogram(values, bins=edges, weights=weights)
    h2, _ = np.histogram(values, bins=edges, weights=weights * weights)
    norm = weights.sum() * np.diff(edges)
    return h / norm, np.sqrt(h2) / norm


def _band(ax: Axes, edges: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str) -> None:
    ax.fill_between(
        edges,
        np.append(lo, lo[-1]),
        np.append(hi, hi[-1]),
        step="post",
        color=color,
        alpha=0.25,
        linewidth=0,
    )


def plot_distribution(
    truth: np.ndarray,
    draws_by_model: Mapping[str, np.ndarray],
    particle: str,
    kind: str,
    *,
    weights: np.ndarray | None = None,
    bins: int | np.ndarray = 50,
    value_range: tuple[float, float] | None = None,
    use: str = "first",
    ratio_range: tuple[float, float] | None = None,
) -> tuple[Figure, tuple[Axes, Axes]]:
    """Global distribution of one feature, models overlaid, with a ratio-to-truth panel.

    Parameters
    ----------
    truth : ndarray, shape (B, 55)
    draws_by_model : mapping name -> ndarray, shape (B, S, 55)
    particle : str
        One of the parton names (``hepvld.targets.PARTON.names``).
    kind : str
        Native component (``M, logE, px, py, pz``) or type (``mass, pT, eta, phi, energy``).
    weights : ndarray, shape (B,), optional
    bins : int or ndarray
        Number of bins or edges.
    value_range : (float, float), optional
        Default: the 0.5–99.5 % quantiles of the truth.
    use : {"first", "all"}
        One draw per event or all draws (weight w/S).
    ratio_range : (float, float), optional
        y-limits of the ratio panel; default: from the plotted ratios
        (:func:`ratio_limits`).

    Returns
    -------
    fig : Figure
    (ax, ax_ratio) : Axes
        Distributions are normalised to unit area; model bands are ±1σ statistical; the
        truth's ±1σ is the grey band around 1 in the ratio panel.
    """
    col = feature_index(particle, kind)
    t = feature_table(truth)[:, col]
    b = len(t)
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    if value_range is None:
        lo, hi = (float(q) for q in np.nanquantile(t, [0.005, 0.995]))
        value_range = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
    edges = (
        np.linspace(*value_range, int(bins) + 1)
        if isinstance(bins, (int, np.integer))
        else np.asarray(bins)
    )
    with style():
        fig = Figure(figsize=(8, 8), layout="constrained")
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)  # type: ignore[union-attr,call-arg]
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        ht, et = _hist(t, w, edges)
        ax.stairs(ht, edges, color=_TRUTH_COLOR, fill=True, alpha=0.3, linewidth=0, label="Truth")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(ht > 0, et / ht, 0.0)
        _band(rax, edges, 1 - rel, 1 + rel, _TRUTH_COLOR)
        ratios = []
        for i, (name, draws) in enumerate(draws_by_model.items()):
            color = f"C{i}"
            d = np.asarray(draws)
            s = d.shape[1]
            if use == "first":
                vals, vw = feature_table(d[:, 0])[:, col], w
            else:
                vals, vw = feature_table(d.reshape(b * s, -1))[:, col], np.repeat(w / s, s)
            hm, em = _hist(vals, vw, edges)
            ax.stairs(hm, edges, color=color, linewidth=1.8, label=name)
            _band(ax, edges, hm - em, hm + em, color)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(ht > 0, hm / ht, np.nan)
                re = np.where(ht > 0, em / ht, np.nan)
            rax.stairs(r, edges, color=color, linewidth=1.8)
            _band(rax, edges, r - re, r + re, color)
            ratios.append(r)
        rax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
        rax.set_ylim(*(ratio_range or ratio_limits(*ratios)))
        rax.set_ylabel("Model / truth")
        rax.set_xlabel(axis_label(particle, kind))
        ax.set_ylabel("Normalised density")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        ax.legend(loc="best")
        label(ax)
    return fig, (ax, rax)


def plot_event_posterior(
    draws: Mapping[str, np.ndarray],
    truth: np.ndarray,
    features: Sequence[tuple[str, str]],
    *,
    brute_force: BruteForcePosterior | None = None,
    bins: int = 30,
) -> tuple[Figure, np.ndarray]:
    """Posterior of one event: model draws vs the brute-force posterior vs the truth line.

    Parameters
    ----------
    draws : mapping name -> ndarray, shape (S, 55)
        Draws of this event per model.
    truth : ndarray, shape (55,)
    features : sequence of (particle, kind)
        One panel each.
    brute_force : BruteForcePosterior, optional
    bins : int

    Returns
    -------
    fig : Figure
    axes : ndarray of Axes, shape (rows, cols)
    """
    n = len(features)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    tf = feature_table(np.asarray(truth)[None])[0]
    model_f = {k: feature_table(np.asarray(v)) for k, v in draws.items()}
    bf_f = feature_table(brute_force.train_truth) if brute_force is not None else None
    with style():
        fig = Figure(figsize=(6 * ncols, 5 * nrows), layout="constrained")
        axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
        for ax, (particle, kind) in zip(axes.flat, features, strict=False):
            col = feature_index(particle, kind)
            pool = [v[:, col] for v in model_f.values()] + [tf[col : col + 1]]
            if bf_f is not None:
                sel = brute_force.weights > 1e-6 * brute_force.weights.max()  # type: ignore[union-attr]
                pool.append(bf_f[sel, col])
            allv = np.concatenate(pool)
            lo, hi = np.nanquantile(allv, [0.005, 0.995])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            if bf_f is not None:
                h, _ = np.histogram(bf_f[:, col], bins=edges, weights=brute_force.weights)  # type: ignore[union-attr]
                tot = h.sum()
                if tot > 0:
                    ax.stairs(
                        h / (tot * np.diff(edges)),
                        edges,
                        color=_TRUTH_COLOR,
                        fill=True,
                        alpha=0.3,
                        label=f"Brute force ($N_{{eff}}$={brute_force.n_eff:.0f})",  # type: ignore[union-attr]
                    )
            for i, (name, v) in enumerate(model_f.items()):
                h, _ = np.histogram(v[:, col], bins=edges)
                if h.sum() > 0:
                    ax.stairs(
                        h / (h.sum() * np.diff(edges)),
                        edges,
                        color=f"C{i}",
                        linewidth=1.8,
                        label=name,
                    )
            ax.axvline(tf[col], color="k", linestyle="--", label="Truth")
            ax.set_xlabel(axis_label(particle, kind))
            ax.set_ylabel("Density")
            ax.legend(fontsize="x-small")
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
    return fig, axes


def plot_coverage(
    coverage_by_model: Mapping[str, Coverage], *, components: Sequence[int] | None = None
) -> tuple[Figure, Axes]:
    """Observed vs nominal coverage: median over components, band = min–max across them.

    Parameters
    ----------
    coverage_by_model : mapping name -> Coverage (levels L, components X)
    components : sequence of int, optional
        Component indices to summarise (default all).

    Returns
    -------
    fig : Figure
    ax : Axes
    """
    with style():
        fig = Figure(figsize=(8, 8), layout="constrained")
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="Calibrated")
        for i, (name, cov) in enumerate(coverage_by_model.items()):
            c = cov.coverage if components is None else cov.coverage[:, list(components)]
            ax.fill_between(
                cov.levels, c.min(axis=1), c.max(axis=1), color=f"C{i}", alpha=0.2, linewidth=0
            )
            ax.plot(
                cov.levels,
                np.median(c, axis=1),
                color=f"C{i}",
                marker="o",
                markersize=4,
                label=name,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Nominal level of the central interval")
        ax.set_ylabel("Observed coverage")
        ax.legend(loc="upper left")
        label(ax)
    return fig, ax


def plot_rank_histograms(
    hist: RankHistogram, components: Sequence[int], *, labels: Sequence[str] | None = None
) -> tuple[Figure, np.ndarray]:
    """SBC rank histograms of selected components with the uniform expectation ±1σ.

    Parameters
    ----------
    hist : RankHistogram
    components : sequence of int
        Component indices (rows of ``hist.counts``).
    labels : sequence of str, optional
        Label of every component (default: the 55 target labels).

    Returns
    -------
    fig : Figure
    axes : ndarray of Axes
    """
    labels = list(labels) if labels is not None else target_labels()
    n = len(components)
    ncols = min(4, n)
    nrows = -(-n // ncols)
    width = np.diff(hist.edges).astype(np.float64)  # rank values per bin
    with style():
        fig = Figure(figsize=(5 * ncols, 4 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, c in zip(axes.flat, components, strict=False):
            # Per rank value: bins holding 1 or 2 ranks (33 ranks in 20 bins) compare
            # directly, and the uniform expectation is flat.
            e = hist.expected[c] / width
            sigma = np.sqrt(hist.expected[c]) / width
            ax.stairs(
                e + sigma,
                hist.edges,
                baseline=e - sigma,
                fill=True,
                color="0.7",
                alpha=0.6,
                linewidth=0,
                label=r"uniform $\pm 1\sigma$",
            )
            ax.stairs(e, hist.edges, color="0.4", linewidth=1.0, linestyle="--")
            ax.stairs(hist.counts[c] / width, hist.edges, color="C0", linewidth=1.8, label="model")
            ax.set_title(f"{labels[c]}  p={hist.pvalue[c]:.2g}", fontsize="small")
            ax.set_xlabel("Rank of truth among the draws", fontsize="small")
            ax.set_ylabel("Events per rank value", fontsize="small")
            ax.set_xlim(hist.edges[0], hist.edges[-1])
            ax.set_ylim(bottom=0)
        axes.flat[0].legend(fontsize="x-small", loc="lower center")
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
    return fig, axes


def plot_mass_shell(
    truth: np.ndarray, draws_by_model: Mapping[str, np.ndarray], *, bins: int = 60
) -> tuple[Figure, np.ndarray]:
    """Mass-shell residual ``sgn(Δ)√|Δ|``, ``Δ = M² - (E² - |p|²)``, per parton.

    Parameters
    ----------
    truth : ndarray, shape (B, 55)
    draws_by_model : mapping name -> ndarray, shape (B, S, 55)
    bins : int

    Returns
    -------
    fig : Figure
    axes : ndarray of Axes, shape (3, 4)
    """

    def signed_root(d: np.ndarray) -> np.ndarray:
        return np.sign(d) * np.sqrt(np.abs(d))

    t = signed_root(mass_shell_residual(truth))
    m = {
        k: signed_root(mass_shell_residual(np.asarray(v)).reshape(-1, len(PARTON.names)))
        for k, v in draws_by_model.items()
    }
    with style():
        fig = Figure(figsize=(18, 12), layout="constrained")
        axes = fig.subplots(3, 4, squeeze=False)
        for p, ax in enumerate(axes.flat[: len(PARTON.names)]):
            pool = np.concatenate([t[:, p]] + [v[:, p] for v in m.values()])
            lo, hi = np.nanquantile(pool, [0.01, 0.99])
            lo, hi = min(lo, -1.0), max(hi, 1.0)
            edges = np.linspace(lo, hi, bins + 1)
            step = edges[1] - edges[0]
            # Flow bins, drawn hatched two bins away from the range: entries outside it
            # are shown as what they are, not piled into the edge bins.
            under = (lo - 4 * step, lo - step)
            over = (hi + step, hi + 4 * step)
            series = [("Truth", t[:, p], _TRUTH_COLOR, True)] + [
                (name, v[:, p], f"C{i}", False) for i, (name, v) in enumerate(m.items())
            ]
            for name, values, color, fill in series:
                v = values[np.isfinite(values)]
                total = max(len(v), 1)
                h, _ = np.histogram(v, bins=edges)
                kwargs = (
                    {"fill": True, "alpha": 0.3, "linewidth": 0} if fill else {"linewidth": 1.6}
                )
                ax.stairs(h / total, edges, color=color, label=name, **kwargs)
                for (a, b), n_flow in ((under, (v < lo).sum()), (over, (v > hi).sum())):
                    ax.stairs(
                        [n_flow / total],
                        [a, b],
                        color=color,
                        hatch="//",
                        **({"fill": True, "alpha": 0.3} if fill else {"linewidth": 1.6}),
                    )
            for x in (lo, hi):
                ax.axvline(x, color="k", linewidth=0.6, linestyle=":")
            for x, word in ((np.mean(under), "underflow"), (np.mean(over), "overflow")):
                ax.text(
                    x,
                    0.97,
                    word,
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="top",
                    fontsize="xx-small",
                )
            ax.set_xlim(under[0] - step, over[1] + step)
            ax.set_title(f"${particle_tex(PARTON.names[p])}$", fontsize="small")
            ax.set_xlabel(r"sgn$(\Delta)\sqrt{|\Delta|}$ [GeV]", fontsize="small")
            ax.set_ylabel("Fraction of entries per bin", fontsize="small")
            ax.set_yscale("log")
        axes.flat[0].legend(fontsize="x-small")
        note = axes.flat[-1]
        note.axis("off")
        note.text(
            0.0,
            0.5,
            "$\\Delta = M^2 - (E^2 - |\\vec p|^2)$:\n"
            "regressed mass squared minus the\n"
            "invariant mass squared of the\n"
            "(M, log E, p) four-vector (0 on shell).\n"
            "Hatched: entries below / above the\n"
            "range (1-99 % quantiles of all).",
            transform=note.transAxes,
            va="center",
            fontsize="small",
        )
    return fig, axes


def plot_composite_masses(
    truth: np.ndarray, draws_by_model: Mapping[str, np.ndarray], *, bins: int = 60
) -> tuple[Figure, np.ndarray]:
    """Mass of summed daughters (solid) vs regressed mass (dashed) of each composite.

    Parameters
    ----------
    truth : ndarray, shape (B, 55)
    draws_by_model : mapping name -> ndarray, shape (B, S, 55)
    bins : int

    Returns
    -------
    fig : Figure
    axes : ndarray of Axes, shape (1, 5)
    """
    tm = composite_masses(truth)
    mm = {k: composite_masses(np.asarray(v)[:, 0]) for k, v in draws_by_model.items()}
    mr = {k: regressed_masses(np.asarray(v)[:, 0]) for k, v in draws_by_model.items()}
    names = list(DERIVED)
    with style():
        fig = Figure(figsize=(6 * len(names), 5.5), layout="constrained")
        axes = fig.subplots(1, len(names), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=True):
            lo, hi = np.nanquantile(tm[name], [0.005, 0.995])
            span = max(hi - lo, 1.0)
            edges = np.linspace(lo - 0.1 * span, hi + 0.1 * span, bins + 1)
            h, _ = np.histogram(tm[name], bins=edges)
            ax.stairs(
                h / max(h.sum(), 1), edges, color=_TRUTH_COLOR, fill=True, alpha=0.3, label="Truth"
            )
            for i, k in enumerate(mm):
                h, _ = np.histogram(mm[k][name], bins=edges)
                ax.stairs(
                    h / max(h.sum(), 1),
                    edges,
                    color=f"C{i}",
                    linewidth=1.6,
                    label=f"{k}: daughters",
                )
                h, _ = np.histogram(mr[k][name], bins=edges)
                ax.stairs(
                    h / max(h.sum(), 1),
                    edges,
                    color=f"C{i}",
                    linewidth=1.6,
                    linestyle="--",
                    label=f"{k}: regressed",
                )
            ax.set_xlabel(axis_label(name, "mass"))
            ax.set_ylabel("Fraction of events per bin")
            ax.set_xlim(edges[0], edges[-1])
        axes.flat[0].legend(fontsize="x-small")
    return fig, axes


def save_figure(
    fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 100
) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (or ``formats``); returns the paths.

    Figures of this module use constrained layout, so no ``bbox_inches="tight"`` (which
    would draw every figure twice).
    """
    paths = []
    with style():
        for fmt in formats:
            path = Path(stem).with_suffix(f".{fmt}")
            fig.savefig(path, dpi=dpi)
            paths.append(path)
    return paths


def figure_to_base64(fig: Figure, dpi: int = 80) -> str:
    """PNG of ``fig`` as a base64 string (for ``<img src="data:image/png;base64,...">``)."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")
