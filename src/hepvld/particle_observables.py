"""Built-in observables of the ``particle`` level (VL-VLD), for :class:`~hepvld.processor.UnfoldingProcessor`.

They read the particle-level records of :func:`hepvld.targets.particle_output.to_records`
(``objects``: pT-ordered ``Momentum4D`` with an int ``type`` indexing
``OBJECT_TYPES = (bjet, light_jet, electron, muon)``; ``event``: ``met``, ``met_phi``,
``nu``) after :func:`~hepvld.targets.particle_output.with_pseudo_top` added the
particle-level pseudo-top (``t_had, t_lep, W_had, W_lep, ttbar``) and ``nu``: so the
parton-named built-ins of :mod:`hepvld.observables` (``t_had_mass``, ``W_lep_pt``,
``nu_eta``, ...) apply unchanged, and these are added:

* multiplicities ``n_jets``, ``n_bjets``, ``n_light_jets``, ``n_leptons``, ``n_objects``;
* leading objects ``{jet1,jet2,bjet1,bjet2,lepton}_{pt,eta}`` (by pT within the type);
* ``met``; pseudo-top rapidities ``{t_had,t_lep,ttbar,W_had,W_lep}_rapidity``.

A quantity that does not exist in an entry (no second b-jet) is NaN, the pseudo-top of an
entry without one is ``None``; the processor fills neither and counts them
(``output["absent"]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numpy as np

from hepvld.observables import Observable, PartonQuantity

__all__ = [
    "PARTICLE_BUILTINS",
    "PARTICLE_OBSERVABLES",
    "EventQuantity",
    "LeadingObject",
    "Multiplicity",
]

_KINDS: dict[str, tuple[int, ...]] = {
    "objects": (0, 1, 2, 3),
    "jets": (0, 1),
    "bjets": (0,),
    "light_jets": (1,),
    "leptons": (2, 3),
}


def _selected(objects: ak.Array, types: tuple[int, ...]) -> ak.Array:
    t = objects["type"]
    keep = t == types[0]
    for other in types[1:]:
        keep = keep | (t == other)
    return objects[keep]


@dataclass(frozen=True)
class Multiplicity:
    """Picklable ``records -> number of objects whose type is in types``."""

    types: tuple[int, ...]

    def __call__(self, records: ak.Array) -> ak.Array:
        return ak.num(_selected(records.objects, self.types), axis=-1)


@dataclass(frozen=True)
class LeadingObject:
    """Picklable ``records -> quantity of the rank-th (0-based) object of these types``
    (NaN when there is none)."""

    types: tuple[int, ...]
    rank: int
    quantity: str

    def __call__(self, records: ak.Array) -> ak.Array:
        sel = _selected(records.objects, self.types)
        padded = ak.pad_none(sel, self.rank + 1, axis=-1)
        return ak.fill_none(getattr(padded[..., self.rank], self.quantity), np.nan)


@dataclass(frozen=True)
class EventQuantity:
    """Picklable ``records -> records.event[name]``."""

    name: str

    def __call__(self, records: ak.Array) -> ak.Array:
        return records.event[self.name]


def _builtins() -> dict[str, Observable]:
    out: dict[str, Observable] = {}
    for kind, types in _KINDS.items():
        n = f"n_{kind}"
        label = "N_{" + kind.replace("_", r"\,") + "}"
        out[n] = Observable(n, Multiplicity(types), (16, -0.5, 15.5), f"${label}$")
    leading = {"jet": ((0, 1), 2), "bjet": ((0,), 2), "lepton": ((2, 3), 1)}
    for kind, (types, n_rank) in leading.items():
        for rank in range(n_rank):
            stem = kind if n_rank == 1 else f"{kind}{rank + 1}"
            tex = {"jet": "j", "bjet": "b", "lepton": r"\ell"}[kind]
            tex = tex if n_rank == 1 else f"{tex}_{{{rank + 1}}}"
            out[f"{stem}_pt"] = Observable(
                f"{stem}_pt",
                LeadingObject(types, rank, "pt"),
                (25, 0.0, 400.0 if rank == 0 else 250.0),
                f"$p_{{T}}({tex})$ [GeV]",
            )
            out[f"{stem}_eta"] = Observable(
                f"{stem}_eta", LeadingObject(types, rank, "eta"), (25, -2.5, 2.5), f"$\\eta({tex})$"
            )
    out["met"] = Observable("met", EventQuantity("met"), (25, 0.0, 300.0), r"$E_{T}^{miss}$ [GeV]")
    out["met_phi"] = Observable(
        "met_phi", EventQuantity("met_phi"), (20, -math.pi, math.pi), r"$\phi(E_{T}^{miss})$"
    )
    tops = {"t_had": "t_{h}", "t_lep": r"t_{\ell}", "ttbar": r"t\bar{t}", "W_had": "W_{h}"}
    tops["W_lep"] = r"W_{\ell}"
    for p, t in tops.items():
        out[f"{p}_rapidity"] = Observable(
            f"{p}_rapidity",
            PartonQuantity(p, "rapidity"),
            (30, -3.0, 3.0),
            f"$y({t})$",
        )
    return out


#: Particle-level built-ins by name (the parton-named ones of :mod:`hepvld.observables`
#: apply to the pseudo-top too).
PARTICLE_BUILTINS: dict[str, Observable] = _builtins()

#: Default observables of a particle-level model: multiplicities, leading objects, MET
#: and the pseudo-top (t_had, t_lep, W_had, W_lep, tt̄ mass / pT / rapidity).
PARTICLE_OBSERVABLES: tuple[str, ...] = (
    "n_jets",
    "n_bjets",
    "n_leptons",
    "jet1_pt",
    "jet1_eta",
    "bjet1_pt",
    "bjet1_eta",
    "lepton_pt",
    "lepton_eta",
    "met",
    *(f"{p}_{q}" for p in ("t_had", "t_lep", "ttbar", "W_had", "W_lep") for q in ("mass", "pt")),
    *(f"{p}_rapidity" for p in ("t_had", "t_lep", "ttbar", "W_had", "W_lep")),
)
