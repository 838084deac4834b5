"""Physics consistency of unfolded partons.

* Mass-shell residual per parton: ``Δ = M² - (E² - |p|²)`` with ``E = exp(log E)``
  and ``M`` the regressed mass (0 for a consistent four-vector; the paper's loss L_C
  penalises ``|Δ|``).
* Composite masses: the invariant mass of the summed leaves (``W_had = q1 + q2``,
  ``t_had = b_had + q1 + q2``, ..., see :data:`hepvld.physics.constants.DERIVED`),
  computed with ``vector`` (signed: ``-sqrt(-m²)`` when ``m² < 0``), beside the regressed
  mass of the composite.
"""

from __future__ import annotations

import numpy as np
import vector

from hepvld.physics.constants import COMPONENTS, DERIVED, PARTONS, TARGET_DIM

__all__ = ["composite_masses", "mass_shell_residual", "regressed_masses"]


def _parts(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != TARGET_DIM:
        raise ValueError(f"expected last axis {TARGET_DIM}, got {x.shape}")
    return x.reshape(*x.shape[:-1], len(PARTONS), len(COMPONENTS))


def mass_shell_residual(x: np.ndarray) -> np.ndarray:
    """``M² - (E² - |p|²)`` per parton.

    Parameters
    ----------
    x : ndarray, shape (..., 55)

    Returns
    -------
    ndarray, shape (..., 11) [GeV²]
    """
    p = _parts(x)
    with np.errstate(over="ignore"):
        e = np.exp(p[..., 1])
    return p[..., 0] ** 2 - (e**2 - p[..., 2] ** 2 - p[..., 3] ** 2 - p[..., 4] ** 2)


def composite_masses(x: np.ndarray) -> dict[str, np.ndarray]:
    """Invariant masses of the composites from their summed leaves.

    Parameters
    ----------
    x : ndarray, shape (..., 55)

    Returns
    -------
    dict[str, ndarray]
        Composite name (``W_lep, W_had, t_lep, t_had, ttbar``) -> shape (...) [GeV].
    """
    p = _parts(x)
    with np.errstate(over="ignore"):
        e = np.exp(p[..., 1])
    vec = vector.array({"px": p[..., 2], "py": p[..., 3], "pz": p[..., 4], "E": e})
    out = {}
    for name, leaves in DERIVED.items():
        idx = [PARTONS.index(leaf) for leaf in leaves]
        total = vec[..., idx[0]]
        for i in idx[1:]:
            total = total + vec[..., i]
        out[name] = np.asarray(total.mass)
    return out


def regressed_masses(x: np.ndarray) -> dict[str, np.ndarray]:
    """Regressed mass ``M`` of every composite, name -> shape (...)."""
    p = _parts(x)
    return {name: p[..., PARTONS.index(name), 0] for name in DERIVED}
