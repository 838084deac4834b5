"""The evaluation report of a particle-level (variable-length) model.

:func:`write_particle_report` is the particle level's :func:`~hepvld.evaluation.write_report`:
from the truth and each model's draws (the level's padded layout, physical units) it
writes tables (Markdown/CSV), figures, ``results.json`` and a one-page ``report.html``:

* **distances**: W1 and KS of every feature-table column
  (:func:`hepvld.targets.particle_output.feature_labels`: multiplicities, event vector,
  the four leading objects, the leading object of each type, pseudo-top), one draw per
  event against the truth, with event-bootstrap errors, beside the truth-vs-truth floor
  and the ratio W1 / floor;
* **multiplicity**: fraction of events per jet, b-jet and object multiplicity, truth vs
  all draws, bootstrap errors and pulls;
* **calibration**: per column coverage of the 68 % / 95 % central intervals, the SBC rank
  p-value and the CRPS skill ``1 − CRPS / CRPS_ref`` against the no-information reference
  (training-truth values drawn at random);
* **figures** (:mod:`~hepvld.evaluation.particle_plots`): inclusive per-type object pT / η,
  the leading objects by pT rank, multiplicities, event-level quantities and the
  pseudo-top, each with a ratio panel, the truth floor line and the 16–84 % band over
  draws; SBC rank histograms and the coverage curve of the leading objects, MET, ν pz and
  the top masses (events that have all of them); a corner plot of the leading object, MET
  and the pseudo-top masses.

Shapes: ``B`` events, ``S`` draws, ``K`` slots, ``H`` features, ``C`` feature columns.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.evaluation.particle_metrics import (
    column_calibration,
    column_distances,
    multiplicity_table,
    truth_floor_columns,
)
from hepvld.evaluation.report import Report, _safe, _write_pages
from hepvld.evaluation.tables import Table

__all__ = ["CALIBRATION_COLUMNS", "PLOT_COLUMNS", "write_particle_report"]

logger = logging.getLogger(__name__)

#: Feature-table columns of the calibration table.
CALIBRATION_COLUMNS: tuple[str, ...] = (
    "n_jets",
    "met",
    "nu_pz",
    *(f"obj{r}/{k}" for r in range(1, 5) for k in ("pt", "eta", "phi", "mass")),
    *(f"{p}/{k}" for p in ("t_had", "t_lep", "W_had", "W_lep", "ttbar") for k in ("mass", "pt")),
)

#: Feature-table columns drawn as distributions: (label, x-axis label, bins or None).
PLOT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("obj1/pt", r"$p_{T}$(leading object) [GeV]"),
    ("obj2/pt", r"$p_{T}$(2nd object) [GeV]"),
    ("obj3/pt", r"$p_{T}$(3rd object) [GeV]"),
    ("obj4/pt", r"$p_{T}$(4th object) [GeV]"),
    ("obj1/eta", r"$\eta$(leading object)"),
    ("met", r"$E_{T}^{miss}$ [GeV]"),
    ("nu_pz", r"$p_{z}(\nu)$ [GeV]"),
    ("nu_E", r"$E(\nu)$ [GeV]"),
    ("t_had/mass", r"$m(t_{h})$ [GeV]"),
    ("t_lep/mass", r"$m(t_{\ell})$ [GeV]"),
    ("W_had/mass", r"$m(W_{h})$ [GeV]"),
    ("W_lep/mass", r"$m(W_{\ell})$ [GeV]"),
    ("ttbar/mass", r"$m(t\bar{t})$ [GeV]"),
    ("t_had/pt", r"$p_{T}(t_{h})$ [GeV]"),
    ("t_lep/pt", r"$p_{T}(t_{\ell})$ [GeV]"),
    ("ttbar/pt", r"$p_{T}(t\bar{t})$ [GeV]"),
    ("t_had/rapidity", r"$y(t_{h})$"),
    ("t_lep/rapidity", r"$y(t_{\ell})$"),
    ("ttbar/rapidity", r"$y(t\bar{t})$"),
)

#: Multiplicity columns: (label, axis label, low bin, high bin).
MULTIPLICITY_COLUMNS: tuple[tuple[str, str, int, int], ...] = (
    ("n_jets", r"$N_{jets}$", 4, 9),
    ("n_bjets", r"$N_{b\,jets}$", 1, 4),
    ("n_objects", r"$N_{objects}$", 5, 10),
)

#: Inclusive per-type distributions: (name, type indices, x label of pT).
TYPE_GROUPS: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("bjet", (0,), "b jets"),
    ("light_jet", (1,), "light jets"),
    ("lepton", (2, 3), "leptons"),
)

#: Columns of the rank-histogram and coverage figures (events that have all of them).
RANK_COLUMNS: tuple[str, ...] = (
    "obj1/pt",
    "obj1/eta",
    "obj2/pt",
    "obj4/pt",
    "met",
    "nu_pz",
    "t_had/mass",
    "t_lep/mass",
)

#: Columns of the corner plot.
CORNER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("obj1/pt", r"$p_{T}(o_{1})$"),
    ("met", r"$E_{T}^{miss}$"),
    ("t_had/mass", r"$m(t_{h})$"),
    ("t_lep/mass", r"$m(t_{\ell})$"),
)


def _pair(v: float, e: float) -> tuple[float, float]:
    return (float(v), float(e))


def write_particle_report(
    output_dir: str | Path,
    level: Any,
    truth: tuple[np.ndarray, np.ndarray],
    draws_by_model: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    weights: np.ndarray | None = None,
    train_truth: tuple[np.ndarray, np.ndarray] | None = None,
    n_boot: int = 100,
    plots: bool = True,
    plot_formats: Sequence[str] = ("png",),
    seed: int = 0,
    title: str = "hepvld particle-level evaluation",
) -> Report:
    """Evaluate particle-level posteriors (see the module docstring) and write the report.

    Parameters
    ----------
    output_dir
        Created if missing.
    level
        The particle level (:class:`~hepvld.targets.particle.ParticleLevel`).
    truth : (values (B, K, H), mask (B, K))
        Particle-level truth of the test events, physical units.
    draws_by_model : name -> (values (B, S, K, H), mask (B, S, K))
        Posterior draws of every model (``S >= 2``).
    weights : (B,), optional
    train_truth : (values (B_t, K, H), mask (B_t, K)), optional
        Training truth: the no-information reference and the independent sample of the
        truth floor; without it the floor uses halves of the test truth and the reference
        the test truth marginal (the report says so).
    n_boot, plots, plot_formats, seed, title
        Bootstrap replicates, figures on/off and their formats, seed, page title.
    """
    from hepvld.targets.particle_output import feature_labels, feature_table

    t_start = time.perf_counter()
    out = Path(output_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = feature_labels(level)
    col = {name: i for i, name in enumerate(labels)}
    tt = feature_table(level, *truth)
    b = len(tt)
    w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
    tables_by_model = {}
    for name, (v, m) in draws_by_model.items():
        if v.shape[1] < 2:
            raise ValueError(f"{name}: at least 2 draws per event are needed, got {v.shape[1]}")
        tables_by_model[name] = feature_table(level, v, m)
    train = feature_table(level, *train_truth) if train_truth is not None else None
    ref_pool, ref_src = (
        (train, f"training truth ({len(train)} events)")
        if train is not None
        else (tt, "test truth marginal (no training truth given)")
    )

    # -- distances ----------------------------------------------------------------
    floor, floor_src = truth_floor_columns(
        tt, w, second=train, n_boot=n_boot, rng=rng, labels=labels
    )
    dist = {
        name: column_distances(d[:, 0], tt, w, w, n_boot=n_boot, rng=rng, labels=labels)
        for name, d in tables_by_model.items()
    }
    columns = ["feature"]
    for name in dist:
        columns += [f"{name} W1", f"{name} W1/floor", f"{name} KS"]
    columns += ["floor W1", "floor KS"]
    rows = []
    fw, fe = floor.values["wasserstein"], floor.error("wasserstein")
    for j, label in enumerate(labels):
        row: list[Any] = [label]
        for res in dist.values():
            wv, we = res.values["wasserstein"][j], res.error("wasserstein")[j]
            row += [_pair(wv, we), float(wv / fw[j]) if fw[j] > 0 else float("nan")]
            row += [_pair(res.values["ks"][j], res.error("ks")[j])]
        row += [_pair(fw[j], fe[j]), _pair(floor.values["ks"][j], floor.error("ks")[j])]
        rows.append(row)
    tables: dict[str, Table] = {
        "distances": Table(
            "Distances to the truth per feature (one draw per event)",
            columns,
            rows,
            note=f"W1 (Wasserstein-1) and KS with event-bootstrap errors ({n_boot} replicates); "
            f"floor: {floor_src}. Absent values (a 4th object, no pseudo-top) are ignored "
            "column by column.",
        )
    }

    # -- multiplicities -------------------------------------------------------------
    summary: list[str] = []
    for key, _axis, low, high in MULTIPLICITY_COLUMNS:
        rows = []
        cols = ["bin", "truth"]
        tabs = {}
        for name, d in tables_by_model.items():
            mt = multiplicity_table(
                tt[:, col[key]], d[:, :, col[key]], w, low=low, high=high, n_boot=n_boot, rng=rng
            )
            tabs[name] = mt
            cols += [name, f"{name} pull"]
        first = next(iter(tabs.values()))
        for i, bin_name in enumerate(first.bins):
            row = [bin_name, _pair(first.truth[i], first.truth_error[i])]
            for mt in tabs.values():
                row += [_pair(mt.unfolded[i], mt.unfolded_error[i]), float(mt.pull[i])]
            rows.append(row)
        tables[f"multiplicity_{key}"] = Table(
            f"Fraction of events per {key.removeprefix('n_')} multiplicity",
            cols,
            rows,
            note="Unfolded: all draws of every event; errors from one event bootstrap; "
            "pull = (unfolded − truth) / σ(difference).",
        )
        for name, mt in tabs.items():
            if not np.isfinite(mt.pull).any():
                summary.append(f"{name}: {key}: no bin with a fluctuation to compare")
                continue
            worst = float(np.nanmax(np.abs(mt.pull)))
            summary.append(
                f"{name}: {key} distribution within {worst:.1f}σ of the truth in every bin"
                if key == "n_jets"
                else f"{name}: {key}: largest pull {worst:.1f}σ"
            )

    # -- calibration and CRPS skill ---------------------------------------------------
    cal_idx = [col[c] for c in CALIBRATION_COLUMNS if c in col]
    cal_labels = [labels[j] for j in cal_idx]
    for name, d in tables_by_model.items():
        cal = column_calibration(
            tt[:, cal_idx],
            d[:, :, cal_idx],
            ref_pool[:, cal_idx],
            cal_labels,
            w,
            n_boot=n_boot,
            rng=rng,
        )
        rows = [
            [
                cal_labels[j],
                int(cal.n_events[j]),
                _pair(cal.coverage68[j], cal.coverage68_error[j]),
                _pair(cal.coverage95[j], cal.coverage95_error[j]),
                float(cal.rank_pvalue[j]),
                float(cal.crps[j]),
                float(cal.crps_reference[j]),
                _pair(cal.skill[j], cal.skill_error[j]),
            ]
            for j in range(len(cal_labels))
        ]
        tables[f"calibration_{_safe(name)}"] = Table(
            f"{name}: calibration and CRPS skill per feature",
            [
                "feature",
                "events",
                "coverage 68%",
                "coverage 95%",
                "rank p",
                "CRPS",
                "CRPS ref",
                "skill",
            ],
            rows,
            note="Events where the truth and every draw have the feature. Coverage of the central "
            "credible intervals (PIT); rank p: χ² uniformity of the SBC ranks; skill = 1 − "
            f"CRPS / CRPS_ref, reference: {ref_src}.",
        )
        obj = [j for j, lab in enumerate(cal_labels) if lab.startswith("obj")]
        summary.append(
            f"{name}: CRPS skill of the leading objects' features {np.nanmin(cal.skill[obj]):.2f} – "
            f"{np.nanmax(cal.skill[obj]):.2f}; 68% coverage {np.nanmin(cal.coverage68[obj]):.2f} – "
            f"{np.nanmax(cal.coverage68[obj]):.2f}"
        )
    for name, res in dist.items():
        lead = [col[f"obj{r}/{k}"] for r in range(1, 5) for k in ("pt", "eta", "phi", "mass")]
        ratio = res.values["wasserstein"][lead] / fw[lead]
        summary.append(
            f"{name}: W1 of the four leading objects' features {np.nanmin(ratio):.1f} – "
            f"{np.nanmax(ratio):.1f}× the truth floor"
        )

    files: list[Path] = []
    for key, tab in tables.items():
        files += tab.write(out / "tables" / key)
    figures_b64: dict[str, str] = {}
    if plots:
        files += _figures(
            out,
            level,
            truth,
            draws_by_model,
            tt,
            tables_by_model,
            train,
            train_truth,
            w,
            col,
            plot_formats,
            figures_b64,
        )
    s_text = ", ".join(f"{k}={v[0].shape[1]}" for k, v in draws_by_model.items())
    meta = (
        f"{b} test events; draws per event: {s_text}; distances use one draw per event; "
        f"floor: {floor_src}; reference: {ref_src}; {n_boot} bootstrap replicates; seed {seed}."
    )
    results = {
        "meta": meta,
        "summary": summary,
        "tables": {k: t.to_dict() for k, t in tables.items()},
    }
    html_path, json_path = _write_pages(out, title, summary, meta, tables, figures_b64, results)
    files += [html_path, json_path]
    logger.info("particle-level report written to %s in %.1f s", out, time.perf_counter() - t_start)
    return Report(out, html_path, files, tables, summary, results)


def _figures(
    out: Path,
    level: Any,
    truth: tuple[np.ndarray, np.ndarray],
    draws_by_model: Mapping[str, tuple[np.ndarray, np.ndarray]],
    tt: np.ndarray,
    tables_by_model: Mapping[str, np.ndarray],
    train: np.ndarray | None,
    train_truth: tuple[np.ndarray, np.ndarray] | None,
    w: np.ndarray,
    col: Mapping[str, int],
    formats: Sequence[str],
    figures_b64: dict[str, str],
) -> list[Path]:
    from hepvld.evaluation import plots
    from hepvld.evaluation.calibration import coverage, rank_histogram, ranks
    from hepvld.evaluation.particle_plots import plot_corner, plot_draw_distribution
    from hepvld.targets.particle_output import object_values

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    files: list[Path] = []

    def emit(name: str, fig: Any) -> None:
        paths = plots.save_figure(fig, fig_dir / name, formats)
        files.extend(paths)
        png = [p for p in paths if p.suffix == ".png"]
        figures_b64[name] = (
            base64.b64encode(png[0].read_bytes()).decode("ascii")
            if png
            else plots.figure_to_base64(fig)
        )

    for key, axis, low, high in MULTIPLICITY_COLUMNS:
        edges = np.arange(low - 1.5, high + 1.5 + 1)
        fig, _ = plot_draw_distribution(
            tt[:, col[key]],
            {k: v[:, :, col[key]] for k, v in tables_by_model.items()},
            xlabel=axis,
            weights=w,
            floor=None if train is None else train[:, col[key]],
            bins=edges,
            ylabel="Fraction of events",
        )
        emit(f"multiplicity_{key}", fig)
    for name, types, text in TYPE_GROUPS:
        for q, unit in (("pt", " [GeV]"), ("eta", "")):
            sym = r"p_{T}" if q == "pt" else r"\eta"
            fig, _ = plot_draw_distribution(
                object_values(level, *truth, q, types),
                {k: object_values(level, v, m, q, types) for k, (v, m) in draws_by_model.items()},
                xlabel=f"${sym}$ ({text}, inclusive){unit}",
                weights=w,
                floor=None if train_truth is None else object_values(level, *train_truth, q, types),
                value_range=(0.0, 400.0) if q == "pt" else (-2.6, 2.6),
                ylabel="Objects per event / bin width",
            )
            emit(f"inclusive_{name}_{q}", fig)
    for key, axis in PLOT_COLUMNS:
        fig, _ = plot_draw_distribution(
            tt[:, col[key]],
            {k: v[:, :, col[key]] for k, v in tables_by_model.items()},
            xlabel=axis,
            weights=w,
            floor=None if train is None else train[:, col[key]],
        )
        emit(f"dist_{_safe(key)}", fig)
    rank_cols = [c for c in RANK_COLUMNS if c in col]
    ridx = [col[c] for c in rank_cols]
    coverages = {}
    for name, d in tables_by_model.items():
        ok = np.isfinite(tt[:, ridx]).all(axis=1) & np.isfinite(d[:, :, ridx]).all(axis=(1, 2))
        if ok.sum() < 2:
            continue
        rng = np.random.default_rng(0)
        t_ok, d_ok = tt[ok][:, ridx], d[ok][:, :, ridx]
        rh = rank_histogram(ranks(d_ok, t_ok, rng), d.shape[1], w[ok])
        fig, _ = plots.plot_rank_histograms(rh, list(range(len(ridx))), labels=rank_cols)
        emit(f"ranks_{_safe(name)}", fig)
        coverages[name] = coverage(d_ok, t_ok, np.linspace(0.05, 0.95, 19), w[ok], rng=rng)
    if coverages:
        emit("coverage", plots.plot_coverage(coverages)[0])
    idx = [col[c] for c, _ in CORNER_COLUMNS]
    for name, d in tables_by_model.items():
        complete = min(
            int(np.isfinite(tt[:, idx]).all(axis=1).sum()),
            int(np.isfinite(d[:, 0][:, idx]).all(axis=1).sum()),
        )
        if complete < 10 * len(idx):
            logger.warning(
                "%s: no corner plot, %d events have all of %s (at least %d needed)",
                name,
                complete,
                [c for c, _ in CORNER_COLUMNS],
                10 * len(idx),
            )
            continue
        fig = plot_corner(
            tt[:, idx],
            d[:, 0][:, idx],
            [lab for _, lab in CORNER_COLUMNS],
            weights=w,
            unfolded_weights=w,
            name=name,
        )
        emit(f"corner_{_safe(name)}", fig)
    return files
