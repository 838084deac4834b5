"""The neutrino of the particle level's event slot through the lepton–neutrino mass.

The particle level stores the true neutrino as ``(ν px, ν py, ν pz, ν E)`` in event-slot
columns 3–6. Its ``pz`` is not measured: the detector sees the missing transverse momentum
only, and ``pz`` follows from the W that the neutrino shares with the charged lepton. A
network that generates ``pz`` directly has to learn that a narrow mass is built from two
different slots; with ``neutrino="w_mass"`` it generates the mass instead:

* column 5: ``m_ℓν`` (GeV), the invariant mass of the reference lepton and the neutrino;
* column 6: ``Δy = y_ν − y_ℓ``, of which the decoder uses only the sign (``|Δy|`` follows
  from the mass, see below).

The neutrino is massless. With the lepton's transverse momentum ``pT_ℓ``, transverse mass
``mT_ℓ = sqrt(pT_ℓ² + m_ℓ²)`` and rapidity ``y_ℓ``, and ``Δφ`` between lepton and neutrino,

``m_ℓν² = m_ℓ² + 2 mT_ℓ pT_ν cosh Δy − 2 pT_ℓ pT_ν cos Δφ``,

so ``|Δy| = arccosh((m_ℓν² − m_ℓ² + 2 pT_ℓ pT_ν cos Δφ) / (2 mT_ℓ pT_ν))`` (clamped at 0
when a drawn mass lies below the kinematic minimum), ``y_ν = y_ℓ + sign(Δy) |Δy|``,
``pz = pT_ν sinh y_ν``, ``E = pT_ν cosh y_ν``. The map is exact both ways for a true
particle level (up to float rounding).

With ``neutrino="rapidity"`` the two columns are swapped: column 5 is ``Δy`` and decodes
the neutrino directly (``y_ν = y_ℓ + Δy``), column 6 carries ``m_ℓν`` as an auxiliary target
that the decoder does not use. ``w_mass`` makes the W peak a coordinate but turns an error
in the drawn mass into a rapidity error ``δm / (dm/dΔy)``, large where the slope is small
(soft lepton and neutrino); ``rapidity`` keeps the neutrino's rapidity tied to the lepton's
without that amplification.

The **reference lepton** is the first real object slot whose type is an electron or a
muon (the leading lepton in the level's layout, where real slots come first in decreasing
true pT); an event without one uses a massless unit vector along +x at ``y = 0``, so the
map is defined (and invertible) for every event. Draws are typed before they are decoded,
so a draw's neutrino is built from that draw's own lepton.

Shapes: ``values (..., K, 9)`` (the level's layout), types one-hot or probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepvld.physics.kinematics import LOG_E_MAX, is_torch

__all__ = ["NEUTRINO_PARAMETERISATIONS", "from_rapidity", "from_w_mass", "to_rapidity", "to_w_mass"]

#: Names of the neutrino parameterisations of the particle level's event slot.
NEUTRINO_PARAMETERISATIONS: tuple[str, ...] = ("cartesian", "w_mass", "rapidity")

_TYPES = slice(5, 9)  # the object slots' one-hot type columns (b, light, e, μ)
_MIN_PT = 1e-3  # GeV: transverse momenta are floored here (a finite map at pT -> 0)


def _lepton_numpy(values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """``(px, py, pz, m)`` of the reference lepton of each row, each ``(...)``."""
    obj = values[..., 1:, :]
    is_lep = np.argmax(obj[..., _TYPES], axis=-1) >= 2
    if mask is not None:
        is_lep &= np.asarray(mask, bool)[..., 1:]
    first = np.argmax(is_lep, axis=-1)
    has = np.take_along_axis(is_lep, first[..., None], axis=-1)[..., 0]
    lep = np.take_along_axis(obj, first[..., None, None], axis=-2)[..., 0, :]
    mass = np.maximum(np.expm1(np.minimum(lep[..., 4], LOG_E_MAX)), 0.0)
    px = np.where(has, lep[..., 0], 1.0)
    return px, np.where(has, lep[..., 1], 0.0), np.where(has, lep[..., 2], 0.0), mass * has


def _lepton_torch(values: Any) -> tuple[Any, ...]:
    """Torch version of :func:`_lepton_numpy` (no mask: padded slots are typed b)."""
    import torch

    obj = values[..., 1:, :]
    is_lep = obj[..., _TYPES].argmax(-1) >= 2
    first = is_lep.to(torch.int64).argmax(-1, keepdim=True)  # (..., 1)
    has = torch.gather(is_lep, -1, first)[..., 0]
    lep = torch.gather(obj, -2, first.unsqueeze(-1).expand(*first.shape, obj.shape[-1]))[..., 0, :]
    one, zero = torch.ones_like(lep[..., 0]), torch.zeros_like(lep[..., 0])
    lm = torch.where(has, lep[..., 4].clamp(max=LOG_E_MAX).expm1().clamp_min(0.0), zero)
    return (
        torch.where(has, lep[..., 0], one),
        torch.where(has, lep[..., 1], zero),
        torch.where(has, lep[..., 2], zero),
        lm,
    )


def to_w_mass(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Physical ``values (..., K, 9)`` (numpy) -> the same with event-slot columns 5, 6 =
    ``(m_ℓν, Δy)`` (module docstring); ``mask (..., K)`` restricts the lepton search to
    real slots. float64."""
    values = np.array(values, dtype=np.float64)
    lpx, lpy, lpz, lm = _lepton_numpy(values, mask)
    ev = values[..., 0, :]
    npx, npy, npz = ev[..., 3], ev[..., 4], ev[..., 5]
    lpt = np.maximum(np.hypot(lpx, lpy), _MIN_PT)
    npt = np.maximum(np.hypot(npx, npy), _MIN_PT)
    lmt = np.sqrt(lpt**2 + lm**2)
    dy = np.arcsinh(npz / npt) - np.arcsinh(lpz / lmt)
    cos_dphi = (lpx * npx + lpy * npy) / (lpt * npt)
    m2 = lm**2 + 2.0 * lmt * npt * np.cosh(dy) - 2.0 * lpt * npt * cos_dphi
    values[..., 0, 5] = np.sqrt(np.maximum(m2, 0.0))
    values[..., 0, 6] = dy
    return values


