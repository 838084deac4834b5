"""Readability of the particle-level corner plot: overlapping text and the label size.

Renders the same 4-variable truth/unfolded overlay three ways and counts, on the drawn
figure, pairs of text elements (tick labels, axis labels, legend) whose bounding boxes
overlap, and the smallest text height in pixels:

* ``corner-default``: ``corner.corner`` with its defaults inside the mplhep CMS style;
* ``corner-hepvld``: :func:`hepvld.evaluation.particle_plots.plot_corner` (3 ticks per
  axis, 12 pt tick labels, 18 pt axis labels);
* ``mplhep-grid``: a plain matplotlib grid in the CMS style (``hist2d`` below the diagonal,
  1-D histograms on it), what a hand-made mplhep version would start from.

Usage: ``python benchmarks/bench_corner_readability.py`` (seconds; prints one line each).
"""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hepvld.cli._common import Parser


def _texts(fig: Figure) -> list:
    out = []
    for ax in fig.axes:
        out += [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
        out += [ax.xaxis.label, ax.yaxis.label]
    for leg in fig.legends:
        out += list(leg.get_texts())
    return [t for t in out if t.get_visible() and t.get_text()]


def measure(fig: Figure) -> tuple[int, float, int]:
    """(overlapping text pairs, smallest text height in px, number of texts)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in _texts(fig)]
    overlaps = sum(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    return overlaps, min(b.height for b in boxes), len(boxes)


def main(argv: list[str] | None = None) -> None:
    p = Parser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--events", type=int, default=3000, help="toy events per overlay")
    p.add_argument("--seed", type=int, default=0, help="toy seed")
    args = p.parse_args(argv)
    import corner

    from hepvld.evaluation.particle_plots import plot_corner
    from hepvld.evaluation.plots import style

    rng = np.random.default_rng(args.seed)
    cov = np.array([[1, 0.5, 0, 0], [0.5, 1, 0.3, 0], [0, 0.3, 1, 0.6], [0, 0, 0.6, 1]])
    t = rng.multivariate_normal(np.zeros(4), cov, size=args.events) * [60, 40, 20, 20] + [
        120,
        60,
        172,
        172,
    ]
    u = t + rng.normal(size=t.shape) * [20, 15, 10, 10]
    labels = [r"$p_{T}(o_{1})$", r"$E_{T}^{miss}$", r"$m(t_{h})$", r"$m(t_{\ell})$"]
    figs = {}
    with style():
        f = Figure(figsize=(12.8, 12.8))
        corner.corner(t, labels=labels, fig=f)
        corner.corner(u, fig=f, color="C0")
        figs["corner-default"] = f
        g = Figure(figsize=(12.8, 12.8))
        axes = g.subplots(4, 4)
        for i, j in itertools.product(range(4), range(4)):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
            elif i == j:
                ax.hist(t[:, i], 30, histtype="step", color="0.35")
                ax.hist(u[:, i], 30, histtype="step", color="C0")
            else:
                ax.hist2d(u[:, j], u[:, i], 30, cmap="Blues")
            if i == 3:
                ax.set_xlabel(labels[j])
            if j == 0:
                ax.set_ylabel(labels[i])
        figs["mplhep-grid"] = g
    figs["corner-hepvld"] = plot_corner(t, u, labels)
    for name, fig in figs.items():
        overlaps, height, n = measure(fig)
        print(
            f"{name:15s} overlapping text pairs {overlaps:3d} of {n} texts; smallest text {height:.0f} px"
        )


if __name__ == "__main__":
    main()
