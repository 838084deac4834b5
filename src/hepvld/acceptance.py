"""Acceptance effects of a measurement: fakes and inefficiencies.

A measurement is quoted in a *fiducial* truth phase space. Two effects separate it from
what the detector selection gives:

* **fakes**: events that pass the detector selection but fall outside the fiducial
  phase space. hepvld trains on every detector-selected event (the truth phase space is
  *wide*: no truth cut at training), so the model learns to unfold fakes too; the
  fiducial cut is applied to each posterior draw after unfolding
  (:func:`fiducial_fraction`): an event contributes the fraction of its draws inside.
  The removed weight is the unfolded estimate of the fake rate, reported in a cut-flow
  (:func:`fake_cutflow`); on simulation it compares with the true rate. Where the
  model's draws near the fiducial boundary are not calibrated (the unfolded fake rate
  differs from the true one on simulation), the fake fraction is taken from the
  simulation instead: the *purity* per bin of the unfolded observable (:func:`purity`),
  the fraction of the simulation's unfolded weight in the bin that belongs to truly
  fiducial events, multiplies the unfolded histogram of all draws (``correct(...,
  purity=...)``), as the bin-by-bin fake correction of binned unfoldings.
* **inefficiencies**: fiducial events that fail the detector selection never reach the
  unfolding. A per-bin efficiency from simulation generated *without* the selection
  (``python -m hepvld.generate --no-select --count generated``),
  ``ε(bin) = N(fiducial and selected) / N(fiducial)`` at truth level
  (:func:`efficiency`), divides the unfolded fiducial histogram (:func:`correct`).
  The processor's ``truth_all`` histograms (every input event with a truth chain,
  before the selection) over its ``truth`` histograms give the same ratio (parton level;
  a particle-level model's ``truth_all`` holds the input events inside the particle-level
  phase space, and ``truth_fiducial / truth_all`` is the ratio).

The fiducial phase space at parton level (:class:`FiducialCuts`) is the truth analogue
of the detector selection: the charged lepton and the four quarks with ``pT > 25 GeV``
and ``|η| < 2.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepvld.features.selection import Cutflow
from hepvld.io.unbinned import HistogramResult

__all__ = [
    "EfficiencyResult",
    "FiducialCuts",
    "PurityResult",
    "correct",
    "efficiency",
    "fake_cutflow",
    "fake_rates",
    "fiducial_fraction",
    "purity",
]


@dataclass(frozen=True)
class FiducialCuts:
    """Parton-level fiducial cuts (GeV): lepton and quarks (``b_lep, b_had, q1, q2``)."""

    lepton_pt: float = 25.0
    lepton_eta: float = 2.5
    quark_pt: float = 25.0
    quark_eta: float = 2.5

    def __call__(self, records: ak.Array) -> np.ndarray:
        """Boolean array of the records' leading shape (``(B,)`` truth, ``(B, S)`` draws)."""
        ok = (records.lep.pt > self.lepton_pt) & (abs(records.lep.eta) < self.lepton_eta)
        for q in ("b_lep", "b_had", "q1", "q2"):
            p = records[q]
            ok = ok & (p.pt > self.quark_pt) & (abs(p.eta) < self.quark_eta)
        return np.asarray(ak.to_numpy(ok), dtype=bool)


def fiducial_fraction(passed: np.ndarray) -> np.ndarray:
    """``passed (B, S)`` per draw -> ``(B,)`` fraction of each event's draws inside."""
    return np.asarray(passed, np.float64).reshape(len(passed), -1).mean(1)


def fake_cutflow(
    draws_fiducial: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    truth_fiducial: np.ndarray | None = None,
) -> Cutflow:
    """Cut-flow of the fiducial cut after unfolding.

    Entries: ``detector-selected`` (events, sum of weights), ``unfolded draws in the
    fiducial phase space`` (sum of weights times each event's fiducial draw fraction;
    the count is the events with at least half of their draws inside) and, with
    ``truth_fiducial (B,)`` (simulation), ``true fiducial``. The fake rate is
    ``1 - sumw[1] / sumw[0]`` (:func:`fake_rates`).
    """
    f = fiducial_fraction(draws_fiducial)
    w = np.ones(len(f)) if weights is None else np.asarray(weights, np.float64)
    cf = Cutflow()
    cf.add("detector-selected", len(f), float(w.sum()))
    cf.add(
        "unfolded draws in the fiducial phase space", int((f >= 0.5).sum()), float((w * f).sum())
    )
    if truth_fiducial is not None:
        t = np.asarray(truth_fiducial, bool)
        cf.add("true fiducial (simulation)", int(t.sum()), float(w[t].sum()))
    return cf


def fake_rates(cutflow: Cutflow) -> dict[str, float]:
    """``{"unfolded": ..., "true": ...}`` fake rates of a :func:`fake_cutflow`."""
    total = cutflow.sumw[0]
    out = {"unfolded": 1.0 - cutflow.sumw[1] / total if total else math.nan}
    if len(cutflow) > 2:
        out["true"] = 1.0 - cutflow.sumw[2] / total if total else math.nan
    return out


@dataclass
class EfficiencyResult:
    """Per-bin efficiency ``ε = N(fiducial, selected) / N(fiducial)`` with binomial
    errors (``edges (n+1,)``, ``efficiency (n,)``, ``error (n,)``, ``n_fiducial (n,)``:
    the effective number of fiducial events per bin)."""

    edges: np.ndarray
    efficiency: np.ndarray
    error: np.ndarray
    n_fiducial: np.ndarray


