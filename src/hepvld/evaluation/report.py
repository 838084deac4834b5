"""``write_report``: every table and figure of an evaluation, plus a one-page HTML summary.

Inputs are numpy arrays in physical units; see :func:`write_report` for the files written.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepvld.evaluation.aggregates import COMPONENT_TYPES
from hepvld.evaluation.bootstrap import (
    DEFAULT_N_BOOT,
    DistanceResult,
    bootstrap_counts,
    compare_samples,
    global_sample,
    truth_floor,
)
from hepvld.evaluation.calibration import Coverage, RankHistogram, coverage, pit, rank_histogram
from hepvld.evaluation.consistency import composite_masses, mass_shell_residual, regressed_masses
from hepvld.evaluation.distances import DISTANCES
from hepvld.evaluation.scores import (
    constant_components,
    crps_fair,
    energy_score,
    prior_reference,
    resolution,
)
from hepvld.evaluation.tables import Table, format_value, paper_table1
from hepvld.physics.constants import DERIVED, target_index, target_labels
from hepvld.targets.parton import PARTON

__all__ = ["DEFAULT_PLOT_FEATURES", "Report", "write_report"]

logger = logging.getLogger(__name__)

#: Features drawn by default as global distributions: (particle, kind).
DEFAULT_PLOT_FEATURES: tuple[tuple[str, str], ...] = (
    ("t_had", "mass"),
    ("t_lep", "mass"),
    ("W_had", "mass"),
    ("W_lep", "mass"),
    ("ttbar", "mass"),
    ("t_had", "pT"),
    ("nu", "pz"),
    ("b_had", "eta"),
)

#: Components whose rank histograms are drawn.
RANK_PLOT_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("t_had", "M"),
    ("t_lep", "M"),
    ("W_had", "M"),
    ("ttbar", "M"),
    ("nu", "px"),
    ("nu", "pz"),
    ("b_had", "logE"),
    ("q1", "pz"),
)

#: Features of the per-event posterior plots.
POSTERIOR_FEATURES: tuple[tuple[str, str], ...] = (
    ("t_had", "mass"),
    ("t_lep", "mass"),
    ("W_had", "mass"),
    ("nu", "pz"),
    ("t_had", "pT"),
    ("ttbar", "mass"),
)

_METRIC_TITLES = {
    "wasserstein": "Wasserstein-1",
    "energy": "Energy",
    "ks": "K-S",
    "kl64": "KL64",
    "kl128": "KL128",
    "kl256": "KL256",
}
_COVERAGE_GRID = np.round(np.linspace(0.05, 0.95, 19), 2)


@dataclass
class Report:
    """What :func:`write_report` wrote and computed.

    Attributes
    ----------
    output_dir : Path
    html : Path
        The self-contained one-page summary.
    files : list[Path]
        Every file written.
    tables : dict[str, Table]
    summary : list[str]
        The verdict sentences of the HTML page.
    results : dict[str, Any]
        JSON-serialisable numbers (also in ``results.json``).
    """

    output_dir: Path
    html: Path
    files: list[Path] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _geo_mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.nanmean(np.log(np.where(x > 0, x, np.nan)), axis=axis))


def _std(r: np.ndarray) -> np.ndarray:
    """Standard deviation over bootstrap replicates (axis 0), ignoring NaN replicates."""
    finite = np.isfinite(r)
    n = finite.sum(axis=0)
    if r.shape[0] < 2:
        return np.full(r.shape[1:], np.nan)
    filled = np.where(finite, r, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n
        var = np.where(finite, (filled - mean) ** 2, 0.0).sum(axis=0) / (n - 1)
    return np.where(n > 1, np.sqrt(var), np.nan)


def _pair(v: Any, e: Any) -> tuple[float, float]:
    return (float(v), float(e))


@dataclass
class _PerEvent:
    crps: tuple[np.ndarray, np.ndarray]  # mean (55,), error (55,)
    skill: tuple[np.ndarray, np.ndarray]  # (55,), (55,)
    skill_geo: tuple[float, float]
    es: tuple[np.ndarray, np.ndarray]  # (12,) groups: all, then partons
    es_skill: tuple[np.ndarray, np.ndarray]
    bias: np.ndarray
    width: np.ndarray
    width_skill_geo: float


def _per_event(
    draws: np.ndarray,
    truth: np.ndarray,
    w: np.ndarray,
    ref: dict[str, np.ndarray],
    counts: np.ndarray,
    scale: np.ndarray,
) -> _PerEvent:
    groups = [np.arange(PARTON.dim)] + [
        np.arange(5 * i, 5 * i + 5) for i in range(len(PARTON.names))
    ]
    crps = crps_fair(draws, truth)
    es = energy_score(draws, truth, scale=scale, groups=groups)
    cw = counts * w[None]
    norm = cw.sum(axis=1, keepdims=True)

    def mean_reps(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.einsum("b,bk->k", w, v) / w.sum(), np.einsum("rb,bk->rk", cw, v) / norm

    c_m, c_r = mean_reps(crps)
    rc_m, rc_r = mean_reps(ref["crps"])
    e_m, e_r = mean_reps(es)
    re_m, re_r = mean_reps(ref["es"])
    with np.errstate(divide="ignore", invalid="ignore"):
        # A component whose truth is constant (tt̄ px, py at hard-process level) has a
        # zero reference CRPS: its skill is undefined (NaN) and left out of the means.
        defined = np.isfinite(scale)
        skill = np.where(defined & (rc_m > 0), c_m / rc_m, np.nan)
        skill_r = np.where(defined & (rc_r > 0), c_r / rc_r, np.nan)
        es_skill, es_skill_r = e_m / re_m, e_r / re_r
    geo, geo_r = _geo_mean(skill), _geo_mean(skill_r, axis=1)
    res, _ = resolution(draws, truth, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        wskill = _geo_mean(np.where(np.isfinite(scale), res.width / ref["width"], np.nan))
    return _PerEvent(
        crps=(c_m, _std(c_r)),
        skill=(skill, _std(skill_r)),
        skill_geo=(float(geo), float(np.std(geo_r, ddof=1)) if len(geo_r) > 1 else math.nan),
        es=(e_m, _std(e_r)),
        es_skill=(es_skill, _std(es_skill_r)),
        bias=res.bias,
        width=res.width,
        width_skill_geo=float(wskill),
    )


def _calibration_verdict(cov: Coverage, rh: RankHistogram) -> tuple[str, dict[str, Any]]:
    """Words and numbers: calibrated / over-confident / under-confident / miscalibrated."""
    i68 = int(np.argmin(np.abs(cov.levels - 0.68)))
    med = float(np.median(cov.coverage[i68]))
    lvl = float(cov.levels[i68])
    tol = 0.02 + 3 * math.sqrt(lvl * (1 - lvl) / cov.n_eff)
    n_fail = int((rh.pvalue < 0.01).sum())
    n = len(rh.pvalue)
    ranks_ok = n_fail <= max(1, round(0.05 * n))
    if abs(med - lvl) <= tol and ranks_ok:
        verdict = "calibrated"
    elif med < lvl - tol:
        verdict = "over-confident (intervals too narrow)"
    elif med > lvl + tol:
        verdict = "under-confident (intervals too wide)"
    else:
        verdict = "miscalibrated (coverage near nominal, but rank histograms not uniform: biased or wrongly shaped)"
    return verdict, {
        "median_coverage": med,
        "level": lvl,
        "tolerance": tol,
        "rank_failures": n_fail,
        "n_components": n,
    }


def _skill_words(skill: float) -> str:
    if not np.isfinite(skill):
        return "undefined"
    if skill < 1:
        return f"per-event error {100 * (1 - skill):.0f} % below the reference"
    return f"per-event error {100 * (skill - 1):.0f} % ABOVE the reference: the detector information is not used"


def _distance_verdict(name: str, res: DistanceResult, floor: DistanceResult) -> str:
    parts = []
    for metric in ("wasserstein", "ks", "kl128"):
        v, e = res.aggregates(metric)["total"]
        f, fe = floor.aggregates(metric)["total"]
        ratio = v / f if f > 0 else math.inf
        sig = (
            (v - f) / math.sqrt(e**2 + fe**2)
            if np.isfinite(e) and np.isfinite(fe) and (e > 0 or fe > 0)
            else math.nan
        )
        words = (
            "consistent with the floor"
            if np.isfinite(sig) and sig < 2
            else f"{ratio:.1f}× the floor"
        )
        parts.append(
            f"Σ{_METRIC_TITLES[metric]} = {format_value(float(v), float(e))} vs floor "
            f"{format_value(float(f), float(fe))} ({words})"
        )
    return f"{name}: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- tables


def _distance_tables(
    results: Mapping[str, DistanceResult], floor: DistanceResult, floor_label: str
) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    cols = ["model", *[_METRIC_TITLES[m] for m in DISTANCES]]
    rows = []
    for name, res in [*results.items(), (floor_label, floor)]:
        rows.append([name, *[_pair(*res.aggregates(m)["total"]) for m in DISTANCES]])
    tables["table1"] = Table(
        "Table 1: distances summed over the 55 components",
        cols,
        rows,
        note=(
            f"Unfolded vs true distributions per component, summed (paper's Table 1). "
            f"Errors: event bootstrap std. '{floor_label}' is the same between two independent "
            "truth samples: the floor any model can reach at this sample size."
        ),
    )
    paper = paper_table1()
    tables["paper_table1"] = Table(
        "Paper's Table 1 (1.3M test events; for orientation only, sample sizes differ)",
        cols,
        [[m, *[f"{v[k]:.2f}" for k in DISTANCES]] for m, v in paper.items()],
    )
    for metric in DISTANCES:
        aggs = {n: r.aggregates(metric) for n, r in [*results.items(), (floor_label, floor)]}
        tables[f"particle_{metric}"] = Table(
            f"{_METRIC_TITLES[metric]} per particle (sum of its 5 components)",
            ["particle", *aggs],
            [
                [
                    p,
                    *[
                        _pair(a["per_particle"][0][i], a["per_particle"][1][i])
                        for a in aggs.values()
                    ],
                ]
                for i, p in enumerate(PARTON.names)
            ],
        )
        tables[f"type_{metric}"] = Table(
            f"{_METRIC_TITLES[metric]} per component type (sum over the 11 particles)",
            ["type", *aggs],
            [
                [t, *[_pair(a["per_type"][0][i], a["per_type"][1][i]) for a in aggs.values()]]
                for i, t in enumerate(COMPONENT_TYPES)
            ],
        )
    return tables


def _per_event_tables(
    per: Mapping[str, _PerEvent], ref_label: str, ref: dict[str, np.ndarray]
) -> dict[str, Table]:
    tables = {}
    rows = [
        [ref_label, _pair(ref["es_mean"][0], ref["es_err"][0]), 1.0, 1.0, f"0/{PARTON.dim}", 1.0]
    ]
    for name, p in per.items():
        rows.append(
            [
                name,
                _pair(p.es[0][0], p.es[1][0]),
                _pair(p.es_skill[0][0], p.es_skill[1][0]),
                _pair(*p.skill_geo),
                f"{int((p.skill[0] < 1).sum())}/{int(np.isfinite(p.skill[0]).sum())}",
                p.width_skill_geo,
            ]
        )
    tables["per_event_summary"] = Table(
        "Per-event accuracy vs the no-information reference",
        [
            "model",
            "energy score",
            "ES skill",
            "CRPS skill (geo. mean)",
            "components with CRPS skill < 1",
            "median-resolution width skill (geo. mean)",
        ],
        rows,
        note=(
            f"Energy score on all 55 components scaled by the truth std; skill = model / reference "
            f"({ref_label}: draws from the training marginal, ignoring the detector). Skill < 1 means "
            "the model beats the reference; geometric means over the 55 components."
        ),
    )
    labels = target_labels()
    for name, p in per.items():
        tables[f"per_event_{name}"] = Table(
            f"Per-component per-event scores: {name}",
            [
                "component",
                "CRPS",
                "CRPS reference",
                "CRPS skill",
                "median bias",
                "median width",
                "reference width",
                "width skill",
            ],
            [
                [
                    labels[i],
                    _pair(p.crps[0][i], p.crps[1][i]),
                    float(ref["crps_mean"][i]),
                    _pair(p.skill[0][i], p.skill[1][i]),
                    float(p.bias[i]),
                    float(p.width[i]),
                    float(ref["width"][i]),
                    float(p.width[i] / ref["width"][i]) if ref["width"][i] > 0 else math.nan,
                ]
                for i in range(PARTON.dim)
            ],
            note="Width: half the 16-84 % range of (posterior median - truth).",
        )
    return tables


def _calibration_tables(
    cov: Mapping[str, Coverage], rh: Mapping[str, RankHistogram], levels: Sequence[float]
) -> dict[str, Table]:
    cols = ["model"]
    for lv in levels:
        cols += [f"coverage {lv:.0%} (median)", f"{lv:.0%} min-max", f"{lv:.0%} |pull|>3"]
    cols += ["rank χ² p<0.01", "median rank p-value"]
    rows = []
    for name, c in cov.items():
        row: list[Any] = [name]
        pull = c.pull()
        for j in range(len(levels)):
            row += [
                float(np.median(c.coverage[j])),
                f"{c.coverage[j].min():.3f}-{c.coverage[j].max():.3f}",
                f"{int((np.abs(pull[j]) > 3).sum())}/{PARTON.dim}",
            ]
        row += [
            f"{int((rh[name].pvalue < 0.01).sum())}/{PARTON.dim}",
            float(np.median(rh[name].pvalue)),
        ]
        rows.append(row)
    tables = {
        "coverage_summary": Table(
            "Calibration: coverage of central credible intervals and rank uniformity",
            cols,
            rows,
            note=(
                "Coverage from the randomised PIT (exact for any number of draws); "
                "pull = (coverage - level)/binomial σ. Rank histograms: χ² uniformity test per component."
            ),
        )
    }
    labels = target_labels()
    ccols = ["component"]
    for name in cov:
        ccols += [f"{name} {lv:.0%}" for lv in levels] + [f"{name} rank p"]
    crow = []
    for i in range(PARTON.dim):
        row = [labels[i]]
        for name, c in cov.items():
            row += [_pair(c.coverage[j, i], c.error[j, i]) for j in range(len(levels))] + [
                float(rh[name].pvalue[i])
            ]
        crow.append(row)
    tables["coverage_components"] = Table("Coverage per component", ccols, crow)
    return tables


def _consistency_table(truth: np.ndarray, draws_by_model: Mapping[str, np.ndarray]) -> Table:
    cols = ["sample", "median sgn(Δ)|Δ|^½ leaves [GeV]"]
    for name in DERIVED:
        cols += [f"{name}: median(daughters − regressed) [GeV]", f"{name}: width [GeV]"]
    rows = []
    for name, x in [("truth", truth[:, None]), *draws_by_model.items()]:
        x0 = np.asarray(x)[:, 0]
        d = mass_shell_residual(x0)[:, :6]
        row: list[Any] = [name, float(np.median(np.sign(d) * np.sqrt(np.abs(d))))]
        cm, rm = composite_masses(x0), regressed_masses(x0)
        for comp in DERIVED:
            r = cm[comp] - rm[comp]
            q16, q50, q84 = np.nanquantile(r, [0.16, 0.5, 0.84])
            row += [float(q50), float(0.5 * (q84 - q16))]
        rows.append(row)
    return Table(
        "Physics consistency (one draw per event)",
        cols,
        rows,
        note=(
            "Δ = M² − (E² − |p|²) with E = exp(log E), for the six leaves; composites: "
            "mass of the summed daughters minus the regressed mass."
        ),
    )


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px;font-variant-numeric:tabular-nums}
caption{font-weight:bold;text-align:left;padding:4px 0}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#f2f2f2;vertical-align:bottom;min-width:4.5em}
tr:nth-child(even) td{background:#fafafa}
th:first-child,td:first-child{text-align:left;white-space:nowrap}
.note{font-size:13px;color:#444;max-width:1000px}
img{max-width:100%;border:1px solid #ddd;margin:4px}
.grid img{width:48%}
li{margin:4px 0}
"""


