"""Parametric CMS-like detector response: the numbers of the public Delphes CMS card.

Every formula below is transcribed from ``cards/delphes_card_CMS.tcl`` of
`delphes/delphes <https://github.com/delphes/delphes>`_ (commit ``0593ac3``); the module
and parameter each number comes from is named in the docstring, and ``docs/detector.md``
lists them all with the known differences from a full Delphes simulation.

Everything here is a pure function of numpy arrays. Random draws take an explicit
:class:`numpy.random.Generator`; nothing is seeded globally.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CALORIMETER_ETA_MAX",
    "CARD",
    "ELECTRON_ISOLATION_MAX",
    "ISOLATION_DELTA_R",
    "ISOLATION_PT_MIN",
    "JET_PT_MIN",
    "JET_RADIUS",
    "LEPTON_PT_MIN",
    "MUON_ISOLATION_MAX",
    "TRACKER_ETA_MAX",
    "accept",
    "btag_efficiency",
    "ecal_resolution",
    "electron_efficiency",
    "hcal_resolution",
    "jet_energy_scale",
    "lognormal_smear",
    "muon_efficiency",
    "track_resolution",
    "tracking_efficiency",
]

#: Source of every number in this module.
CARD = "delphes/delphes cards/delphes_card_CMS.tcl (commit 0593ac3)"

#: Tracker acceptance |η| (tracking-efficiency formulas vanish beyond it).
TRACKER_ETA_MAX = 2.5
#: Calorimeter acceptance |η| (ECal/HCal resolution formulas end at 5.0).
CALORIMETER_ETA_MAX = 5.0
#: Isolation cone (ElectronIsolation / MuonIsolation ``DeltaRMax``).
ISOLATION_DELTA_R = 0.5
#: Minimum pT of a particle entering the isolation sum (``PTMin``) [GeV].
ISOLATION_PT_MIN = 0.5
#: Maximum relative isolation of an electron (ElectronIsolation ``PTRatioMax``).
ELECTRON_ISOLATION_MAX = 0.12
#: Maximum relative isolation of a muon (MuonIsolation ``PTRatioMax``).
MUON_ISOLATION_MAX = 0.25
#: anti-kT distance parameter (FastJetFinder ``ParameterR``).
JET_RADIUS = 0.5
#: Jet pT threshold of the stored jets (FastJetFinder ``JetPTMin``) [GeV].
JET_PT_MIN = 20.0
#: Lepton efficiencies vanish below this pT [GeV] (ElectronEfficiency / MuonEfficiency).
LEPTON_PT_MIN = 10.0

FloatArray = NDArray[np.float64]


def _barrel_endcap(eta: FloatArray) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    aeta = np.abs(eta)
    return aeta <= 1.5, (aeta > 1.5) & (aeta <= TRACKER_ETA_MAX)


def tracking_efficiency(abs_pid: ArrayLike, pt: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Probability that a charged particle leaves a reconstructed track.

    Modules ``ChargedHadronTrackingEfficiency``, ``ElectronTrackingEfficiency`` and
    ``MuonTrackingEfficiency``; the formula is picked by ``abs_pid`` (11 electron,
    13 muon, anything else charged hadron).

    Parameters
    ----------
    abs_pid : array_like of int, shape (P,)
        Absolute PDG id.
    pt, eta : array_like of float, shape (P,)
        True transverse momentum [GeV] and pseudorapidity.

    Returns
    -------
    numpy.ndarray of float, shape (P,)
        Efficiency in [0, 1]; 0 outside |η| <= 2.5 and for pT <= 0.1 GeV.
    """
    abs_pid = np.asarray(abs_pid)
    pt = np.asarray(pt, dtype=np.float64)
    barrel, endcap = _barrel_endcap(np.asarray(eta, dtype=np.float64))
    soft = (pt > 0.1) & (pt <= 1.0)
    hard = pt > 1.0
    very_hard = pt > 1.0e2
    hadron = np.select(
        [barrel & soft, barrel & hard, endcap & soft, endcap & hard],
        [0.70, 0.95, 0.60, 0.85],
        0.0,
    )
    electron = np.select(
        [
            barrel & soft,
            barrel & hard & ~very_hard,
            barrel & very_hard,
            endcap & soft,
            endcap & hard & ~very_hard,
            endcap & very_hard,
        ],
        [0.73, 0.95, 0.99, 0.50, 0.83, 0.90],
        0.0,
    )
    muon = np.select(
        [barrel & soft, barrel & hard, endcap & soft, endcap & hard],
        [0.75, 0.99, 0.70, 0.98],
        0.0,
    )
    return np.where(abs_pid == 11, electron, np.where(abs_pid == 13, muon, hadron))