def from_w_mass(values: Any) -> Any:
    """Inverse of :func:`to_w_mass`: event-slot columns 5, 6 ``(m_ℓν, Δy)`` -> ``(ν pz,
    ν E)`` of ``values (..., K, 9)`` (numpy or torch; differentiable in torch). Returns a
    new array; the reference lepton is the first slot typed e/μ (padded slots, all-zero,
    are typed b and never chosen)."""
    if not is_torch(values):
        values = np.array(values, dtype=np.result_type(values, np.float32))
        lpx, lpy, lpz, lm = _lepton_numpy(values, None)
        ev = values[..., 0, :]
        npt = np.maximum(np.hypot(ev[..., 3], ev[..., 4]), _MIN_PT)
        lpt = np.maximum(np.hypot(lpx, lpy), _MIN_PT)
        lmt = np.sqrt(lpt**2 + lm**2)
        cos_dphi = (lpx * ev[..., 3] + lpy * ev[..., 4]) / (lpt * npt)
        c = (ev[..., 5] ** 2 - lm**2 + 2.0 * lpt * npt * cos_dphi) / (2.0 * lmt * npt)
        dy = np.arccosh(np.maximum(c, 1.0)) * np.where(ev[..., 6] < 0, -1.0, 1.0)
        y = np.arcsinh(lpz / lmt) + dy
        values[..., 0, 5] = npt * np.sinh(y)
        values[..., 0, 6] = npt * np.cosh(y)
        return values
    import torch

    lpx, lpy, lpz, lm = _lepton_torch(values)
    one, zero = torch.ones_like(lpx), torch.zeros_like(lpx)
    ev = values[..., 0, :]
    npt = torch.hypot(ev[..., 3], ev[..., 4]).clamp_min(_MIN_PT)
    lpt = torch.hypot(lpx, lpy).clamp_min(_MIN_PT)
    lmt = (lpt.square() + lm.square()).sqrt()
    cos_dphi = (lpx * ev[..., 3] + lpy * ev[..., 4]) / (lpt * npt)
    c = (ev[..., 5].square() - lm.square() + 2.0 * lpt * npt * cos_dphi) / (2.0 * lmt * npt)
    # acosh'(1) is infinite: within a few float epsilons of the kinematic minimum |Δy| is
    # 0 (value and gradient; float32: |Δy| < 1e-3, below the precision of c itself),
    # elsewhere exact (the double where keeps the unused branch finite)
    inside = c > 1.0 + 4.0 * torch.finfo(c.dtype).eps
    ady = torch.where(inside, torch.acosh(torch.where(inside, c, 2.0 * one)), zero)
    dy = torch.where(ev[..., 6] < 0, -ady, ady)
    y = torch.asinh(lpz / lmt) + dy
    nu = torch.stack([npt * torch.sinh(y), npt * torch.cosh(y)], dim=-1)
    out = values.clone()
    out[..., 0, 5:7] = nu
    return out


def to_rapidity(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Physical ``values (..., K, 9)`` -> event-slot columns 5, 6 = ``(Δy, m_ℓν)`` (the
    columns of :func:`to_w_mass`, swapped). float64."""
    out = to_w_mass(values, mask)
    out[..., 0, 5:7] = out[..., 0, 6:4:-1].copy()
    return out


def from_rapidity(values: Any) -> Any:
    """Inverse of :func:`to_rapidity` (numpy or torch): ``y_ν = y_ℓ + Δy`` (column 5),
    ``pz = pT_ν sinh y_ν``, ``E = pT_ν cosh y_ν``; column 6 is not used."""
    if not is_torch(values):
        values = np.array(values, dtype=np.result_type(values, np.float32))
        lpx, lpy, lpz, lm = _lepton_numpy(values, None)
        ev = values[..., 0, :]
        npt = np.maximum(np.hypot(ev[..., 3], ev[..., 4]), _MIN_PT)
        lmt = np.sqrt(np.maximum(np.hypot(lpx, lpy), _MIN_PT) ** 2 + lm**2)
        y = np.arcsinh(lpz / lmt) + ev[..., 5]
        values[..., 0, 5] = npt * np.sinh(y)
        values[..., 0, 6] = npt * np.cosh(y)
        return values
    import torch

    lpx, lpy, lpz, lm = _lepton_torch(values)
    ev = values[..., 0, :]
    npt = torch.hypot(ev[..., 3], ev[..., 4]).clamp_min(_MIN_PT)
    lmt = (torch.hypot(lpx, lpy).clamp_min(_MIN_PT).square() + lm.square()).sqrt()
    y = torch.asinh(lpz / lmt) + ev[..., 5].clamp(-10.0, 10.0)
    out = values.clone()
    out[..., 0, 5:7] = torch.stack([npt * torch.sinh(y), npt * torch.cosh(y)], dim=-1)
    return out
