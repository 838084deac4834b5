"""The particle level's objects through coordinates bounded by the phase space.

The level stores each object as ``(px, py, pz, log(E+1), log(M+1))``. Every true object
lies inside the level's object cuts (``pT > pT_min``, ``|η| < η_max``; jets and leptons
have their own thresholds, :class:`~hepvld.features.selection.SelectionCuts`), but a
network that generates Cartesian components may draw objects outside them, and the
``log(E+1)`` column repeats what ``p`` and ``M`` already fix. With ``objects="phase_space"``
the network generates instead, per object slot (columns 0–4)

``(log(pT − pT_min), artanh(η / η_max), cos φ, sin φ, log(M+1))``,

so every decoded object is inside the cuts by construction and on its mass shell
(``E = sqrt(p² + M²)``, the convention of the records). The thresholds are those of the
object's type (jet or lepton, the argmax of the type columns). The map is exact both ways
for true objects up to the floors ``pT − pT_min ≥ 1e-3 GeV`` and ``|η| / η_max ≤ 1 − 1e-6``
(float32 truth sitting on a cut). ``φ = atan2(sin, cos)`` of the drawn pair (its norm is
not used); a drawn ``log(M+1) < 0`` decodes to ``M = 0``.

Shapes: ``values (..., K, 9)`` (the level's layout; slot 0, the event slot, is left alone),
types one-hot or probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepvld.features.selection import SelectionCuts
from hepvld.io.schemas import ELECTRON_MASS, MUON_MASS
from hepvld.physics.kinematics import LOG_E_MAX, is_torch

__all__ = [
    "LEPTON_MASSES",
    "LEPTON_MASS_PARAMETERISATIONS",
    "LEPTON_MASS_SCALE",
    "OBJECT_PARAMETERISATIONS",
    "from_dressing_mass",
    "from_phase_space",
    "to_dressing_mass",
    "to_phase_space",
]

#: Names of the object parameterisations of the particle level.
OBJECT_PARAMETERISATIONS: tuple[str, ...] = ("cartesian", "phase_space")
#: Names of the lepton-mass parameterisations: ``"log"`` (``log(M+1)``, as the jets) or
#: ``"dressing"`` (:func:`to_dressing_mass`).
LEPTON_MASS_PARAMETERISATIONS: tuple[str, ...] = ("log", "dressing")
#: Unit of the dressing mass excess, GeV.
LEPTON_MASS_SCALE = 0.01
#: Rest masses of the electron and the muon (type columns 7, 8), GeV.
LEPTON_MASSES: tuple[float, float] = (ELECTRON_MASS, MUON_MASS)

_TYPES = slice(5, 9)  # one-hot type columns (b, light, e, μ): jets are types 0, 1
_MIN_DPT = 1e-3  # GeV
_MAX_ETA_FRACTION = 1.0 - 1e-6


def _thresholds(values: Any, cuts: SelectionCuts) -> tuple[Any, Any]:
    """``(pT_min, η_max)`` per object slot ``(..., K-1)`` from the slot's type."""
    obj = values[..., 1:, :]
    if is_torch(values):
        import torch

        jet = obj[..., _TYPES].argmax(-1) <= 1
        one = torch.ones_like(obj[..., 0])
        pt_min = torch.where(jet, cuts.jet_pt_min * one, cuts.lepton_pt_min * one)
        return pt_min, torch.where(jet, cuts.jet_eta_max * one, cuts.lepton_eta_max * one)
    jet = np.argmax(obj[..., _TYPES], axis=-1) <= 1
    return (
        np.where(jet, cuts.jet_pt_min, cuts.lepton_pt_min),
        np.where(jet, cuts.jet_eta_max, cuts.lepton_eta_max),
    )


def to_phase_space(values: np.ndarray, mask: np.ndarray, cuts: SelectionCuts) -> np.ndarray:
    """Physical ``values (..., K, 9)`` (numpy) -> object columns 0–4 in the phase-space
    coordinates (module docstring); padded slots (``mask`` False) are 0. float64."""
    values = np.array(values, dtype=np.float64)
    obj = values[..., 1:, :]
    pt_min, eta_max = _thresholds(values, cuts)
    px, py, pz = obj[..., 0], obj[..., 1], obj[..., 2]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.maximum(pt, 1e-12), 0.0))
        cos_phi = np.where(pt > 0, px / np.maximum(pt, 1e-12), 1.0)
        sin_phi = np.where(pt > 0, py / np.maximum(pt, 1e-12), 0.0)
    frac = np.clip(eta / eta_max, -_MAX_ETA_FRACTION, _MAX_ETA_FRACTION)
    coords = np.stack(
        [
            np.log(np.maximum(pt - pt_min, _MIN_DPT)),
            np.arctanh(frac),
            cos_phi,
            sin_phi,
            obj[..., 4],
        ],
        axis=-1,
    )
    real = np.asarray(mask, bool)[..., 1:, None]
    values[..., 1:, :5] = np.where(real, coords, 0.0)
    return values