def _binomial_ratio(
    num: np.ndarray, den: np.ndarray, den2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(r, error, n_eff)`` of the weighted per-bin ratio ``r = num / den`` (``num`` a
    subset of ``den``; ``den2`` the bins' sums of squared weights): binomial error on the
    effective number of entries ``n_eff = den² / den2``. NaN where a bin is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
        n_eff = den**2 / den2
        return r, np.sqrt(r * (1 - r) / n_eff), n_eff


def efficiency(
    truth_values: np.ndarray,
    fiducial: np.ndarray,
    selected: np.ndarray,
    edges: Any,
    *,
    weights: np.ndarray | None = None,
) -> EfficiencyResult:
    """Efficiency per truth bin from simulation without the detector selection.

    Parameters
    ----------
    truth_values : (N,)
        The observable at truth level for every generated event.
    fiducial, selected : (N,) bool
        Inside the fiducial phase space; passes the detector selection.
    edges : (n+1,)
    weights : (N,), optional
    """
    x = np.asarray(truth_values, np.float64)
    e = np.asarray(edges, np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    fid = np.asarray(fiducial, bool)
    sel = np.asarray(selected, bool)
    den = np.histogram(x[fid], e, weights=w[fid])[0]
    num = np.histogram(x[fid & sel], e, weights=w[fid & sel])[0]
    den2 = np.histogram(x[fid], e, weights=w[fid] ** 2)[0]
    return EfficiencyResult(e, *_binomial_ratio(num, den, den2))


@dataclass
class PurityResult:
    """Per-bin purity of an unfolded observable, ``p = fiducial part / all`` of the
    simulation's unfolded weight in the bin, with binomial errors (``edges (n+1,)``,
    ``purity (n,)``, ``error (n,)``, ``n_unfolded (n,)``: the effective number of events
    per bin)."""

    edges: np.ndarray
    purity: np.ndarray
    error: np.ndarray
    n_unfolded: np.ndarray


def purity(
    draw_values: np.ndarray,
    truth_fiducial: np.ndarray,
    edges: Any,
    *,
    weights: np.ndarray | None = None,
) -> PurityResult:
    """Purity per bin of an unfolded observable, from simulation.

    Parameters
    ----------
    draw_values : (B, S)
        The observable of every posterior draw of the simulation's detector-selected
        events (NaN where a draw has none: left out of the event's fractions).
    truth_fiducial : (B,) bool
        Whether each event's *truth* is inside the fiducial phase space.
    edges : (n+1,)
    weights : (B,), optional
        Event weights. Each event counts with its weight times the fraction of its draws
        in the bin.
    """
    x = np.asarray(draw_values, np.float64)
    if x.ndim != 2:
        raise ValueError(f"purity: draw_values must be (B, S), got shape {x.shape}")
    e = np.asarray(edges, np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    fid = np.asarray(truth_fiducial, bool)
    if fid.shape != (len(x),) or w.shape != (len(x),):
        raise ValueError("purity: truth_fiducial and weights must be (B,) like draw_values")
    n_draws = np.isfinite(x).sum(1)
    frac_w = np.where(n_draws > 0, w / np.maximum(n_draws, 1), 0.0)
    rows = np.repeat(np.arange(len(x)), x.shape[1])
    flat, ok = x.ravel(), np.isfinite(x.ravel())
    rows, flat = rows[ok], flat[ok]
    den = np.histogram(flat, e, weights=frac_w[rows])[0]
    num = np.histogram(flat, e, weights=(frac_w * fid)[rows])[0]
    den2 = np.histogram(flat, e, weights=frac_w[rows] ** 2)[0]
    return PurityResult(e, *_binomial_ratio(num, den, den2))


def correct(
    hist: HistogramResult, eff: EfficiencyResult, purity: PurityResult | None = None
) -> HistogramResult:
    """Divide an unfolded fiducial histogram by the efficiency (same edges); with
    ``purity``, ``hist`` is the histogram of *all* draws (no fiducial cut) and is first
    multiplied by the purity (:func:`purity`).

    The statistical (bootstrap) and draw errors scale with ``p/ε``; the efficiency's and
    purity's own (simulation-statistics) errors are separate uncertainties of the
    correction: ``nominal * eff.error / eff.efficiency`` per bin (and likewise for p).
    """
    if hist.edges.shape != eff.edges.shape or not np.allclose(hist.edges, eff.edges):
        raise ValueError("correct: the histogram and the efficiency have different bin edges")
    if purity is not None and (
        hist.edges.shape != purity.edges.shape or not np.allclose(hist.edges, purity.edges)
    ):
        raise ValueError("correct: the histogram and the purity have different bin edges")
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(eff.efficiency > 0, 1.0 / eff.efficiency, np.nan)
    if purity is not None:  # a bin the simulation's draws never reach: 0 if empty here too
        inv = inv * np.where(np.isnan(purity.purity) & (hist.nominal == 0), 0.0, purity.purity)
    return HistogramResult(
        edges=hist.edges,
        nominal=hist.nominal * inv,
        stat=hist.stat * inv,
        stat_cov=hist.stat_cov * np.outer(inv, inv),
        draws=hist.draws * inv,
        draw_spread=hist.draw_spread * inv,
        replicas=hist.replicas * inv,
    )
