"""Particle-level (VL-VLD) truth tensors: GenJets, dressed lepton and neutrino.

Objects per event: particle-level jets (``GenJet`` with the detector-level cuts, pT > 25,
|η| < 2.5, at most ``max_jets``), the leading dressed e/μ (``GenDressedLepton`` with
pT > 25, |η| < 2.5) and the hard-process neutrino (from ``GenPart``; its slot is masked
when the event has no semi-leptonic chain). All objects are ordered together by
decreasing pT (the VL-VLD denoising loss needs a canonical order); ``N = max_jets + 2``.

Features ``F = 10``: ``(px, py, pz, log(E+1), log(M+1))`` followed by the one-hot type
``(is_bjet, is_light_jet, is_electron, is_muon, is_neutrino)``; b-jets are GenJets with
``hadronFlavour == 5`` (all light when the flavour is not stored). Globals ``(GenMET_pt,
GenMET_phi)``. Padded slots are zeros and masked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hepvld.features.detector import pad
from hepvld.features.selection import PAPER_CUTS, SelectionCuts
from hepvld.io.errors import MissingBranchError
from hepvld.physics.kinematics import p4_ptetaphim
from hepvld.physics.partons import decay_chain

__all__ = ["PARTICLE_FEATURES", "ParticleLevelTensors", "particle_level_tensors"]

log = logging.getLogger(__name__)

#: Per-object features ``F = 10``.
PARTICLE_FEATURES: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "log(E+1)",
    "log(M+1)",
    "is_bjet",
    "is_light_jet",
    "is_electron",
    "is_muon",
    "is_neutrino",
)


@dataclass
class ParticleLevelTensors:
    """Padded particle-level truth.

    Attributes
    ----------
    objects
        ``(B, N, 10)`` float32, :data:`PARTICLE_FEATURES`, ordered by decreasing pT.
    mask
        ``(B, N)`` bool.
    globals
        ``(B, 2)`` float32 ``(GenMET_pt, GenMET_phi)`` (zeros when absent).
    multiplicity
        ``(B,)`` int64 number of real objects (``mask.sum(1)``).
    """

    objects: np.ndarray
    mask: np.ndarray
    globals: np.ndarray
    multiplicity: np.ndarray

    def __len__(self) -> int:
        return len(self.objects)


def particle_level_tensors(
    events: Any, max_jets: int = 20, *, cuts: SelectionCuts = PAPER_CUTS
) -> ParticleLevelTensors:
    """Build particle-level tensors for ``B`` events (see module docstring)."""
    for name in ("GenJet", "GenDressedLepton", "GenPart"):
        if name not in ak.fields(events):
            raise MissingBranchError(f"particle-level tensors need the {name} collection", [name])
    B = len(events)
    gj = events.GenJet
    gj = gj[(gj.pt > cuts.jet_pt_min) & (abs(gj.eta) < cuts.jet_eta_max)]
    gj = gj[ak.argsort(gj.pt, axis=1, ascending=False)]
    n_j = ak.to_numpy(ak.num(gj, axis=1))
    if (n_j > max_jets).any():
        log.info(
            "%d of %d events have more than %d particle-level jets; kept the leading %d",
            int((n_j > max_jets).sum()),
            B,
            max_jets,
            max_jets,
        )
    jk = {k: pad(gj[k], max_jets).astype(np.float64) for k in ("pt", "eta", "phi", "mass")}
    jmask = np.arange(max_jets)[None, :] < n_j[:, None]
    flav = (
        pad(gj.hadronFlavour, max_jets)
        if "hadronFlavour" in ak.fields(gj)
        else np.zeros((B, max_jets))
    )
    jtype = np.stack([flav == 5, flav != 5, *(np.zeros((B, max_jets), bool),) * 3], axis=-1)

    dl = events.GenDressedLepton
    apdg = abs(dl.pdgId)
    dl = dl[
        ((apdg == 11) | (apdg == 13))
        & (dl.pt > cuts.lepton_pt_min)
        & (abs(dl.eta) < cuts.lepton_eta_max)
    ]
    dl = dl[ak.argsort(dl.pt, axis=1, ascending=False)]
    lk = {k: pad(dl[k], 1).astype(np.float64) for k in ("pt", "eta", "phi", "mass")}
    lpdg = pad(abs(dl.pdgId), 1)
    lmask = ak.to_numpy(ak.num(dl, axis=1))[:, None] > 0
    ltype = np.stack(
        [*(np.zeros((B, 1), bool),) * 2, lpdg == 11, lpdg == 13, np.zeros((B, 1), bool)], axis=-1
    )

    nu = decay_chain(events).leaves["nu"]  # (B, 4) pt, eta, phi, mass; NaN if invalid
    nmask = np.isfinite(nu).all(axis=1)[:, None]
    nk = {k: np.nan_to_num(nu[:, i])[:, None] for i, k in enumerate(("pt", "eta", "phi", "mass"))}
    ntype = np.zeros((B, 1, 5), bool)
    ntype[..., 4] = True

    kin = {k: np.concatenate([lk[k], nk[k], jk[k]], axis=1) for k in jk}
    mask = np.concatenate([lmask, nmask, jmask], axis=1)
    types = np.concatenate([ltype, ntype, jtype], axis=-2).astype(np.float64)
    p4 = p4_ptetaphim(kin["pt"], kin["eta"], kin["phi"], kin["mass"])
    feats = np.stack(
        [p4.px, p4.py, p4.pz, np.log(p4.E + 1), np.log(np.maximum(p4.mass, 0) + 1)], axis=-1
    )
    objects = np.concatenate([feats, types], axis=-1)
    order = np.argsort(np.where(mask, -kin["pt"], np.inf), axis=1, kind="stable")
    objects = np.take_along_axis(objects, order[..., None], axis=1).astype(np.float32)
    mask = np.take_along_axis(mask, order, axis=1)
    objects[~mask] = 0.0
    if "GenMET" in ak.fields(events):
        glob = np.stack([ak.to_numpy(events.GenMET.pt), ak.to_numpy(events.GenMET.phi)], axis=-1)
    else:
        glob = np.zeros((B, 2))
    return ParticleLevelTensors(
        objects=objects,
        mask=mask,
        globals=np.asarray(glob, np.float32).reshape(B, 2),
        multiplicity=mask.sum(axis=1).astype(np.int64),
    )
