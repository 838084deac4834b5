"""Backgrounds in an unfolding: subtraction before or after unfolding.

The three options (the VL-VLD talk; ``docs/measurement.md`` compares them):

* **before** (:func:`signal_weights`): an unbinned subtraction at detector level. A
  classifier separates the data from the background simulation (normalised to its
  expected yield ``ν_B``); each data event gets the signal probability
  ``w(y) = 1 - ν_B p_B(y) / (N_D p_D(y))`` as its weight, and the weighted data are
  unfolded with the signal model. Needs no truth for the background.
* **after** (:func:`subtract_after`): unfold the data (S + B) and the background
  simulation with the same signal model and subtract the unfolded background
  histogram, scaled to its expected yield, bin by bin. Needs no truth for the
  background either: the background is pushed through the same (signal-trained)
  unfolding as the data, so whatever the model does to background events cancels.
* **during** (not implemented at parton level): train with background events carrying
  negative weights so the learned posterior is the signal's. A background event then
  needs a *target*, and at parton level (the tt̄ decay chain) it has none; at particle
  level (jets, lepton, MET) it has one, and the training loop takes signed weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepvld.io.unbinned import HistogramResult

__all__ = ["detector_features", "signal_weights", "subtract_after"]


def detector_features(tensors: Any) -> np.ndarray:
    """``(B, N*F + G)`` flat detector features of :class:`hepvld.data.EventTensors`
    (padded objects zeroed), the classifier input of :func:`signal_weights`."""
    obj = np.where(tensors.mask[..., None], tensors.objects, 0.0)
    return np.concatenate([obj.reshape(len(obj), -1), tensors.globals], 1).astype(np.float32)


def signal_weights(
    data: np.ndarray,
    background: np.ndarray,
    expected_background: float,
    *,
    background_weights: np.ndarray | None = None,
    clip: bool = True,
    **classifier: Any,
) -> tuple[np.ndarray, float]:
    """Per-event signal weights of the data from a data-vs-background classifier.

    Parameters
    ----------
    data : (B, F)
        Detector features of the data (:func:`detector_features`).
    background : (M, F)
        The same for the background simulation.
    expected_background
        ``ν_B``, the background yield expected in the data sample (events).
    background_weights : (M,), optional
    clip
        Clip the weights to ``[0, 1]`` (the signal probability's range).
    classifier
        Options of :func:`hepvld.iterate.density_ratio` (``epochs``, ``hidden``, ...).

    Returns
    -------
    (weights (B,), classifier validation loss)
        ``sum(weights) ≈ B - ν_B``.
    """
    from hepvld.iterate import density_ratio

    ratio, loss = density_ratio(
        background, data, data, num_weights=background_weights, **classifier
    )  # p_B / p_D at the data
    w = 1.0 - expected_background / len(data) * ratio
    return (np.clip(w, 0.0, 1.0) if clip else w), loss


def subtract_after(
    data: HistogramResult, background: HistogramResult, scale: float = 1.0
) -> HistogramResult:
    """``data - scale * background`` bin by bin (two independent samples).

    ``background`` is the unfolded background simulation's histogram (same edges) and
    ``scale`` its normalisation to the expected yield. Statistical and draw errors add
    in quadrature; replicas subtract the background's nominal (its own statistical
    error is added to ``stat`` and to the covariance's diagonal).
    """
    if data.edges.shape != background.edges.shape or not np.allclose(data.edges, background.edges):
        raise ValueError("subtract_after: the histograms have different bin edges")
    b_stat = np.nan_to_num(background.stat) * scale
    return HistogramResult(
        edges=data.edges,
        nominal=data.nominal - scale * background.nominal,
        stat=np.sqrt(data.stat**2 + b_stat**2),
        stat_cov=data.stat_cov + np.diag(b_stat**2),
        draws=np.sqrt(data.draws**2 + (scale * np.nan_to_num(background.draws)) ** 2),
        draw_spread=data.draw_spread,
        replicas=data.replicas - scale * background.nominal,
    )
