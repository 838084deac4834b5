"""The tt̄ decay chain as parameters in which the physics holds by construction.

The parton level's ``decay`` parameterisation (:class:`~hepvld.targets.parton.PartonLevel`)
lets a network generate a point of this space instead of the 55 components; the level maps
it back to the 11 partons × ``(M, log E, px, py, pz)``, so everything downstream is
unchanged. :data:`PARAMETERS` (``P = 29``), in order:

* ``ttbar/px, ttbar/py, ttbar/pz, ttbar/M``: the tt̄ system in the lab;
* ``t_lep/M, t_had/M, W_lep/M, W_had/M``: the resonance masses — each Breit–Wigner peak
  lives in one coordinate;
* for each two-body decay of :data:`DECAYS` (parent -> first, second), the direction of the
  first daughter in the parent's rest frame (reached from the lab by a pure boost, axes
  parallel to the lab's) as a 3-vector ``u`` (``.../ux, uy, uz``; normalised when decoded,
  so it is periodic without a cut in any angle);
* ``<leaf>/M`` of the six leaves: snapped to the nearest value of a fixed table when decoded
  (:data:`LEAF_MASSES`: lepton e/μ, ν 0, the generator's quark masses).

Decoding builds the chain top down (tt̄ -> t t̄ -> W b -> f f′, two-body momenta from the
masses, boosts to the lab), puts every leaf on its mass shell and forms W, t and tt̄ by
summing leaves: the leaves are on shell, the composites equal their summed daughters and
(for kinematically allowed masses) their masses equal the generated resonance masses.

Every function works on numpy arrays and torch tensors alike (torch is never imported);
shapes: ``(..., 11, 5)`` partons, ``(..., P)`` parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hepvld.physics.constants import PARTONS
from hepvld.physics.kinematics import is_torch

__all__ = [
    "DECAYS",
    "LEAF_MASSES",
    "LEAVES",
    "PARAMETERS",
    "from_parameters",
    "snap",
    "to_parameters",
]

#: The six leaves of the chain, in the parton order.
LEAVES: tuple[str, ...] = PARTONS[:6]

#: Two-body decays, top down: ``(parent, first daughter, second daughter)``; the direction
#: parameter of a decay is that of the first daughter in the parent's rest frame.
DECAYS: tuple[tuple[str, str, str], ...] = (
    ("ttbar", "t_lep", "t_had"),
    ("t_lep", "W_lep", "b_lep"),
    ("W_lep", "lep", "nu"),
    ("t_had", "W_had", "b_had"),
    ("W_had", "q1", "q2"),
)

#: Resonance masses generated as one coordinate each.
RESONANCES: tuple[str, ...] = ("t_lep", "t_had", "W_lep", "W_had")

#: Discrete leaf masses [GeV] the decoder snaps to: PDG e/μ, a massless ν, and the quark
#: masses of the hard-process record of Pythia 8 (d/u 0.33, s 0.5, c 1.5, b 4.8; q can be
#: a b through CKM-suppressed W -> cb), and 0 for massless light quarks (other generators).
LEAF_MASSES: dict[str, tuple[float, ...]] = {
    "b_lep": (4.8,),
    "nu": (0.0,),
    "lep": (0.000511, 0.10566),
    "b_had": (4.8,),
    "q1": (0.0, 0.33, 0.5, 1.5, 4.8),
    "q2": (0.0, 0.33, 0.5, 1.5, 4.8),
}

#: Parameter names, in order (``P = 29``).
PARAMETERS: tuple[str, ...] = (
    "ttbar/px",
    "ttbar/py",
    "ttbar/pz",
    "ttbar/M",
    *(f"{r}/M" for r in RESONANCES),
    *(f"{d1}|{parent}/u{a}" for parent, d1, _ in DECAYS for a in "xyz"),
    *(f"{leaf}/M" for leaf in LEAVES),
)

_EPS = 1e-12


# -- backend-generic helpers --------------------------------------------------------------
def _stack(xs: Sequence[Any], axis: int = -1) -> Any:
    if is_torch(xs[0]):
        import torch

        return torch.stack(list(xs), dim=axis)
    return np.stack(xs, axis=axis)


def _sqrt0(x: Any) -> Any:
    """``sqrt(max(x, 0))`` with a finite gradient at 0 (torch)."""
    if is_torch(x):
        return x.clamp_min(_EPS).sqrt() * (x > 0)
    return np.sqrt(np.maximum(x, 0.0))


def _log(x: Any) -> Any:
    if is_torch(x):
        return x.clamp_min(1e-6).log()
    return np.log(np.maximum(x, 1e-6))


def _floor(x: Any, eps: float = _EPS) -> Any:
    return x.clamp_min(eps) if is_torch(x) else np.maximum(x, eps)


def _clamp0(x: Any) -> Any:
    return x.clamp_min(0.0) if is_torch(x) else np.maximum(x, 0.0)


def snap(m: Any, table: Sequence[float]) -> Any:
    """Each entry of ``m (...)`` replaced by the nearest value of ``table`` (numpy or torch)."""
    if is_torch(m):
        import torch

        tt = torch.as_tensor(table, dtype=m.dtype, device=m.device)
        return tt[(m[..., None] - tt).abs().argmin(-1)]
    t = np.asarray(table, dtype=np.asarray(m).dtype)
    return t[np.abs(np.asarray(m)[..., None] - t).argmin(-1)]


def _mass(p4: Any) -> Any:
    """Invariant mass of ``(E, px, py, pz)`` on the last axis, ``sqrt(max(m², 0))``."""
    return _sqrt0(p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1))


def _boost(p4: Any, beta: Any) -> Any:
    """``p4 (..., 4)`` boosted by the velocity ``beta (..., 3)`` (|beta| < 1)."""
    b2 = (beta**2).sum(-1)
    one_minus = (1.0 - b2).clamp_min(1e-18) if is_torch(b2) else np.maximum(1.0 - b2, 1e-18)
    gamma = 1.0 / one_minus**0.5
    e, q = p4[..., 0], p4[..., 1:]
    bq = (beta * q).sum(-1)
    coef = gamma**2 / (gamma + 1.0) * bq + gamma * e
    return _stack([gamma * (e + bq), *(q[..., i] + coef * beta[..., i] for i in range(3))])


# -- partons -> parameters ---------------------------------------------------------------
def _leaf_p4(values: Any, leaf: str) -> Any:
    x = values[..., PARTONS.index(leaf), :]
    m, p = x[..., 0], x[..., 2:5]
    return _stack([_sqrt0(m**2 + (p**2).sum(-1)), p[..., 0], p[..., 1], p[..., 2]])


def _chain(values: Any) -> dict[str, Any]:
    """Four-vectors ``(E, px, py, pz)`` of every parton: on-shell leaves, summed composites."""
    p4 = {leaf: _leaf_p4(values, leaf) for leaf in LEAVES}
    for parent, d1, d2 in reversed(DECAYS):
        p4[parent] = p4[d1] + p4[d2]
    return p4


def to_parameters(values: np.ndarray) -> np.ndarray:
    """The decay-chain parameters of physical partons.

    Parameters
    ----------
    values : (..., 11, 5)
        Partons ``(M, log E, px, py, pz)`` in GeV (the composites are rebuilt from the
        leaves, so only the leaves' ``M, px, py, pz`` are read).

    Returns
    -------
    (..., P) float64 parameters (:data:`PARAMETERS`).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape[-2:] != (len(PARTONS), 5):
        raise ValueError(f"expected partons (..., 11, 5), got {v.shape}")
    p4 = _chain(v)
    cols = [p4["ttbar"][..., 1], p4["ttbar"][..., 2], p4["ttbar"][..., 3], _mass(p4["ttbar"])]
    cols += [_mass(p4[r]) for r in RESONANCES]
    for parent, d1, _ in DECAYS:
        beta = p4[parent][..., 1:] / np.maximum(p4[parent][..., :1], _EPS)
        q = _boost(p4[d1], -beta)[..., 1:]
        u = q / np.maximum(np.sqrt((q**2).sum(-1, keepdims=True)), _EPS)
        cols += [u[..., 0], u[..., 1], u[..., 2]]
    cols += [v[..., PARTONS.index(leaf), 0] for leaf in LEAVES]
    return np.stack(cols, axis=-1)


# -- parameters -> partons ---------------------------------------------------------------
def from_parameters(
    params: Any, leaf_masses: Mapping[str, Sequence[float]] | None = LEAF_MASSES
) -> Any:
    """Physical partons of decay-chain parameters (numpy or torch, differentiable).

    Parameters
    ----------
    params : (..., P)
        Parameters in physical units (:data:`PARAMETERS`); directions need not be unit
        vectors, masses are clamped at 0.
    leaf_masses
        Table of allowed leaf masses (leaf -> values) to snap to; None: the leaf masses
        are only clamped at 0.

    Returns
    -------
    (..., 11, 5) partons ``(M, log E, px, py, pz)``: leaves on their mass shell, W / t / tt̄
    the sums of their leaves.
    """
    if params.shape[-1] != len(PARAMETERS):
        raise ValueError(f"expected (..., {len(PARAMETERS)}) parameters, got {tuple(params.shape)}")
    col = {name: params[..., i] for i, name in enumerate(PARAMETERS)}
    mass = {r: _clamp0(col[f"{r}/M"]) for r in ("ttbar", *RESONANCES)}
    for leaf in LEAVES:
        m = col[f"{leaf}/M"]
        mass[leaf] = snap(m, leaf_masses[leaf]) if leaf_masses else _clamp0(m)
    p = _stack([col["ttbar/px"], col["ttbar/py"], col["ttbar/pz"]])
    p4 = {
        "ttbar": _stack(
            [_sqrt0(mass["ttbar"] ** 2 + (p**2).sum(-1)), *(p[..., i] for i in range(3))]
        )
    }
    for parent, d1, d2 in DECAYS:
        u = _stack([col[f"{d1}|{parent}/u{a}"] for a in "xyz"])
        u = u / _sqrt0((u**2).sum(-1, keepdims=True) + _EPS)
        m0, m1, m2 = _mass(p4[parent]), mass[d1], mass[d2]
        lam = (m0**2 - (m1 + m2) ** 2) * (m0**2 - (m1 - m2) ** 2)
        pstar = _sqrt0(lam) / (2.0 * (m0 + 1e-9))
        rest1 = _stack([_sqrt0(pstar**2 + m1**2), *(pstar * u[..., i] for i in range(3))])
        rest2 = _stack([_sqrt0(pstar**2 + m2**2), *(-pstar * u[..., i] for i in range(3))])
        beta = p4[parent][..., 1:] / _floor(p4[parent][..., :1])
        p4[d1], p4[d2] = _boost(rest1, beta), _boost(rest2, beta)
    # leaves on shell (E from p and the snapped mass), composites summed from the leaves
    for leaf in LEAVES:
        q = p4[leaf][..., 1:]
        p4[leaf] = _stack(
            [_sqrt0(mass[leaf] ** 2 + (q**2).sum(-1)), *(q[..., i] for i in range(3))]
        )
    for parent, d1, d2 in reversed(DECAYS):
        p4[parent] = p4[d1] + p4[d2]
    rows = []
    for name in PARTONS:
        v = p4[name]
        m = mass[name] if name in LEAVES else _mass(v)
        rows.append(_stack([m, _log(v[..., 0]), v[..., 1], v[..., 2], v[..., 3]]))
    return _stack(rows, axis=-2)
