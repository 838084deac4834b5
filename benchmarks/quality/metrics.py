"""The quality benchmark's table: every figure of issue 12 from truth and posterior draws.

Pure functions on numpy arrays (``truth (B, 55)``, ``draws (B, S, 55)`` physical, the
parton level's flat order), built from :mod:`hepvld.evaluation`:

* Table-1 distances (one draw per event, paired event bootstrap) beside the truth floor at
  the same size (an independent truth sample), summed and per component type;
* regressed masses (the model's own ``M`` outputs) and the masses of the summed daughters
  (``q + q′``, ``ℓ + ν``, ``b + q + q′``, ``b + ℓ + ν``) of W_had, W_lep, t_had, t_lep:
  median and 16–84 % width over events × draws;
* the leaves' mass shell, median ``|sgn √(M² − (E² − p²))|``;
* per-event CRPS skill (geometric mean over components, as ``python -m hepvld.evaluate``)
  and energy-score skill against the no-information reference (training events drawn at
  random);
* 68 % / 95 % coverage per component (how many within ±0.03 of nominal) and SBC rank
  uniformity (components with p < 0.01).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hepvld.evaluation import (
    COMPONENT_TYPES,
    compare_samples,
    composite_masses,
    coverage,
    crps_fair,
    energy_score,
    mass_shell_residual,
    prior_reference,
    rank_histogram,
    ranks,
    regressed_masses,
    truth_floor,
)
from hepvld.evaluation.scores import constant_components

__all__ = ["RESONANCES", "format_markdown", "quality_metrics"]

#: The resonances whose masses the table reports.
RESONANCES: tuple[str, ...] = ("W_had", "W_lep", "t_had", "t_lep")
_DISTANCES = ("wasserstein", "energy", "ks", "kl64")
_COVERAGE_TOLERANCE = 0.03


def _peak(m: np.ndarray) -> dict[str, float]:
    m = np.asarray(m, dtype=np.float64).ravel()
    m = m[np.isfinite(m)]
    q16, q50, q84 = np.quantile(m, [0.16, 0.5, 0.84])
    return {"median": float(q50), "width": float(q84 - q16)}


def _masses(x: np.ndarray) -> dict[str, dict[str, dict[str, float]]]:
    reg, summed = regressed_masses(x), composite_masses(x)
    return {r: {"regressed": _peak(reg[r]), "summed": _peak(summed[r])} for r in RESONANCES}


def _shell(x: np.ndarray) -> float:
    r = mass_shell_residual(x)[..., :6]
    return float(np.median(np.sqrt(np.abs(r))))


def quality_metrics(
    truth: np.ndarray,
    draws: np.ndarray,
    train_truth: np.ndarray,
    *,
    n_boot: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Every figure of the benchmark table.

    Parameters
    ----------
    truth : (B, 55)
        Test truth (physical).
    draws : (B, S, 55), S >= 2
        Posterior draws of the test events (physical).
    train_truth : (B_train, 55)
        Training truth: the truth floor's independent sample (``B`` rows drawn when
        ``B_train > B``) and the no-information reference posterior.
    n_boot
        Bootstrap replicates of the distances.
    seed
        Seed of the bootstrap, the floor subset, the reference and the rank ties.

    Returns
    -------
    dict
        ``n_events, n_draws``; ``distances`` and ``floor`` (name -> ``[total, error]``),
        ``per_type`` and ``floor_per_type`` (W1 per component type); ``masses`` and
        ``truth_masses`` (resonance -> regressed/summed -> median/width); ``shell`` and
        ``truth_shell`` [GeV]; ``crps_skill`` (geometric mean over the components the
        model does not predict exactly), ``crps_exact`` (how many it does), ``es_skill``; ``coverage`` (level ->
        median, components within ±0.03, defined components) and ``rank_bad``.
    """
    truth = np.asarray(truth, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.float64)
    b, s, x = draws.shape
    if truth.shape != (b, x) or s < 2:
        raise ValueError(
            f"truth (B, X) and draws (B, S>=2, X) expected, got {truth.shape}, {draws.shape}"
        )
    rngs = [np.random.default_rng([seed, i]) for i in range(5)]
    dist = compare_samples(draws[:, 0], truth, paired=True, n_boot=n_boot, rng=rngs[0])
    floor = truth_floor(
        truth, second=np.asarray(train_truth, np.float64), n_boot=n_boot, rng=rngs[1]
    )

    def totals(res: Any) -> dict[str, list[float]]:
        return {k: [float(v) for v in res.aggregates(k)["total"]] for k in _DISTANCES}

    def per_type(res: Any) -> dict[str, float]:
        v = res.aggregates("wasserstein")["per_type"][0]
        return {t: float(a) for t, a in zip(COMPONENT_TYPES, v, strict=True)}

    constant = constant_components(truth)
    ref = prior_reference(np.asarray(train_truth, np.float64), b, s, rngs[2])
    c_model, c_ref = crps_fair(draws, truth).mean(0), crps_fair(ref, truth).mean(0)
    keep = ~constant & (c_ref > 0)
    # a component the model predicts exactly (CRPS 0, e.g. the lepton flavour's mass under
    # the decay parameterisation) would send the geometric mean to 0: counted apart
    exact = keep & (c_model == 0)
    skill = c_model[keep & ~exact] / c_ref[keep & ~exact]
    scale = np.where(constant, np.inf, truth.std(axis=0))
    es = energy_score(draws, truth, scale=scale).mean()
    es_ref = energy_score(ref, truth, scale=scale).mean()
    cov = coverage(draws, truth, (0.68, 0.95), rng=rngs[3])
    cov_out = {}
    for i, level in enumerate(cov.levels):
        c = cov.coverage[i][~constant]
        cov_out[f"{level:.2f}"] = {
            "median": float(np.median(c)),
            "within": int((np.abs(c - level) <= _COVERAGE_TOLERANCE).sum()),
            "of": len(c),
        }
    rh = rank_histogram(ranks(draws, truth, rngs[4]), s)
    return {
        "n_events": b,
        "n_draws": s,
        "distances": totals(dist),
        "floor": totals(floor),
        "per_type": per_type(dist),
        "floor_per_type": per_type(floor),
        "masses": _masses(draws),
        "truth_masses": _masses(truth[:, None]),
        "shell": _shell(draws),
        "truth_shell": _shell(truth),
        "crps_skill": float(np.exp(np.log(skill).mean())) if len(skill) else float("nan"),
        "crps_exact": int(exact.sum()),
        "es_skill": float(es / es_ref),
        "coverage": cov_out,
        "rank_bad": int((rh.pvalue[~constant] < 0.01).sum()),
        "rank_of": int((~constant).sum()),
    }