def _write_pages(
    out: Path,
    title: str,
    summary: list[str],
    meta: str,
    tables: Mapping[str, Table],
    figures_b64: Mapping[str, str],
    results: Mapping[str, Any],
) -> tuple[Path, Path]:
    """Write ``out/report.html`` (the one-page summary) and ``out/results.json``."""
    html_path = out / "report.html"
    html_path.write_text(_html_page(title, summary, meta, tables, figures_b64), encoding="utf-8")
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False), encoding="utf-8")
    return html_path, json_path


def _html_page(
    title: str,
    summary: list[str],
    meta: str,
    tables: Mapping[str, Table],
    figures: Mapping[str, str],
) -> str:
    main = ["table1", "per_event_summary", "coverage_summary", "consistency"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(meta)}</p>",
        "<h2>Verdict</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary) + "</ul>",
    ]
    for key in main:
        if key in tables:
            parts.append(tables[key].to_html())
    parts.append("<h2>Figures</h2><div class='grid'>")
    for name, b64 in figures.items():
        parts.append(
            f'<img alt="{html.escape(name)}" title="{html.escape(name)}" src="data:image/png;base64,{b64}">'
        )
    parts.append("</div><h2>All tables</h2>")
    for key, tab in tables.items():
        if key not in main:
            parts.append(
                f"<details><summary>{html.escape(tab.title)}</summary>{tab.to_html()}</details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- main


def write_report(
    output_dir: str | Path,
    truth: np.ndarray,
    draws_by_model: Mapping[str, np.ndarray],
    *,
    weights: np.ndarray | None = None,
    train_truth: np.ndarray | None = None,
    floor_truth: np.ndarray | None = None,
    floor_weights: np.ndarray | None = None,
    reference_draws: np.ndarray | None = None,
    train_features: np.ndarray | None = None,
    test_features: np.ndarray | None = None,
    posterior_events: Sequence[int] = (0,),
    levels: Sequence[float] = (0.68, 0.95),
    n_boot: int = DEFAULT_N_BOOT,
    global_draws: str = "first",
    plot_features: Sequence[tuple[str, str]] = DEFAULT_PLOT_FEATURES,
    plot_formats: Sequence[str] = ("png", "pdf"),
    plots: bool = True,
    seed: int = 0,
    title: str = "hepvld evaluation report",
) -> Report:
    """Evaluate unfolded posteriors against the truth and write tables, figures and HTML.

    Parameters
    ----------
    output_dir : str or Path
        Created if missing.
    truth : ndarray, shape (B, 55)
        True parton-level targets of the test events (physical units).
    draws_by_model : mapping name -> ndarray, shape (B, S, 55)
        Posterior draws of every model (``S >= 2``).
    weights : ndarray, shape (B,), optional
        Per-event weights (all estimators and bootstraps are weighted).
    train_truth : ndarray, shape (B_train, 55), optional
        Training truth: the no-information reference (:func:`prior_reference`) and, if
        ``floor_truth`` is None, the second sample of the truth-vs-truth floor.
    floor_truth : ndarray, shape (B2, 55), optional
        Independent truth sample for the floor (subsampled to B rows). Without it and
        ``train_truth`` the test truth is split in halves (floor for B/2 events).
    floor_weights : ndarray, shape (B2,), optional
    reference_draws : ndarray, shape (B, S_ref, 55), optional
        No-information reference posterior; default drawn from ``train_truth`` with
        ``S_ref`` = max S, else (logged) from the test truth marginal.
    train_features : ndarray, shape (B_train, K), optional
    test_features : ndarray, shape (B, K), optional
        Detector features (e.g. :func:`~hepvld.evaluation.posterior.flatten_detector`)
        for the brute-force posteriors of ``posterior_events`` (needs ``train_truth``).
    posterior_events : sequence of int
        Test events drawn as per-event posterior plots.
    levels : sequence of float
        Credible levels of the coverage tables.
    n_boot : int
        Bootstrap replicates for every error.
    global_draws : {"first", "all"}
        Draws used for the global distances (see :func:`~hepvld.evaluation.bootstrap.global_sample`).
    plot_features : sequence of (particle, kind)
        Global distributions to draw.
    plot_formats : sequence of str
        File formats of every figure.
    plots : bool
        False skips all figures (tables only).
    seed : int
        Seeds every random choice (bootstrap, halves, reference, rank ties).
    title : str

    Returns
    -------
    Report

    Notes
    -----
    Files: ``tables/*.md`` and ``tables/*.csv`` (one pair per table), ``tables.md`` (all
    tables), ``results.json``, ``figures/*.{png,pdf}``, ``report.html`` (self-contained).
    """
    t_start = time.perf_counter()
    out = Path(output_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 2 or truth.shape[1] != PARTON.dim:
        raise ValueError(f"truth must have shape (B, {PARTON.dim}), got {truth.shape}")
    b = len(truth)
    draws_by_model = {k: np.asarray(v, dtype=np.float64) for k, v in draws_by_model.items()}
    if not draws_by_model:
        raise ValueError("draws_by_model is empty")
    for name, d in draws_by_model.items():
        if d.ndim != 3 or d.shape[0] != b or d.shape[2] != PARTON.dim or d.shape[1] < 2:
            raise ValueError(
                f"draws of {name!r} must have shape ({b}, S>=2, {PARTON.dim}), got {d.shape}"
            )
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    s_max = max(d.shape[1] for d in draws_by_model.values())

    # floor
    if floor_truth is not None:
        floor_src, second, second_w = "independent truth sample", floor_truth, floor_weights
    elif train_truth is not None:
        floor_src, second, second_w = "training truth sample", train_truth, None
    else:
        floor_src, second, second_w = "test truth split in halves (B/2 events)", None, None
    floor_label = "truth floor"
    logger.info("floor: %s", floor_src)
    floor = truth_floor(
        truth, w, second=second, second_weights=second_w, n_boot=n_boot, rng=rngs[0]
    )

    # reference
    if reference_draws is not None:
        ref_src, ref_draws = "given reference draws", np.asarray(reference_draws, dtype=np.float64)
    elif train_truth is not None:
        ref_src, ref_draws = "training prior", prior_reference(train_truth, b, s_max, rngs[1])
    else:
        logger.warning(
            "no train_truth: the no-information reference is drawn from the test truth marginal"
        )
        ref_src, ref_draws = "test truth marginal", prior_reference(truth, b, s_max, rngs[1])
    ref_label = f"reference ({ref_src})"
    constant = constant_components(truth)
    if constant.any():
        logger.info(
            "components with a constant truth, left out of per-event skills: %s",
            ", ".join(np.asarray(target_labels())[constant]),
        )
    scale = np.where(constant, np.inf, truth.std(axis=0))
    counts = bootstrap_counts(b, n_boot, rngs[2]) if n_boot > 0 else np.ones((1, b))
    groups = [np.arange(PARTON.dim)] + [
        np.arange(5 * i, 5 * i + 5) for i in range(len(PARTON.names))
    ]
    ref_crps = crps_fair(ref_draws, truth)
    ref_es = energy_score(ref_draws, truth, scale=scale, groups=groups)
    ref_res, _ = resolution(ref_draws, truth, w)
    cw = counts * w[None]
    ref = {
        "crps": ref_crps,
        "es": ref_es,
        "width": ref_res.width,
        "crps_mean": np.einsum("b,bk->k", w, ref_crps) / w.sum(),
        "es_mean": np.einsum("b,bk->k", w, ref_es) / w.sum(),
        "es_err": _std(np.einsum("rb,bk->rk", cw, ref_es) / cw.sum(axis=1, keepdims=True)),
    }

    dist: dict[str, DistanceResult] = {}
    per: dict[str, _PerEvent] = {}
    cov: dict[str, Coverage] = {}
    cov_grid: dict[str, Coverage] = {}
    rh: dict[str, RankHistogram] = {}
    for name, d in draws_by_model.items():
        t0 = time.perf_counter()
        x, xw, ev = global_sample(d, w, use=global_draws)
        dist[name] = compare_samples(
            x, truth, xw, w, test_event=ev, paired=True, n_boot=n_boot, rng=rngs[3]
        )
        per[name] = _per_event(d, truth, w, ref, counts, scale)
        u = pit(d, truth, rngs[4])
        cov[name] = coverage(d, truth, tuple(levels), w, u=u)
        cov_grid[name] = coverage(d, truth, _COVERAGE_GRID, w, u=u)
        r = np.floor(u * (d.shape[1] + 1)).astype(np.int64)  # the randomised rank of the PIT
        rh[name] = rank_histogram(r, d.shape[1], w)
        logger.info("evaluated %s in %.1f s", name, time.perf_counter() - t0)

    tables = _distance_tables(dist, floor, floor_label)
    tables.update(_per_event_tables(per, ref_label, ref))
    tables.update(_calibration_tables(cov, rh, levels))
    tables["consistency"] = _consistency_table(truth, draws_by_model)

    summary = [_distance_verdict(n, r, floor) for n, r in dist.items()]
    calib: dict[str, Any] = {}
    for name in draws_by_model:
        p = per[name]
        summary.append(
            f"{name}: per-event CRPS skill vs the no-information reference = {format_value(*p.skill_geo)} "
            f"(model/reference, geometric mean over the {int(np.isfinite(p.skill[0]).sum())} components "
            f"with a non-constant truth: {_skill_words(p.skill_geo[0])}; "
            f"better in {int((p.skill[0] < 1).sum())} of them); "
            f"energy-score skill {format_value(p.es_skill[0][0], p.es_skill[1][0])}."
        )
        verdict, info = _calibration_verdict(cov[name], rh[name])
        calib[name] = {"verdict": verdict, **info}
        summary.append(
            f"{name}: posteriors are {verdict}: median 68 % coverage {info['median_coverage']:.3f} "
            f"(tolerance ±{info['tolerance']:.3f}), rank uniformity rejected (p<0.01) in "
            f"{info['rank_failures']}/{info['n_components']} components."
        )

    files: list[Path] = []
    for key, tab in tables.items():
        files += tab.write(out / "tables" / key)
    all_md = out / "tables.md"
    all_md.write_text(
        f"# {title}\n\n" + "\n".join(t.to_markdown() for t in tables.values()), encoding="utf-8"
    )
    files.append(all_md)

    figures_b64: dict[str, str] = {}
    if plots:
        files += _write_figures(
            out,
            truth,
            draws_by_model,
            w,
            plot_features,
            plot_formats,
            cov_grid,
            rh,
            train_truth,
            train_features,
            test_features,
            posterior_events,
            global_draws,
            figures_b64,
        )

    meta = (
        f"{b} test events; draws per event: {', '.join(f'{k}={v.shape[1]}' for k, v in draws_by_model.items())}; "
        f"global distances use {'one draw' if global_draws == 'first' else 'all draws'} per event; "
        f"floor: {floor_src}; reference: {ref_src}; {n_boot} bootstrap replicates; seed {seed}."
    )
    results = {
        "meta": meta,
        "summary": summary,
        "calibration": calib,
        "tables": {k: t.to_dict() for k, t in tables.items()},
    }
    html_path, json_path = _write_pages(out, title, summary, meta, tables, figures_b64, results)
    files += [html_path, json_path]
    logger.info("report written to %s in %.1f s", out, time.perf_counter() - t_start)
    return Report(out, html_path, files, tables, summary, results)


def _write_figures(
    out: Path,
    truth: np.ndarray,
    draws_by_model: Mapping[str, np.ndarray],
    w: np.ndarray,
    plot_features: Sequence[tuple[str, str]],
    formats: Sequence[str],
    cov_grid: Mapping[str, Coverage],
    rh: Mapping[str, RankHistogram],
    train_truth: np.ndarray | None,
    train_features: np.ndarray | None,
    test_features: np.ndarray | None,
    posterior_events: Sequence[int],
    global_draws: str,
    figures_b64: dict[str, str],
) -> list[Path]:
    from hepvld.evaluation import plots
    from hepvld.evaluation.posterior import brute_force_posterior

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    files: list[Path] = []

    def emit(name: str, fig: Any) -> None:
        paths = plots.save_figure(fig, fig_dir / name, formats)
        files.extend(paths)
        png = [p for p in paths if p.suffix == ".png"]
        if png:  # embed the PNG just written instead of drawing the figure again
            figures_b64[name] = base64.b64encode(png[0].read_bytes()).decode("ascii")
        else:
            figures_b64[name] = plots.figure_to_base64(fig)

    for particle, kind in plot_features:
        fig, _ = plots.plot_distribution(
            truth, draws_by_model, particle, kind, weights=w, use=global_draws
        )
        emit(f"dist_{particle}_{kind}", fig)
    emit("coverage", plots.plot_coverage(cov_grid)[0])
    comps = [target_index(p, c) for p, c in RANK_PLOT_COMPONENTS]
    for name, h in rh.items():
        emit(f"ranks_{_safe(name)}", plots.plot_rank_histograms(h, comps)[0])
    emit("mass_shell", plots.plot_mass_shell(truth, draws_by_model)[0])
    emit("composite_masses", plots.plot_composite_masses(truth, draws_by_model)[0])
    for i in posterior_events:
        bf = None
        if train_features is not None and test_features is not None and train_truth is not None:
            bf = brute_force_posterior(train_features, train_truth, np.asarray(test_features)[i])
        fig, _ = plots.plot_event_posterior(
            {k: v[i] for k, v in draws_by_model.items()},
            truth[i],
            POSTERIOR_FEATURES,
            brute_force=bf,
        )
        emit(f"posterior_event{i}", fig)
    return files


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
