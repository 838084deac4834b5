"""Particle level: prompt and dressed leptons, GenJets, GenMET, heavy-flavour tags.

All functions work on a whole batch at once (a :class:`ParticleRecord`): no Python
loop over particles or events.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from hepvld.generate import kinematics
from hepvld.generate.jets import Jets, any_within, cluster, nearest
from hepvld.generate.record import ParticleRecord, has_quark

__all__ = [
    "DRESSING_CONE",
    "FLAVOUR_CONE",
    "ParticleLevel",
    "hadron_flavour",
    "heavy_flavour_tags",
    "particle_level",
    "prompt_leptons",
]

#: Photons within this ΔR of a prompt lepton are added to it.
DRESSING_CONE = 0.1
#: A jet has hadron flavour b (c) if a b (c) hadron lies within this ΔR of its axis.
FLAVOUR_CONE = 0.5

_MAX_COPIES = 200  # longest chain of same-id copies followed up to the W


def prompt_leptons(rec: ParticleRecord) -> NDArray[np.bool_]:
    """Final-state e/μ descending directly from a W (through copies of themselves).

    Returns
    -------
    numpy.ndarray of bool, shape (P,)
    """
    candidate = rec.is_final & np.isin(np.abs(rec.pid), (11, 13))
    start = np.nonzero(candidate)[0]
    current = start.copy()
    for _ in range(_MAX_COPIES):
        mother = rec.mother1[current]
        step = (mother >= 0) & (rec.pid[np.maximum(mother, 0)] == rec.pid[start])
        if not step.any():
            break
        current = np.where(step, mother, current)
    mother = rec.mother1[current]
    from_w = (mother >= 0) & (np.abs(rec.pid[np.maximum(mother, 0)]) == 24)
    prompt = np.zeros(len(rec.pid), dtype=bool)
    prompt[start[from_w]] = True
    return prompt


def heavy_flavour_tags(rec: ParticleRecord) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Particles that define hadron flavour: the last b (c) hadrons of their decay chains.

    A b hadron counts if none of its daughters is a b hadron (so B* -> B γ and B
    mixing count once). Final-state b (c) quarks count as well, which only happens with
    hadronisation switched off. c hadrons containing a b quark count as b.

    Returns
    -------
    b_tags, c_tags : numpy.ndarray of bool, shape (P,)
    """
    pid = rec.pid
    final_quark = rec.is_final & ~rec.is_hadron
    b_hadron = rec.is_hadron & has_quark(pid, 5)
    c_hadron = rec.is_hadron & has_quark(pid, 4) & ~b_hadron
    b_tags = (b_hadron & ~rec.any_in_daughters(b_hadron)) | (final_quark & (np.abs(pid) == 5))
    c_tags = (c_hadron & ~rec.any_in_daughters(c_hadron)) | (final_quark & (np.abs(pid) == 4))
    return b_tags, c_tags


def hadron_flavour(
    jet_eta: ak.Array,
    jet_phi: ak.Array,
    rec: ParticleRecord,
    tags: tuple[NDArray[np.bool_], NDArray[np.bool_]],
    cone: float = FLAVOUR_CONE,
) -> ak.Array:
    """Hadron flavour (5, 4 or 0) of jagged jets by ΔR matching to :func:`heavy_flavour_tags`."""
    b_tags, c_tags = tags
    has_b = any_within(
        jet_eta, jet_phi, rec.jagged(rec.eta, b_tags), rec.jagged(rec.phi, b_tags), cone
    )
    has_c = any_within(
        jet_eta, jet_phi, rec.jagged(rec.eta, c_tags), rec.jagged(rec.phi, c_tags), cone
    )
    return ak.values_astype(ak.where(has_b, 5, ak.where(has_c, 4, 0)), np.int32)


