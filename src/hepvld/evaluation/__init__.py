"""Evaluation of unfolded posteriors on numpy arrays.

Global distances (W1, energy, KS, binned KL) per component with bootstrap errors and
the truth-vs-truth floor; per-event scores (CRPS, energy score, median resolution) against a
no-information reference; calibration (coverage, SBC ranks); brute-force posteriors;
physics consistency; mplhep figures; :func:`write_report`.

Shapes: ``truth (B, 55)``, ``draws (B, S, 55)``, ``weights (B,)``. Plotting and the report
(matplotlib, mplhep) are imported lazily on first access.
"""

from __future__ import annotations

from typing import Any

from hepvld.evaluation.aggregates import (
    COMPONENT_TYPES,
    aggregate,
    feature_index,
    feature_labels,
    feature_table,
    kinematics,
    kinematics_to_targets,
)
from hepvld.evaluation.bootstrap import (
    DistanceResult,
    bootstrap_counts,
    bootstrap_mean,
    compare_samples,
    global_sample,
    truth_floor,
)
from hepvld.evaluation.calibration import (
    Coverage,
    RankHistogram,
    coverage,
    pit,
    rank_histogram,
    ranks,
)
from hepvld.evaluation.consistency import composite_masses, mass_shell_residual, regressed_masses
from hepvld.evaluation.distances import (
    DISTANCES,
    PairedSamples,
    binned_kl,
    distances,
    energy_distance,
    histogram_edges,
    ks_statistic,
    wasserstein,
)
from hepvld.evaluation.posterior import BruteForcePosterior, brute_force_posterior, flatten_detector
from hepvld.evaluation.scores import (
    Resolution,
    crps_fair,
    crps_gaussian,
    energy_score,
    prior_reference,
    resolution,
    weighted_quantile,
)
from hepvld.evaluation.tables import Table, paper_table1

__all__ = [
    "COMPONENT_TYPES",
    "DISTANCES",
    "BruteForcePosterior",
    "Coverage",
    "DistanceResult",
    "PairedSamples",
    "RankHistogram",
    "Report",
    "Resolution",
    "Table",
    "aggregate",
    "binned_kl",
    "bootstrap_counts",
    "bootstrap_mean",
    "brute_force_posterior",
    "compare_samples",
    "composite_masses",
    "coverage",
    "crps_fair",
    "crps_gaussian",
    "distances",
    "energy_distance",
    "energy_score",
    "feature_index",
    "feature_labels",
    "feature_table",
    "flatten_detector",
    "global_sample",
    "histogram_edges",
    "kinematics",
    "kinematics_to_targets",
    "ks_statistic",
    "mass_shell_residual",
    "paper_table1",
    "pit",
    "plots",
    "prior_reference",
    "rank_histogram",
    "ranks",
    "regressed_masses",
    "resolution",
    "truth_floor",
    "wasserstein",
    "weighted_quantile",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in ("write_report", "Report"):
        from hepvld.evaluation import report

        return getattr(report, name)
    if name == "plots":
        import importlib

        return importlib.import_module("hepvld.evaluation.plots")
    raise AttributeError(f"module 'hepvld.evaluation' has no attribute {name!r}")
