"""Particle-level (VL-VLD) truth objects from awkward events: GenJets, dressed leptons, ν, MET.

The awkward half of the ``particle`` target level (:mod:`hepvld.targets.particle` pads,
orders and standardises what this module finds). Everything is vectorised over events.

Sources, by input layout (:func:`hepvld.io.open_events` maps all three to these names):

* **jets**: ``GenJet`` (anti-kT on stable visible particles). A jet is a b-jet when
  ``GenJet.hadronFlavour == 5`` (our files, CMS NanoAOD). Without ``hadronFlavour``
  (Delphes' ``GenJet`` has no hadron flavour), a jet is a b-jet when a ``GenPart`` entry
  containing a b quark (b quark or b hadron, :func:`has_b`) with pT > 5 GeV lies within
  ΔR < :data:`B_MATCH_DR` of its axis (logged); without ``GenPart`` every jet is light.
* **charged leptons**: ``GenDressedLepton`` e/μ. Without it (Delphes) the hard-process
  charged lepton of the decay chain (:func:`hepvld.physics.partons.decay_chain`), undressed,
  with the flavour of the closest ``GenPart`` e/μ (logged).
* **neutrino**: the hard-process neutrino of the semi-leptonic decay chain (NaN where the
  event has none).
* **MET**: ``GenMET`` (``GenMissingET`` in Delphes); without it the neutrino's pT and φ
  (logged).

Object types are indices into :data:`OBJECT_TYPES`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepvld.features.selection import PAPER_CUTS, Cutflow, SelectionCuts
from hepvld.io.errors import MissingBranchError

__all__ = [
    "B_MATCH_DR",
    "OBJECT_TYPES",
    "WIDE_CUTS",
    "TruthSelection",
    "event_truth",
    "has_b",
    "truth_objects",
    "truth_selection",
]

log = logging.getLogger(__name__)

#: Particle-level object types, in type-index order.
OBJECT_TYPES: tuple[str, ...] = ("bjet", "light_jet", "electron", "muon")

#: ΔR within which a b-flavoured ``GenPart`` makes a ``GenJet`` without ``hadronFlavour`` a b-jet.
B_MATCH_DR: float = 0.4

#: The looser truth phase space of ``phase_space="wide"``: jets pT > 20 GeV, |η| < 4.7;
#: leptons pT > 15 GeV, |η| < 2.7 (the detector-level cut is applied after unfolding).
WIDE_CUTS = SelectionCuts(
    lepton_pt_min=15.0,
    lepton_eta_max=2.7,
    jet_pt_min=20.0,
    jet_eta_max=4.7,
    min_jets=0,
    min_btags=0,
)

_BJET, _LIGHT, _ELECTRON, _MUON = range(4)


def has_b(pdg: Any) -> Any:
    """True for PDG codes containing a b quark: the b quark itself, b mesons (5xx) and
    b baryons (5xxx); elementwise on numpy / awkward integer arrays."""
    a = abs(pdg)
    return (a == 5) | ((a // 100) % 10 == 5) | ((a // 1000) % 10 == 5)


def _need(events: Any, names: tuple[str, ...]) -> None:
    fields = ak.fields(events)
    missing = [n for n in names if n not in fields]
    if missing:
        raise MissingBranchError(
            f"particle-level truth needs the {', '.join(missing)} collection(s); the input has "
            f"{sorted(fields)} (generate files with python -m hepvld.generate, or use NanoAOD / "
            "Delphes files with generator-level jets)",
            missing,
        )


def _jet_flavour(events: Any, jets: ak.Array) -> ak.Array:
    """Jagged bool: b-jet (see the module docstring)."""
    if "hadronFlavour" in ak.fields(jets):
        return jets.hadronFlavour == 5
    if "GenPart" not in ak.fields(events):
        log.warning("GenJet has no hadronFlavour and there is no GenPart: all jets are light")
        return jets.pt < -1.0
    gp = events.GenPart
    bs = gp[has_b(gp.pdgId) & (gp.pt > 5.0)]
    pairs = ak.cartesian({"j": jets, "b": bs}, axis=1, nested=True)
    dr = pairs.j.deltaR(pairs.b)
    log.info(
        "GenJet has no hadronFlavour: b-jets are jets with a b-flavoured GenPart within dR < %g",
        B_MATCH_DR,
    )
    return ak.fill_none(ak.any(dr < B_MATCH_DR, axis=2), False)


def _leptons(events: Any) -> ak.Array:
    """Jagged ``(pt, eta, phi, mass, pdgId)`` charged e/μ (dressed where available)."""
    if "GenDressedLepton" in ak.fields(events):
        dl = events.GenDressedLepton
        apdg = abs(dl.pdgId)
        return dl[(apdg == 11) | (apdg == 13)]
    from hepvld.physics.partons import decay_chain

    _need(events, ("GenPart",))
    lep = decay_chain(events).leaves["lep"]  # (B, 4) pt, eta, phi, mass; NaN if invalid
    gp = events.GenPart
    cand = gp[(abs(gp.pdgId) == 11) | (abs(gp.pdgId) == 13)]
    ok = np.isfinite(lep).all(axis=1)
    one = ak.zip(
        {k: np.nan_to_num(lep[:, i]) for i, k in enumerate(("pt", "eta", "phi", "mass"))},
        with_name="Momentum4D",
    )
    dr = cand.deltaR(one)
    nearest = ak.firsts(cand.pdgId[ak.argmin(dr, axis=1, keepdims=True)], axis=1)
    pdg = np.asarray(ak.to_numpy(ak.fill_none(nearest, 11)), dtype=np.int32)
    log.info(
        "no GenDressedLepton: the hard-process charged lepton of GenPart stands in (undressed)"
    )
    counts = ok.astype(np.int64)
    fields = {
        k: ak.unflatten(lep[ok, i], counts) for i, k in enumerate(("pt", "eta", "phi", "mass"))
    }
    fields["pdgId"] = ak.unflatten(pdg[ok], counts)
    return ak.zip(fields, with_name="Momentum4D")


def truth_objects(events: Any, cuts: SelectionCuts = PAPER_CUTS) -> ak.Array:
    """Particle-level objects passing the object cuts, ordered by decreasing pT.

    Parameters
    ----------
    events
        ``B`` events as from :func:`hepvld.io.open_events` with ``GenJet`` (and
        ``GenDressedLepton`` or ``GenPart``).
    cuts
        Object thresholds: jets ``jet_pt_min`` / ``jet_eta_max``, leptons
        ``lepton_pt_min`` / ``lepton_eta_max`` (the event-level counts are not applied).

    Returns
    -------
    ak.Array
        ``(B, var)`` ``Momentum4D`` records ``pt, eta, phi, mass`` (float64) and ``type``
        (int8 index into :data:`OBJECT_TYPES`), jets and leptons together in decreasing pT.
    """
    _need(events, ("GenJet",))
    gj = events.GenJet
    gj = gj[(gj.pt > cuts.jet_pt_min) & (abs(gj.eta) < cuts.jet_eta_max)]
    jtype = ak.where(_jet_flavour(events, gj), _BJET, _LIGHT)
    lep = _leptons(events)
    lep = lep[(lep.pt > cuts.lepton_pt_min) & (abs(lep.eta) < cuts.lepton_eta_max)]
    ltype = ak.where(abs(lep.pdgId) == 11, _ELECTRON, _MUON)

    def rec(c: ak.Array, t: ak.Array) -> ak.Array:
        return ak.zip(
            {
                **{k: ak.values_astype(c[k], np.float64) for k in ("pt", "eta", "phi", "mass")},
                "type": ak.values_astype(t, np.int8),
            }
        )

    both = ak.concatenate([rec(gj, jtype), rec(lep, ltype)], axis=1)
    both = both[ak.argsort(both.pt, axis=1, ascending=False, stable=True)]
    return ak.with_name(both, "Momentum4D")


def event_truth(events: Any) -> dict[str, np.ndarray]:
    """Event-level truth: ``{"met", "met_phi": (B,), "nu": (B, 4) (px, py, pz, E)}``
    float64; the neutrino is NaN where the event has no semi-leptonic (e/μ) chain."""
    from hepvld.physics.kinematics import p4_ptetaphim
    from hepvld.physics.partons import decay_chain

    _need(events, ("GenPart",))
    nu = decay_chain(events).leaves["nu"]
    p4 = p4_ptetaphim(*nu.T)
    nu4 = np.stack([p4.px, p4.py, p4.pz, p4.E], axis=-1)
    if "GenMET" in ak.fields(events):
        met = np.asarray(ak.to_numpy(events.GenMET.pt), dtype=np.float64)
        phi = np.asarray(ak.to_numpy(events.GenMET.phi), dtype=np.float64)
    else:
        log.warning("no GenMET: the particle-level MET is the true neutrino's pT and phi")
        met, phi = np.asarray(p4.pt, np.float64), np.asarray(p4.phi, np.float64)
    return {"met": met, "met_phi": phi, "nu": nu4}


@dataclass(frozen=True)
class TruthSelection:
    """The particle-level event selection of ``B`` events (the detector level's cuts).

    Attributes
    ----------
    names
        Cut names, in order.
    masks
        ``(n_cuts, B)`` bool: events passing every cut up to and including each one.
    """

    names: tuple[str, ...]
    masks: np.ndarray

    @property
    def passed(self) -> np.ndarray:
        """``(B,)`` bool, events passing every cut."""
        return self.masks[-1] if len(self.names) else np.ones(self.masks.shape[1], bool)

    def cutflow(
        self, weights: np.ndarray | None = None, within: np.ndarray | None = None, prefix: str = ""
    ) -> Cutflow:
        """Sequential :class:`Cutflow` of these cuts among the events ``within (B,)``
        (all by default), names prefixed by ``prefix``."""
        B = self.masks.shape[1]
        w = np.ones(B) if weights is None else np.asarray(weights, np.float64)
        base = np.ones(B, bool) if within is None else np.asarray(within, bool)
        cf = Cutflow()
        for name, m in zip(self.names, self.masks):
            sel = m & base
            cf.add(prefix + name, int(sel.sum()), float(w[sel].sum()))
        return cf


def truth_selection(
    events: Any, objects: ak.Array | None = None, cuts: SelectionCuts = PAPER_CUTS
) -> TruthSelection:
    """The detector selection's cuts on the particle-level objects.

    Cuts, sequential: a semi-leptonic (e/μ) tt̄ chain in ``GenPart`` (the neutrino),
    exactly one e/μ with pT > 25 GeV, |η| < 2.5; ≥ 4 jets with pT > 25 GeV, |η| < 2.5;
    ≥ 2 of them b-jets (thresholds from ``cuts``). ``objects``: :func:`truth_objects` of
    ``events`` with the same ``cuts`` (computed when not given).
    """
    from hepvld.physics.partons import decay_chain

    if objects is None:
        objects = truth_objects(events, cuts)
    t = objects["type"]
    n_lep = np.asarray(ak.to_numpy(ak.sum(t >= _ELECTRON, axis=1)))
    n_jet = np.asarray(ak.to_numpy(ak.sum(t <= _LIGHT, axis=1)))
    n_b = np.asarray(ak.to_numpy(ak.sum(t == _BJET, axis=1)))
    valid = np.asarray(decay_chain(events).valid, bool)
    steps = [
        ("semi-leptonic (e/mu) ttbar truth", valid),
        (
            f"exactly 1 dressed e/mu (pT>{cuts.lepton_pt_min:g}, |eta|<{cuts.lepton_eta_max:g})",
            n_lep == 1,
        ),
        (
            f">= {cuts.min_jets} jets (pT>{cuts.jet_pt_min:g}, |eta|<{cuts.jet_eta_max:g})",
            n_jet >= cuts.min_jets,
        ),
        (f">= {cuts.min_btags} b-jets", n_b >= cuts.min_btags),
    ]
    masks = np.logical_and.accumulate(np.stack([m for _, m in steps]), axis=0)
    return TruthSelection(tuple(n for n, _ in steps), masks.reshape(len(steps), len(events)))