def track_resolution(abs_pid: ArrayLike, pt: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Relative transverse-momentum resolution σ(pT)/pT of a track.

    Modules ``ChargedHadronMomentumSmearing``, ``ElectronMomentumSmearing`` and
    ``MuonMomentumSmearing`` (all based on arXiv:1405.6569):
    ``sqrt(a² + pT² b²)`` with (a, b) per |η| region |η| <= 0.5, 0.5-1.5, 1.5-2.5.

    Parameters
    ----------
    abs_pid : array_like of int, shape (P,)
        Absolute PDG id (11 electron, 13 muon, else charged hadron).
    pt, eta : array_like of float, shape (P,)
        True transverse momentum [GeV] and pseudorapidity.

    Returns
    -------
    numpy.ndarray of float, shape (P,)
        σ(pT)/pT; 0 outside the tracker or for pT <= 0.1 GeV.
    """
    abs_pid = np.asarray(abs_pid)
    pt = np.asarray(pt, dtype=np.float64)
    aeta = np.abs(np.asarray(eta, dtype=np.float64))
    region = np.select([aeta <= 0.5, aeta <= 1.5, aeta <= TRACKER_ETA_MAX], [0, 1, 2], 3)
    #                      |η|<=0.5         0.5-1.5          1.5-2.5        outside
    a_had = np.array([0.01, 0.015, 0.025, 0.0])
    b_had = np.array([1.5e-4, 2.5e-4, 5.5e-4, 0.0])
    a_ele = np.array([0.03, 0.05, 0.15, 0.0])
    b_ele = np.array([1.3e-3, 1.7e-3, 3.1e-3, 0.0])
    a_muo = np.array([0.01, 0.015, 0.025, 0.0])
    b_muo = np.array([1.0e-4, 1.5e-4, 3.5e-4, 0.0])
    is_e = abs_pid == 11
    is_mu = abs_pid == 13
    a = np.where(is_e, a_ele[region], np.where(is_mu, a_muo[region], a_had[region]))
    b = np.where(is_e, b_ele[region], np.where(is_mu, b_muo[region], b_had[region]))
    return np.where(pt > 0.1, np.sqrt(a**2 + pt**2 * b**2), 0.0)


def electron_efficiency(pt: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Electron identification efficiency (module ``ElectronEfficiency``).

    0.95 for |η| <= 1.5, 0.85 for 1.5 < |η| <= 2.5, 0 for pT <= 10 GeV or |η| > 2.5.
    Applied on top of :func:`tracking_efficiency`, to the smeared pT.
    """
    pt = np.asarray(pt, dtype=np.float64)
    barrel, endcap = _barrel_endcap(np.asarray(eta, dtype=np.float64))
    return np.where(pt > LEPTON_PT_MIN, np.select([barrel, endcap], [0.95, 0.85], 0.0), 0.0)


def muon_efficiency(pt: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Muon identification efficiency (module ``MuonEfficiency``).

    0.95 for |η| <= 2.4 and 10 < pT <= 1000 GeV, ``0.95 exp(0.5 - 5e-4 pT)`` above
    1 TeV, 0 for pT <= 10 GeV or |η| > 2.4. Applied on top of
    :func:`tracking_efficiency`, to the smeared pT.
    """
    pt = np.asarray(pt, dtype=np.float64)
    inside = (np.abs(np.asarray(eta, dtype=np.float64)) <= 2.4) & (pt > LEPTON_PT_MIN)
    value = np.where(pt <= 1.0e3, 0.95, 0.95 * np.exp(0.5 - pt * 5.0e-4))
    return np.where(inside, value, 0.0)


def ecal_resolution(energy: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Absolute ECal energy resolution σ(E) [GeV] (module ``ECal``).

    ``(1 + 0.64 η²) sqrt(0.008² E² + 0.11² E + 0.40²)`` for |η| <= 1.5,
    ``(2.16 + 5.6 (|η| - 2)²) sqrt(...)`` for 1.5 < |η| <= 2.5 and
    ``sqrt(0.107² E² + 2.08² E)`` for 2.5 < |η| <= 5; 0 beyond.
    """
    energy = np.asarray(energy, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    aeta = np.abs(eta)
    central = np.sqrt(energy**2 * 0.008**2 + energy * 0.11**2 + 0.40**2)
    forward = np.sqrt(energy**2 * 0.107**2 + energy * 2.08**2)
    return np.select(
        [aeta <= 1.5, aeta <= TRACKER_ETA_MAX, aeta <= CALORIMETER_ETA_MAX],
        [(1.0 + 0.64 * eta**2) * central, (2.16 + 5.6 * (aeta - 2.0) ** 2) * central, forward],
        0.0,
    )


def hcal_resolution(energy: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Absolute HCal energy resolution σ(E) [GeV] (module ``HCal``).

    ``sqrt(0.050² E² + 1.50² E)`` for |η| <= 3, ``sqrt(0.130² E² + 2.70² E)`` for
    3 < |η| <= 5; 0 beyond.
    """
    energy = np.asarray(energy, dtype=np.float64)
    aeta = np.abs(np.asarray(eta, dtype=np.float64))
    return np.select(
        [aeta <= 3.0, aeta <= CALORIMETER_ETA_MAX],
        [
            np.sqrt(energy**2 * 0.050**2 + energy * 1.50**2),
            np.sqrt(energy**2 * 0.130**2 + energy * 2.70**2),
        ],
        0.0,
    )


def jet_energy_scale(pt: ArrayLike, eta: ArrayLike) -> FloatArray:
    """Jet energy-scale factor (module ``JetEnergyScale``).

    ``sqrt((2.5 - 0.15 |η|)² / pT + 1)``, multiplying the jet four-momentum; ``pT`` is
    the jet pT before the correction [GeV].
    """
    pt = np.asarray(pt, dtype=np.float64)
    aeta = np.abs(np.asarray(eta, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return np.sqrt((2.5 - 0.15 * aeta) ** 2 / np.maximum(pt, 1e-9) + 1.0)


def btag_efficiency(flavour: ArrayLike, pt: ArrayLike) -> FloatArray:
    """b-tagging probability by truth flavour (module ``BTagging``, arXiv:1211.4462).

    - b (``flavour == 5``): ``0.85 tanh(0.0025 pT) · 25 / (1 + 0.063 pT)``
    - c (``flavour == 4``): ``0.25 tanh(0.018 pT) / (1 + 0.0013 pT)``
    - light (anything else): ``0.01 + 0.000038 pT``

    Parameters
    ----------
    flavour : array_like of int, shape (J,)
        Truth flavour of the jet (absolute value is used).
    pt : array_like of float, shape (J,)
        Jet pT after the jet energy scale [GeV].
    """
    flavour = np.abs(np.asarray(flavour))
    pt = np.asarray(pt, dtype=np.float64)
    b = 0.85 * np.tanh(0.0025 * pt) * (25.0 / (1.0 + 0.063 * pt))
    c = 0.25 * np.tanh(0.018 * pt) * (1.0 / (1.0 + 0.0013 * pt))
    light = 0.01 + 0.000038 * pt
    return np.clip(np.where(flavour == 5, b, np.where(flavour == 4, c, light)), 0.0, 1.0)


def lognormal_smear(mean: ArrayLike, sigma: ArrayLike, rng: np.random.Generator) -> FloatArray:
    """Draw from a log-normal with the given mean and standard deviation.

    This is Delphes' ``LogNormal(mean, sigma)`` (used by ``MomentumSmearing`` and the
    calorimeters): positive by construction; entries with ``mean <= 0`` give 0.

    Parameters
    ----------
    mean, sigma : array_like of float, shape (P,)
        Mean and absolute standard deviation of the smeared quantity.
    rng : numpy.random.Generator
        Source of randomness; exactly ``P`` normal draws are consumed.
    """
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    z = rng.standard_normal(mean.shape)
    positive = mean > 0.0
    safe_mean = np.where(positive, mean, 1.0)
    b = np.sqrt(np.log1p((sigma / safe_mean) ** 2))
    a = np.log(safe_mean) - 0.5 * b**2
    return np.where(positive, np.exp(a + b * z), 0.0)


def accept(probability: ArrayLike, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Bernoulli draw: ``True`` with the given probability (one uniform per entry)."""
    probability = np.asarray(probability, dtype=np.float64)
    return rng.random(probability.shape) < probability
