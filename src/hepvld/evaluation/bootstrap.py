"""Event bootstrap as multinomial weights.

Resampling ``n`` events with replacement is the same as weighting every event by its
multinomial count. All estimators in :mod:`hepvld.evaluation` accept weights, so a
replicate reuses the sort / binning of the original sample and costs a weighted sum.
The per-event weights of a replicate are ``counts * weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepvld.evaluation.aggregates import aggregate, feature_labels, feature_table
from hepvld.evaluation.distances import PairedSamples

__all__ = [
    "DistanceResult",
    "bootstrap_counts",
    "bootstrap_mean",
    "compare_samples",
    "global_sample",
    "truth_floor",
]

DEFAULT_N_BOOT = 100


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial resampling counts.

    Parameters
    ----------
    n : int
        Number of events.
    n_boot : int
        Number of replicates ``R``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (R, n), float64
        Counts summing to ``n`` in every row.
    """
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def bootstrap_mean(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    counts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean over events and its bootstrap replicates.

    Parameters
    ----------
    values : ndarray, shape (B, ...)
    weights : ndarray, shape (B,), optional
    n_boot : int
    rng : numpy.random.Generator
    counts : ndarray, shape (R, B), optional
        Precomputed counts (to pair several estimators on the same replicates).

    Returns
    -------
    mean : ndarray, shape (...)
    replicates : ndarray, shape (R, ...)
    """
    values = np.asarray(values, dtype=np.float64)
    b = values.shape[0]
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    if counts is None:
        counts = bootstrap_counts(b, n_boot, rng)
    flat = values.reshape(b, -1)
    mean = np.einsum("b,bk->k", w, flat) / w.sum()
    cw = counts * w[None]
    reps = np.einsum("rb,bk->rk", cw, flat) / cw.sum(axis=1, keepdims=True)
    return mean.reshape(values.shape[1:]), reps.reshape(counts.shape[0], *values.shape[1:])


@dataclass
class DistanceResult:
    """Per-feature distances between a test and a reference sample, with bootstrap.

    Attributes
    ----------
    values : dict[str, ndarray]
        Distance name -> shape (F,) (F = 99 feature-table columns, see
        :func:`hepvld.evaluation.aggregates.feature_table`).
    replicates : dict[str, ndarray]
        Distance name -> shape (R, F) bootstrap replicates.
    labels : list[str]
        Feature labels, length F.
    n_test, n_reference : int
        Sample sizes.
    """

    values: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    labels: list[str] = field(default_factory=feature_labels)
    n_test: int = 0
    n_reference: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        """Distance names, e.g. ``("wasserstein", "energy", "ks", "kl64", ...)``."""
        return tuple(self.values)

    def error(self, name: str) -> np.ndarray:
        """Bootstrap standard deviation per feature, shape (F,)."""
        return _std(self.replicates[name])

    def aggregates(self, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Aggregates (see :func:`~hepvld.evaluation.aggregates.aggregate`) with errors.

        Returns
        -------
        dict[str, (value, error)]
            ``total`` (scalars), ``per_particle`` (11,), ``per_type`` (8,); ``error`` is the
            bootstrap standard deviation of the aggregate (correlations included).
        """
        nominal = aggregate(self.values[name])
        reps = aggregate(self.replicates[name])
        return {key: (nominal[key], _std(reps[key])) for key in nominal}


def _std(reps: np.ndarray) -> np.ndarray:
    if reps.shape[0] < 2:
        return np.full(reps.shape[1:], np.nan)
    return np.std(reps, axis=0, ddof=1)


def global_sample(
    draws: np.ndarray, weights: np.ndarray | None = None, *, use: str = "first"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten posterior draws into one unfolded sample for the global distances.

    Parameters
    ----------
    draws : ndarray, shape (B, S, 55)
    weights : ndarray, shape (B,), optional
    use : {"first", "all"}
        ``"first"``: one draw per event (the paper's convention; same size as the truth
        sample, so the truth-vs-truth floor applies directly). ``"all"``: all ``B*S`` draws,
        each with weight ``w / S``.

    Returns
    -------
    sample : ndarray, shape (B, 55) or (B*S, 55)
    sample_weights : ndarray, shape (B,) or (B*S,)
    event : ndarray of int, shape (B,) or (B*S,)
        Event index of every row (the bootstrap resamples events, i.e. all their draws).
    """
    draws = np.asarray(draws)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (B, S, X), got {draws.shape}")
    b, s, _ = draws.shape
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    if use == "first":
        return draws[:, 0], w, np.arange(b)
    if use == "all":
        return draws.reshape(b * s, -1), np.repeat(w / s, s), np.repeat(np.arange(b), s)
    raise ValueError(f"use must be 'first' or 'all', got {use!r}")


def compare_samples(
    test: np.ndarray,
    reference: np.ndarray,
    test_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
    *,
    test_event: np.ndarray | None = None,
    paired: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    **distance_kwargs: Any,
) -> DistanceResult:
    """Distances on the feature table between two samples of 55-vectors, with bootstrap.

    Parameters
    ----------
    test : ndarray, shape (n, 55)
        Unfolded sample (see :func:`global_sample`).
    reference : ndarray, shape (m, 55)
        Truth sample (defines the KL binning).
    test_weights : ndarray, shape (n,), optional
    reference_weights : ndarray, shape (m,), optional
    test_event : ndarray of int, shape (n,), optional
        Event index of every test row (several draws per event); default ``arange(n)``.
    paired : bool
        Test events are the reference events (``max(test_event) < m``): resample both with
        the same counts. Otherwise the two samples are resampled independently.
    n_boot : int
        Bootstrap replicates ``R`` (0: no errors).
    rng : numpy.random.Generator
    **distance_kwargs
        Passed to :class:`~hepvld.evaluation.distances.PairedSamples`.

    Returns
    -------
    DistanceResult
    """
    n, m = len(test), len(reference)
    event = np.arange(n) if test_event is None else np.asarray(test_event)
    wx = np.ones(n) if test_weights is None else np.asarray(test_weights, dtype=np.float64)
    wy = (
        np.ones(m) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
    )
    pairs = PairedSamples(feature_table(test), feature_table(reference), **distance_kwargs)
    values = pairs.compute(wx, wy)
    if n_boot > 0:
        n_events_x = int(event.max()) + 1
        cy = bootstrap_counts(m, n_boot, rng)
        cx = cy if paired else bootstrap_counts(n_events_x, n_boot, rng)
        if paired and n_events_x > m:
            raise ValueError("paired bootstrap needs test events indexing the reference rows")
        reps = pairs.compute(cx[:, event] * wx[None], cy * wy[None])
    else:
        reps = {k: np.empty((0, v.shape[-1])) for k, v in values.items()}
    return DistanceResult(values, reps, n_test=n, n_reference=m)


def truth_floor(
    truth: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    second: np.ndarray | None = None,
    second_weights: np.ndarray | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    **distance_kwargs: Any,
) -> DistanceResult:
    """Truth-vs-truth floor: the same distances between two independent truth samples.

    Parameters
    ----------
    truth : ndarray, shape (B, 55)
        Reference truth sample (defines the binning, as for the models).
    weights : ndarray, shape (B,), optional
    second : ndarray, shape (B2, 55), optional
        An independent truth sample (e.g. from the training set). If ``B2 > B`` a random
        subset of ``B`` rows is used so that the floor has the models' sample size. If
        None, ``truth`` is split at random into two halves (the floor then belongs to
        samples of size B/2 and is larger, by about √2 for noise-dominated distances).
    second_weights : ndarray, shape (B2,), optional
    n_boot : int
    rng : numpy.random.Generator

    Returns
    -------
    DistanceResult
    """
    truth = np.asarray(truth, dtype=np.float64)
    b = len(truth)
    w = np.ones(b) if weights is None else np.asarray(weights, dtype=np.float64)
    if second is None:
        perm = rng.permutation(b)
        a_idx, b_idx = perm[: b // 2], perm[b // 2 : 2 * (b // 2)]
        ref, ref_w, test, test_w = truth[a_idx], w[a_idx], truth[b_idx], w[b_idx]
    else:
        second = np.asarray(second, dtype=np.float64)
        sw = np.ones(len(second)) if second_weights is None else np.asarray(second_weights)
        if len(second) > b:
            sel = rng.choice(len(second), size=b, replace=False)
            second, sw = second[sel], sw[sel]
        ref, ref_w, test, test_w = truth, w, second, sw
    return compare_samples(
        test, ref, test_w, ref_w, paired=False, n_boot=n_boot, rng=rng, **distance_kwargs
    )
