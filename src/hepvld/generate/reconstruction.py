"""Detector level: apply the parametric CMS-like response to a batch of events.

The response functions live in :mod:`hepvld.generate.detector`; this module decides
which particle sees which response, in the order of the Delphes CMS card:

1. charged particles within the tracker get a track with the tracking efficiency;
2. tracked electrons and muons get their momentum smeared, then the identification
   efficiency and the isolation (ΔR < 0.5 sum of visible particles with pT > 0.5 GeV,
   divided by the lepton pT);
3. every other visible particle within |η| < 5 (and non-isolated leptons) is clustered
   with anti-kT R = 0.5; each jet's energy is smeared with the resolution of its
   constituents (tracks with the track resolution, e/γ with the ECal, hadrons with the
   HCal formula), then the jet energy scale is applied;
4. b-tagging by the jet's truth hadron flavour;
5. MET is minus the vector sum of all smeared jets (any pT) and isolated leptons.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from hepvld.generate import detector, kinematics
from hepvld.generate.jets import cluster, nearest
from hepvld.generate.record import HardProcess, ParticleRecord
from hepvld.generate.truth import ParticleLevel, hadron_flavour

__all__ = ["GENJET_MATCH_CONE", "PARTON_MATCH_CONE", "DetectorLevel", "reconstruct"]

#: A jet's ``partonFlavour`` is the pdgId of the nearest hard-process quark within this ΔR.
PARTON_MATCH_CONE = 0.4
#: A jet's ``genJetIdx`` is the nearest GenJet within this ΔR.
GENJET_MATCH_CONE = 0.4

_ELECTRON_MASS = 0.000511
_MUON_MASS = 0.10566
#: GenPart slots that may hold quarks: b, b̄ and the four W daughters.
_QUARK_SLOTS = [3, 5, 6, 7, 8, 9]


@dataclass(frozen=True, eq=False)
class DetectorLevel:
    """Reconstructed objects of a batch of B events (awkward arrays, shape (B, var)).

    Attributes
    ----------
    electrons : awkward.Array
        pt, eta, phi, mass, charge, pdgId, pfRelIso03_all.
    muons : awkward.Array
        pt, eta, phi, mass, charge, pdgId, pfRelIso04_all.
    jets : awkward.Array
        pt, eta, phi, mass, hadronFlavour, partonFlavour, btagged, genJetIdx.
    met_pt, met_phi : numpy.ndarray of float64, shape (B,)
    """

    electrons: ak.Array
    muons: ak.Array
    jets: ak.Array
    met_pt: NDArray[np.float64]
    met_phi: NDArray[np.float64]


def _isolation(
    rec: ParticleRecord, leptons: NDArray[np.int64], lepton_pt: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Relative isolation of the leptons ``leptons`` (flat particle indices)."""
    inputs = (
        rec.is_final
        & ~rec.is_neutrino
        & (rec.pt > detector.ISOLATION_PT_MIN)
        & (np.abs(rec.eta) <= detector.CALORIMETER_ETA_MAX)
    )
    lepton_mask = np.zeros(len(rec.pid), dtype=bool)
    lepton_mask[leptons] = True
    a = ak.zip(
        {
            "eta": rec.jagged(rec.eta, lepton_mask),
            "phi": rec.jagged(rec.phi, lepton_mask),
            "i": rec.jagged(np.arange(len(rec.pid)), lepton_mask),
        }
    )
    b = ak.zip(
        {
            "eta": rec.jagged(rec.eta, inputs),
            "phi": rec.jagged(rec.phi, inputs),
            "pt": rec.jagged(rec.pt, inputs),
            "i": rec.jagged(np.arange(len(rec.pid)), inputs),
        }
    )
    pairs = ak.cartesian({"a": a, "b": b}, axis=1, nested=True)
    dr = kinematics.delta_r(
        pairs["a", "eta"], pairs["a", "phi"], pairs["b", "eta"], pairs["b", "phi"]
    )
    inside = (dr < detector.ISOLATION_DELTA_R) & (pairs["a", "i"] != pairs["b", "i"])
    summed = ak.to_numpy(
        ak.flatten(ak.sum(ak.where(inside, pairs["b", "pt"], 0.0), axis=2), axis=1)
    )
    # ``leptons`` is sorted (np.nonzero order), like the flattened lepton lists above.
    return summed / lepton_pt


