"""The paper's event selection and its cut-flow.

Exactly one isolated e or μ with pT > 25 GeV and |η| < 2.5; at least four jets with
pT > 25 GeV and |η| < 2.5, at least two of them b-tagged.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from hepvld.features.selection import Cutflow
from hepvld.generate import detector

__all__ = [
    "CUTS",
    "ETA_MAX",
    "JET_PT_MIN",
    "LEPTON_PT_MIN",
    "MIN_BTAGS",
    "MIN_JETS",
    "Cutflow",
    "selection_stage",
    "stage_cutflow",
]

#: Cut names, in order; ``stage == k`` means the first k cuts after "generated" passed.
CUTS: tuple[str, ...] = (
    "generated",
    "semi-leptonic tt̄ chain",
    "exactly 1 isolated e/μ",
    ">= 4 jets",
    ">= 2 b-tagged jets",
)
LEPTON_PT_MIN = 25.0
JET_PT_MIN = 25.0
ETA_MAX = 2.5
MIN_JETS = 4
MIN_BTAGS = 2


def stage_cutflow(stage: NDArray[np.integer]) -> Cutflow:
    """Cut-flow of :data:`CUTS` of events whose last passed cut is ``stage`` (0 = generated
    only); a :class:`hepvld.features.selection.Cutflow`, mergeable with ``+``."""
    return Cutflow.from_stages(stage, CUTS)


def selection_stage(
    chain_found: NDArray[np.bool_], electrons: ak.Array, muons: ak.Array, jets: ak.Array
) -> NDArray[np.int8]:
    """Index in :data:`CUTS` of the last cut each event passes (cuts are sequential).

    Parameters
    ----------
    chain_found : numpy.ndarray of bool, shape (B,)
        The event has a semi-leptonic tt̄ decay chain.
    electrons, muons : awkward.Array, shape (B, var)
        Fields pt, eta and ``pfRelIso03_all`` / ``pfRelIso04_all``.
    jets : awkward.Array, shape (B, var)
        Fields pt, eta, btagged.

    Returns
    -------
    numpy.ndarray of int8, shape (B,)
    """

    def n_leptons(leptons: ak.Array, iso: str, iso_max: float) -> NDArray[np.int64]:
        good = (
            (leptons["pt"] > LEPTON_PT_MIN)
            & (np.abs(leptons["eta"]) < ETA_MAX)
            & (leptons[iso] < iso_max)
        )
        return ak.to_numpy(ak.sum(good, axis=1))

    one_lepton = (
        n_leptons(electrons, "pfRelIso03_all", detector.ELECTRON_ISOLATION_MAX)
        + n_leptons(muons, "pfRelIso04_all", detector.MUON_ISOLATION_MAX)
    ) == 1
    good_jet = (jets["pt"] > JET_PT_MIN) & (np.abs(jets["eta"]) < ETA_MAX)
    enough_jets = ak.to_numpy(ak.sum(good_jet, axis=1)) >= MIN_JETS
    enough_btags = ak.to_numpy(ak.sum(good_jet & jets["btagged"], axis=1)) >= MIN_BTAGS
    passed = np.stack(
        [np.ones_like(chain_found), chain_found, one_lepton, enough_jets, enough_btags]
    )
    return (np.cumprod(passed, axis=0).sum(axis=0) - 1).astype(np.int8)
