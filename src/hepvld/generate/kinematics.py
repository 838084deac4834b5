"""Small kinematic helpers on flat numpy (px, py, pz, E) arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["delta_phi", "delta_r", "eta", "mass", "phi", "pt"]


def pt(px: Any, py: Any) -> Any:
    """Transverse momentum."""
    return np.hypot(px, py)


def eta(px: Any, py: Any, pz: Any) -> Any:
    """Pseudorapidity, ``asinh(pz / pT)``; ±1e10 for pT = 0 (never a NaN or warning)."""
    transverse = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.arcsinh(pz / transverse)
    return np.where(transverse > 0, value, np.copysign(1e10, pz))


def phi(px: Any, py: Any) -> Any:
    """Azimuth in (-π, π]."""
    return np.arctan2(py, px)


def mass(px: Any, py: Any, pz: Any, e: Any) -> Any:
    """Invariant mass, ``sqrt(max(E² - |p|², 0))``."""
    m2 = e**2 - px**2 - py**2 - pz**2
    return np.sqrt(np.maximum(m2, 0.0))


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """Azimuthal difference wrapped to [-π, π)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """Angular distance ``sqrt(Δη² + Δφ²)``."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))
