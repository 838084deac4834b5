"""Pseudo-top quarks of particle-level objects (and of detector objects, identically).

Definition (the CMS particle-level pseudo-top, CMS Collaboration, "Measurement of
differential cross sections for top quark pair production using the lepton+jets final
state in proton-proton collisions at 13 TeV", Phys. Rev. D 95 (2017) 092001,
arXiv:1610.04191, Sec. 2 and the Rivet analysis ``CMS_2016_I1491950``; the LHC Top WG
particle-level top definition, https://twiki.cern.ch/twiki/bin/view/LHCPhysics/ParticleLevelTopDefinitions):

* the leptonic W is the leading charged lepton (e/μ) plus the neutrino;
* the hadronic W is a pair of jets other than the two b-jets of the tops (light jets; in
  events with more than two b-jets the surplus ones too — hepvld's choice, so that such
  events keep a pseudo-top), the tops add one b-jet each;
* of all assignments of two distinct b-jets (``b_had``, ``b_lep``) and such a jet pair,
  the one minimising ``K² = (M_jjb − m_t)² + (M_jj − m_W)² + (M_ℓνb − m_t)²`` with
  ``m_t = 172.5 GeV``, ``m_W = 80.4 GeV`` (:data:`TOP_MASS`, :data:`W_MASS`) is chosen.

Deviations, stated: the neutrino is the one given per event (at particle level the true
hard-process neutrino of the ``particle`` level's event slot, whereas Rivet sums all
prompt neutrinos; at detector level MET with the W-mass constraint,
:func:`neutrino_from_met`); only the :data:`MAX_JETS` leading jets, of them at most
:data:`MAX_BJETS` b-jets as top b's, enter the combinatorics (bounded cost on wild
posterior draws). Events without a lepton, two b-jets and two further jets get NaN
momenta and ``valid = False``. Vectorised with awkward (no loop over events).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
import vector

from hepvld.features.particle_level import OBJECT_TYPES

__all__ = [
    "ASSIGNMENT_ROLES",
    "MAX_BJETS",
    "MAX_JETS",
    "PSEUDO_TOP_FIELDS",
    "TOP_MASS",
    "W_MASS",
    "detector_objects",
    "neutrino_from_met",
    "pseudo_top",
    "pseudo_top_assignment",
]

vector.register_awkward()

#: Reference masses of the K² [GeV].
TOP_MASS: float = 172.5
W_MASS: float = 80.4
#: Leading jets (any flavour) and, among them, leading b-jets considered in the assignment.
MAX_JETS: int = 8
MAX_BJETS: int = 4
#: Momentum4D fields of :func:`pseudo_top`'s records.
PSEUDO_TOP_FIELDS: tuple[str, ...] = ("t_had", "t_lep", "W_had", "W_lep", "ttbar")
#: Roles of :func:`pseudo_top_assignment`'s columns.
ASSIGNMENT_ROLES: tuple[str, ...] = ("b_had", "b_lep", "q1", "q2", "lepton")


def _type_index(t: ak.Array) -> ak.Array:
    """Integer type indices of a ``type`` field holding ints or names of OBJECT_TYPES."""
    if "string" in str(ak.type(t)):
        idx = ak.where(t == OBJECT_TYPES[0], 0, -1)
        for i, name in enumerate(OBJECT_TYPES[1:], start=1):
            idx = ak.where(t == name, i, idx)
        return idx
    return t


def _four(p: Any) -> dict[str, Any]:
    return {"px": p.px, "py": p.py, "pz": p.pz, "E": p.E}


def _zip4(c: dict[str, Any]) -> ak.Array:
    return ak.zip(c, with_name="Momentum4D")


def _mass(c: dict[str, Any]) -> Any:
    m2 = c["E"] ** 2 - c["px"] ** 2 - c["py"] ** 2 - c["pz"] ** 2
    return np.sign(m2) * np.sqrt(abs(m2))


def _add(*ps: dict[str, Any]) -> dict[str, Any]:
    return {k: sum(p[k] for p in ps) for k in ("px", "py", "pz", "E")}


def _best_assignment(objects: ak.Array, event: ak.Array) -> dict[str, Any]:
    """The K²-minimising assignment of ``(B, var)`` objects and ``(B,)`` event records.

    Returns the candidates' four-momenta of every combination (``t_had, t_lep, W_had,
    W_lep``; per combination, jagged ``(B, var)``), ``best`` (``(B, 1)`` index of the
    chosen combination, ``None`` where there is none) and the positions (in the input
    order of ``objects``) of each combination's ``b_had, b_lep, q1, q2`` and of the lepton.
    """
    t = _type_index(objects["type"])
    position = ak.local_index(objects, axis=1)
    order = ak.argsort(objects.pt, axis=1, ascending=False, stable=True)
    objects, t, position = objects[order], t[order], position[order]
    is_jet = t <= 1
    jets = objects[is_jet][:, :MAX_JETS]
    jet_position = position[is_jet][:, :MAX_JETS]
    jet_is_b = (t[is_jet] == 0)[:, :MAX_JETS]
    lep = ak.firsts(objects[t >= 2], axis=1)
    lep_position = ak.firsts(position[t >= 2], axis=1)
    nu = event.nu
    b_index = ak.local_index(jets, axis=1)[jet_is_b][:, :MAX_BJETS]
    bb = ak.cartesian([b_index, b_index], axis=1)
    bb = bb[bb["0"] != bb["1"]]
    qq = ak.argcombinations(jets, 2, axis=1)
    combo = ak.cartesian({"b": bb, "q": qq}, axis=1)
    used = (combo.q["0"] == combo.b["0"]) | (combo.q["0"] == combo.b["1"])
    used = used | (combo.q["1"] == combo.b["0"]) | (combo.q["1"] == combo.b["1"])
    combo = combo[~used]
    parts = {"b_had": combo.b["0"], "b_lep": combo.b["1"], "q1": combo.q["0"], "q2": combo.q["1"]}
    bh, bl, q1, q2 = (_four(jets[i]) for i in parts.values())
    wl = _add(_four(lep), _four(nu))
    wh = _add(q1, q2)
    th = _add(wh, bh)
    tl = _add(wl, bl)
    k2 = (_mass(th) - TOP_MASS) ** 2 + (_mass(wh) - W_MASS) ** 2 + (_mass(tl) - TOP_MASS) ** 2
    return {
        "t_had": th,
        "t_lep": tl,
        "W_had": wh,
        "W_lep": wl,
        "best": ak.argmin(k2, axis=1, keepdims=True),
        "positions": {k: jet_position[i] for k, i in parts.items()},
        "lepton": lep_position,
    }


def _flat_pseudo_top(objects: ak.Array, event: ak.Array) -> ak.Array:
    """:func:`pseudo_top` on ``(B, var)`` objects and ``(B,)`` event records."""
    a = _best_assignment(objects, event)
    best = a["best"]

    def pick(c: dict[str, Any]) -> dict[str, np.ndarray]:
        return {
            k: np.asarray(ak.to_numpy(ak.fill_none(ak.firsts(v[best], axis=1), np.nan)), np.float64)
            for k, v in c.items()
        }

    th_, tl_, wh_ = pick(a["t_had"]), pick(a["t_lep"]), pick(a["W_had"])
    wl_ = {
        k: np.where(
            np.isfinite(th_["E"]),
            np.asarray(ak.to_numpy(ak.fill_none(v, np.nan)), np.float64),
            np.nan,
        )
        for k, v in a["W_lep"].items()
    }
    tt = _add(th_, tl_)
    return ak.zip(
        {
            "t_had": _zip4(th_),
            "t_lep": _zip4(tl_),
            "W_had": _zip4(wh_),
            "W_lep": _zip4(wl_),
            "ttbar": _zip4(tt),
            "valid": np.isfinite(tt["E"]),
        },
        depth_limit=1,
    )


def pseudo_top_assignment(objects: ak.Array, event: ak.Array) -> np.ndarray:
    """Which objects the pseudo-top (:func:`pseudo_top`) assigns to which role.

    Parameters
    ----------
    objects
        ``(B, var)`` ``Momentum4D`` objects with a ``type`` field, in any order.
    event
        ``(B,)`` records with ``nu`` (``Momentum4D``).

    Returns
    -------
    np.ndarray
        ``(B, 5)`` int64: the positions in ``objects[b]`` (its input order) of
        :data:`ASSIGNMENT_ROLES` ``(b_had, b_lep, q1, q2, lepton)`` — ``W_had = q1 + q2``,
        ``t_had = W_had + b_had``, ``W_lep = lepton + ν``, ``t_lep = W_lep + b_lep`` —
        and ``-1`` in every column of an event without a pseudo-top.
    """
    a = _best_assignment(objects, event)
    best = a["best"]
    cols = [ak.firsts(a["positions"][r][best], axis=1) for r in ASSIGNMENT_ROLES[:4]]
    out = np.stack(
        [np.asarray(ak.to_numpy(ak.fill_none(c, -1)), np.int64) for c in cols], axis=-1
    ).reshape(len(objects), 4)
    lepton = np.asarray(ak.to_numpy(ak.fill_none(a["lepton"], -1)), np.int64)
    valid = (out >= 0).all(-1) & (lepton >= 0)
    return np.where(valid[:, None], np.concatenate([out, lepton[:, None]], axis=-1), -1)


def pseudo_top(objects: ak.Array, event: ak.Array) -> ak.Array:
    """Pseudo-top reconstruction (definition in the module docstring), vectorised.

    Parameters
    ----------
    objects
        Jagged ``vector`` ``Momentum4D`` objects with a ``type`` field (int index into
        :data:`OBJECT_TYPES`, or its name): ``(B, var)``, or with leading draw axes, e.g.
        ``(B, S, var)`` posterior draws.
    event
        Records with ``met``, ``met_phi`` and ``nu`` (``Momentum4D``), one per event or
        draw (shape ``(B,)`` or ``(B, S)``, matching ``objects``' leading axes).

    Returns
    -------
    ak.Array
        Same leading shape; fields ``t_had``, ``t_lep``, ``W_had``, ``W_lep``, ``ttbar``
        (``Momentum4D``, ``px, py, pz, E`` float64; NaN where no assignment exists) and
        ``valid`` (bool).
    """
    counts = []
    while objects.ndim > 2:
        counts.append(ak.num(objects, axis=1))
        objects = ak.flatten(objects, axis=1)
        event = ak.flatten(event, axis=1)
    out = _flat_pseudo_top(objects, event)
    for c in reversed(counts):
        out = ak.unflatten(out, c, axis=0)
    return out


def neutrino_from_met(objects: ak.Array, met: np.ndarray, met_phi: np.ndarray) -> ak.Array:
    """Neutrino ``Momentum4D (B,)`` from MET and the leading lepton of ``objects (B, var)``.

    ``pz`` solves ``M(ℓν) = m_W`` for a massless neutrino with ``pT = MET``; of two real
    solutions the smaller ``|pz|``, for complex ones the real part; ``pz = 0`` without a
    lepton (the usual detector-level treatment, as in Rivet's ``PseudoTop``).
    """
    met = np.asarray(met, np.float64)
    px, py = met * np.cos(met_phi), met * np.sin(met_phi)
    t = _type_index(objects["type"])
    lep = ak.firsts(objects[t >= 2], axis=1)

    def col(v: Any) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.fill_none(v, np.nan)), np.float64)

    lpx, lpy, lpz, le = col(lep.px), col(lep.py), col(lep.pz), col(lep.E)
    lpt2 = lpx**2 + lpy**2
    mu = W_MASS**2 / 2 + lpx * px + lpy * py
    with np.errstate(invalid="ignore", divide="ignore"):
        a = mu * lpz / lpt2
        disc = a**2 - (le**2 * met**2 - mu**2) / lpt2
        root = np.sqrt(np.maximum(disc, 0.0))
        pz = np.where(np.abs(a - root) < np.abs(a + root), a - root, a + root)
    pz = np.where(np.isfinite(pz), pz, 0.0)
    return ak.zip(
        {"px": px, "py": py, "pz": pz, "E": np.sqrt(met**2 + pz**2)}, with_name="Momentum4D"
    )


def detector_objects(events: Any) -> ak.Array:
    """Selected detector objects (:func:`hepvld.features.good_jets` / ``good_leptons``) as
    ``(B, var)`` ``Momentum4D`` (``pt, eta, phi, mass`` float64) with ``type`` (int8:
    b-tagged jets ``bjet``, other jets ``light_jet``, electrons, muons), in decreasing pT."""
    from hepvld.features.selection import good_jets, good_leptons

    j = events.Jet[good_jets(events)]
    e_ok, m_ok = good_leptons(events)
    e, m = events.Electron[e_ok], events.Muon[m_ok]

    def rec(c: ak.Array, t: Any) -> ak.Array:
        return ak.zip(
            {
                **{k: ak.values_astype(c[k], np.float64) for k in ("pt", "eta", "phi", "mass")},
                "type": ak.values_astype(t, np.int8),
            }
        )

    parts = [
        rec(j, ak.where(j.btagged, 0, 1)),
        rec(e, ak.zeros_like(e.pt, dtype=np.int8) + 2),
        rec(m, ak.zeros_like(m.pt, dtype=np.int8) + 3),
    ]
    both = ak.concatenate(parts, axis=1)
    both = both[ak.argsort(both.pt, axis=1, ascending=False, stable=True)]
    return ak.with_name(both, "Momentum4D")