def _pm(pair: Sequence[float]) -> str:
    return f"{pair[0]:.4g} ± {pair[1]:.2g}"


def format_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown tables of :func:`quality_metrics` results, one column per run name."""
    names = list(results)
    first = results[names[0]]
    head = "| quantity | truth | " + " | ".join(names) + " |"
    sep = "|---" * (len(names) + 2) + "|"
    rows = [head, sep]

    def row(label: str, truth_cell: str, cells: Sequence[str]) -> None:
        rows.append(f"| {label} | {truth_cell} | " + " | ".join(cells) + " |")

    for d in _DISTANCES:
        row(
            f"Σ{d} (floor at {first['n_events']} events)",
            _pm(first["floor"][d]),
            [
                f"{_pm(r['distances'][d])} ({r['distances'][d][0] / r['floor'][d][0]:.2f}×)"
                for r in results.values()
            ],
        )
    for t in COMPONENT_TYPES:
        row(
            f"W1 {t}",
            f"{first['floor_per_type'][t]:.3g}",
            [f"{r['per_type'][t]:.3g}" for r in results.values()],
        )
    for kind in ("regressed", "summed"):
        for res in RESONANCES:
            tm = first["truth_masses"][res][kind]
            row(
                f"{kind} {res} mass: median / 16–84 % width [GeV]",
                f"{tm['median']:.1f} / {tm['width']:.1f}",
                [
                    f"{r['masses'][res][kind]['median']:.1f} / {r['masses'][res][kind]['width']:.1f}"
                    for r in results.values()
                ],
            )
    row(
        "leaf mass shell, median \\|sgn√(M² − m²)\\| [GeV]",
        f"{first['truth_shell']:.3g}",
        [f"{r['shell']:.3g}" for r in results.values()],
    )
    row(
        "CRPS skill (geo. mean over components; 1 = no information)",
        "—",
        [
            f"{r['crps_skill']:.3f}"
            + (f" ({r['crps_exact']} exact)" if r.get("crps_exact", 0) else "")
            for r in results.values()
        ],
    )
    row("energy-score skill", "—", [f"{r['es_skill']:.3f}" for r in results.values()])
    for level in first["coverage"]:
        row(
            f"{float(level):.0%} coverage: median / components within ±0.03",
            "—",
            [
                f"{r['coverage'][level]['median']:.3f} / "
                f"{r['coverage'][level]['within']}/{r['coverage'][level]['of']}"
                for r in results.values()
            ],
        )
    row(
        "rank histograms non-uniform (p < 0.01)",
        "—",
        [f"{r['rank_bad']}/{r['rank_of']}" for r in results.values()],
    )
    return "\n".join(rows) + "\n"