def _leptons(
    rec: ParticleRecord, tracked: NDArray[np.bool_], rng: np.random.Generator
) -> tuple[ak.Array, ak.Array, NDArray[np.bool_], NDArray[np.float64]]:
    """Reconstructed electrons and muons; also the isolated ones and the smeared pT."""
    abs_pid = np.abs(rec.pid)
    (candidates,) = np.nonzero(tracked & np.isin(abs_pid, (11, 13)))
    pid = abs_pid[candidates]
    true_pt, eta = rec.pt[candidates], rec.eta[candidates]
    sigma = detector.track_resolution(pid, true_pt, eta) * true_pt
    smeared_pt = detector.lognormal_smear(true_pt, sigma, rng)
    efficiency = np.where(
        pid == 11,
        detector.electron_efficiency(smeared_pt, eta),
        detector.muon_efficiency(smeared_pt, eta),
    )
    found = detector.accept(efficiency, rng)
    leptons, pid, smeared_pt, eta = candidates[found], pid[found], smeared_pt[found], eta[found]
    iso = _isolation(rec, leptons, smeared_pt)
    iso_max = np.where(pid == 11, detector.ELECTRON_ISOLATION_MAX, detector.MUON_ISOLATION_MAX)
    isolated = np.zeros(len(rec.pid), dtype=bool)
    isolated[leptons[iso < iso_max]] = True
    pt_all = np.zeros(len(rec.pid))
    pt_all[leptons] = smeared_pt

    def collection(abs_id: int, iso_name: str, mass: float) -> ak.Array:
        mask = np.zeros(len(rec.pid), dtype=bool)
        mask[leptons[pid == abs_id]] = True
        fields = {
            "pt": rec.jagged(pt_all, mask),
            "eta": rec.jagged(rec.eta, mask),
            "phi": rec.jagged(rec.phi, mask),
            "mass": rec.jagged(np.full(len(rec.pid), mass), mask),
            "charge": rec.jagged(np.rint(rec.charge).astype(np.int32), mask),
            "pdgId": rec.jagged(rec.pid, mask),
            iso_name: rec.jagged(_scatter(len(rec.pid), leptons, iso), mask),
        }
        pt_order = ak.argsort(fields["pt"], axis=1, ascending=False)
        return ak.zip(fields)[pt_order]

    electrons = collection(11, "pfRelIso03_all", _ELECTRON_MASS)
    muons = collection(13, "pfRelIso04_all", _MUON_MASS)
    return electrons, muons, isolated, pt_all


def _scatter(
    size: int, index: NDArray[np.int64], values: NDArray[np.float64]
) -> NDArray[np.float64]:
    out = np.zeros(size)
    out[index] = values
    return out


