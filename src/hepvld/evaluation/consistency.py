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

from hepvld.physics import kinematics
from hepvld.targets.parton import PARTON

__all__ = ["composite_masses", "mass_shell_residual", "regressed_masses"]


def _parts(x: np.ndarray) -> np.ndarray:
    return PARTON.unflat(np.asarray(x, dtype=np.float64))


def mass_shell_residual(x: np.ndarray) -> np.ndarray:
    """``M² - (E² - |p|²)`` per parton (:func:`hepvld.physics.kinematics.mass_shell_residual`).

    Parameters
    ----------
    x : ndarray, shape (..., 55)

    Returns
    -------
    ndarray, shape (..., 11) [GeV²]
    """
    return kinematics.mass_shell_residual(_parts(x))


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
    vec = kinematics.components_to_p4(_parts(x), on_shell=False)
    out = {}
    for name, leaves in PARTON.derived.items():
        idx = [PARTON.names.index(leaf) for leaf in leaves]
        total = vec[..., idx[0]]
        for i in idx[1:]:
            total = total + vec[..., i]
        out[name] = np.asarray(total.mass)
    return out


def regressed_masses(x: np.ndarray) -> dict[str, np.ndarray]:
    """Regressed mass ``M`` of every composite, name -> shape (...)."""
    p = _parts(x)
    return {name: p[..., PARTON.names.index(name), 0] for name in PARTON.derived}
