"""Per-event scores of posterior draws against each event's truth.

* CRPS, fair (unbiased for the CRPS of the distribution the draws come from) estimator
  from ``S`` draws ``x_1..x_S`` and truth ``y`` (Ferro 2014; Zamo & Naveau 2018):

  .. math:: \\widehat{CRPS} = \\frac1S\\sum_s |x_s - y|
            - \\frac{1}{2S(S-1)}\\sum_{s,s'} |x_s - x_{s'}|

  computed in ``O(S log S)`` from sorted draws, ``sum_{s,s'} |x_s - x_s'| =
  2 sum_i (2i - S - 1) x_(i)``.
* Energy score, the multivariate generalisation (same fair form with Euclidean norms),
  on components divided by a per-component scale (default: the truth's standard deviation).
* Resolution of the posterior median: ``r = median_s(x_s) - y`` per event;
  bias = weighted median of ``r``, width = half the 16–84 % quantile range of ``r``
  (a robust standard deviation), also IQR/1.349.
* No-information reference: draws from the training marginal, ignoring the detector
  (:func:`prior_reference`). Skill = model score / reference score (< 1: the model is
  better; 0.5 = half the reference's error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Resolution",
    "constant_components",
    "crps_fair",
    "crps_gaussian",
    "energy_score",
    "prior_reference",
    "resolution",
    "weighted_quantile",
]


def crps_fair(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fair CRPS per event and component.

    Parameters
    ----------
    draws : ndarray, shape (B, S, X)
        Posterior draws, ``S >= 2``.
    truth : ndarray, shape (B, X)

    Returns
    -------
    ndarray, shape (B, X)
    """
    draws = np.asarray(draws, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    s = draws.shape[1]
    if s < 2:
        raise ValueError("the fair CRPS needs at least 2 draws per event")
    term1 = np.abs(draws - truth[:, None, :]).mean(axis=1)
    xs = np.sort(draws, axis=1)
    coef = (2.0 * np.arange(1, s + 1) - s - 1.0)[None, :, None]
    pair_sum = 2.0 * (coef * xs).sum(axis=1)  # sum over ordered pairs s != s'
    return term1 - pair_sum / (2.0 * s * (s - 1))


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of a Gaussian predictive ``N(mu, sigma²)`` at ``y`` (broadcasting).

    ``sigma [z (2Φ(z) - 1) + 2 φ(z) - 1/√π]`` with ``z = (y - mu) / sigma``.
    """
    from scipy.stats import norm

    z = (np.asarray(y) - mu) / sigma
    return sigma * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / math.sqrt(math.pi))


def constant_components(truth: np.ndarray, rtol: float = 1e-4) -> np.ndarray:
    """Components whose truth is constant up to float rounding.

    A component counts as constant when its standard deviation is at most
    ``rtol * max(|mean|, 1)`` (e.g. tt̄ px, py at hard-process level: std ~1e-5 GeV from
    float32 rounding). Scores relative to such a component's spread are undefined.

    Parameters
    ----------
    truth : ndarray, shape (B, X)

    Returns
    -------
    ndarray of bool, shape (X,)
    """
    truth = np.asarray(truth, dtype=np.float64)
    if len(truth) == 0:
        return np.zeros(truth.shape[-1], dtype=bool)
    return truth.std(axis=0) <= rtol * np.maximum(np.abs(truth.mean(axis=0)), 1.0)


def energy_score(
    draws: np.ndarray,
    truth: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    groups: list[np.ndarray] | None = None,
    chunk: int = 512,
) -> np.ndarray:
    """Fair energy score per event (and per group of components).

    Parameters
    ----------
    draws : ndarray, shape (B, S, X)
    truth : ndarray, shape (B, X)
    scale : ndarray, shape (X,), optional
        Components are divided by it before taking norms; default the standard deviation
        of ``truth``. Components with a non-positive or infinite scale, and by default the
        :func:`constant_components` of ``truth``, are left out of the norms.
    groups : list of int arrays, optional
        Component groups (e.g. the 5 components of each parton); default one group with
        all components.
    chunk : int
        Events per chunk (memory ``chunk * S² / 2 * X``).

    Returns
    -------
    ndarray, shape (B, G)
        G = number of groups.
    """
    draws = np.asarray(draws, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    b, s, x = draws.shape
    if s < 2:
        raise ValueError("the fair energy score needs at least 2 draws per event")
    if scale is None:
        scale = np.where(constant_components(truth), np.inf, truth.std(axis=0))
    scale = np.asarray(scale, dtype=np.float64)
    scale = np.where((scale > 0) & np.isfinite(scale), scale, np.inf)  # x / inf = 0: left out
    if groups is None:
        groups = [np.arange(x)]
    member = np.zeros((x, len(groups)))
    for g, cols in enumerate(groups):
        member[np.asarray(cols), g] = 1.0
    out = np.empty((b, len(groups)))
    iu, ju = np.triu_indices(s, k=1)
    for a in range(0, b, chunk):
        d = draws[a : a + chunk] / scale
        t = truth[a : a + chunk] / scale
        to_truth = np.sqrt(np.einsum("bsx,xg->bsg", (d - t[:, None]) ** 2, member))
        diff = d[:, iu, :] - d[:, ju, :]  # unordered pairs s < s': (chunk, S(S-1)/2, X)
        pair = np.sqrt(np.einsum("bpx,xg->bpg", diff * diff, member))
        out[a : a + chunk] = to_truth.mean(axis=1) - pair.sum(axis=1) / (s * (s - 1))
    return out


def weighted_quantile(
    values: np.ndarray, q: float | np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted quantiles along axis 0 (``numpy.quantile`` ``"inverted_cdf"`` for weights).

    Parameters
    ----------
    values : ndarray, shape (B, ...)
    q : float or ndarray, shape (Q,)
    weights : ndarray, shape (B,), optional (unweighted: linear interpolation)

    Returns
    -------
    ndarray, shape (...) or (Q, ...)
    """
    values = np.asarray(values, dtype=np.float64)
    if weights is None:
        return np.quantile(values, q, axis=0)
    return np.quantile(
        values,
        q,
        axis=0,
        weights=np.broadcast_to(
            np.asarray(weights, dtype=np.float64).reshape(-1, *([1] * (values.ndim - 1))),
            values.shape,
        ),
        method="inverted_cdf",
    )


@dataclass
class Resolution:
    """Resolution of the posterior median per component.

    Attributes (each shape (X,))
    ----------
    bias : weighted median of ``median_s(x_s) - y``
    width : half the 16–84 % range of the residual (robust σ)
    width_iqr : interquartile range of the residual / 1.349
    mean_bias : weighted mean of the residual
    """

    bias: np.ndarray
    width: np.ndarray
    width_iqr: np.ndarray
    mean_bias: np.ndarray


def resolution(
    draws: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None
) -> tuple[Resolution, np.ndarray]:
    """Bias and width of the posterior-median residual.

    Parameters
    ----------
    draws : ndarray, shape (B, S, X)
    truth : ndarray, shape (B, X)
    weights : ndarray, shape (B,), optional

    Returns
    -------
    Resolution
    residual : ndarray, shape (B, X)
        ``median_s(draws) - truth``.
    """
    resid = np.median(np.asarray(draws, dtype=np.float64), axis=1) - truth
    q = weighted_quantile(resid, np.array([0.16, 0.25, 0.5, 0.75, 0.84]), weights)
    w = np.ones(len(resid)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (
        Resolution(
            bias=q[2],
            width=0.5 * (q[4] - q[0]),
            width_iqr=(q[3] - q[1]) / 1.349,
            mean_bias=np.einsum("b,bx->x", w, resid) / w.sum(),
        ),
        resid,
    )


def prior_reference(
    train_truth: np.ndarray, n_events: int, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """No-information reference posterior: whole training events drawn at random.

    Every test event gets the same kind of posterior, the training marginal, independent of
    its detector features. Rows are resampled whole, so the correlations between
    components are those of the prior.

    Parameters
    ----------
    train_truth : ndarray, shape (B_train, 55)
    n_events : int
        ``B``, number of test events.
    n_draws : int
        ``S``, draws per event.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (B, S, 55)
    """
    train_truth = np.asarray(train_truth)
    idx = rng.integers(0, len(train_truth), size=(n_events, n_draws))
    return train_truth[idx]
