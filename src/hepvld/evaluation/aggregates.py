"""Derived kinematics (component types) and sums of per-feature numbers.

The *feature table* of a 55-vector is the 55 native components ``(M, log E, px, py, pz)``
of the 11 partons followed by 44 derived ones ``(pT, η, φ, E)`` per parton (computed with
``vector`` from ``E = exp(log E)`` and the momentum): 99 columns. Distances are computed on
the feature table; the aggregates are

* ``total``: sum over the 55 native components (the paper's Table 1),
* ``per_particle``: sum over the 5 native components of each parton, shape (..., 11),
* ``per_type``: sum over the 11 partons of each component type
  :data:`COMPONENT_TYPES` = (mass, pT, η, φ, energy, px, py, pz), shape (..., 8).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import vector

from hepvld.physics.kinematics import components_to_p4
from hepvld.targets.parton import PARTON

COMPONENTS = PARTON.components

__all__ = [
    "COMPONENT_TYPES",
    "DERIVED_TYPES",
    "ETA_MAX",
    "FEATURE_DIM",
    "aggregate",
    "feature_index",
    "feature_labels",
    "feature_table",
    "kinematics",
    "kinematics_to_targets",
]

#: Component types of the per-type aggregates.
COMPONENT_TYPES: tuple[str, ...] = ("mass", "pT", "eta", "phi", "energy", "px", "py", "pz")

#: Types not in the native 55-vector, appended to the feature table in this order.
DERIVED_TYPES: tuple[str, ...] = ("pT", "eta", "phi", "energy")

#: |η| is clipped to this value (η is infinite for pT = 0, e.g. the hard-process tt̄).
ETA_MAX: float = 10.0

#: Number of columns of the feature table (55 native + 44 derived).
FEATURE_DIM: int = PARTON.dim + len(PARTON.names) * len(DERIVED_TYPES)

_NATIVE_OF_TYPE = {"mass": "M", "px": "px", "py": "py", "pz": "pz"}


def _momenta(x: np.ndarray) -> vector.MomentumNumpy4D:
    return components_to_p4(PARTON.unflat(x), on_shell=False)


def kinematics(x: np.ndarray) -> np.ndarray:
    """All component types of every parton.

    Parameters
    ----------
    x : ndarray, shape (..., 55)
        Targets ``(M, log E, px, py, pz)`` × 11 partons.

    Returns
    -------
    ndarray, shape (..., 11, 8)
        Last axis in :data:`COMPONENT_TYPES` order. ``mass`` is the regressed M (not the
        four-vector mass), ``energy = exp(log E)``, ``η`` is clipped to ±:data:`ETA_MAX`.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != PARTON.dim:
        raise ValueError(f"expected last axis {PARTON.dim}, got {x.shape}")
    p = x.reshape(*x.shape[:-1], len(PARTON.names), len(COMPONENTS))
    v = _momenta(x)
    eta = np.clip(np.nan_to_num(np.asarray(v.eta), nan=0.0), -ETA_MAX, ETA_MAX)
    cols = {
        "mass": p[..., 0],
        "pT": np.asarray(v.pt),
        "eta": eta,
        "phi": np.asarray(v.phi),
        "energy": np.asarray(v.E),
        "px": p[..., 2],
        "py": p[..., 3],
        "pz": p[..., 4],
    }
    return np.stack([cols[t] for t in COMPONENT_TYPES], axis=-1)


def kinematics_to_targets(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`kinematics` (from mass, pT, η, φ, energy).

    Parameters
    ----------
    k : ndarray, shape (..., 11, 8)

    Returns
    -------
    ndarray, shape (..., 55)
    """
    k = np.asarray(k, dtype=np.float64)
    i = {t: COMPONENT_TYPES.index(t) for t in COMPONENT_TYPES}
    v = cast(
        vector.MomentumNumpy4D,
        vector.array(
            {
                "pt": k[..., i["pT"]],
                "eta": k[..., i["eta"]],
                "phi": k[..., i["phi"]],
                "E": k[..., i["energy"]],
            }
        ),
    )
    with np.errstate(divide="ignore"):
        log_e = np.log(k[..., i["energy"]])
    out = np.stack(
        [k[..., i["mass"]], log_e, np.asarray(v.px), np.asarray(v.py), np.asarray(v.pz)], axis=-1
    )
    return out.reshape(*k.shape[:-2], PARTON.dim)


def feature_table(x: np.ndarray) -> np.ndarray:
    """The 99-column feature table (55 native + (pT, η, φ, E) per parton).

    Parameters
    ----------
    x : ndarray, shape (..., 55)

    Returns
    -------
    ndarray, shape (..., 99)
    """
    x = np.asarray(x, dtype=np.float64)
    k = kinematics(x)
    idx = [COMPONENT_TYPES.index(t) for t in DERIVED_TYPES]
    derived = k[..., idx].reshape(*x.shape[:-1], -1)  # parton-major: (p0 pT, p0 eta, ...)
    return np.concatenate([x, derived], axis=-1)


def feature_labels() -> list[str]:
    """Labels of the feature table columns, ``"t_had/M"``, ..., ``"t_had/pT"``."""
    return PARTON.labels() + [f"{p}/{t}" for p in PARTON.names for t in DERIVED_TYPES]


def feature_index(particle: str, kind: str) -> int:
    """Column of ``particle``/``kind`` in the feature table.

    ``kind`` is a native component (``M, logE, px, py, pz``) or a type of
    :data:`COMPONENT_TYPES` (``mass`` is an alias of ``M``).
    """
    if particle not in PARTON.names:
        raise KeyError(f"unknown particle {particle!r}; partons are {PARTON.names}")
    kind = _NATIVE_OF_TYPE.get(kind, kind)
    p = PARTON.names.index(particle)
    if kind in COMPONENTS:
        return p * len(COMPONENTS) + COMPONENTS.index(kind)
    if kind in DERIVED_TYPES:
        return PARTON.dim + p * len(DERIVED_TYPES) + DERIVED_TYPES.index(kind)
    raise KeyError(f"unknown component {kind!r}; use {COMPONENTS} or {COMPONENT_TYPES}")


def _type_columns() -> np.ndarray:
    """(8, 11) feature-table columns of every (type, parton)."""
    return np.array([[feature_index(p, t) for p in PARTON.names] for t in COMPONENT_TYPES])


def aggregate(values: np.ndarray) -> dict[str, np.ndarray]:
    """Sums of per-feature numbers (e.g. distances) as in the paper.

    Parameters
    ----------
    values : ndarray, shape (..., 99)
        One number per feature-table column.

    Returns
    -------
    dict[str, ndarray]
        ``total`` (...), sum over the 55 native components; ``per_particle`` (..., 11);
        ``per_type`` (..., 8), in :data:`COMPONENT_TYPES` order. NaNs propagate.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1] != FEATURE_DIM:
        raise ValueError(f"expected last axis {FEATURE_DIM}, got {values.shape}")
    native = values[..., : PARTON.dim]
    return {
        "total": native.sum(axis=-1),
        "per_particle": native.reshape(*native.shape[:-1], len(PARTON.names), len(COMPONENTS)).sum(
            axis=-1
        ),
        "per_type": values[..., _type_columns()].sum(axis=-1),
    }
