"""Detector-level events -> padded, fixed-size numpy tensors.

Object 0 is the selected lepton, objects ``1..max_jets`` the selected jets in decreasing
pT; ``N = 1 + max_jets`` (fixed, 21 by default, so every batch has the same shape). Padded
slots are all zeros and ``mask`` is False there. Events with more than ``max_jets``
selected jets keep the leading ones (logged with a count).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import vector

from hepvld.features.selection import PAPER_CUTS, SelectionCuts, good_jets, good_leptons

__all__ = ["DETECTOR_FEATURES", "GLOBAL_FEATURES", "DetectorTensors", "detector_tensors", "pad"]

vector.register_awkward()
log = logging.getLogger(__name__)

#: Per-object features ``F = 12``.
DETECTOR_FEATURES: tuple[str, ...] = (
    "M",
    "pT",
    "phi",
    "eta",
    "E",
    "px",
    "py",
    "pz",
    "is_bjet",
    "is_light_jet",
    "is_electron",
    "is_muon",
)
#: Event-level features ``G = 2``.
GLOBAL_FEATURES: tuple[str, ...] = ("MET_pt", "MET_phi")


@dataclass
class DetectorTensors:
    """Padded detector-level inputs.

    Attributes
    ----------
    objects
        ``(B, N, F=12)`` float32, features :data:`DETECTOR_FEATURES`.
    mask
        ``(B, N)`` bool, True for real objects.
    globals
        ``(B, G=2)`` float32, :data:`GLOBAL_FEATURES`.
    """

    objects: np.ndarray
    mask: np.ndarray
    globals: np.ndarray

    def __len__(self) -> int:
        return len(self.objects)


def pad(array: Any, n: int, fill: float = 0.0, dtype: Any = np.float32) -> np.ndarray:
    """Jagged ``(B, var)`` -> ``(B, n)`` numpy, clipped and filled with ``fill``."""
    padded = ak.fill_none(ak.pad_none(array, n, axis=1, clip=True), fill)
    out = ak.to_numpy(padded, allow_missing=False)
    return np.asarray(out, dtype=dtype).reshape(len(array), n)


def _features(p4: Any, onehot: tuple[Any, ...], n: int) -> np.ndarray:
    cols = [p4.mass, p4.pt, p4.phi, p4.eta, p4.E, p4.px, p4.py, p4.pz, *onehot]
    return np.stack([pad(c, n) for c in cols], axis=-1)


def detector_tensors(
    events: Any, max_jets: int = 20, *, cuts: SelectionCuts = PAPER_CUTS
) -> DetectorTensors:
    """Build the detector-level tensors of (selected) events.

    Parameters
    ----------
    events
        ``B`` events as returned by :func:`hepvld.io.open_events`, usually already passed
        through :func:`hepvld.features.select`. The lepton slot holds the leading selected
        (isolated, pT > 25, |η| < 2.5) electron or muon; events without one have it masked.
    max_jets
        Jet slots; ``N = 1 + max_jets``.
    cuts
        Object thresholds (same as the selection's).

    Returns
    -------
    DetectorTensors
        ``objects (B, N, 12)``, ``mask (B, N)``, ``globals (B, 2)``.
    """
    if max_jets < 1:
        raise ValueError(f"max_jets must be >= 1, got {max_jets}")
    B = len(events)
    e_ok, m_ok = good_leptons(events, cuts)
    e, m = events.Electron[e_ok], events.Muon[m_ok]

    def lepton_record(c: Any, is_e: int) -> ak.Array:
        return ak.zip(
            {"pt": c.pt, "eta": c.eta, "phi": c.phi, "mass": c.mass, "is_e": c.pt * 0 + is_e}
        )

    leps = ak.concatenate([lepton_record(e, 1), lepton_record(m, 0)], axis=1)
    leps = leps[ak.argsort(leps.pt, axis=1, ascending=False)]
    lep = ak.zip({k: leps[k] for k in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D")[:, :1]
    lep_obj = _features(lep, (lep.pt * 0, lep.pt * 0, leps.is_e[:, :1], 1 - leps.is_e[:, :1]), 1)

    jets = events.Jet[good_jets(events, cuts)]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
    n_jets = ak.to_numpy(ak.num(jets, axis=1))
    truncated = int((n_jets > max_jets).sum())
    if truncated:
        log.warning(
            "%d of %d events have more than %d selected jets; kept the leading %d in pT "
            "(%d jets dropped in total, at most %d in one event; raise max_jets to keep them)",
            truncated,
            B,
            max_jets,
            max_jets,
            int(np.clip(n_jets - max_jets, 0, None).sum()),
            int(n_jets.max() - max_jets),
        )
    jp4 = ak.zip({k: jets[k] for k in ("pt", "eta", "phi", "mass")}, with_name="Momentum4D")
    btag = ak.values_astype(jets.btagged, np.float32)
    zero = jets.pt * 0
    jet_obj = _features(jp4, (btag, 1 - btag, zero, zero), max_jets)

    objects = np.concatenate([lep_obj, jet_obj], axis=1).astype(np.float32)
    mask = np.concatenate(
        [
            (ak.to_numpy(ak.num(lep, axis=1)) > 0)[:, None],
            np.arange(max_jets)[None, :] < n_jets[:, None],
        ],
        axis=1,
    ).reshape(B, 1 + max_jets)
    objects[~mask] = 0.0
    glob = np.stack(
        [
            np.asarray(ak.to_numpy(events.MET.pt), dtype=np.float32),
            np.asarray(ak.to_numpy(events.MET.phi), dtype=np.float32),
        ],
        axis=-1,
    )
    return DetectorTensors(objects=objects, mask=mask, globals=glob.reshape(B, 2))
