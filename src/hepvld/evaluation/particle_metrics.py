"""Numbers of a particle-level (variable-length) evaluation, on feature tables.

Inputs are the particle level's feature tables
(:func:`hepvld.targets.particle_output.feature_table`): ``truth (B, C)``, ``draws (B, S, C)``,
a training truth ``train (B_t, C)``; NaN marks a quantity that does not exist in an entry
(a fifth object, a pseudo-top). Every function reuses the parton-level machinery:

* :func:`column_distances`: W1 / energy / KS per column with event-bootstrap errors
  (:class:`~hepvld.evaluation.distances.PairedSamples`,
  :func:`~hepvld.evaluation.bootstrap.bootstrap_counts`), NaN entries ignored column by
  column, and the truth-vs-truth floor from an independent truth sample (or halves);
* :func:`multiplicity_table`: fraction of events per multiplicity, truth vs all draws,
  with bootstrap errors and the pull per bin;
* :func:`column_calibration`: coverage, SBC ranks (:mod:`~hepvld.evaluation.calibration`)
  and the fair CRPS with its skill against the no-information reference
  (:func:`~hepvld.evaluation.scores.crps_fair`; the reference draws training-truth values
  at random) per column, over the events where the truth and every draw have the column.

Shapes: ``B`` events, ``S`` draws, ``C`` columns, ``R`` bootstrap replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hepvld.evaluation.bootstrap import DistanceResult, bootstrap_counts
from hepvld.evaluation.calibration import coverage, rank_histogram, ranks
from hepvld.evaluation.distances import PairedSamples
from hepvld.evaluation.scores import crps_fair

__all__ = [
    "ColumnCalibration",
    "MultiplicityTable",
    "column_calibration",
    "column_distances",
    "multiplicity_table",
    "truth_floor_columns",
]


def column_distances(
    test: np.ndarray,
    reference: np.ndarray,
    test_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
    *,
    test_event: np.ndarray | None = None,
    paired: bool = True,
    n_boot: int = 100,
    rng: np.random.Generator,
    labels: Sequence[str] | None = None,
) -> DistanceResult:
    """Distances per column between ``test (n, C)`` and ``reference (m, C)``, bootstrapped.

    ``test_event (n,)`` gives the event of every test row (several draws per event; default
    ``arange(n)``); ``paired``: the test events are the reference events (resampled with
    the same counts). The binned KL is left out (a few-event column has too few entries)."""
    n, m = len(test), len(reference)
    event = np.arange(n) if test_event is None else np.asarray(test_event)
    wx = np.ones(n) if test_weights is None else np.asarray(test_weights, np.float64)
    wy = np.ones(m) if reference_weights is None else np.asarray(reference_weights, np.float64)
    pairs = PairedSamples(
        np.asarray(test, np.float64), np.asarray(reference, np.float64), kl_bins=()
    )
    values = pairs.compute(wx, wy)
    if n_boot > 0:
        cy = bootstrap_counts(m, n_boot, rng)
        cx = cy if paired else bootstrap_counts(int(event.max()) + 1, n_boot, rng)
        reps = pairs.compute(cx[:, event] * wx[None], cy * wy[None])
    else:
        reps = {k: np.empty((0, v.shape[-1])) for k, v in values.items()}
    names = list(labels) if labels is not None else [str(i) for i in range(pairs.n_columns)]
    return DistanceResult(values, reps, labels=names, n_test=n, n_reference=m)


def truth_floor_columns(
    truth: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    second: np.ndarray | None = None,
    n_boot: int = 100,
    rng: np.random.Generator,
    labels: Sequence[str] | None = None,
) -> tuple[DistanceResult, str]:
    """Truth-vs-truth floor of :func:`column_distances`: against an independent truth
    sample ``second`` (subsampled to ``B`` rows), or between two random halves of ``truth``
    (then for ``B/2`` events). Returns the result and a sentence saying which."""
    b = len(truth)
    w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
    if second is not None and len(second) >= 2:
        sel = rng.choice(len(second), size=min(b, len(second)), replace=False)
        res = column_distances(
            second[sel], truth, None, w, paired=False, n_boot=n_boot, rng=rng, labels=labels
        )
        return res, f"independent truth sample of {len(sel)} events vs the test truth"
    perm = rng.permutation(b)
    a, c = perm[: b // 2], perm[b // 2 : 2 * (b // 2)]
    res = column_distances(
        truth[c], truth[a], w[c], w[a], paired=False, n_boot=n_boot, rng=rng, labels=labels
    )
    return res, f"two halves of the test truth ({b // 2} events each)"


@dataclass
class MultiplicityTable:
    """Fraction of events per multiplicity bin, truth vs unfolded.

    Attributes
    ----------
    bins : list[str]
        Bin names (``"4"``, ..., ``"≥ 9"``).
    truth, truth_error, unfolded, unfolded_error, pull : ndarray, shape (N_bins,)
        Weighted fractions, their bootstrap errors and ``(u - t) / sqrt(σ_u² + σ_t²)``.
    """

    bins: list[str]
    truth: np.ndarray
    truth_error: np.ndarray
    unfolded: np.ndarray
    unfolded_error: np.ndarray
    pull: np.ndarray


def _bin_of(n: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Bin index of integer multiplicities: ``edges[i] <= n < edges[i+1]``, last open."""
    return np.clip(np.searchsorted(np.asarray(edges), n, side="right") - 1, 0, len(edges) - 1)