def from_phase_space(values: Any, cuts: SelectionCuts) -> Any:
    """Inverse of :func:`to_phase_space`: object columns 0–4 -> ``(px, py, pz, log(E+1),
    log(M+1))`` of ``values (..., K, 9)`` (numpy or torch; differentiable in torch).
    Returns a new array; padded slots decode to an object on the cut — mask them."""
    pt_min, eta_max = _thresholds(values, cuts)
    obj = values[..., 1:, :]
    if is_torch(values):
        import torch

        pt = pt_min + obj[..., 0].clamp(max=LOG_E_MAX).exp()
        eta = eta_max * torch.tanh(obj[..., 1])
        phi = torch.atan2(obj[..., 3], obj[..., 2])
        mass = obj[..., 4].clamp(max=LOG_E_MAX).expm1().clamp_min(0.0)
        px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
        e = (px.square() + py.square() + pz.square() + mass.square()).sqrt()
        out = values.clone()
        out[..., 1:, :5] = torch.stack([px, py, pz, torch.log1p(e), torch.log1p(mass)], dim=-1)
        return out
    values = np.array(values, dtype=np.result_type(values, np.float32))
    obj = values[..., 1:, :]
    pt = pt_min + np.exp(np.minimum(obj[..., 0], LOG_E_MAX))
    eta = eta_max * np.tanh(obj[..., 1])
    phi = np.arctan2(obj[..., 3], obj[..., 2])
    mass = np.maximum(np.expm1(np.minimum(obj[..., 4], LOG_E_MAX)), 0.0)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    values[..., 1:, :5] = np.stack([px, py, pz, np.log1p(e), np.log1p(mass)], axis=-1)
    return values


def _lepton_rest_mass(values: Any) -> tuple[Any, Any]:
    """``(is_lepton, m_l)`` per object slot ``(..., K-1)`` from the slot's type (argmax)."""
    kind = values[..., 1:, _TYPES].argmax(-1)
    if is_torch(values):
        import torch

        one = torch.ones_like(values[..., 1:, 0])
        return kind >= 2, torch.where(kind == 2, LEPTON_MASSES[0] * one, LEPTON_MASSES[1] * one)
    return kind >= 2, np.where(kind == 2, *LEPTON_MASSES)


def to_dressing_mass(values: np.ndarray) -> np.ndarray:
    """Column 4 (``log(M+1)``) of the lepton slots of ``values (..., K, 9)`` (numpy) ->
    ``log(1 + (M − m_l) / LEPTON_MASS_SCALE)``, the mass the dressing photons add over
    the lepton's rest mass (``m_e``, ``m_μ`` by the slot's type) in units of 10 MeV.

    A dressed lepton's mass is its rest mass in most events (84 % of the leptons of our
    tt̄ sample) and at most a few GeV; as ``log(M+1)`` beside the jets' 3–100 GeV masses
    a network's percent-level error on the column spreads the leptons over ±0.3 GeV (a
    drawn muon of mass 0, an electron of 0.3 GeV). In these units the rest mass is the
    column's 0 and a draw below it decodes to the rest mass exactly. Jet slots and the
    event slot are left alone; float64."""
    values = np.array(values, dtype=np.float64)
    lepton, rest = _lepton_rest_mass(values)
    mass = np.expm1(values[..., 1:, 4])
    excess = np.log1p(np.maximum(mass - rest, 0.0) / LEPTON_MASS_SCALE)
    values[..., 1:, 4] = np.where(lepton, excess, values[..., 1:, 4])
    return values


def from_dressing_mass(values: Any) -> Any:
    """Inverse of :func:`to_dressing_mass` (numpy or torch, differentiable): lepton slots'
    column 4 -> ``log(M+1)`` with ``M = m_l + LEPTON_MASS_SCALE · expm1(max(u, 0))``.
    Returns a new array."""
    lepton, rest = _lepton_rest_mass(values)
    u = values[..., 1:, 4]
    if is_torch(values):
        import torch

        mass = rest + LEPTON_MASS_SCALE * u.clamp(0.0, LOG_E_MAX).expm1()
        out = values.clone()
        out[..., 1:, 4] = torch.where(lepton, torch.log1p(mass), u)
        return out
    values = np.array(values, dtype=np.result_type(values, np.float32))
    mass = rest + LEPTON_MASS_SCALE * np.expm1(np.clip(u, 0.0, LOG_E_MAX))
    values[..., 1:, 4] = np.where(lepton, np.log1p(mass), u)
    return values
