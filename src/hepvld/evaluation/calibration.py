"""Calibration of per-event posteriors: ranks, PIT, coverage, uniformity tests.

Definitions (see ``docs/evaluation.md``):

* Rank of the truth among the ``S`` draws of its event (SBC): ``r = #{x_s < y} + U``,
  ``U`` uniform on ``{0, ..., #{x_s = y}}`` (ties broken at random), so ``r ∈ {0..S}``
  is exactly uniform when the truth is a draw from the same distribution as the draws.
* Randomised PIT: ``u = (r + V) / (S + 1)``, ``V ~ U(0, 1)``: exactly uniform on [0, 1]
  under calibration, for any ``S``.
* Coverage of the central credible interval of level ``α``: fraction (weighted) of events
  with ``|u - 1/2| <= α/2`` (``method="pit"``: exact for finite S), or with the truth
  inside ``[q_{(1-α)/2}, q_{(1+α)/2}]`` of the draws (``method="quantile"``,
  linear interpolation: its finite-S coverage differs from α by O(1/S)).
  Binomial error ``sqrt(c(1-c)/N_eff)`` with the Kish effective sample size.
* Rank histogram: the S+1 rank values grouped in ``n_bins`` contiguous bins;
  chi² = Σ (o - e)² / e against the uniform expectation (proportional to the number of
  rank values per bin), ``n_bins - 1`` degrees of freedom. Weighted events enter as
  weighted counts rescaled to the effective sample size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

__all__ = [
    "DEFAULT_LEVELS",
    "Coverage",
    "RankHistogram",
    "coverage",
    "pit",
    "rank_histogram",
    "ranks",
]

#: Nominal levels reported in tables (68 % and 95 %).
DEFAULT_LEVELS: tuple[float, ...] = (0.68, 0.95)


def ranks(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBC rank of the truth among the draws, ties broken at random.

    Parameters
    ----------
    draws : ndarray, shape (B, S, X)
    truth : ndarray, shape (B, X)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (B, X)
        Values in ``0..S``.
    """
    draws = np.asarray(draws)
    truth = np.asarray(truth)[:, None, :]
    below = (draws < truth).sum(axis=1)
    ties = (draws == truth).sum(axis=1)
    return below + rng.integers(0, ties + 1)


