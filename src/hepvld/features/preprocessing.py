"""Reversible, serialisable preprocessing of targets and detector inputs.

Both classes work on numpy arrays and on torch tensors (same device / dtype as the
input; torch is never imported here). Statistics are fitted in float64.

Spread floor
    Every standardisation divides by ``scale = max(std, eps * max(|mean|, 1))`` with
    ``eps = 1e-2`` by default, so constant components (tt̄ px/py at hard-process level, the
    b-quark mass 4.8 GeV, neutrino masses) map to ~0 instead of dividing by zero, and
    near-constant ones (lepton masses, two values) are not blown up beyond ~100.

Detector inputs
    ``log1p`` on M, pT and E; every continuous feature (M, pT, φ, η, E, px, py, pz) is
    standardised with mean and spread over *unmasked* objects only; one-hot flags are left
    as they are; padded slots are set to exactly 0 on output. φ is kept (standardised,
    no (cos, sin) pair): px and py already carry the periodic information and the
    feature count stays F = 12. Globals: ``log1p`` on MET, both standardised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hepvld.physics.kinematics import is_torch

__all__ = ["DetectorPreprocessor", "TargetPreprocessor", "spread_floor"]

_VERSION = 1


def spread_floor(mean: np.ndarray, std: np.ndarray, eps: float) -> np.ndarray:
    """``max(std, eps * max(|mean|, 1))``: the scale actually divided by."""
    return np.maximum(std, eps * np.maximum(np.abs(mean), 1.0))


def _like(stat: np.ndarray, x: Any) -> Any:
    """A statistic as an array of the same kind, dtype and device as ``x``."""
    if is_torch(x):
        import torch

        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return stat.astype(np.result_type(x.dtype, np.float32), copy=False)


def _log1p(x: Any) -> Any:
    return x.log1p() if is_torch(x) else np.log1p(x)


def _expm1(x: Any) -> Any:
    return x.expm1() if is_torch(x) else np.expm1(x)


def _mask_like(mask: Any, x: Any) -> Any:
    if is_torch(x):
        import torch

        return torch.as_tensor(mask, dtype=torch.bool, device=x.device)
    return np.asarray(mask, dtype=bool)


def _copy(x: Any) -> Any:
    return x.clone() if is_torch(x) else np.array(x, copy=True)


def _masked_stats(x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over axis 0 of ``(M, F)`` in float64 (optionally weighted)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        raise ValueError("cannot fit preprocessing on 0 entries")
    if not np.isfinite(x).all():
        raise ValueError(f"cannot fit preprocessing: {int((~np.isfinite(x)).sum())} NaN/inf values")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.average(x, axis=0, weights=w)
    std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    return mean, std


class TargetPreprocessor:
    """Per-component standardisation of the ``(…, X)`` parton-level targets.

    Parameters
    ----------
    eps
        Relative spread floor (see :func:`spread_floor`).
    """

    def __init__(self, eps: float = 1e-2) -> None:
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, x: np.ndarray, weights: np.ndarray | None = None) -> TargetPreprocessor:
        """Fit on ``x (B, X)`` (optionally weighted by ``weights (B,)``); returns self."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"expected (B, X) targets, got shape {x.shape}")
        mean, std = _masked_stats(x, weights)
        self.mean, self.scale = mean, spread_floor(mean, std, self.eps)
        return self

    def _check(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.scale is None:
            raise RuntimeError("TargetPreprocessor is not fitted")
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"expected (..., {len(self.mean)}), got {tuple(x.shape)}")
        return self.mean, self.scale

    def transform(self, x: Any) -> Any:
        """Physical ``(…, X)`` -> standardised ``(…, X)``."""
        mean, scale = self._check(x)
        return (x - _like(mean, x)) / _like(scale, x)

    def inverse_transform(self, z: Any) -> Any:
        """Standardised ``(…, X)`` (e.g. ``(B, S, X)`` posterior draws) -> physical."""
        mean, scale = self._check(z)
        return z * _like(scale, z) + _like(mean, z)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain dict."""
        if self.mean is None or self.scale is None:
            raise RuntimeError("TargetPreprocessor is not fitted")
        return {
            "type": type(self).__name__,
            "version": _VERSION,
            "eps": self.eps,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> TargetPreprocessor:
        """Inverse of :meth:`state_dict`."""
        if d.get("type") != cls.__name__:
            raise ValueError(f"state dict is for {d.get('type')!r}, not {cls.__name__}")
        obj = cls(eps=d["eps"])
        obj.mean = np.asarray(d["mean"], dtype=np.float64)
        obj.scale = np.asarray(d["scale"], dtype=np.float64)
        if obj.mean.shape != obj.scale.shape or (obj.scale <= 0).any():
            raise ValueError("invalid TargetPreprocessor state: bad shapes or non-positive scale")
        return obj


class DetectorPreprocessor:
    """Masked standardisation of ``objects (B, N, F)`` and ``globals (B, G)``.

    Parameters
    ----------
    log_features
        Object feature indices transformed with ``log1p`` first (default M, pT, E).
    onehot_features
        Object feature indices left untouched (default the 4 one-hot flags).
    log_globals
        Global feature indices transformed with ``log1p`` first (default MET).
    eps
        Relative spread floor (see :func:`spread_floor`).
    """

    def __init__(
        self,
        log_features: Sequence[int] = (0, 1, 4),
        onehot_features: Sequence[int] = (8, 9, 10, 11),
        log_globals: Sequence[int] = (0,),
        eps: float = 1e-2,
    ) -> None:
        self.log_features = [int(i) for i in log_features]
        self.onehot_features = [int(i) for i in onehot_features]
        self.log_globals = [int(i) for i in log_globals]
        self.eps = float(eps)
        self.obj_mean: np.ndarray | None = None
        self.obj_scale: np.ndarray | None = None
        self.glob_mean: np.ndarray | None = None
        self.glob_scale: np.ndarray | None = None

    # -- helpers ------------------------------------------------------------------
    def _forward_log(self, x: Any, idx: list[int]) -> Any:
        if idx:
            x[..., idx] = _log1p(x[..., idx])
        return x

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if (
            self.obj_mean is None
            or self.obj_scale is None
            or self.glob_mean is None
            or self.glob_scale is None
        ):
            raise RuntimeError("DetectorPreprocessor is not fitted")
        return self.obj_mean, self.obj_scale, self.glob_mean, self.glob_scale

    def fit(
        self,
        objects: np.ndarray,
        mask: np.ndarray,
        globals: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> DetectorPreprocessor:
        """Fit on ``objects (B, N, F)``, ``mask (B, N)``, ``globals (B, G)``; returns self.

        Only unmasked objects enter the object statistics (padding is ignored).
        """
        objects = np.asarray(objects, dtype=np.float64)
        mask = np.asarray(mask, dtype=bool)
        sel = self._forward_log(objects[mask], self.log_features)
        w_obj = (
            None
            if weights is None
            else np.broadcast_to(np.asarray(weights)[:, None], mask.shape)[mask]
        )
        mean, std = _masked_stats(sel, w_obj)
        scale = spread_floor(mean, std, self.eps)
        mean[self.onehot_features], scale[self.onehot_features] = 0.0, 1.0
        g = self._forward_log(np.array(globals, dtype=np.float64), self.log_globals)
        gmean, gstd = _masked_stats(g, weights)
        self.obj_mean, self.obj_scale = mean, scale
        self.glob_mean, self.glob_scale = gmean, spread_floor(gmean, gstd, self.eps)
        return self

    def transform(self, objects: Any, mask: Any, globals: Any) -> tuple[Any, Any]:
        """Physical -> preprocessed ``(objects (B, N, F), globals (B, G))``; padding = 0."""
        om, os_, gm, gs = self._fitted()
        o = _copy(objects)
        pad = ~_mask_like(mask, o)
        o[pad] = 0  # padding never enters any arithmetic (garbage cannot warn or leak)
        o = self._forward_log(o, self.log_features)
        o = (o - _like(om, o)) / _like(os_, o)
        o[pad] = 0
        g = self._forward_log(_copy(globals), self.log_globals)
        return o, (g - _like(gm, g)) / _like(gs, g)

    def inverse_transform(self, objects: Any, mask: Any, globals: Any) -> tuple[Any, Any]:
        """Preprocessed -> physical ``(objects (B, N, F), globals (B, G))``; padding = 0."""
        om, os_, gm, gs = self._fitted()
        pad = ~_mask_like(mask, objects)
        o = objects * _like(os_, objects) + _like(om, objects)
        o[pad] = 0
        if self.log_features:
            o[..., self.log_features] = _expm1(o[..., self.log_features])
        g = globals * _like(gs, globals) + _like(gm, globals)
        if self.log_globals:
            g[..., self.log_globals] = _expm1(g[..., self.log_globals])
        return o, g

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain dict."""
        om, os_, gm, gs = self._fitted()
        return {
            "type": type(self).__name__,
            "version": _VERSION,
            "eps": self.eps,
            "log_features": self.log_features,
            "onehot_features": self.onehot_features,
            "log_globals": self.log_globals,
            "obj_mean": om.tolist(),
            "obj_scale": os_.tolist(),
            "glob_mean": gm.tolist(),
            "glob_scale": gs.tolist(),
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> DetectorPreprocessor:
        """Inverse of :meth:`state_dict`."""
        if d.get("type") != cls.__name__:
            raise ValueError(f"state dict is for {d.get('type')!r}, not {cls.__name__}")
        obj = cls(d["log_features"], d["onehot_features"], d["log_globals"], d["eps"])
        obj.obj_mean = np.asarray(d["obj_mean"], dtype=np.float64)
        obj.obj_scale = np.asarray(d["obj_scale"], dtype=np.float64)
        obj.glob_mean = np.asarray(d["glob_mean"], dtype=np.float64)
        obj.glob_scale = np.asarray(d["glob_scale"], dtype=np.float64)
        return obj
