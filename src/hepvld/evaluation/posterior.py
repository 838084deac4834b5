"""Brute-force empirical posterior of one test event (the paper's Appendix C).

Every training event ``i`` gets the weight ``w_i ∝ exp(-||y_T - y_i|| / τ)``, the
Euclidean distance taken on detector features divided by their training standard
deviation (0 -> 1; a common shift cancels in the difference). Its parton-level truth histogrammed with
these weights approximates ``p(x | y_T)``. In many dimensions the weights concentrate on
the nearest few events: :attr:`BruteForcePosterior.n_eff` says how many count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hepvld.evaluation.aggregates import feature_index, feature_table

__all__ = ["BruteForcePosterior", "brute_force_posterior", "flatten_detector"]


def flatten_detector(
    objects: np.ndarray, mask: np.ndarray, globals_: np.ndarray | None = None
) -> np.ndarray:
    """Fixed-length detector features from padded objects (padding set to 0).

    Parameters
    ----------
    objects : ndarray, shape (B, N, F)
    mask : ndarray of bool, shape (B, N)
    globals_ : ndarray, shape (B, G), optional

    Returns
    -------
    ndarray, shape (B, N*F (+ G))
    """
    obj = np.where(np.asarray(mask, dtype=bool)[..., None], objects, 0.0)
    flat = obj.reshape(obj.shape[0], -1)
    if globals_ is not None:
        flat = np.concatenate([flat, np.asarray(globals_)], axis=1)
    return flat.astype(np.float64)


@dataclass
class BruteForcePosterior:
    """Weighted training events approximating ``p(x | y_T)``.

    Attributes
    ----------
    weights : ndarray, shape (B_train,)
        Normalised to sum 1.
    train_truth : ndarray, shape (B_train, 55)
    distance : ndarray, shape (B_train,)
        ``||y_T - y_i||`` on normalised features.
    """

    weights: np.ndarray
    train_truth: np.ndarray
    distance: np.ndarray

    @property
    def n_eff(self) -> float:
        """Kish effective number of training events, ``1 / Σ w²``."""
        return float(1.0 / np.sum(self.weights**2))

    def values(self, particle: str, kind: str) -> np.ndarray:
        """Training values of one feature (native or derived, see ``feature_index``), (B_train,)."""
        return feature_table(self.train_truth)[:, feature_index(particle, kind)]

    def histogram(
        self, particle: str, kind: str, bins: int | np.ndarray = 50
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weighted, normalised histogram (density) of one feature.

        Returns
        -------
        density : ndarray, shape (K,)
        edges : ndarray, shape (K + 1,)
        """
        return np.histogram(
            self.values(particle, kind), bins=bins, weights=self.weights, density=True
        )


def brute_force_posterior(
    train_features: np.ndarray,
    train_truth: np.ndarray,
    test_features: np.ndarray,
    *,
    temperature: float = 1.0,
    scale: np.ndarray | None = None,
) -> BruteForcePosterior:
    """Brute-force posterior weights for one test event.

    Parameters
    ----------
    train_features : ndarray, shape (B_train, K)
        Detector features of the training events (see :func:`flatten_detector`).
    train_truth : ndarray, shape (B_train, 55)
    test_features : ndarray, shape (K,)
    temperature : float
        ``τ`` in ``exp(-d / τ)``; 1 is the paper's choice.
    scale : ndarray, shape (K,), optional
        Feature scale; default the training standard deviation (0 -> 1).

    Returns
    -------
    BruteForcePosterior
    """
    f = np.asarray(train_features, dtype=np.float64)
    t = np.asarray(test_features, dtype=np.float64)
    if t.shape != f.shape[1:]:
        raise ValueError(f"test features {t.shape} do not match train features {f.shape}")
    sd = f.std(axis=0) if scale is None else np.asarray(scale, dtype=np.float64)
    sd = np.where(sd > 0, sd, 1.0)
    diff = (f - t) / sd
    dist = np.sqrt(np.einsum("bk,bk->b", diff, diff))
    logw = -(dist - dist.min()) / temperature  # shift: the nearest event has weight 1
    w = np.exp(logw)
    return BruteForcePosterior(w / w.sum(), np.asarray(train_truth), dist)
