"""Small pure kinematics of the ``(M, log E, px, py, pz)`` representation, any backend.

Every parton (and every particle-level object) is stored as five components
``(M, log E, px, py, pz)`` on the last axis. Following ``vector``'s habit, each quantity
is one small function that works on numpy arrays, torch tensors and awkward arrays alike
(only arithmetic and ``exp``/``log`` are used; torch is never imported here):

* :func:`energy`, :func:`momentum_squared`, :func:`mass_shell_residual` — quantities;
* :func:`components_to_p4` — the one conversion to ``vector`` four-momenta
  (``MomentumNumpy4D`` for numpy input, ``Momentum4D`` records for awkward input);
* :func:`p4_components` — its inverse.
"""

from __future__ import annotations

from typing import Any, cast

import awkward as ak
import numpy as np
import vector

__all__ = [
    "LOG_E_MAX",
    "components_to_p4",
    "energy",
    "is_torch",
    "mass_shell_residual",
    "momentum_squared",
    "p4_components",
    "p4_ptetaphim",
]

vector.register_awkward()

#: log(13 TeV / GeV): the largest meaningful log-energy (used to clamp wild predictions).
LOG_E_MAX: float = 9.47


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (the maps of this module,
    of the target levels and of the preprocessing take numpy arrays and tensors alike)."""
    return type(x).__module__.split(".")[0] == "torch"


def _exp(x: Any, max_log: float | None) -> Any:
    if is_torch(x):
        return (x if max_log is None else x.clamp(max=max_log)).exp()
    if max_log is not None:
        x = np.minimum(x, max_log)
    with np.errstate(over="ignore"):
        return np.exp(x)


def energy(x: Any, *, max_log_e: float | None = None) -> Any:
    """``E = exp(log E)`` of ``x (..., 5)``; shape ``(...)``.

    ``max_log_e`` clamps ``log E`` first (e.g. :data:`LOG_E_MAX`, so that a wild early
    decoder cannot overflow in a loss); ``None`` leaves it (numpy overflows to inf silently).
    """
    return _exp(x[..., 1], max_log_e)


def momentum_squared(x: Any) -> Any:
    """``|p|² = px² + py² + pz²`` of ``x (..., 5)``; shape ``(...)``."""
    return x[..., 2] ** 2 + x[..., 3] ** 2 + x[..., 4] ** 2


def mass_shell_residual(x: Any, *, scale: float = 1.0, max_log_e: float | None = None) -> Any:
    """Off-shellness ``M² − (E² − |p|²)`` of ``x (..., 5)`` in units of ``scale²``.

    Parameters
    ----------
    x
        ``(..., 5)`` components ``(M, log E, px, py, pz)`` in GeV (numpy or torch).
    scale
        Energy unit in GeV: the residual is computed on ``x / scale`` (order-one size for
        ``scale`` ≈ 100 GeV, as the consistency loss wants); 1 gives GeV².
    max_log_e
        Clamp of ``log E`` (see :func:`energy`).

    Returns
    -------
    Shape ``(...)``: 0 for a consistent four-vector.
    """
    m = x[..., 0] / scale
    e = energy(x, max_log_e=max_log_e) / scale
    return m**2 - (e**2 - momentum_squared(x) / scale**2)


def p4_ptetaphim(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray
) -> vector.MomentumNumpy4D:
    """Four-momenta (float64) from ``(pT, η, φ, M)`` arrays of any common shape ``(...)``."""
    p4 = cast(
        vector.MomentumNumpy4D,
        vector.array(
            {
                "pt": np.asarray(pt, dtype=np.float64),
                "eta": np.asarray(eta, dtype=np.float64),
                "phi": np.asarray(phi, dtype=np.float64),
                "mass": np.asarray(mass, dtype=np.float64),
            }
        ),
    )
    return p4


def p4_components(p4: Any) -> np.ndarray:
    """``(M, log E, px, py, pz)`` of four-momenta.

    Parameters
    ----------
    p4
        ``vector`` four-momenta (numpy or awkward) of shape ``(...)``.

    Returns
    -------
    np.ndarray
        ``(..., 5)`` float64. ``M`` is the invariant mass (negative for space-like input,
        following ``vector``); ``log E`` is the natural log of the energy in GeV.
    """

    def col(v: Any) -> np.ndarray:
        return np.asarray(ak.to_numpy(v) if isinstance(v, ak.Array) else v, dtype=np.float64)

    return np.stack([col(p4.mass), np.log(col(p4.E)), col(p4.px), col(p4.py), col(p4.pz)], axis=-1)


def components_to_p4(x: Any, *, on_shell: bool = True) -> Any:
    """``(M, log E, px, py, pz)`` -> ``vector`` four-momenta: the one conversion.

    Parameters
    ----------
    x
        ``(..., 5)`` numpy array: returns a ``vector.MomentumNumpy4D`` of shape ``(...)``
        (float64). An awkward array whose innermost axis has the 5 components: returns
        ``Momentum4D`` records (float64) with the remaining structure.
    on_shell
        ``True``: build from ``(px, py, pz, M)`` so the mass is kept exactly and
        ``E = sqrt(p² + M²)`` (a predicted ``log E`` is ignored). ``False``: build from
        ``(px, py, pz, E = exp(log E))`` (the mass then follows from ``E² − p²``, which is
        imprecise for light particles).
    """
    if isinstance(x, ak.Array):
        x = ak.values_astype(x, np.float64)
        coords = {"px": x[..., 2], "py": x[..., 3], "pz": x[..., 4]}
        coords["mass" if on_shell else "E"] = x[..., 0] if on_shell else np.exp(x[..., 1])
        return ak.zip(coords, with_name="Momentum4D")
    x = np.asarray(x, dtype=np.float64)
    coords = {"px": x[..., 2], "py": x[..., 3], "pz": x[..., 4]}
    if on_shell:
        coords["mass"] = x[..., 0]
    else:
        coords["E"] = energy(x)
    return vector.array(coords)