@dataclass(frozen=True, eq=False)
class ParticleLevel:
    """Particle-level objects of a batch of B events.

    Attributes
    ----------
    prompt : numpy.ndarray of bool, shape (P,)
        Prompt (bare) e/μ.
    dressing : numpy.ndarray of bool, shape (P,)
        Photons added to a prompt lepton.
    dressed_leptons : awkward.Array, shape (B, var)
        ``GenDressedLepton``: pt, eta, phi, mass, pdgId.
    jets : Jets
        ``GenJet`` (pT > ``jet_pt_min``), pT-ordered.
    jet_flavour : awkward.Array of int32, shape (B, var)
        Hadron flavour of the GenJets.
    met_pt, met_phi : numpy.ndarray of float64, shape (B,)
        ``GenMET``: vector sum of all final-state neutrinos.
    tags : tuple of numpy.ndarray of bool, shape (P,)
        b and c flavour tags (:func:`heavy_flavour_tags`).
    """

    prompt: NDArray[np.bool_]
    dressing: NDArray[np.bool_]
    dressed_leptons: ak.Array
    jets: Jets
    jet_flavour: ak.Array
    met_pt: NDArray[np.float64]
    met_phi: NDArray[np.float64]
    tags: tuple[NDArray[np.bool_], NDArray[np.bool_]]


def _dress(rec: ParticleRecord, prompt: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], ak.Array]:
    """Add non-hadron-decay photons within :data:`DRESSING_CONE` to the nearest prompt lepton."""
    photon = (
        rec.is_final
        & (rec.pid == 22)
        & ((rec.mother1 < 0) | ~rec.is_hadron[np.maximum(rec.mother1, 0)])
    )
    (lepton_index,) = np.nonzero(prompt)
    (photon_index,) = np.nonzero(photon)
    match = nearest(
        rec.jagged(rec.eta, photon),
        rec.jagged(rec.phi, photon),
        rec.jagged(rec.eta, prompt),
        rec.jagged(rec.phi, prompt),
        DRESSING_CONE,
    )
    local = ak.to_numpy(ak.flatten(match, axis=1)).astype(np.int64)
    lepton_offsets = np.concatenate(
        [[0], np.cumsum(np.bincount(rec.event_index[prompt], minlength=rec.n_events))]
    )
    used = local >= 0
    target = lepton_offsets[rec.event_index[photon_index[used]]] + local[used]
    dressing = np.zeros(len(rec.pid), dtype=bool)
    dressing[photon_index[used]] = True

    def summed(values: NDArray[np.float64]) -> NDArray[np.float64]:
        total = values[lepton_index].copy()
        np.add.at(total, target, values[photon_index[used]])
        return total

    px, py, pz, e = summed(rec.px), summed(rec.py), summed(rec.pz), summed(rec.e)
    counts = np.diff(lepton_offsets)
    dressed = ak.unflatten(
        ak.zip(
            {
                "pt": kinematics.pt(px, py),
                "eta": kinematics.eta(px, py, pz),
                "phi": kinematics.phi(px, py),
                "mass": kinematics.mass(px, py, pz, e),
                "pdgId": rec.pid[lepton_index],
            }
        ),
        counts,
    )
    return dressing, dressed


def particle_level(
    rec: ParticleRecord, *, radius: float = 0.5, jet_pt_min: float = 20.0
) -> ParticleLevel:
    """Build the particle-level objects of a batch.

    GenJets are anti-kT jets of all final-state particles except neutrinos, the prompt
    leptons and their dressing photons.
    """
    prompt = prompt_leptons(rec)
    dressing, dressed = _dress(rec, prompt)
    inputs = rec.is_final & ~rec.is_neutrino & ~prompt & ~dressing
    counts = np.bincount(rec.event_index[inputs], minlength=rec.n_events)
    jets = cluster(
        rec.px[inputs],
        rec.py[inputs],
        rec.pz[inputs],
        rec.e[inputs],
        counts,
        radius=radius,
        min_pt=jet_pt_min,
    )
    tags = heavy_flavour_tags(rec)
    jet_eta = ak.unflatten(jets.eta, jets.counts)
    jet_phi = ak.unflatten(jets.phi, jets.counts)
    neutrino = rec.is_final & rec.is_neutrino
    met_x = np.bincount(rec.event_index[neutrino], weights=rec.px[neutrino], minlength=rec.n_events)
    met_y = np.bincount(rec.event_index[neutrino], weights=rec.py[neutrino], minlength=rec.n_events)
    return ParticleLevel(
        prompt=prompt,
        dressing=dressing,
        dressed_leptons=dressed,
        jets=jets,
        jet_flavour=hadron_flavour(jet_eta, jet_phi, rec, tags),
        met_pt=np.hypot(met_x, met_y),
        met_phi=np.arctan2(met_y, met_x),
        tags=tags,
    )