def pit(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised probability integral transform, shape (B, X), uniform on [0, 1] if calibrated."""
    r = ranks(draws, truth, rng)
    s = np.asarray(draws).shape[1]
    return (r + rng.random(r.shape)) / (s + 1)


@dataclass
class Coverage:
    """Coverage of central credible intervals.

    Attributes
    ----------
    levels : ndarray, shape (L,)
        Nominal levels.
    coverage : ndarray, shape (L, X)
        Observed (weighted) coverage per level and component.
    error : ndarray, shape (L, X)
        Binomial standard error ``sqrt(c (1 - c) / N_eff)``.
    n_eff : float
        Effective number of events.
    """

    levels: np.ndarray
    coverage: np.ndarray
    error: np.ndarray
    n_eff: float

    def pull(self) -> np.ndarray:
        """``(coverage - level) / sqrt(level (1 - level) / N_eff)``, shape (L, X)."""
        lv = self.levels[:, None]
        return (self.coverage - lv) / np.sqrt(lv * (1 - lv) / self.n_eff)


def _n_eff(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w * w).sum())


def coverage(
    draws: np.ndarray,
    truth: np.ndarray,
    levels: np.ndarray | tuple[float, ...] = DEFAULT_LEVELS,
    weights: np.ndarray | None = None,
    *,
    method: str = "pit",
    rng: np.random.Generator | None = None,
    u: np.ndarray | None = None,
) -> Coverage:
    """Marginal coverage of central credible intervals per component.

    Parameters
    ----------
    draws : ndarray, shape (B, S, X)
    truth : ndarray, shape (B, X)
    levels : sequence of float in (0, 1), length L
    weights : ndarray, shape (B,), optional
    method : {"pit", "quantile"}
        See the module docstring.
    rng : numpy.random.Generator, optional
        Needed for ``method="pit"`` unless ``u`` is given.
    u : ndarray, shape (B, X), optional
        Precomputed :func:`pit` values.

    Returns
    -------
    Coverage
    """
    levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    truth = np.asarray(truth, dtype=np.float64)
    b = truth.shape[0]
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    if method == "pit":
        if u is None:
            if rng is None:
                raise ValueError("method='pit' needs rng (or precomputed u)")
            u = pit(draws, truth, rng)
        inside = np.abs(u[None] - 0.5) <= levels[:, None, None] / 2  # (L, B, X)
    elif method == "quantile":
        qs = np.concatenate([(1 - levels) / 2, (1 + levels) / 2])
        bounds = np.quantile(np.asarray(draws, dtype=np.float64), qs, axis=1)  # (2L, B, X)
        n_l = len(levels)
        inside = (bounds[:n_l] <= truth[None]) & (truth[None] <= bounds[n_l:])
    else:
        raise ValueError(f"method must be 'pit' or 'quantile', got {method!r}")
    cov = np.einsum("b,lbx->lx", w, inside.astype(np.float64)) / w.sum()
    n_eff = _n_eff(w)
    err = np.sqrt(np.clip(cov * (1 - cov), 0, None) / n_eff)
    return Coverage(levels, cov, err, n_eff)


@dataclass
class RankHistogram:
    """Histogram of SBC ranks per component and its chi² uniformity test.

    Attributes
    ----------
    edges : ndarray, shape (K + 1,)
        Bin edges in rank units (bin k holds ranks ``edges[k] <= r < edges[k+1]``).
    counts : ndarray, shape (X, K)
        Weighted counts rescaled to the effective sample size.
    expected : ndarray, shape (X, K)
        Uniform expectation.
    chi2 : ndarray, shape (X,)
    pvalue : ndarray, shape (X,)
    dof : int
    """

    edges: np.ndarray
    counts: np.ndarray
    expected: np.ndarray
    chi2: np.ndarray
    pvalue: np.ndarray
    dof: int


def rank_histogram(
    rank: np.ndarray, n_draws: int, weights: np.ndarray | None = None, *, n_bins: int | None = None
) -> RankHistogram:
    """Rank histograms and chi² uniformity test per component.

    Parameters
    ----------
    rank : ndarray of int, shape (B, X)
        From :func:`ranks`, values in ``0..S``.
    n_draws : int
        ``S``.
    weights : ndarray, shape (B,), optional
    n_bins : int, optional
        Number of bins ``K <= S + 1``; default: the largest divisor of ``S + 1`` between
        half of and ``min(S + 1, 20, max(2, B // 20))`` (equal ranks per bin; each bin
        expects at least ~20 events where possible), else that bound (bins of unequal
        width; ``expected`` is per bin, proportional to its width).

    Returns
    -------
    RankHistogram
    """
    rank = np.asarray(rank)
    b, x = rank.shape
    n_vals = n_draws + 1
    if n_bins is None:
        cap = int(min(n_vals, 20, max(2, b // 20)))
        # Prefer a bin count that divides the S + 1 rank values (every bin then holds the
        # same number of ranks: 33 ranks -> 11 bins of 3, not 20 bins of 1 or 2).
        even = [k for k in range(cap, (cap + 1) // 2 - 1, -1) if n_vals % k == 0]
        n_bins = even[0] if even else cap
    n_bins = int(min(n_bins, n_vals))
    edges = np.round(np.linspace(0, n_vals, n_bins + 1)).astype(np.int64)
    which = np.searchsorted(edges, rank, side="right") - 1  # (B, X)
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    flat = (np.arange(x)[None, :] * n_bins + which).ravel()
    h = np.bincount(flat, weights=np.repeat(w, x), minlength=x * n_bins).reshape(x, n_bins)
    n_eff = _n_eff(w)
    counts = h * (n_eff / w.sum())
    expected = np.broadcast_to(n_eff * np.diff(edges) / n_vals, counts.shape).copy()
    stat = ((counts - expected) ** 2 / expected).sum(axis=1)
    dof = n_bins - 1
    return RankHistogram(edges, counts, expected, stat, chi2.sf(stat, dof), dof)