def multiplicity_table(
    truth_n: np.ndarray,
    draws_n: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    low: int,
    high: int,
    n_boot: int = 100,
    rng: np.random.Generator,
) -> MultiplicityTable:
    """Fractions of ``truth_n (B,)`` and of all draws ``draws_n (B, S)`` per bin ``≤ low``,
    ``low+1``, ..., ``≥ high``; errors from one event bootstrap shared by both."""
    truth_n = np.asarray(truth_n)
    draws_n = np.asarray(draws_n)
    b = draws_n.shape[0]
    w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
    edges = list(range(low, high + 1))
    k = len(edges)
    t_onehot = np.eye(k)[_bin_of(truth_n, edges)]  # (B, k)
    d_frac = np.eye(k)[_bin_of(draws_n, edges)].mean(axis=1)  # (B, k): per-event fractions

    def frac(x: np.ndarray, ww: np.ndarray) -> np.ndarray:
        return (ww @ x) / ww.sum(axis=-1, keepdims=True)

    t, u = frac(t_onehot, w[None])[0], frac(d_frac, w[None])[0]
    if n_boot > 1:
        cw = bootstrap_counts(b, n_boot, rng) * w[None]
        te, ue = frac(t_onehot, cw).std(axis=0, ddof=1), frac(d_frac, cw).std(axis=0, ddof=1)
        diff = (frac(d_frac, cw) - frac(t_onehot, cw)).std(axis=0, ddof=1)
    else:
        te = ue = diff = np.full(k, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        pull = np.where(diff > 0, (u - t) / diff, np.nan)
    names = [f"≤ {low}"] + [str(i) for i in edges[1:-1]] + [f"≥ {high}"]
    return MultiplicityTable(names, t, te, u, ue, pull)


@dataclass
class ColumnCalibration:
    """Per-column calibration and scores over the events that have the column.

    Attributes
    ----------
    labels : list[str]
    n_events : ndarray of int, shape (C,)
        Events used (truth and all draws finite in that column).
    coverage68, coverage68_error, coverage95, coverage95_error : ndarray, shape (C,)
    rank_pvalue : ndarray, shape (C,)
        χ² uniformity p-value of the SBC rank histogram.
    crps, crps_reference, skill, skill_error : ndarray, shape (C,)
        Mean fair CRPS of the model and of the no-information reference, the skill
        ``1 − CRPS / CRPS_ref`` and its event-bootstrap error.
    """

    labels: list[str]
    n_events: np.ndarray
    coverage68: np.ndarray
    coverage68_error: np.ndarray
    coverage95: np.ndarray
    coverage95_error: np.ndarray
    rank_pvalue: np.ndarray
    crps: np.ndarray
    crps_reference: np.ndarray
    skill: np.ndarray
    skill_error: np.ndarray


def column_calibration(
    truth: np.ndarray,
    draws: np.ndarray,
    reference_pool: np.ndarray,
    labels: Sequence[str],
    weights: np.ndarray | None = None,
    *,
    n_boot: int = 100,
    rng: np.random.Generator,
) -> ColumnCalibration:
    """Coverage, ranks and CRPS skill of ``draws (B, S, C)`` against ``truth (B, C)``.

    ``reference_pool (B_t, C)``: training truth (or the test truth) whose finite values of
    each column are drawn at random as the no-information reference (``S`` per event)."""
    truth = np.asarray(truth, np.float64)
    draws = np.asarray(draws, np.float64)
    b, s, c = draws.shape
    w = np.ones(b) if weights is None else np.asarray(weights, np.float64)
    out = {
        k: np.full(c, np.nan)
        for k in (
            "cov68",
            "cov68e",
            "cov95",
            "cov95e",
            "rankp",
            "crps",
            "crps_ref",
            "skill",
            "skill_e",
        )
    }
    n_used = np.zeros(c, dtype=np.int64)
    counts = bootstrap_counts(b, n_boot, rng) if n_boot > 1 else None
    for j in range(c):
        ok = np.isfinite(truth[:, j]) & np.isfinite(draws[:, :, j]).all(axis=1)
        pool = reference_pool[:, j][np.isfinite(reference_pool[:, j])]
        n_used[j] = int(ok.sum())
        if ok.sum() < 2 or len(pool) == 0:
            continue
        t, d, ww = truth[ok, j : j + 1], draws[ok][:, :, j : j + 1], w[ok]
        cov = coverage(d, t, (0.68, 0.95), ww, rng=rng)
        out["cov68"][j], out["cov95"][j] = cov.coverage[:, 0]
        out["cov68e"][j], out["cov95e"][j] = cov.error[:, 0]
        out["rankp"][j] = rank_histogram(ranks(d, t, rng), s, ww).pvalue[0]
        ref = pool[rng.integers(0, len(pool), size=(len(t), s))][..., None]
        cm, cr = crps_fair(d, t)[:, 0], crps_fair(ref, t)[:, 0]
        out["crps"][j] = np.average(cm, weights=ww)
        out["crps_ref"][j] = np.average(cr, weights=ww)
        out["skill"][j] = 1.0 - out["crps"][j] / out["crps_ref"][j]
        if counts is not None:
            cw = counts[:, ok] * ww[None]
            reps = 1.0 - (cw @ cm) / (cw @ cr)
            out["skill_e"][j] = np.std(reps, ddof=1)
    return ColumnCalibration(
        list(labels),
        n_used,
        out["cov68"],
        out["cov68e"],
        out["cov95"],
        out["cov95e"],
        out["rankp"],
        out["crps"],
        out["crps_ref"],
        out["skill"],
        out["skill_e"],
    )
