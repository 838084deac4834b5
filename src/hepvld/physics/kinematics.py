"""Small pure kinematics helpers on numpy arrays with ``vector``.

The 55-vector stores each particle as ``(M, log E, px, py, pz)``; these functions convert
between that representation and ``vector`` four-momenta.
"""

from __future__ import annotations

import numpy as np
import vector

__all__ = ["components_to_p4", "p4_components", "p4_ptetaphim"]


def p4_ptetaphim(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray
) -> vector.MomentumNumpy4D:
    """Four-momenta (float64) from ``(pT, η, φ, M)`` arrays of any common shape ``(...)``."""
    return vector.array(
        {
            "pt": np.asarray(pt, dtype=np.float64),
            "eta": np.asarray(eta, dtype=np.float64),
            "phi": np.asarray(phi, dtype=np.float64),
            "mass": np.asarray(mass, dtype=np.float64),
        }
    )


def p4_components(p4: vector.MomentumNumpy4D) -> np.ndarray:
    """``(M, log E, px, py, pz)`` of four-momenta.

    Parameters
    ----------
    p4
        Four-momenta of shape ``(...)``.

    Returns
    -------
    np.ndarray
        ``(..., 5)`` float64. ``M`` is the invariant mass (negative for space-like input,
        following ``vector``); ``log E`` is the natural log of the energy in GeV.
    """
    return np.stack(
        [
            np.asarray(p4.mass, dtype=np.float64),
            np.log(np.asarray(p4.E, dtype=np.float64)),
            np.asarray(p4.px, dtype=np.float64),
            np.asarray(p4.py, dtype=np.float64),
            np.asarray(p4.pz, dtype=np.float64),
        ],
        axis=-1,
    )


def components_to_p4(x: np.ndarray, *, on_shell: bool = True) -> vector.MomentumNumpy4D:
    """Inverse of :func:`p4_components`.

    Parameters
    ----------
    x
        ``(..., 5)`` array of ``(M, log E, px, py, pz)``.
    on_shell
        ``True``: build from ``(px, py, pz, M)`` so the mass is kept exactly and
        ``E = sqrt(p² + M²)`` (a predicted ``log E`` is ignored). ``False``: build from
        ``(px, py, pz, E = exp(log E))`` (the mass then follows from ``E² − p²``, which is
        imprecise for light particles).
    """
    x = np.asarray(x, dtype=np.float64)
    coords = {"px": x[..., 2], "py": x[..., 3], "pz": x[..., 4]}
    if on_shell:
        coords["mass"] = x[..., 0]
    else:
        coords["E"] = np.exp(x[..., 1])
    return vector.array(coords)