def reconstruct(
    rec: ParticleRecord,
    truth: ParticleLevel,
    hard: HardProcess,
    rng: np.random.Generator,
    *,
    max_jets: int = 20,
) -> DetectorLevel:
    """Run the parametric detector on a batch.

    Parameters
    ----------
    rec : ParticleRecord
        Event records of B events.
    truth : ParticleLevel
        Particle-level objects (for flavour tags and ``genJetIdx``).
    hard : HardProcess
        Hard-process chains (for ``partonFlavour``).
    rng : numpy.random.Generator
        Source of every random draw of the detector.
    max_jets : int
        Keep the ``max_jets`` highest-pT jets.
    """
    abs_pid = np.abs(rec.pid)
    abs_eta = np.abs(rec.eta)
    visible = rec.is_final & ~rec.is_neutrino & (abs_eta <= detector.CALORIMETER_ETA_MAX)
    is_lepton = np.isin(abs_pid, (11, 13))
    charged_hadron = rec.is_hadron & (rec.charge != 0)
    trackable = visible & (is_lepton | charged_hadron) & (abs_eta <= detector.TRACKER_ETA_MAX)
    tracked = np.zeros(len(rec.pid), dtype=bool)
    (trackable_index,) = np.nonzero(trackable)
    efficiency = detector.tracking_efficiency(
        abs_pid[trackable_index], rec.pt[trackable_index], rec.eta[trackable_index]
    )
    tracked[trackable_index[detector.accept(efficiency, rng)]] = True

    electrons, muons, isolated, lepton_pt = _leptons(rec, tracked, rng)

    # Jet inputs: visible particles except isolated leptons and untracked muons
    # (muons leave no calorimeter energy).
    inputs = visible & ~isolated & ~((abs_pid == 13) & ~tracked)
    (input_index,) = np.nonzero(inputs)
    counts = np.bincount(rec.event_index[inputs], minlength=rec.n_events)
    jets = cluster(
        rec.px[inputs], rec.py[inputs], rec.pz[inputs], rec.e[inputs], counts, constituents=True
    )
    assert jets.constituent_jet is not None
    jet_of = jets.constituent_jet
    energy = rec.e[input_index]
    in_track = tracked[input_index]
    in_ecal = ~in_track & np.isin(abs_pid[input_index], (11, 22))
    in_hcal = ~in_track & ~in_ecal
    n_jets = len(jets.px)
    track_sigma = (
        detector.track_resolution(abs_pid[input_index], rec.pt[input_index], rec.eta[input_index])
        * energy
    )
    variance_track = np.bincount(
        jet_of, weights=np.where(in_track, track_sigma**2, 0.0), minlength=n_jets
    )
    energy_ecal = np.bincount(jet_of, weights=np.where(in_ecal, energy, 0.0), minlength=n_jets)
    energy_hcal = np.bincount(jet_of, weights=np.where(in_hcal, energy, 0.0), minlength=n_jets)
    jet_eta = jets.eta
    sigma = np.sqrt(
        variance_track
        + np.where(energy_ecal > 0, detector.ecal_resolution(energy_ecal, jet_eta) ** 2, 0.0)
        + np.where(energy_hcal > 0, detector.hcal_resolution(energy_hcal, jet_eta) ** 2, 0.0)
    )
    smeared_e = detector.lognormal_smear(jets.e, sigma, rng)
    scale = np.divide(smeared_e, jets.e, out=np.ones_like(smeared_e), where=jets.e > 0)
    px, py, pz, e = jets.px * scale, jets.py * scale, jets.pz * scale, smeared_e

    # MET from everything the detector measured (before the jet energy scale).
    jet_event = np.repeat(np.arange(rec.n_events), jets.counts)
    (iso_index,) = np.nonzero(isolated)
    met_x = -np.bincount(jet_event, weights=px, minlength=rec.n_events) - np.bincount(
        rec.event_index[iso_index],
        weights=lepton_pt[iso_index] * np.cos(rec.phi[iso_index]),
        minlength=rec.n_events,
    )
    met_y = -np.bincount(jet_event, weights=py, minlength=rec.n_events) - np.bincount(
        rec.event_index[iso_index],
        weights=lepton_pt[iso_index] * np.sin(rec.phi[iso_index]),
        minlength=rec.n_events,
    )

    # Jet energy scale, pT threshold, ordering, truncation.
    jes = detector.jet_energy_scale(kinematics.pt(px, py), jet_eta)
    px, py, pz, e = px * jes, py * jes, pz * jes, e * jes
    jet_pt = kinematics.pt(px, py)
    table = ak.unflatten(
        ak.zip(
            {
                "pt": jet_pt,
                "eta": jet_eta,
                "phi": kinematics.phi(px, py),
                "mass": kinematics.mass(px, py, pz, e),
            }
        ),
        jets.counts,
    )
    table = table[table["pt"] > detector.JET_PT_MIN]
    table = table[ak.argsort(table["pt"], axis=1, ascending=False)][:, :max_jets]

    flavour = hadron_flavour(table["eta"], table["phi"], rec, truth.tags)
    quarks = ak.zip(
        {
            "eta": kinematics.eta(hard.px, hard.py, hard.pz)[:, _QUARK_SLOTS],
            "phi": kinematics.phi(hard.px, hard.py)[:, _QUARK_SLOTS],
            "pdgId": hard.pdg_id[:, _QUARK_SLOTS],
        }
    )
    quarks = ak.from_regular(quarks, axis=1)
    quarks = quarks[np.abs(quarks["pdgId"]) <= 5]
    parton = nearest(table["eta"], table["phi"], quarks["eta"], quarks["phi"], PARTON_MATCH_CONE)
    parton_flavour = _take(quarks["pdgId"], parton)
    gen_eta = ak.unflatten(truth.jets.eta, truth.jets.counts)
    gen_phi = ak.unflatten(truth.jets.phi, truth.jets.counts)
    gen_index = nearest(table["eta"], table["phi"], gen_eta, gen_phi, GENJET_MATCH_CONE)

    flat_flavour = ak.to_numpy(ak.flatten(flavour, axis=1))
    flat_pt = ak.to_numpy(ak.flatten(table["pt"], axis=1))
    btagged = detector.accept(detector.btag_efficiency(flat_flavour, flat_pt), rng)
    jets_out = ak.zip(
        {
            "pt": table["pt"],
            "eta": table["eta"],
            "phi": table["phi"],
            "mass": table["mass"],
            "hadronFlavour": flavour,
            "partonFlavour": ak.values_astype(parton_flavour, np.int32),
            "btagged": ak.unflatten(btagged, ak.num(table, axis=1)),
            "genJetIdx": gen_index,
        }
    )
    return DetectorLevel(
        electrons=electrons,
        muons=muons,
        jets=jets_out,
        met_pt=np.hypot(met_x, met_y),
        met_phi=np.arctan2(met_y, met_x),
    )


def _take(values: ak.Array, index: ak.Array) -> ak.Array:
    """``values[b][index[b][j]]`` with -1 giving 0 (jagged gather)."""
    safe = ak.where(index >= 0, index, 0)
    padded = ak.fill_none(ak.pad_none(values, 1, axis=1), 0)
    return ak.where(index >= 0, padded[safe], 0)
